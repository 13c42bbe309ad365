/**
 * Verified reads for serving: {@linkcode VerifiedPieceReader} reads whole pieces from storage,
 * hashes each one read from disk before any byte of it is served, and keeps verified pieces in
 * a small LRU cache (peers ask for a piece's blocks in a row, so a piece is read and hashed
 * once, not once per block). A piece whose bytes changed on disk, or whose file shrank or
 * vanished, is reported lost and refused with {@linkcode PieceUnavailableError}: changed data
 * never reaches a peer.
 *
 * @module
 */

import { PieceUnavailableError } from "../errors.ts";
import type { Metainfo } from "../types.ts";
import { filePieceRange, pieceLengthOf, spansFor } from "./piece_map.ts";
import { MissingDataError, type StorageWithStat } from "./storage.ts";
import { pieceHashMatches } from "./verify.ts";

/** Pieces found unservable, reported by {@linkcode VerifiedPieceReader}. */
export interface PieceLoss {
  /** The pieces (one for a changed piece; every piece past a shrunk file's end). */
  pieces: number[];
  /** `"changed"`: the bytes no longer match the hash; `"missing"`: a file is absent or too short. */
  kind: "changed" | "missing";
  /** Indices (in `meta.files`) of the files at fault: those the piece lies in, or the shrunk one. */
  files: number[];
  /** What happened, naming the files and pieces. */
  message: string;
}

/** Options of {@linkcode VerifiedPieceReader}. */
export interface VerifiedReaderOptions {
  /** Bytes of verified pieces kept (at least 4 pieces are). @default {16 MiB} */
  maxCachedBytes?: number;
  /** Called once per loss found, before the reads waiting for those pieces are refused. */
  onLost?: (loss: PieceLoss) => void;
  /** Called when a file's size cannot be checked after a short read (each piece is still verified). */
  onProblem?: (message: string) => void;
}

/**
 * Reads pieces for serving and never returns bytes that fail the piece's hash.
 *
 * @example
 * ```ts
 * import { VerifiedPieceReader } from "./verified_reader.ts";
 * import { FileStorage } from "./file_storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const storage = await FileStorage.open("./downloads", meta);
 * const reader = new VerifiedPieceReader(storage, meta, {
 *   onLost: (loss) => console.warn(loss.message),
 * });
 * const piece = await reader.read(0); // throws PieceUnavailableError if piece 0 changed on disk
 * console.log(piece.length, reader.hashed); // meta.pieceLength 1
 * ```
 */
export class VerifiedPieceReader {
  readonly #storage: StorageWithStat;
  readonly #meta: Metainfo;
  readonly #onLost: ((loss: PieceLoss) => void) | undefined;
  readonly #onProblem: ((message: string) => void) | undefined;
  readonly #maxPieces: number;
  /** Reads (verified or under way), least recently used first. */
  readonly #cache = new Map<number, Promise<Uint8Array>>();
  /** Files whose size is being checked after a short read (one check at a time per file). */
  readonly #statting = new Set<number>();
  #hashed = 0;

  /**
   * Creates a reader.
   *
   * @param storage Where the pieces are (reads, and file sizes when a file turns out short).
   * @param meta The torrent.
   * @param options Cache size, and who hears of lost pieces.
   */
  constructor(storage: StorageWithStat, meta: Metainfo, options: VerifiedReaderOptions = {}) {
    this.#storage = storage;
    this.#meta = meta;
    this.#onLost = options.onLost;
    this.#onProblem = options.onProblem;
    const bytes = options.maxCachedBytes ?? 16 * 1024 * 1024;
    this.#maxPieces = Math.max(4, Math.floor(bytes / meta.pieceLength));
  }

  /** How many pieces were read from disk and hashed so far (cache hits are not counted). */
  get hashed(): number {
    return this.#hashed;
  }

