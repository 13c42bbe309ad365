/**
 * A torrent's piece pipeline: a received block goes to the picker; a completed piece is hashed,
 * written and judged (smart ban verdicts for its senders); served blocks are read through the
 * verified read cache; pieces lost on disk are refused and fetched again. It counts what
 * failed and what was thrown away, and tracks the writes in flight.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { PieceUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { equalBytes } from "../net/bytes.ts";
import type { BanList } from "../peer/ban_list.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { type CompletedPiece, PiecePicker } from "../peer/piece_picker.ts";
import type { RateMeter } from "../peer/rate.ts";
import type { CheckedStorage } from "../storage/storage.ts";
import { type PieceLoss, VerifiedPieceReader } from "../storage/verified_reader.ts";
import { sha1 } from "../storage/verify.ts";
import type { TorrentOptions } from "../torrent_types.ts";
import type { Metainfo } from "../types.ts";
import type { EmitTorrentEvent } from "./internal.ts";

/** What the pipeline tells the rest of the torrent. */
export interface PipelineHooks {
  /** Dispatches a torrent event (`piece-verified`, `piece-failed`, `piece-lost`). */
  readonly emit: EmitTorrentEvent;
  /** A smart ban verdict: ban this address and close its connection. */
  readonly ban: (address: string, reason: string) => void;
  /** An endgame duplicate arrived: cancel the block at this peer. */
  readonly cancel: (peer: string, piece: number, begin: number) => void;
  /** A piece was verified, written and marked "have" (announce it, check for done). */
  readonly verified: (piece: number) => void;
  /** Pieces we had were lost on disk: they are no longer served, and downloaded again if wanted. */
  readonly lost: () => void;
  /** A fatal error (a write failed): stop the torrent. */
  readonly fail: (error: Error) => void;
}

/** Options of {@linkcode PiecePipeline}. */
export interface PiecePipelineOptions {
  /** The torrent. */
  readonly metainfo: Metainfo;
  /** Our verified pieces (the picker sets them). */
  readonly have: Bitfield;
  /** The torrent's picker. */
  readonly picker: PiecePicker;
  /** The pieces the file priorities want (null: every piece). */
  readonly wanted: () => Bitfield | null;
  /** The torrent's storage. */
  readonly storage: CheckedStorage;
  /** The smart ban list. */
  readonly bans: BanList;
  /** Piece bytes received. */
  readonly down: RateMeter;
  /** Piece bytes sent. */
  readonly up: RateMeter;
  /** Where verified and failed pieces are logged. */
  readonly logger: Logger;
  /** Clock. */
  readonly now: () => number;
  /** What the pipeline tells the torrent. */
  readonly hooks: PipelineHooks;
}

/**
 * Makes the piece picker of a started torrent (the pipeline and the peers share it).
 *
 * @example
 * ```ts ignore
 * const picker = createPicker(metainfo, options, have, logger);
 * ```
 *
 * @param meta The torrent.
 * @param options The torrent's options (selector, random source, buffer cap).
 * @param have Our verified pieces.
 * @param logger Where a selector's fault is logged.
 * @returns The picker.
 */
export function createPicker(
  meta: Metainfo,
  options: TorrentOptions,
  have: Bitfield,
  logger: Logger,
): PiecePicker {
  return new PiecePicker({
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    totalLength: meta.totalLength,
    have,
    selector: options.selector,
    ...(options.random ? { random: options.random } : {}),
    ...(options.maxBufferedBytes ? { maxBufferedBytes: options.maxBufferedBytes } : {}),
    onSelectorFault: (error) => logger.warn("plugin", error.message, { plugin: error.plugin }),
  });
}

/**
 * Blocks in, pieces out: see the module documentation.
 *
 * @example
 * ```ts ignore
 * const pipeline = new PiecePipeline({ metainfo, have, picker, wanted, storage, bans, down, up, logger, now, hooks });
 * pipeline.block(peer, 0, 0, data);
 * await pipeline.idle();
 * ```
 */
export class PiecePipeline {
  readonly #meta: Metainfo;
  readonly #have: Bitfield;
  readonly #picker: PiecePicker;
  readonly #wanted: () => Bitfield | null;
  readonly #storage: CheckedStorage;
  readonly #bans: BanList;
  readonly #down: RateMeter;
  readonly #up: RateMeter;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #hooks: PipelineHooks;
  /** Serves pieces only once what was read matches the hash (see verified_reader.ts). */
  readonly #reader: VerifiedPieceReader;
  /** Pieces we announced, then lost on disk: requests for them are refused, not held against peers. */
  readonly #lost = new Set<number>();
  readonly #writes = new Set<Promise<void>>();
  #failedPieces = 0;
  /** Bytes of blocks received but not used: duplicates, unrequested or no longer needed. */
  #duplicateBytes = 0;
  /** Bytes of pieces that failed their hash check. */
  #failedBytes = 0;

