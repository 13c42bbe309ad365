/**
 * Files on disk that are longer than the torrent says: the payload is the first `length` bytes
 * and the rest is stale (an older, longer version of the file, or bytes appended after it was
 * complete). {@linkcode OversizedFiles} cuts such a file to the torrent's length, under one rule
 * that never destroys data that could be the user's:
 *
 * - a file is the torrent's when at least one piece with bytes in it passed the start-up check
 *   (hashed, or trusted from resume data that shoal wrote after hashing it); a longer file none
 *   of whose pieces matched is someone else's file and is never cut;
 * - a file that is the torrent's is cut once every piece with bytes in it is verified: at
 *   start-up when it is complete already, else when the download completes it.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import type { Logger } from "../log.ts";
import type { Metainfo } from "../types.ts";
import { filePieceRange } from "./piece_map.ts";
import type { FileStat } from "./storage.ts";

/** What {@linkcode OversizedFiles} needs of storage ({@linkcode FileStorage} has it). */
export interface TrimmableStorage {
  /** Size and mtime of a file, or null when absent or a pad file. */
  fileStat(fileIndex: number): Promise<FileStat | null>;
  /** Cuts a file to the torrent's length; returns the bytes cut. */
  trimExcess(fileIndex: number): Promise<number>;
}

/** A file found longer than the torrent's. */
export interface OversizedFile {
  /** Index in `meta.files`. */
  fileIndex: number;
  /** Its size on disk when found. */
  size: number;
}

/**
 * Finds files longer than the torrent's and trims those that are the torrent's once complete.
 *
 * @example
 * ```ts
 * import { OversizedFiles } from "./oversized.ts";
 * import { FileStorage } from "./file_storage.ts";
 * import { Bitfield } from "../bitfield.ts";
 * import { Logger } from "../log.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * declare const have: Bitfield; // after the start-up check
 * const storage = await FileStorage.open("./downloads", meta);
 * const oversized = await OversizedFiles.find(storage, meta, have, new Logger());
 * await oversized.trimComplete(have); // cuts the complete ones now; call again when done
 * console.log(oversized.pending.length, oversized.foreign.length);
 * ```
 */
export class OversizedFiles {
  readonly #storage: TrimmableStorage;
  readonly #meta: Metainfo;
  readonly #log: Logger;
  #pending: OversizedFile[];
  /** Longer files none of whose pieces matched at start-up: left alone. */
  readonly foreign: readonly OversizedFile[];

  private constructor(
    storage: TrimmableStorage,
    meta: Metainfo,
    log: Logger,
    pending: OversizedFile[],
    foreign: OversizedFile[],
  ) {
    this.#storage = storage;
    this.#meta = meta;
    this.#log = log;
    this.#pending = pending;
    this.foreign = foreign;
  }

  /**
   * Looks for files longer than the torrent's, right after the start-up check. Logs those left
   * alone.
   *
   * @param storage The torrent's storage.
   * @param meta The torrent.
   * @param have The pieces the start-up check found (read now, not kept).
   * @param log Where to report.
   * @returns The files found.
   * @throws {StorageError} when a file cannot be examined.
   */
  static async find(
    storage: TrimmableStorage,
    meta: Metainfo,
    have: Bitfield,
    log: Logger,
  ): Promise<OversizedFiles> {
    const pending: OversizedFile[] = [];
    const foreign: OversizedFile[] = [];
    for (let i = 0; i < meta.files.length; i++) {
      const file = meta.files[i]!;
      if (file.pad) continue;
      const stat = await storage.fileStat(i);
      if (stat === null || stat.size <= file.length) continue;
      const { first, last } = filePieceRange(meta, i);
      let ours = false;
      for (let p = first; p <= last && !ours; p++) ours = have.get(p);
      if (ours) {
        pending.push({ fileIndex: i, size: stat.size });
      } else {
        foreign.push({ fileIndex: i, size: stat.size });
        log.warn(
          "storage",
          `${file.safePath} is longer than the torrent's file (${stat.size} bytes, not ${file.length}) ` +
            `and none of its pieces match: it is left as it is`,
          { file: file.safePath },
        );
      }
    }
    return new OversizedFiles(storage, meta, log, pending, foreign);
  }

  /** Files of the torrent still longer than the torrent's, waiting to be complete. */
  get pending(): readonly OversizedFile[] {
    return this.#pending;
  }

  /**
   * Trims the pending files whose every piece is in `have`. A file that cannot be trimmed is
   * reported and kept pending (it is only untidy: its payload is intact).
   *
   * @param have Our verified pieces.
   * @returns The files trimmed now, with the bytes cut.
   */
  async trimComplete(have: Bitfield): Promise<{ fileIndex: number; bytes: number }[]> {
    const trimmed: { fileIndex: number; bytes: number }[] = [];
    const left: OversizedFile[] = [];
    for (const entry of this.#pending) {
      const { first, last } = filePieceRange(this.#meta, entry.fileIndex);
      let complete = true;
      for (let p = first; p <= last && complete; p++) complete = have.get(p);
      if (!complete) {
        left.push(entry);
        continue;
      }
      const name = this.#meta.files[entry.fileIndex]!.safePath;
      try {
        const bytes = await this.#storage.trimExcess(entry.fileIndex);
        trimmed.push({ fileIndex: entry.fileIndex, bytes });
        if (bytes > 0) {
          this.#log.info(
            "storage",
            `Truncated ${name} to the torrent's ${
              this.#meta.files[entry.fileIndex]!.length
            } bytes: ${bytes} stale bytes after the payload`,
            { file: name },
          );
        }
      } catch (error) {
        left.push(entry);
        this.#log.warn("storage", `Cannot truncate ${name}: ${(error as Error).message}`, { file: name });
      }
    }
    this.#pending = left;
    return trimmed;
  }
}
