/**
 * The core's block bookkeeping: which blocks are in flight from which peer, partial pieces
 * and their buffers, availability, endgame. The {@linkcode PieceSelector} plugin only decides
 * which *new* pieces to start; everything here applies to every selector.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { PluginError } from "../errors.ts";
import type { PeerView, PieceSelector, SelectionView } from "../types.ts";

/** Size of a request block: 16 KiB, as every client uses. */
export const BLOCK_SIZE = 16 * 1024;

/** A select() call that yields this many unusable pieces is not read further (it may never end). */
const MAX_UNUSABLE_PICKS = 64;

/** A block of a piece. */
export interface BlockRef {
  /** Piece index. */
  readonly piece: number;
  /** Byte offset within the piece. */
  readonly begin: number;
  /** Length in bytes. */
  readonly length: number;
}

/** A peer as the picker sees it. */
export interface PickerPeer extends PeerView {
  /** Whether the peer is known to have every piece (`have_all` or a full bitfield). */
  readonly seed: boolean;
}

/**
 * A frozen read-only view of a peer, the only one a selector is given: its id, `has` and
 * `downloadRate` read the live peer, and nothing else of the peer (a connection's `close`,
 * say) can be reached through it.
 */
function readOnlyView(peer: PeerView): PeerView {
  return Object.freeze({
    id: peer.id,
    has: (piece: number) => peer.has(piece),
    get downloadRate(): number {
      return peer.downloadRate;
    },
  });
}

/** A piece whose every block has arrived, ready to be hashed and written. */
export interface CompletedPiece {
  /** Piece index. */
  readonly piece: number;
  /** The piece's bytes (a pooled buffer: call {@linkcode PiecePicker.pieceVerified} or `pieceFailed` when done). */
  readonly data: Uint8Array;
  /** Peer id of the sender of each block, by block index. */
  readonly contributors: readonly string[];
}

/** What happened to an arriving block. */
export interface BlockOutcome {
  /** False when the block was not expected (never requested, or already received). */
  readonly accepted: boolean;
  /** True when the block had been requested from this peer (even if another copy won). */
  readonly wasRequested: boolean;
  /** Other peers that had requested the same block and should be sent a cancel (endgame). */
  readonly cancel: readonly string[];
  /** Set when this block completed its piece. */
  readonly completed?: CompletedPiece;
}

/** Options for {@linkcode PiecePicker}. */
export interface PiecePickerOptions {
  /** Number of pieces. */
  pieceCount: number;
  /** Bytes per piece. */
  pieceLength: number;
  /** Total bytes. */
  totalLength: number;
  /** Pieces already verified. */
  have: Bitfield;
  /** The selection plugin. */
  selector: PieceSelector;
  /** Random source. @default {Math.random} */
  random?: () => number;
  /** Cap on bytes held in partial piece buffers. @default {64 MiB} */
  maxBufferedBytes?: number;
  /** Called when the selector returns something it should not (the picker carries on). */
  onSelectorFault?: (error: PluginError) => void;
}

interface Partial {
  readonly index: number;
  readonly length: number;
  readonly blocks: number;
  buffer: Uint8Array | null;
  received: Uint8Array;
  receivedCount: number;
  /** Peer ids requesting each block (undefined: none). */
  requesters: (string[] | undefined)[];
  /** Blocks neither received nor requested. */
  unrequested: number;
  contributors: string[];
}

/**
 * Tracks pieces and blocks for one torrent.
 *
 * @example
 * ```ts
 * import { PiecePicker } from "./piece_picker.ts";
 * import { Bitfield } from "../bitfield.ts";
 * const picker = new PiecePicker({
 *   pieceCount: 2, pieceLength: 32768, totalLength: 40000, have: new Bitfield(2),
 *   selector: { name: "first", *select(v, p, max) { for (let i = 0; i < v.pieceCount && max > 0; i++) if (v.wants(i) && p.has(i)) { max--; yield i; } } },
 * });
 * const peer = { id: "a", downloadRate: 0, seed: true, has: () => true };
 * picker.peerHasAll();
 * console.log(picker.pick(peer, 10).length); // 3 blocks: 16384 + 16384 + 7232 bytes
 * ```
 */
