/**
 * Resume data: which pieces we had and what each file looked like when that was recorded,
 * written atomically, and the startup check that decides which pieces to trust and which to
 * verify again.
 *
 * The file is a bencoded dictionary:
 *
 * | key           | value                                                              |
 * | ------------- | ------------------------------------------------------------------ |
 * | `version`     | `1`                                                                |
 * | `info_hash`   | the info-hash, 40 lower-case hex characters                        |
 * | `piece_count` | number of pieces                                                   |
 * | `have`        | bitfield, most significant bit of byte 0 is piece 0, spare bits 0  |
 * | `files`       | one `[size, mtime in microseconds]` list per file; `[-1, 0]` if absent |
 * | `saved_at`    | milliseconds since the Unix epoch                                  |
 * | `checksum`    | SHA-1 of the canonical encoding of every other key                 |
 *
 * The checksum catches damage that still decodes (a flipped bit in `have` would otherwise claim
 * a piece we lack).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { type BDict, type BValue, decode, encode } from "../bencode.ts";
import { StorageError } from "../errors.ts";
import type { Metainfo } from "../types.ts";
import { pieceLengthOf, spansFor } from "./piece_map.ts";
import { overwriteInPlace } from "./overwrite_in_place.ts";
import { FileTooLargeError, readFileInside, writeFileAtomic } from "./safe_open.ts";
import { errorCode, type FileStat, type StorageWithStat, toStorageError } from "./storage.ts";
import { sha1, type VerifyOptions, verifyPieces } from "./verify.ts";

/** What we had of a torrent, and what its files looked like then. */
export interface ResumeData {
  /** Format version. */
  version: 1;
  /** Info-hash, 40 lower-case hex characters. */
  infoHash: string;
  /** Number of pieces of the torrent. */
  pieceCount: number;
  /** Bitfield of verified pieces (piece 0 is the high bit of byte 0), `ceil(pieceCount / 8)` bytes. */
  have: Uint8Array;
  /** Per file, in torrent order: size and mtime when saved; `{ size: -1, mtimeMs: 0 }` for absent and pad files. */
  files: { size: number; mtimeMs: number }[];
  /** When the data was captured, milliseconds since the Unix epoch. */
  savedAt: number;
}

/** The file entry recorded for a file that does not exist (or a pad file). */
const ABSENT = { size: -1, mtimeMs: 0 } as const;

/**
 * Encodes resume data as bencode, with a checksum. Times are stored as whole microseconds
 * (`mtimeMs`) and whole milliseconds (`savedAt`).
 *
 * @example
 * ```ts
 * import { decodeResume, encodeResume, type ResumeData } from "./resume.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * declare const data: ResumeData;
 * const copy = decodeResume(encodeResume(data), meta);
 * ```
 *
 * @param data The resume data.
 * @returns The bytes to store.
 * @throws {TypeError} when a number cannot be encoded (not finite).
 */
export function encodeResume(data: ResumeData): Uint8Array {
  const body = bodyOf(data);
  return encode(new Map<string, BValue>([...body, ["checksum", sha1(encode(body))]]));
}

function bodyOf(data: ResumeData): BDict {
  return new Map<string, BValue>([
    ["version", data.version],
    ["info_hash", new TextEncoder().encode(data.infoHash)],
    ["piece_count", data.pieceCount],
    ["have", data.have],
    ["files", data.files.map((file) => [file.size, Math.round(file.mtimeMs * 1000)])],
    ["saved_at", Math.round(data.savedAt)],
  ]);
}

/**
 * Decodes resume data and checks it against the torrent: checksum, version, info-hash, piece
 * count, bitfield size and spare bits, number of files.
 *
 * @example
 * ```ts
 * import { decodeResume } from "./resume.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const data = decodeResume(await Deno.readFile("x.resume"), meta);
 * console.log(data.savedAt);
 * ```
 *
 * @param bytes The stored bytes.
 * @param meta The torrent they should belong to.
 * @returns The resume data (its `have` is a copy).
 * @throws {StorageError} when the data is corrupt or belongs to another torrent.
 */