  /**
   * Returns a whole piece whose bytes match its hash, from the cache or read and hashed now.
   *
   * @param piece Piece index.
   * @returns The piece's bytes (shared with other readers: do not modify).
   * @throws {PieceUnavailableError} when the bytes on disk changed or a file is absent or short.
   * @throws {StorageError} on other read failures (nothing is reported lost).
   */
  read(piece: number): Promise<Uint8Array> {
    let whole = this.#cache.get(piece);
    if (whole !== undefined) {
      this.#cache.delete(piece); // most recently used goes last
      this.#cache.set(piece, whole);
      return whole;
    }
    whole = this.#readAndVerify(piece);
    this.#cache.set(piece, whole);
    whole.catch(() => {
      // A failed read is not cached: the next request reads again (the failure goes to its caller).
      if (this.#cache.get(piece) === whole) this.#cache.delete(piece);
    });
    while (this.#cache.size > this.#maxPieces) this.#cache.delete(this.#cache.keys().next().value!);
    return whole;
  }

  /**
   * Drops a piece from the cache (its next read goes to disk and is hashed again).
   *
   * @param piece Piece index.
   */
  forget(piece: number): void {
    this.#cache.delete(piece);
  }

  async #readAndVerify(piece: number): Promise<Uint8Array> {
    let data: Uint8Array;
    try {
      data = await this.#storage.read(piece, 0, pieceLengthOf(this.#meta, piece));
    } catch (error) {
      if (!(error instanceof MissingDataError)) throw error;
      const files = error.fileIndex === undefined ? filesOf(this.#meta, piece) : [error.fileIndex];
      const message = `Piece ${piece} is no longer on disk: ${error.message}`;
      this.#onLost?.({ pieces: [piece], kind: "missing", files, message });
      if (error.fileIndex !== undefined) this.#recheckFile(error.fileIndex);
      throw new PieceUnavailableError(piece, message, { cause: error });
    }
    this.#hashed++;
    if (!pieceHashMatches(this.#meta, piece, data)) {
      const files = filesOf(this.#meta, piece);
      const names = files.map((f) => this.#meta.files[f]!.safePath).join(", ");
      const message = `Piece ${piece} changed on disk (in ${names}): its bytes no longer match the torrent`;
      this.#onLost?.({ pieces: [piece], kind: "changed", files, message });
      throw new PieceUnavailableError(piece, message);
    }
    return data;
  }

  /** A file read short: finds its size now and reports every piece past its end at once. */
  #recheckFile(fileIndex: number): void {
    if (this.#statting.has(fileIndex)) return;
    this.#statting.add(fileIndex);
    const name = this.#meta.files[fileIndex]!.safePath;
    this.#storage.fileStat(fileIndex).then(
      (stat) => {
        const size = stat?.size ?? null;
        const pieces = piecesPastFileEnd(this.#meta, fileIndex, size);
        if (pieces.length === 0) return;
        const what = size === null ? `${name} is gone` : `${name} shrank to ${size} bytes`;
        this.#onLost?.({
          pieces,
          kind: "missing",
          files: [fileIndex],
          message: `${what} (the torrent has ${this.#meta.files[fileIndex]!.length}): ` +
            `${pieces.length} of its pieces are no longer on disk (${describeRange(pieces)})`,
        });
      },
      (error: unknown) => {
        // Not fatal: each piece of the file is still verified when it is asked for.
        this.#onProblem?.(`Cannot check the size of ${name}: ${(error as Error).message}`);
      },
    ).finally(() => this.#statting.delete(fileIndex));
  }
}

/**
 * The pieces with bytes of a file that lie past `size` (every piece of the file when `size`
 * is null: the file is gone). Pad files and zero-byte files have none.
 *
 * @example
 * ```ts
 * import { piecesPastFileEnd } from "./verified_reader.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo; // one 100-byte file, 32-byte pieces
 * console.log(piecesPastFileEnd(meta, 0, 40)); // [1, 2, 3]
 * ```
 *
 * @param meta The torrent.
 * @param fileIndex Index in `meta.files`.
 * @param size The file's size on disk now, or null when it is absent.
 * @returns Piece indices, ascending.
 * @throws {RangeError} when the file index is out of range.
 */
export function piecesPastFileEnd(meta: Metainfo, fileIndex: number, size: number | null): number[] {
  const { first, last } = filePieceRange(meta, fileIndex);
  const file = meta.files[fileIndex]!;
  if (file.pad) return [];
  const out: number[] = [];
  for (let p = first; p <= last; p++) {
    // The piece needs the file up to the end of its span in it.
    const pieceEnd = Math.min((p + 1) * meta.pieceLength, meta.totalLength);
    const needed = Math.min(pieceEnd, file.offset + file.length) - file.offset;
    if (size === null || size < needed) out.push(p);
  }
  return out;
}

/** The non-pad files a piece's bytes lie in. */
function filesOf(meta: Metainfo, piece: number): number[] {
  return spansFor(meta, piece, 0, pieceLengthOf(meta, piece))
    .map((span) => span.fileIndex)
    .filter((f) => !meta.files[f]!.pad);
}

/** "3, 5-9, 12" for a sorted list of pieces (at most 8 runs shown). */
function describeRange(pieces: readonly number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < pieces.length;) {
    let j = i;
    while (j + 1 < pieces.length && pieces[j + 1] === pieces[j]! + 1) j++;
    runs.push(i === j ? `piece ${pieces[i]}` : `pieces ${pieces[i]}-${pieces[j]}`);
    i = j + 1;
  }
  return runs.length > 8 ? `${runs.slice(0, 8).join(", ")}, …` : runs.join(", ");
}
