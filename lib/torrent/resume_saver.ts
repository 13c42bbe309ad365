/**
 * A torrent's resume data saving: where the file goes, whether progress changed since the last
 * save, and the saves themselves, one at a time and in order (an older snapshot never lands
 * last).
 *
 * @module
 */

import { join, resolve } from "node:path";
import type { Bitfield } from "../bitfield.ts";
import type { Logger } from "../log.ts";
import { captureResume, writeResumeAtomic } from "../storage/resume.ts";
import type { CheckedStorage } from "../storage/storage.ts";
import type { Metainfo } from "../types.ts";

/** Where a torrent's data and resume files are (a subset of `TorrentOptions`). */
export interface ResumePlace {
  /** Folder the torrent's files go in. */
  readonly downloadDir: string;
  /** Where resume data is kept. @default {`<downloadDir>/.shoal`} */
  readonly resumeDir?: string | undefined;
}

/**
 * The resume file's path.
 *
 * @example
 * ```ts
 * import { resumeFilePath } from "./resume_saver.ts";
 * console.log(resumeFilePath({ downloadDir: "/data" }, "ab".repeat(20))); // "/data/.shoal/abab….resume"
 * ```
 *
 * @param place The download and resume folders.
 * @param infoHash The info-hash as hex.
 * @returns The path.
 */
export function resumeFilePath(place: ResumePlace, infoHash: string): string {
  const dir = place.resumeDir ?? join(place.downloadDir, ".shoal");
  return join(dir, `${infoHash}.resume`);
}

/**
 * The folder below which resume files are never reached through a symbolic link: the resume
 * folder the user chose, else the download folder (so a planted `.shoal` link is refused).
 *
 * @example
 * ```ts
 * import { resumeRoot } from "./resume_saver.ts";
 * console.log(resumeRoot({ downloadDir: "/data" })); // "/data"
 * ```
 *
 * @param place The download and resume folders.
 * @returns The absolute folder.
 */
export function resumeRoot(place: ResumePlace): string {
  return resolve(place.resumeDir ?? place.downloadDir);
}

/** Options of {@linkcode ResumeSaver}. */
export interface ResumeSaverOptions {
  /** The torrent. */
  readonly metainfo: Metainfo;
  /** Our verified pieces. */
  readonly have: Bitfield;
  /** The download and resume folders. */
  readonly place: ResumePlace;
  /** Where failed saves are reported by {@linkcode ResumeSaver.saveOrWarn}. */
  readonly logger: Logger;
  /** Clock. */
  readonly now: () => number;
}

/**
 * Saves a torrent's resume data, one save at a time. Only storage that reports its files
 * (`canStat`) keeps resume data; for other storage a save does nothing.
 *
 * @example
 * ```ts ignore
 * const saver = new ResumeSaver({ metainfo, have, place: options, logger, now: Date.now });
 * saver.markDirty();
 * await saver.save(storage);
 * ```
 */
export class ResumeSaver {
  readonly #options: ResumeSaverOptions;
  /** The last save, so saves never overlap. */
  #last: Promise<void> = Promise.resolve();
  #dirty = false;
  #savedAt = 0;

  /**
   * Creates the saver; nothing is written before a save.
   *
   * @param options The torrent, its folders, logger and clock.
   */
  constructor(options: ResumeSaverOptions) {
    this.#options = options;
  }

  /** The resume file's path. */
  get path(): string {
    return resumeFilePath(this.#options.place, this.#options.metainfo.infoHashHex);
  }

  /** Progress changed since the last save. */
  markDirty(): void {
    this.#dirty = true;
  }

  /**
   * Whether a save is due: progress changed and the last save is at least `intervalMs` old.
   *
   * @param now The current time.
   * @param intervalMs Least time between two saves.
   * @returns True when a save is due.
   */
  due(now: number, intervalMs: number): boolean {
    return this.#dirty && now - this.#savedAt >= intervalMs;
  }

  /**
   * Saves a snapshot of the progress after the saves already queued.
   *
   * @param storage The torrent's storage (null before it is open: nothing to save).
   * @returns Settles when this save is written; rejects with its error.
   */
  save(storage: CheckedStorage | null): Promise<void> {
    if (!storage?.canStat) return Promise.resolve();
    const { metainfo, have, place } = this.#options;
    this.#dirty = false;
    this.#savedAt = this.#options.now();
    const save = async () => {
      const data = await captureResume(storage, metainfo, have);
      await writeResumeAtomic(this.path, data, { root: resumeRoot(place) });
    };
    // One save at a time, in order: the previous one's failure was reported to its own caller.
    const next = this.#last.then(save, save);
    this.#last = next.catch(() => {/* reported by whoever awaited `next` */});
    return next;
  }

  /**
   * Saves like {@linkcode ResumeSaver.save}, and logs a failure as a warning instead of
   * rejecting (the torrent carries on without a fresh resume file).
   *
   * @param storage The torrent's storage.
   * @returns Settles when the save is over.
   */
  saveOrWarn(storage: CheckedStorage | null): Promise<void> {
    return this.save(storage).catch((error: unknown) =>
      this.#options.logger.warn("storage", `Cannot save resume data: ${(error as Error).message}`)
    );
  }
}