export function decodeResume(bytes: Uint8Array, meta: Metainfo): ResumeData {
  const invalid = (detail: string, cause?: unknown): never => {
    throw new StorageError(`Invalid resume data: ${detail}`, cause === undefined ? undefined : { cause });
  };
  let root: BValue;
  try {
    root = decode(bytes, { maxBytes: maxResumeSize(meta), maxDepth: 4 });
  } catch (error) {
    return invalid(error instanceof Error ? error.message : String(error), error);
  }
  if (!(root instanceof Map)) return invalid("not a dictionary");
  const checksum = root.get("checksum");
  if (!(checksum instanceof Uint8Array) || checksum.length !== 20) return invalid("missing checksum");
  const body = new Map(root);
  body.delete("checksum");
  const actual = sha1(encode(body));
  if (actual.some((byte, i) => byte !== checksum[i])) {
    return invalid("checksum mismatch (the file is damaged)");
  }

  const int = (key: string, min: number): number => {
    const value = body.get(key);
    if (typeof value !== "number" || value < min) {
      return invalid(`'${key}' must be an integer of at least ${min}`);
    }
    return value;
  };
  const version = int("version", 0);
  if (version !== 1) throw new StorageError(`Unsupported resume data version ${version}: expected 1`);
  const hash = body.get("info_hash");
  if (!(hash instanceof Uint8Array)) return invalid("missing 'info_hash'");
  const infoHash = new TextDecoder().decode(hash);
  if (infoHash !== meta.infoHashHex) {
    throw new StorageError(
      `Resume data belongs to another torrent: info-hash ${
        infoHash.slice(0, 40)
      }, expected ${meta.infoHashHex}`,
    );
  }
  const pieceCount = int("piece_count", 0);
  if (pieceCount !== meta.pieceCount) invalid(`${pieceCount} pieces, the torrent has ${meta.pieceCount}`);
  const have = body.get("have");
  if (!(have instanceof Uint8Array) || have.length !== Math.ceil(pieceCount / 8)) {
    return invalid(`'have' must be a bitfield of ${Math.ceil(pieceCount / 8)} bytes`);
  }
  const spare = have.length * 8 - pieceCount;
  if (spare > 0 && (have[have.length - 1]! & ((1 << spare) - 1)) !== 0) {
    invalid("spare bits of 'have' are set");
  }
  const list = body.get("files");
  if (!Array.isArray(list) || list.length !== meta.files.length) {
    return invalid(`'files' must list ${meta.files.length} files`);
  }
  const files = list.map((entry, i) => {
    const [size, mtimeUs] = Array.isArray(entry) ? entry : [];
    if (entry === undefined || !Array.isArray(entry) || entry.length !== 2) {
      return invalid(`file entry ${i} is malformed`);
    }
    if (typeof size !== "number" || size < -1) return invalid(`file entry ${i} has an invalid size`);
    if (typeof mtimeUs !== "number" || mtimeUs < 0) return invalid(`file entry ${i} has an invalid mtime`);
    return { size, mtimeMs: mtimeUs / 1000 };
  });
  return { version: 1, infoHash, pieceCount, have: new Uint8Array(have), files, savedAt: int("saved_at", 0) };
}

function maxResumeSize(meta: Metainfo): number {
  return 4096 + Math.ceil(meta.pieceCount / 8) + meta.files.length * 48;
}

/** The outcome of {@linkcode writeResumeAtomic}. */
export interface WriteResumeResult {
  /** False when the folder could not be synced after the rename (the file is in place, but a crash right now could lose the rename). */
  folderSynced: boolean;
}

/** Options of {@linkcode writeResumeAtomic}. */
export interface WriteResumeOptions {
  /**
   * The folder below which no symbolic link is followed or replaced (the download folder, when
   * the resume folder is its `.shoal`); `path` must lie inside it. Missing folders between it
   * and `path` are created. @default {the folder of `path`, which must exist}
   */
  root?: string;
}

