/**
 * Piece hashing and checking data on disk against a torrent's piece hashes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Metainfo } from "../types.ts";
import { pieceFileRange, pieceLengthOf } from "./piece_map.ts";
import { MissingDataError, type StorageBackend, toStorageError } from "./storage.ts";

/**
 * Returns the SHA-1 digest of the data (synchronous, `node:crypto`).
 *
 * @example
 * ```ts
 * import { sha1 } from "./verify.ts";
 * console.log(sha1(new Uint8Array()).length); // 20
 * ```
 *
 * @param data The bytes to hash.
 * @returns The 20-byte digest.
 */
export function sha1(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

/**
 * Tells whether data is exactly a piece: the right length and the SHA-1 the torrent lists.
 *
 * @example
 * ```ts
 * import { pieceHashMatches } from "./verify.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * declare const data: Uint8Array;
 * if (!pieceHashMatches(meta, 0, data)) console.log("piece 0 is corrupt");
 * ```
 *
 * @param meta The torrent.
 * @param piece Piece index.
 * @param data The piece's bytes.
 * @returns True when length and hash match.
 * @throws {RangeError} when the piece index is out of range.
 */
export function pieceHashMatches(meta: Metainfo, piece: number, data: Uint8Array): boolean {
  if (data.length !== pieceLengthOf(meta, piece)) return false;
  const digest = sha1(data);
  const expected = meta.pieceHashes.subarray(piece * 20, piece * 20 + 20);
  if (expected.length !== 20) return false;
  let diff = 0;
  for (let i = 0; i < 20; i++) diff |= digest[i]! ^ expected[i]!;
  return diff === 0;
}

/** Options of {@linkcode verifyPieces}. */
export interface VerifyOptions {
  /** Stops the check; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each piece with the number checked so far and the total. */
  onProgress?: (checked: number, total: number) => void;
}

/**
 * Reads pieces from storage one at a time (the next read overlaps the current hash, so at
 * most two pieces are in memory) and returns those whose data matches their hash. Data that
 * is not on disk ({@linkcode MissingDataError}) counts as not matching; once a file is known
 * to be absent, the remaining pieces touching it are skipped without reading.
 *
 * @example
 * ```ts
 * import { verifyPieces } from "./verify.ts";
 * import type { StorageBackend } from "./storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * declare const storage: StorageBackend;
 * const all = Array.from({ length: meta.pieceCount }, (_, i) => i);
 * const good = await verifyPieces(storage, meta, all, {
 *   onProgress: (checked, total) => console.log(`${checked}/${total}`),
 * });
 * console.log(`${good.size} of ${meta.pieceCount} pieces are on disk`);
 * ```
 *
 * @param storage Where to read from.
 * @param meta The torrent.
 * @param pieces The pieces to check.
 * @param options Cancellation and progress.
 * @returns The pieces that match.
 * @throws {StorageError} on read failures other than missing data.
 * @throws {RangeError} when a piece index is out of range.
 */
export async function verifyPieces(
  storage: StorageBackend,
  meta: Metainfo,
  pieces: Iterable<number>,
  options: VerifyOptions = {},
): Promise<Set<number>> {
  const { signal, onProgress } = options;
  const list = [...pieces];
  for (const piece of list) pieceLengthOf(meta, piece);
  const absent = new Set<number>();
  const good = new Set<number>();

  const touchesAbsent = (piece: number): boolean => {
    if (absent.size === 0) return false;
    const { first, last } = pieceFileRange(meta, piece);
    for (let f = first; f <= last; f++) if (absent.has(f)) return true;
    return false;
  };
  type Outcome = { data: Uint8Array } | { error: unknown };
  const start = (piece: number): Promise<Outcome> =>
    storage.read(piece, 0, pieceLengthOf(meta, piece)).then((data) => ({ data }), (error) => ({ error }));
  const next = (from: number): number => {
    let i = from;
    while (i < list.length && touchesAbsent(list[i]!)) i++;
    return i;
  };

  let checked = 0;
  let i = 0;
  let pending = i < list.length ? start(list[i]!) : undefined;
  while (pending !== undefined) {
    signal?.throwIfAborted();
    const piece = list[i]!;
    const outcome = await pending;
    pending = undefined;
    if ("error" in outcome) {
      const error = outcome.error;
      if (!(error instanceof MissingDataError)) {
        throw toStorageError(error, { action: "read", target: `piece ${piece}` });
      }
      if (error.absent && error.fileIndex !== undefined) absent.add(error.fileIndex);
    }
    const after = next(i + 1);
    if (after < list.length) pending = start(list[after]!);
    if ("data" in outcome && pieceHashMatches(meta, piece, outcome.data)) good.add(piece);
    checked += after - i;
    i = after;
    onProgress?.(checked, list.length);
  }
  signal?.throwIfAborted();
  return good;
}
