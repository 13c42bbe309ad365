/**
 * Piece ↔ file arithmetic: which byte ranges of which files a piece (or a block of it)
 * covers, how long a piece is, and which pieces a file touches.
 *
 * A torrent's files are laid end to end in one byte stream; piece `p` covers bytes
 * `[p * pieceLength, p * pieceLength + pieceLengthOf(meta, p))` of that stream. These
 * functions trust the layout of `meta.files` (contiguous, in order); call
 * {@linkcode checkLayout} once on a torrent before relying on them.
 *
 * @module
 */

import { StorageError } from "../errors.ts";
import type { Metainfo } from "../types.ts";

/** A contiguous byte range of one file. */
export interface FileSpan {
  /** Index of the file in `meta.files`. */
  fileIndex: number;
  /** Offset of the range's first byte within the file. */
  fileOffset: number;
  /** Number of bytes (always greater than zero). */
  length: number;
}

/** An inclusive range of indices; empty when `last < first`. */
export interface IndexRange {
  /** First index. */
  first: number;
  /** Last index (inclusive). */
  last: number;
}

/**
 * Checks that a torrent's file layout is consistent: files contiguous from offset 0, sizes
 * adding up to `totalLength`, piece count and hash count matching. The mapping functions of
 * this module assume it.
 *
 * @example
 * ```ts
 * import { checkLayout } from "./piece_map.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * checkLayout(meta); // throws StorageError when the layout is inconsistent
 * ```
 *
 * @param meta The torrent.
 * @throws {StorageError} when the layout is inconsistent.
 */
export function checkLayout(meta: Metainfo): void {
  const fail = (detail: string): never => {
    throw new StorageError(`Cannot use the layout of torrent '${meta.name}': ${detail}`);
  };
  if (!Number.isSafeInteger(meta.pieceLength) || meta.pieceLength <= 0) {
    fail(`invalid piece length ${meta.pieceLength}`);
  }
  if (!Number.isSafeInteger(meta.totalLength) || meta.totalLength < 0) {
    fail(`invalid total length ${meta.totalLength}`);
  }
  let offset = 0;
  for (let i = 0; i < meta.files.length; i++) {
    const file = meta.files[i]!;
    if (!Number.isSafeInteger(file.length) || file.length < 0) {
      fail(`file ${i} has invalid length ${file.length}`);
    }
    if (file.offset !== offset) fail(`file ${i} starts at offset ${file.offset}, expected ${offset}`);
    offset += file.length;
  }
  if (offset !== meta.totalLength) fail(`files add up to ${offset} bytes, expected ${meta.totalLength}`);
  const expectedPieces = Math.ceil(meta.totalLength / meta.pieceLength);
  if (meta.pieceCount !== expectedPieces) fail(`${meta.pieceCount} pieces, expected ${expectedPieces}`);
  if (meta.pieceHashes.length !== meta.pieceCount * 20) {
    fail(`${meta.pieceHashes.length} bytes of piece hashes, expected ${meta.pieceCount * 20}`);
  }
}

/**
 * Returns the length of a piece: `meta.pieceLength`, except for a shorter last piece.
 *
 * @example
 * ```ts
 * import { pieceLengthOf } from "./piece_map.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo; // pieceLength 16384, totalLength 40000
 * console.log(pieceLengthOf(meta, 2)); // 7232
 * ```
 *
 * @param meta The torrent.
 * @param piece Piece index.
 * @returns The number of bytes in the piece.
 * @throws {RangeError} when the piece index is out of range.
 */
export function pieceLengthOf(meta: Metainfo, piece: number): number {
  checkPiece(meta, piece);
  return Math.min(meta.pieceLength, meta.totalLength - piece * meta.pieceLength);
}

