/**
 * File priorities: which files of a torrent to download ("skip", "normal", "high"), turned
 * into the pieces the piece picker wants. A piece is wanted when any of its bytes belongs to a
 * file that is not skipped, so a piece shared by a wanted and a skipped file is still fetched
 * (and written whole: the skipped file then exists, holding only that piece's bytes). Pad
 * files (BEP 47) never make a piece wanted.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import type { Metainfo } from "./types.ts";

/** How much a file is wanted: not at all, normally, or before the others. */
export type FilePriority = "skip" | "normal" | "high";

/** The pieces a set of file priorities asks for. */
export interface PieceWants {
  /** Pieces to download; null when every piece is wanted (nothing skipped). */
  readonly wanted: Bitfield | null;
  /** Pieces to start before the others; null when no file is "high". */
  readonly high: Bitfield | null;
}

/**
 * Maps file priorities to pieces.
 *
 * @example
 * ```ts
 * import { piecesFor } from "./file_priority.ts";
 * import type { Metainfo } from "./types.ts";
 * declare const meta: Metainfo;
 * const { wanted } = piecesFor(meta, meta.files.map((_, i) => (i === 0 ? "normal" : "skip")));
 * console.log(wanted?.count());
 * ```
 *
 * @param meta The torrent.
 * @param priorities One per file in `meta.files` order; missing entries are "normal".
 * @returns The wanted and high-priority pieces.
 */
export function piecesFor(meta: Metainfo, priorities: readonly FilePriority[]): PieceWants {
  const skipping = meta.files.some((f, i) => !f.pad && priorities[i] === "skip");
  const raising = meta.files.some((f, i) => !f.pad && f.length > 0 && priorities[i] === "high");
  if (!skipping && !raising) return { wanted: null, high: null };
  const wanted = new Bitfield(meta.pieceCount);
  const high = raising ? new Bitfield(meta.pieceCount) : null;
  meta.files.forEach((file, i) => {
    if (file.pad || file.length === 0) return;
    const priority = priorities[i] ?? "normal";
    if (priority === "skip") return;
    const first = Math.floor(file.offset / meta.pieceLength);
    const last = Math.floor((file.offset + file.length - 1) / meta.pieceLength);
    for (let p = first; p <= last; p++) {
      wanted.set(p);
      if (priority === "high") high!.set(p);
    }
  });
  return { wanted: skipping ? wanted : null, high };
}

/**
 * The priorities that select only some files (BEP 53 `so`, `--files`): the named files are
 * "normal", every other one "skip". Indices past the last file are ignored.
 *
 * @example
 * ```ts
 * import { selectOnly } from "./file_priority.ts";
 * console.log(selectOnly(4, [0, 2, 9])); // ["normal", "skip", "normal", "skip"]
 * ```
 *
 * @param fileCount Number of files in the torrent.
 * @param indices File indices to download.
 * @returns One priority per file.
 */
export function selectOnly(fileCount: number, indices: Iterable<number>): FilePriority[] {
  const out: FilePriority[] = new Array(fileCount).fill("skip");
  for (const i of indices) if (Number.isInteger(i) && i >= 0 && i < fileCount) out[i] = "normal";
  return out;
}

/**
 * Parses a file selection such as "0,2-3" (file indices as `shoal info` numbers them, ranges
 * inclusive).
 *
 * @example
 * ```ts
 * import { parseFileSelection } from "./file_priority.ts";
 * console.log(parseFileSelection("0,2-3")); // [0, 2, 3]
 * ```
 *
 * @param text The selection.
 * @param max Highest index accepted. @default {999_999}
 * @returns The indices, sorted and unique.
 * @throws {RangeError} when an entry is not an index or a range, or exceeds `max`.
 */
export function parseFileSelection(text: string, max = 999_999): number[] {
  const picked = new Set<number>();
  for (const entry of text.split(",")) {
    const m = /^\s*(\d{1,7})\s*(?:-\s*(\d{1,7})\s*)?$/.exec(entry);
    if (m === null) {
      throw new RangeError(
        `Invalid file selection '${text}': '${entry}' is not an index or a range like 2-5`,
      );
    }
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) throw new RangeError(`Invalid file selection '${text}': range ${entry} is backwards`);
    if (last > max) throw new RangeError(`Invalid file selection '${text}': index ${last} exceeds ${max}`);
    for (let i = first; i <= last; i++) picked.add(i);
  }
  return [...picked].sort((a, b) => a - b);
}

/**
 * Bytes of the wanted pieces, and how many of those bytes are verified.
 *
 * @example
 * ```ts
 * import { wantedBytes } from "./file_priority.ts";
 * import { Bitfield } from "./bitfield.ts";
 * import type { Metainfo } from "./types.ts";
 * declare const meta: Metainfo;
 * console.log(wantedBytes(meta, null, new Bitfield(meta.pieceCount)).total === meta.totalLength); // true
 * ```
 *
 * @param meta The torrent.
 * @param wanted Wanted pieces (null: all).
 * @param have Verified pieces.
 * @returns Total and verified bytes of the wanted pieces, and how many wanted pieces there are.
 */
export function wantedBytes(
  meta: Metainfo,
  wanted: Bitfield | null,
  have: Bitfield,
): { total: number; done: number; pieces: number; donePieces: number } {
  const size = (p: number) => Math.min(meta.pieceLength, meta.totalLength - p * meta.pieceLength);
  if (wanted === null) {
    let done = have.count() * meta.pieceLength;
    if (meta.pieceCount > 0 && have.get(meta.pieceCount - 1)) {
      done -= meta.pieceLength - size(meta.pieceCount - 1);
    }
    return { total: meta.totalLength, done, pieces: meta.pieceCount, donePieces: have.count() };
  }
  let total = 0;
  let done = 0;
  let donePieces = 0;
  for (const p of wanted) {
    const n = size(p);
    total += n;
    if (have.get(p)) {
      done += n;
      donePieces++;
    }
  }
  return { total, done, pieces: wanted.count(), donePieces };
}