/**
 * Writes resume data so that a crash leaves either the old file or the new one, never a mix:
 * writes a temporary file in the same folder, syncs it, renames it over `path`, then syncs the
 * folder (best effort: some file systems refuse; the result says so). Nothing is written
 * through a symbolic link below `options.root`, and a link at `path` is refused, not replaced.
 * When the disk is full (no room for the temporary file), the previous file is rewritten in
 * place instead (`overwrite_in_place.ts`), so what was verified is kept.
 *
 * @example
 * ```ts
 * import { writeResumeAtomic, type ResumeData } from "./resume.ts";
 * declare const data: ResumeData;
 * await writeResumeAtomic("./downloads/.shoal/abc.resume", data);
 * ```
 *
 * @param path Where to store it.
 * @param data The resume data.
 * @param options The folder below which no link is followed.
 * @returns Whether the folder sync succeeded.
 * @throws {StorageError} when the file cannot be written (or a symbolic link is in the way);
 * the temporary file is removed.
 */
export async function writeResumeAtomic(
  path: string,
  data: ResumeData,
  options: WriteResumeOptions = {},
): Promise<WriteResumeResult> {
  const bytes = encodeResume(data);
  const target = resolve(path);
  const root = resolve(options.root ?? dirname(target));
  try {
    return await writeFileAtomic(root, target, bytes);
  } catch (error) {
    const code = errorCode(error);
    if ((code === "ENOSPC" || code === "EDQUOT") && (await overwriteInPlace(root, target, bytes))) {
      return { folderSynced: true };
    }
    throw toStorageError(error, { action: "write", target, root });
  }
}

/** Options of {@linkcode readResume}. */
export interface ReadResumeOptions {
  /**
   * Called with the reason when a resume file exists but cannot be used (unreadable, corrupt,
   * another torrent's); `readResume` then returns `null` instead of throwing.
   */
  onProblem?: (problem: StorageError) => void;
  /**
   * The folder below which no symbolic link is followed (see {@linkcode WriteResumeOptions.root}):
   * a resume file reached through a link is a problem, never read. @default {the folder of `path`}
   */
  root?: string;
}

/**
 * Reads and checks a resume file. Never throws: a missing file gives `null`; an unusable one
 * gives `null` too, and its reason goes to `options.onProblem` (the caller then verifies every
 * piece, which is always safe).
 *
 * @example
 * ```ts
 * import { readResume } from "./resume.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const data = await readResume("./downloads/.shoal/abc.resume", meta, {
 *   onProblem: (problem) => console.warn(problem.message),
 * });
 * console.log(data === null ? "full check" : "resuming");
 * ```
 *
 * @param path The resume file.
 * @param meta The torrent it should belong to.
 * @param options Where to report problems, and the folder below which no link is followed.
 * @returns The resume data, or `null`.
 */
export async function readResume(
  path: string,
  meta: Metainfo,
  options: ReadResumeOptions = {},
): Promise<ResumeData | null> {
  const problem = (error: StorageError): null => {
    options.onProblem?.(error);
    return null;
  };
  const target = resolve(path);
  const root = resolve(options.root ?? dirname(target));
  let bytes: Uint8Array | null;
  try {
    bytes = await readFileInside(root, target, maxResumeSize(meta));
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    const failure = toStorageError(error, { action: "read", target, root });
    return problem(
      error instanceof FileTooLargeError
        ? new StorageError(`Invalid resume data: ${error.message}`)
        : failure,
    );
  }
  if (bytes === null) return null;
  try {
    return decodeResume(bytes, meta);
  } catch (error) {
    return problem(toStorageError(error, { action: "read", target, root }));
  }
}

/**
 * Records what we have now: flushes the storage (so file times cover every write), then
 * reads each file's size and mtime. Pass only pieces whose `write()` has completed.
 *
 * @example
 * ```ts
 * import { captureResume, writeResumeAtomic } from "./resume.ts";
 * import type { FileStorage } from "./file_storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const storage: FileStorage;
 * declare const meta: Metainfo;
 * declare const have: Set<number>;
 * await writeResumeAtomic("x.resume", await captureResume(storage, meta, have));
 * ```
 *
 * @param storage The torrent's storage.
 * @param meta The torrent.
 * @param have The verified pieces.
 * @returns Resume data ready to write.
 * @throws {StorageError} when the flush or a stat fails.
 * @throws {RangeError} when a piece index is out of range.
 */