  /**
   * Creates the pipeline of a started torrent.
   *
   * @param options The torrent's pieces, picker, storage, meters and hooks.
   */
  constructor(options: PiecePipelineOptions) {
    this.#meta = options.metainfo;
    this.#have = options.have;
    this.#picker = options.picker;
    this.#wanted = options.wanted;
    this.#storage = options.storage;
    this.#bans = options.bans;
    this.#down = options.down;
    this.#up = options.up;
    this.#log = options.logger;
    this.#now = options.now;
    this.#hooks = options.hooks;
    this.#reader = new VerifiedPieceReader(options.storage, options.metainfo, {
      onLost: (loss) => this.#piecesLost(loss),
      onProblem: (message) => this.#log.warn("storage", message),
    });
  }

  /** Pieces that failed their hash check. */
  get failedPieces(): number {
    return this.#failedPieces;
  }

  /** Bytes of blocks received and thrown away (duplicates, unrequested, no longer needed). */
  get duplicateBytes(): number {
    return this.#duplicateBytes;
  }

  /** Bytes of the pieces that failed their hash check. */
  get failedBytes(): number {
    return this.#failedBytes;
  }

  /**
   * A block arrived from a peer: the picker takes it; a completed piece is hashed and written.
   *
   * @param peer The sender.
   * @param piece Piece index.
   * @param begin Offset in the piece.
   * @param data The block (valid only during the call; the picker copies it).
   */
  block(peer: PeerConnection, piece: number, begin: number, data: Uint8Array): void {
    this.#down.add(data.length, this.#now());
    const outcome = this.#picker.blockReceived(peer.id, piece, begin, data);
    if (!outcome.accepted) this.#duplicateBytes += data.length;
    for (const id of outcome.cancel) this.#hooks.cancel(id, piece, begin);
    if (outcome.completed) this.#track(this.#finishPiece(outcome.completed));
  }

  /**
   * A block for serving, cut from its whole piece: the reader reads each piece once, checks its
   * hash before any block of it is sent, and keeps it in a small LRU cache (peers ask for a
   * piece's blocks in a row; `prefetch` starts the read as soon as a request is queued).
   *
   * @param piece Piece index.
   * @param begin Offset in the piece.
   * @param length Block length.
   * @returns A view of the block.
   * @throws {PieceUnavailableError} when we do not have the piece (any more).
   */
  async readBlock(piece: number, begin: number, length: number): Promise<Uint8Array> {
    if (!this.#have.get(piece)) {
      throw new PieceUnavailableError(piece, `Piece ${piece} is no longer available`);
    }
    const data = await this.#reader.read(piece);
    this.#up.add(length, this.#now());
    return data.subarray(begin, begin + length);
  }

  /**
   * Starts reading a piece that requests were queued for.
   *
   * @param piece Piece index.
   */
  prefetch(piece: number): void {
    if (!this.#have.get(piece)) return;
    this.#reader.read(piece).catch(
      () => {/* the read is retried, and its error reported, when the block is served */},
    );
  }

  /**
   * Whether a piece we announced was lost on disk (requests for it are refused, not held
   * against the peer).
   *
   * @param piece Piece index.
   * @returns True if lost.
   */
  isLost(piece: number): boolean {
    return this.#lost.has(piece);
  }

  /**
   * Waits for the writes in flight (a failed one has stopped the torrent already).
   *
   * @returns Settles once they are over.
   */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error) =>
      this.#hooks.fail(error instanceof Error ? error : new Error(String(error)))
    )
      .finally(() => this.#writes.delete(tracked));
    this.#writes.add(tracked);
  }

  async #finishPiece(done: CompletedPiece): Promise<void> {
    const meta = this.#meta;
    const { piece, data } = done;
    // node:crypto's SHA-1 measured faster here than crypto.subtle, even with several digests in
    // flight, and it needs no copy of the piece.
    const digest = sha1(data);
    const expected = meta.pieceHashes.subarray(piece * 20, piece * 20 + 20);
    if (!equalBytes(digest, expected)) {
      this.#pieceFailed(done);
      return;
    }
    try {
      await this.#storage.write(piece, 0, data);
    } catch (error) {
      this.#picker.pieceFailed(done);
      this.#hooks.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    // Good pieces earn their senders credit; earlier bad blocks of this piece name the liars.
    for (const verdict of this.#bans.pieceVerified(piece, data, done.contributors)) {
      this.#hooks.ban(verdict.address, verdict.reason);
    }
    this.#picker.pieceVerified(done);
    this.#lost.delete(piece);
    this.#log.debug("storage", "Piece verified", { piece, peers: [...new Set(done.contributors)].join(",") });
    this.#hooks.emit("piece-verified", { piece });
    this.#hooks.verified(piece);
  }

  #pieceFailed(done: CompletedPiece): void {
    const { piece, data, contributors } = done;
    this.#failedPieces++;
    this.#failedBytes += data.length;
    const peers = [...new Set(contributors)];
    this.#log.warn("storage", "Piece failed its hash check", { piece, peers: peers.join(",") });
    this.#hooks.emit("piece-failed", { piece, peers });
    for (const verdict of this.#bans.pieceFailed(piece, data, contributors)) {
      this.#hooks.ban(verdict.address, verdict.reason);
    }
    this.#picker.pieceFailed(done);
  }

  /** Pieces changed or vanished on disk: stop serving them and download them again. */
  #piecesLost(loss: PieceLoss): void {
    const pieces = loss.pieces.filter((p) => this.#have.get(p));
    if (pieces.length === 0) return;
    for (const p of pieces) {
      this.#picker.pieceLost(p);
      this.#lost.add(p);
      this.#reader.forget(p);
    }
    const files = loss.files.map((f) => this.#meta.files[f]!.safePath);
    const again = pieces.some((p) => this.#wanted()?.get(p) ?? true);
    this.#log.warn(
      "storage",
      `${loss.message}; not serving ${pieces.length === 1 ? "it" : "them"}` +
        (again ? ", downloading again" : ""),
      { pieces: pieces.length, files: files.join(",") },
    );
    this.#hooks.emit("piece-lost", { pieces, reason: loss.kind, files });
    this.#hooks.lost();
  }
}
