/**
 * {@linkcode DownloadLock}: one process at a time per torrent's data. The lock is an exclusive
 * `flock` on `<resume folder>/<infohash>.lock`, which holds the owner's pid for the message the
 * next process shows. The kernel drops the lock when the process dies, however it dies, so a
 * `SIGKILL` never leaves a stale lock; the file itself stays (removing it would let two
 * processes lock two different files of the same name).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { ShoalError } from "../errors.ts";
import { checkOpenedInside, ensureFolderInside } from "./safe_open.ts";
import { toStorageError } from "./storage.ts";

/** What {@linkcode DownloadLock.acquire} names in its message. */
export interface DownloadLockOptions {
  /** The download folder, as the user knows it. */
  folder: string;
  /** The torrent's name. */
  torrent: string;
}

/**
 * An exclusive lock on one torrent's data in one download folder, held until
 * {@linkcode DownloadLock.release} or the end of the process.
 *
 * @example
 * ```ts
 * import { DownloadLock } from "./folder_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await DownloadLock.acquire(dir, `${dir}/.shoal/abc.lock`, { folder: dir, torrent: "abc" });
 * try {
 *   await DownloadLock.acquire(dir, `${dir}/.shoal/abc.lock`, { folder: dir, torrent: "abc" });
 * } catch (e) {
 *   console.log((e as Error).message); // "shoal is already using <dir> for abc (pid …)"
 * }
 * await lock.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class DownloadLock {
  #file: Deno.FsFile | null;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Takes the lock, creating the lock file (and the folders between `root` and it, never
   * through a symbolic link) when missing. Never waits: a lock held elsewhere is an error.
   *
   * @param root The folder below which no symbolic link is followed (the download folder, or
   * the resume folder the user chose).
   * @param path The lock file, inside `root`.
   * @param options The folder and torrent named in the message.
   * @returns The held lock.
   * @throws {ShoalError} (code `IN_USE`) `shoal is already using <folder> for <torrent> (pid N)`
   * when another process (or another torrent of this one) holds it.
   * @throws {StorageError} when the lock file cannot be created or a symbolic link is in the way.
   */
  static async acquire(root: string, path: string, options: DownloadLockOptions): Promise<DownloadLock> {
    const target = resolve(root, path);
    let file: Deno.FsFile;
    try {
      await ensureFolderInside(root, dirname(target));
      // Deno.open cannot refuse a link itself: the handle is checked against the path before use.
      file = await Deno.open(target, { read: true, write: true, create: true });
    } catch (error) {
      throw toStorageError(error, { action: "create", target, root });
    }
    try {
      await checkOpenedInside(root, target, await file.stat());
      if (!(await file.tryLock(true))) {
        const pid = await readPid(file);
        throw new ShoalError(
          "IN_USE",
          `shoal is already using ${options.folder} for ${options.torrent}${
            pid === null ? "" : ` (pid ${pid})`
          }`,
        );
      }
      await file.truncate(0);
      await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (error) {
      file.close();
      throw error instanceof ShoalError ? error : toStorageError(error, { action: "write", target, root });
    }
    return new DownloadLock(file);
  }

  /** True until {@linkcode DownloadLock.release}. */
  get held(): boolean {
    return this.#file !== null;
  }

  /** Releases the lock (closing the file releases it). Releasing twice is allowed. */
  release(): Promise<void> {
    const file = this.#file;
    this.#file = null;
    file?.close();
    return Promise.resolve();
  }
}

/** The pid the holder wrote, or `null` when the file holds none (yet). */
async function readPid(file: Deno.FsFile): Promise<number | null> {
  const buffer = new Uint8Array(32);
  await file.seek(0, Deno.SeekMode.Start);
  const n = await file.read(buffer);
  const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0)).trim();
  return /^\d{1,10}$/.test(text) ? Number(text) : null;
}