export async function captureResume(
  storage: StorageWithStat,
  meta: Metainfo,
  have: Iterable<number>,
): Promise<ResumeData> {
  const bits = new Uint8Array(Math.ceil(meta.pieceCount / 8));
  for (const piece of have) {
    pieceLengthOf(meta, piece);
    bits[piece >> 3]! |= 0x80 >> (piece & 7);
  }
  await storage.flush();
  const files = await statAll(storage, meta);
  return {
    version: 1,
    infoHash: meta.infoHashHex,
    pieceCount: meta.pieceCount,
    have: bits,
    files: files.map((file) => file ?? { ...ABSENT }),
    savedAt: Date.now(),
  };
}

/** How far the start-up check has got: pieces and bytes read and hash-checked so far. */
export interface CheckProgress {
  /** Pieces checked so far. */
  readonly checkedPieces: number;
  /** Pieces this check reads (those the resume data cannot vouch for). */
  readonly piecesToCheck: number;
  /** Bytes of the pieces checked so far. */
  readonly checkedBytes: number;
  /** Bytes of every piece this check reads. */
  readonly bytesToCheck: number;
}

/** Options of {@linkcode restoreProgress}. */
export interface RestoreOptions {
  /** Stops the check at the next piece; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Called once before the first piece is read (0 checked) and after each piece, when any
   * piece has to be read.
   */
  onProgress?: (progress: CheckProgress) => void;
  /**
   * False for storage that cannot report its files (no `fileStat`): the resume data is
   * ignored, no piece is known missing without reading, and every piece is read and hashed
   * (a backend that holds nothing answers each read with missing data at once).
   *
   * @default {true}
   */
  fileStats?: boolean;
}

/** The outcome of {@linkcode restoreProgress}. */
export interface RestoreResult {
  /** Pieces we have: hash-checked in this run, or recorded in trusted resume data. */
  have: Set<number>;
  /** Pieces read and hash-checked. */
  rechecked: number;
  /** Pieces whose state was taken from the resume data without reading. */
  trusted: number;
  /** Pieces known missing without reading (a file is absent or too short). */
  skipped: number;
  /** False when no resume data was given or it did not fit the torrent (everything was checked). */
  usedResume: boolean;
  /**
   * Pieces the resume data recorded as had that failed their check in this run (their files
   * changed since), ascending: they are downloaded again.
   */
  failed: number[];
}

/**
 * The startup check. Compares each file's size and mtime with the resume data: a piece lying
 * entirely in unchanged files keeps its recorded state (had or not) without being read; every
 * piece touching a changed file is verified from disk, whatever was recorded. Without resume
 * data every piece is verified. A piece touching an absent or too-short file is missing
 * without reading. No piece is reported had without a hash check in this run or a trusted
 * resume record.
 *
 * @example
 * ```ts
 * import { readResume, restoreProgress } from "./resume.ts";
 * import { FileStorage } from "./file_storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const storage = await FileStorage.open("./downloads", meta);
 * const resume = await readResume("x.resume", meta);
 * const { have, rechecked, trusted } = await restoreProgress(storage, meta, resume, {
 *   onProgress: (p) => console.log(`checked ${p.checkedBytes} of ${p.bytesToCheck} bytes`),
 * });
 * console.log(`${have.size} pieces (${trusted} trusted, ${rechecked} checked)`);
 * ```
 *
 * @param storage The torrent's storage (reads and file stats).
 * @param meta The torrent.
 * @param resume Resume data from {@linkcode readResume}, or `null`.
 * @param options Cancellation, and progress over the pieces being verified.
 * @returns The pieces we have, how they were established, and which recorded ones failed.
 * @throws {StorageError} when files cannot be examined or read (other than missing data).
 */