export class PiecePicker {
  readonly #pieceCount: number;
  readonly #pieceLength: number;
  readonly #totalLength: number;
  readonly #have: Bitfield;
  readonly #selector: PieceSelector;
  readonly #random: () => number;
  readonly #availability: Uint16Array;
  readonly #partials = new Map<number, Partial>();
  /** Pieces complete and being hashed/written: not partial, not yet had. */
  readonly #pending = new Set<number>();
  readonly #pool: Uint8Array[] = [];
  readonly #maxBuffers: number;
  readonly #onFault: ((error: PluginError) => void) | undefined;
  #seeds = 0;
  #buffersOut = 0;
  readonly #view: SelectionView;
  /** Pieces to download (null: all), pieces to start first (null: none), and counts of those still missing. */
  #wanted: Bitfield | null = null;
  #high: Bitfield | null = null;
  #wantedMissing = 0;
  #highMissing = 0;
  readonly #highView: SelectionView;
  /** The read-only view of each peer given to the selector: made once per peer, not per pick. */
  readonly #peerViews = new WeakMap<PickerPeer, PeerView>();

  /** @param options Torrent geometry, state and selector. */
  constructor(options: PiecePickerOptions) {
    this.#pieceCount = options.pieceCount;
    this.#pieceLength = options.pieceLength;
    this.#totalLength = options.totalLength;
    this.#have = options.have;
    this.#selector = options.selector;
    this.#random = options.random ?? Math.random;
    this.#availability = new Uint16Array(options.pieceCount);
    this.#maxBuffers = Math.max(
      2,
      Math.floor((options.maxBufferedBytes ?? 64 * 1024 * 1024) / options.pieceLength),
    );
    this.#onFault = options.onSelectorFault;
    const pieceCount = this.#pieceCount;
    const have = this.#have;
    this.#view = {
      pieceCount,
      get completedCount() {
        return have.count();
      },
      wants: (i) => this.#wants(i),
      availability: (i) => (this.#availability[i] ?? 0) + this.#seeds,
      isPartial: (i) => this.#partials.has(i),
      random: () => this.#random(),
    };
    this.#highView = {
      pieceCount,
      get completedCount() {
        return have.count();
      },
      wants: (i) => this.#wants(i) && this.#high !== null && this.#high.get(i),
      availability: this.#view.availability,
      isPartial: this.#view.isPartial,
      random: this.#view.random,
    };
  }

  /**
   * Restricts downloading to the `wanted` pieces (file priorities: pieces only skipped files
   * touch are never requested) and starts `high` pieces before the others: the selector is
   * first shown a view whose `wants()` is true only for high pieces. Partial pieces already
   * started are finished either way. The bitfields are kept by reference and never modified:
   * pass new ones to change the priorities.
   *
   * @param wanted Pieces to download; null for all.
   * @param high Pieces to start first; null for none.
   */
  setPriorities(wanted: Bitfield | null, high: Bitfield | null): void {
    this.#wanted = wanted;
    this.#high = high;
    this.#wantedMissing = 0;
    this.#highMissing = 0;
    for (let i = 0; i < this.#pieceCount; i++) {
      if (this.#have.get(i)) continue;
      if (this.#isWanted(i)) this.#wantedMissing++;
      if (this.#high?.get(i)) this.#highMissing++;
    }
  }

  #isWanted(i: number): boolean {
    return this.#wanted === null || this.#wanted.get(i);
  }

  /** Wanted pieces not yet verified (all missing pieces without priorities). */
  get missingCount(): number {
    return this.#wanted === null ? this.#pieceCount - this.#have.count() : this.#wantedMissing;
  }

  /** The read-only view given to the selector (also useful to tests). */
  get view(): SelectionView {
    return this.#view;
  }

  /** Number of partial pieces (being downloaded). */
  get partialCount(): number {
    return this.#partials.size;
  }

  /**
   * Length of a piece.
   *
   * @param piece Piece index.
   * @returns Its length in bytes.
   */
  pieceSize(piece: number): number {
    if (piece === this.#pieceCount - 1) return this.#totalLength - piece * this.#pieceLength;
    return this.#pieceLength;
  }

  #wants(i: number): boolean {
    if (i < 0 || i >= this.#pieceCount || this.#have.get(i) || this.#pending.has(i)) return false;
    if (this.#wanted !== null && !this.#wanted.get(i)) return false;
    const p = this.#partials.get(i);
    return p === undefined || p.unrequested > 0;
  }

  /** Records a peer that has every piece. */
  peerHasAll(): void {
    this.#seeds++;
  }

  /** Forgets a peer that had every piece. */
  peerLostAll(): void {
    this.#seeds--;
  }

  /**
   * Adds a peer's bitfield to availability.
   *
   * @param bits The peer's pieces.
   */
  addBitfield(bits: Bitfield): void {
    for (const i of bits) this.#availability[i]!++;
  }

  /**
   * Removes a departing peer's bitfield from availability.
   *
   * @param bits The peer's pieces.
   */
  removeBitfield(bits: Bitfield): void {
    for (const i of bits) if (this.#availability[i]! > 0) this.#availability[i]!--;
  }

  /**
   * Records a `have` from a peer.
   *
   * @param piece Piece index (already range-checked).
   */
  addHave(piece: number): void {
    this.#availability[piece]!++;
  }

  /** True when every wanted piece is verified (every piece, without priorities). */
  get complete(): boolean {
    return this.missingCount === 0;
  }

  /**
   * Chooses up to `max` blocks to request from a peer and marks them as requested by it.
   * Order: blocks of partial pieces the peer has, then new pieces from the selector, then
   * (endgame, when nothing is left unrequested) blocks already requested from one other peer.
   *
   * @param peer The peer.
   * @param max Most blocks to return.
   * @returns The blocks to request.
   */
  pick(peer: PickerPeer, max: number): BlockRef[] {
    const out: BlockRef[] = [];
    if (max <= 0 || this.complete) return out;
    for (const p of this.#partials.values()) {
      if (p.unrequested > 0 && peer.has(p.index)) this.#takeBlocks(p, peer.id, max, out);
      if (out.length >= max) return out;
    }
    // New pieces, while we have buffer budget: high-priority ones first, through their own view.
    if (this.#high !== null && this.#highMissing > 0) this.#startNew(peer, max, out, this.#highView);
    this.#startNew(peer, max, out, this.#view);
    if (out.length < max && this.#inEndgame()) {
      for (const p of this.#partials.values()) {
        if (!peer.has(p.index)) continue;
        for (let b = 0; b < p.blocks && out.length < max; b++) {
          if (p.received[b]) continue;
          const r = p.requesters[b];
          if (r === undefined || r.length !== 1 || r[0] === peer.id) continue;
          r.push(peer.id);
          out.push(this.#block(p, b));
        }
        if (out.length >= max) break;
      }
    }
    return out;
  }

  /** Starts new pieces the selector picks through `view`, while the buffer budget allows. */
  #startNew(peer: PickerPeer, max: number, out: BlockRef[], view: SelectionView): void {
    let peerView = this.#peerViews.get(peer);
    if (peerView === undefined) {
      peerView = readOnlyView(peer);
      this.#peerViews.set(peer, peerView);
    }
    // Pieces being hashed and written hold buffers too: a slow disk slows the network.
    while (out.length < max && this.#partials.size + this.#pending.size < this.#maxBuffers) {
      const blocksPerPiece = Math.ceil(this.#pieceLength / BLOCK_SIZE);
      const want = Math.min(
        this.#maxBuffers - this.#partials.size - this.#pending.size,
        Math.ceil((max - out.length) / blocksPerPiece),
      );
      let started = 0;
      let unusable = 0;
      let picks: Iterable<number>;
      try {
        picks = this.#selector.select(view, peerView, want);
        for (const i of picks) {
          if (!Number.isInteger(i) || !view.wants(i) || !peer.has(i) || this.#partials.has(i)) {
            this.#onFault?.(
              new PluginError(
                this.#selector.name,
                `select() returned piece ${i}, which is not wanted from this peer`,
              ),
            );
            if (++unusable >= MAX_UNUSABLE_PICKS) break;
            continue;
          }
          const p = this.#startPiece(i);
          this.#takeBlocks(p, peer.id, max, out);
          started++;
          if (out.length >= max || started >= want) break;
        }
      } catch (error) {
        this.#onFault?.(
          new PluginError(this.#selector.name, `select() threw: ${String(error)}`, { cause: error }),
        );
        break;
      }
      if (started === 0 || unusable >= MAX_UNUSABLE_PICKS) break;
    }
  }

  /** Endgame: every missing piece is partial (or pending) and has no unrequested block. */
  #inEndgame(): boolean {
    let partials = 0;
    for (const p of this.#partials.values()) {
      if (p.unrequested > 0) return false;
      if (this.#isWanted(p.index)) partials++;
    }
    let pending = 0;
    for (const i of this.#pending) if (this.#isWanted(i)) pending++;
    return this.missingCount - pending === partials;
  }

  #startPiece(i: number): Partial {
    const length = this.pieceSize(i);
    const blocks = Math.ceil(length / BLOCK_SIZE);
    const p: Partial = {
      index: i,
      length,
      blocks,
      buffer: null,
      received: new Uint8Array(blocks),
      receivedCount: 0,
      requesters: new Array(blocks).fill(undefined),
      unrequested: blocks,
      contributors: new Array(blocks).fill(""),
    };
    this.#partials.set(i, p);
    return p;
  }

  #block(p: Partial, b: number): BlockRef {
    const begin = b * BLOCK_SIZE;
    return { piece: p.index, begin, length: Math.min(BLOCK_SIZE, p.length - begin) };
  }

  #takeBlocks(p: Partial, peerId: string, max: number, out: BlockRef[]): void {
    for (let b = 0; b < p.blocks && out.length < max && p.unrequested > 0; b++) {
      if (p.received[b] || p.requesters[b] !== undefined) continue;
      p.requesters[b] = [peerId];
      p.unrequested--;
      out.push(this.#block(p, b));
    }
  }

  /**
   * Whether a block is currently requested from a peer.
   *
   * @param peerId The peer.
   * @param piece Piece index.
   * @param begin Block offset.
   * @returns True if requested and not yet received.
   */
  isRequested(peerId: string, piece: number, begin: number): boolean {
    const p = this.#partials.get(piece);
    if (p === undefined || begin % BLOCK_SIZE !== 0) return false;
    return p.requesters[begin / BLOCK_SIZE]?.includes(peerId) ?? false;
  }

  /**
   * Stores an arriving block. The data is copied into the piece buffer.
   *
   * @param peerId The sender.
   * @param piece Piece index.
   * @param begin Offset in the piece.
   * @param data The block bytes (must have the block's exact length).
   * @returns What happened.
   */
  blockReceived(peerId: string, piece: number, begin: number, data: Uint8Array): BlockOutcome {
    const p = this.#partials.get(piece);
    if (p === undefined || begin % BLOCK_SIZE !== 0 || begin >= p.length) {
      return { accepted: false, wasRequested: false, cancel: [] };
    }
    const b = begin / BLOCK_SIZE;
    const requesters = p.requesters[b];
    const wasRequested = requesters?.includes(peerId) ?? false;
    if (p.received[b] || data.length !== Math.min(BLOCK_SIZE, p.length - begin)) {
      // A refused copy frees the request, so the block can be asked for again.
      if (wasRequested) this.release(peerId, piece, begin);
      return { accepted: false, wasRequested, cancel: [] };
    }
    if (p.buffer === null) {
      p.buffer = this.#takeBuffer(p.length);
    }
    p.buffer.set(data, begin);
    p.received[b] = 1;
    p.receivedCount++;
    p.contributors[b] = peerId;
    const cancel = requesters === undefined ? [] : requesters.filter((id) => id !== peerId);
    if (requesters === undefined) p.unrequested--; // arrived without a request from anyone (tolerated)
    p.requesters[b] = undefined;
    if (p.receivedCount < p.blocks) return { accepted: true, wasRequested, cancel };
    this.#partials.delete(piece);
    this.#pending.add(piece);
    return {
      accepted: true,
      wasRequested,
      cancel,
      completed: { piece, data: p.buffer, contributors: p.contributors },
    };
  }

  /**
   * Gives up a block requested from a peer (rejected, choked, timed out, disconnected), so
   * others may request it.
   *
   * @param peerId The peer.
   * @param piece Piece index.
   * @param begin Block offset.
   */
  release(peerId: string, piece: number, begin: number): void {
    const p = this.#partials.get(piece);
    if (p === undefined || begin % BLOCK_SIZE !== 0) return;
    const b = begin / BLOCK_SIZE;
    const r = p.requesters[b];
    if (r === undefined) return;
    const at = r.indexOf(peerId);
    if (at < 0) return;
    r.splice(at, 1);
    if (r.length === 0) {
      p.requesters[b] = undefined;
      if (!p.received[b]) p.unrequested++;
    }
    if (p.receivedCount === 0 && p.unrequested === p.blocks) this.#dropPartial(p);
  }

  #dropPartial(p: Partial): void {
    this.#partials.delete(p.index);
    if (p.buffer !== null) this.#returnBuffer(p.buffer);
  }

  #takeBuffer(length: number): Uint8Array {
    this.#buffersOut++;
    const buf = this.#pool.pop() ?? new Uint8Array(this.#pieceLength);
    return buf.subarray(0, length);
  }

  #returnBuffer(buf: Uint8Array): void {
    this.#buffersOut--;
    if (this.#pool.length < this.#maxBuffers) {
      this.#pool.push(new Uint8Array(buf.buffer, 0, this.#pieceLength));
    }
  }

  /**
   * Marks a completed piece as verified and written; recycles its buffer.
   *
   * @param completed The piece from {@linkcode blockReceived}.
   */
  pieceVerified(completed: CompletedPiece): void {
    this.#pending.delete(completed.piece);
    if (!this.#have.get(completed.piece)) {
      if (this.#wanted?.get(completed.piece)) this.#wantedMissing--;
      if (this.#high?.get(completed.piece)) this.#highMissing--;
    }
    this.#have.set(completed.piece);
    this.#returnBuffer(completed.data);
  }

  /**
   * Marks a completed piece as failed (hash mismatch or write error): it will be downloaded again.
   *
   * @param completed The piece from {@linkcode blockReceived}.
   */
  pieceFailed(completed: CompletedPiece): void {
    this.#pending.delete(completed.piece);
    this.#returnBuffer(completed.data);
  }

  /**
   * Forgets a piece we had (its data changed or vanished on disk): it is missing again and
   * will be downloaded if wanted.
   *
   * @param piece Piece index.
   */
  pieceLost(piece: number): void {
    if (!this.#have.get(piece)) return;
    this.#have.clear(piece);
    if (this.#wanted?.get(piece)) this.#wantedMissing++;
    if (this.#high?.get(piece)) this.#highMissing++;
  }

  /** Bytes currently held in piece buffers (for memory accounting). */
  get bufferedBytes(): number {
    return this.#buffersOut * this.#pieceLength;
  }
}