/**
 * Maps a byte range of a piece to the file ranges it covers, in order. Pad files are
 * included (check `meta.files[span.fileIndex].pad`); zero-byte files hold no bytes and never
 * appear. Finds the first file by binary search, so it costs O(log files + spans).
 *
 * @example
 * ```ts
 * import { spansFor } from "./piece_map.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * for (const span of spansFor(meta, 0, 0, 16384)) {
 *   console.log(meta.files[span.fileIndex]!.safePath, span.fileOffset, span.length);
 * }
 * ```
 *
 * @param meta The torrent.
 * @param piece Piece index.
 * @param begin Offset within the piece.
 * @param length Number of bytes (may be 0, giving no spans).
 * @returns The file ranges, whose lengths add up to `length`.
 * @throws {RangeError} when the range does not lie within the piece.
 */
export function spansFor(meta: Metainfo, piece: number, begin: number, length: number): FileSpan[] {
  const size = pieceLengthOf(meta, piece);
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(length) || begin < 0 || length < 0) {
    throw new RangeError(`Invalid range of piece ${piece}: begin ${begin}, length ${length}`);
  }
  if (begin + length > size) {
    throw new RangeError(`Range ${begin}+${length} exceeds the ${size} bytes of piece ${piece}`);
  }
  const spans: FileSpan[] = [];
  if (length === 0) return spans;
  let offset = piece * meta.pieceLength + begin;
  const end = offset + length;
  const files = meta.files;
  // The first file whose end lies past `offset` holds that byte: file ends never decrease.
  let lo = 0;
  let hi = files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const file = files[mid]!;
    if (file.offset + file.length > offset) hi = mid;
    else lo = mid + 1;
  }
  for (let i = lo; i < files.length && offset < end; i++) {
    const file = files[i]!;
    if (file.length === 0) continue;
    const fileOffset = offset - file.offset;
    const n = Math.min(file.length - fileOffset, end - offset);
    spans.push({ fileIndex: i, fileOffset, length: n });
    offset += n;
  }
  if (offset !== end) {
    throw new RangeError(`Files of torrent '${meta.name}' end before byte ${end}: check the layout`);
  }
  return spans;
}

/**
 * Returns the pieces a file's bytes lie in. For a zero-byte file the range is empty
 * (`last === first - 1`).
 *
 * @example
 * ```ts
 * import { filePieceRange } from "./piece_map.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const { first, last } = filePieceRange(meta, 0);
 * for (let p = first; p <= last; p++) console.log(p);
 * ```
 *
 * @param meta The torrent.
 * @param fileIndex Index in `meta.files`.
 * @returns The inclusive piece range.
 * @throws {RangeError} when the file index is out of range.
 */
export function filePieceRange(meta: Metainfo, fileIndex: number): IndexRange {
  const file = meta.files[fileIndex];
  if (file === undefined || !Number.isInteger(fileIndex)) {
    throw new RangeError(`File index ${fileIndex} is out of range: torrent has ${meta.files.length} files`);
  }
  const first = Math.floor(file.offset / meta.pieceLength);
  if (file.length === 0) return { first, last: first - 1 };
  return { first, last: Math.floor((file.offset + file.length - 1) / meta.pieceLength) };
}

/**
 * Returns the files (pad files included, zero-byte files excluded) whose bytes a whole piece
 * covers, as the indices of the first and last of them. Zero-byte files inside the range
 * hold none of the piece's bytes: skip them when iterating.
 *
 * @example
 * ```ts
 * import { pieceFileRange } from "./piece_map.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const { first, last } = pieceFileRange(meta, 3);
 * console.log(`piece 3 touches files ${first}..${last}`);
 * ```
 *
 * @param meta The torrent.
 * @param piece Piece index.
 * @returns The inclusive file-index range.
 * @throws {RangeError} when the piece index is out of range.
 */
export function pieceFileRange(meta: Metainfo, piece: number): IndexRange {
  const spans = spansFor(meta, piece, 0, pieceLengthOf(meta, piece));
  return { first: spans[0]?.fileIndex ?? 0, last: spans[spans.length - 1]?.fileIndex ?? -1 };
}

function checkPiece(meta: Metainfo, piece: number): void {
  if (!Number.isInteger(piece) || piece < 0 || piece >= meta.pieceCount) {
    throw new RangeError(`Piece index ${piece} is out of range: torrent has ${meta.pieceCount} pieces`);
  }
}