export async function restoreProgress(
  storage: StorageWithStat,
  meta: Metainfo,
  resume: ResumeData | null,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const usable = resume !== null && resume.version === 1 && resume.infoHash === meta.infoHashHex &&
    resume.pieceCount === meta.pieceCount && resume.have.length === Math.ceil(meta.pieceCount / 8) &&
    resume.files.length === meta.files.length;
  const stats = options.fileStats !== false;
  const saved = usable && stats ? resume : null;
  const now = stats ? await statAll(storage, meta) : null;
  const changed = meta.files.map((file, i) => {
    if (file.pad || file.length === 0) return false;
    const before = saved?.files[i];
    return before === undefined || !sameStat(before, now?.[i] ?? null);
  });

  const have = new Set<number>();
  const toCheck: number[] = [];
  let trusted = 0;
  let skipped = 0;
  for (let piece = 0; piece < meta.pieceCount; piece++) {
    if (now === null) {
      toCheck.push(piece);
      continue;
    }
    let missing = false;
    let doubtful = saved === null;
    for (const span of spansFor(meta, piece, 0, pieceLengthOf(meta, piece))) {
      if (meta.files[span.fileIndex]!.pad) continue;
      const stat = now[span.fileIndex];
      if (stat === null || stat === undefined || stat.size < span.fileOffset + span.length) {
        missing = true;
        break;
      }
      if (changed[span.fileIndex]) doubtful = true;
    }
    if (missing) {
      skipped++;
    } else if (doubtful) {
      toCheck.push(piece);
    } else {
      trusted++;
      if ((saved!.have[piece >> 3]! & (0x80 >> (piece & 7))) !== 0) have.add(piece);
    }
  }
  const verified = await verifyPieces(storage, meta, toCheck, checkOptions(meta, toCheck, options));
  for (const piece of verified) have.add(piece);
  const failed = saved === null
    ? []
    : toCheck.filter((piece) =>
      !verified.has(piece) && (saved.have[piece >> 3]! & (0x80 >> (piece & 7))) !== 0
    );
  return { have, rechecked: toCheck.length, trusted, skipped, usedResume: saved !== null, failed };
}

/** Turns the piece counts {@linkcode verifyPieces} reports into pieces and bytes of `toCheck`. */
function checkOptions(meta: Metainfo, toCheck: readonly number[], options: RestoreOptions): VerifyOptions {
  const out: VerifyOptions = {};
  if (options.signal) out.signal = options.signal;
  const report = options.onProgress;
  if (report === undefined || toCheck.length === 0) return out;
  let bytesToCheck = 0;
  for (const piece of toCheck) bytesToCheck += pieceLengthOf(meta, piece);
  let counted = 0;
  let checkedBytes = 0;
  report({ checkedPieces: 0, piecesToCheck: toCheck.length, checkedBytes: 0, bytesToCheck });
  out.onProgress = (checked) => {
    for (; counted < checked; counted++) checkedBytes += pieceLengthOf(meta, toCheck[counted]!);
    report({ checkedPieces: checked, piecesToCheck: toCheck.length, checkedBytes, bytesToCheck });
  };
  return out;
}

function sameStat(before: { size: number; mtimeMs: number }, now: FileStat | null): boolean {
  if (now === null) return before.size === ABSENT.size;
  return before.size === now.size && Math.round(before.mtimeMs * 1000) === Math.round(now.mtimeMs * 1000);
}

async function statAll(storage: StorageWithStat, meta: Metainfo): Promise<(FileStat | null)[]> {
  const out: (FileStat | null)[] = new Array(meta.files.length).fill(null);
  const batch = 32;
  for (let start = 0; start < meta.files.length; start += batch) {
    const end = Math.min(start + batch, meta.files.length);
    const indices = Array.from({ length: end - start }, (_, k) => start + k);
    const stats = await Promise.all(indices.map((i) => meta.files[i]!.pad ? null : storage.fileStat(i)));
    stats.forEach((stat, k) => (out[start + k] = stat));
  }
  return out;
}
