/**
 * {@linkcode DownloadLock}: one process at a time per torrent's data. The lock is an exclusive
 * `flock` on `<resume folder>/<infohash>.lock`, which holds the owner's pid for the message the
 * next process shows. The kernel drops the lock when the process dies, however it dies, so a
 * `SIGKILL` never leaves a stale lock; the file itself stays (removing it would let two
 * processes lock two different files of the same name).
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { ShoalError } from "../errors.ts";
import { checkOpenedInside, ensureFolderInside, openInside } from "./safe_open.ts";
import { toStorageError } from "./storage.ts";

/** What {@linkcode DownloadLock.acquire} names in its message. */
export interface DownloadLockOptions {
  /** The download folder, as the user knows it. */
  folder: string;
  /** The torrent's name. */
  torrent: string;
}

/** Where a torrent's lock lives: see {@linkcode downloadLockPath}. */
export interface DownloadLockPlace {
  /** The folder below which no symbolic link is followed: the resume folder the user chose, else the download folder. */
  readonly root: string;
  /** The lock file: `<resume folder>/<infohash>.lock`. */
  readonly path: string;
}

/**
 * Where the lock of a torrent's data lives: beside its resume data.
 *
 * @example
 * ```ts
 * import { downloadLockPath } from "./folder_lock.ts";
 * console.log(downloadLockPath("/dl", undefined, "ab".repeat(20)).path); // "/dl/.shoal/abab….lock"
 * ```
 *
 * @param downloadDir The download folder.
 * @param resumeDir The resume folder, when not `<downloadDir>/.shoal`.
 * @param infoHashHex The torrent's info-hash, 40 hex characters.
 * @returns The root below which no link is followed, and the lock file.
 */
export function downloadLockPath(
  downloadDir: string,
  resumeDir: string | undefined,
  infoHashHex: string,
): DownloadLockPlace {
  const root = resolve(resumeDir ?? downloadDir);
  const folder = resumeDir === undefined ? join(root, ".shoal") : root;
  return { root, path: join(folder, `${infoHashHex.toLowerCase()}.lock`) };
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
      // Created safely first (never through a link); Deno.open, which has no O_NOFOLLOW, then
      // only opens what is there, and its handle is checked against the path before use.
      await (await openInside(root, target, { mode: "write" })).close();
      file = await Deno.open(target, { read: true, write: true });
    } catch (error) {
      throw toStorageError(error, { action: "create", target, root });
    }
    try {
      await checkOpenedInside(root, target, await file.stat());
      if (!(await file.tryLock(true))) {
        throw inUse(options, await readPid(file));
      }
      await file.truncate(0);
      await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (error) {
      file.close();
      throw error instanceof ShoalError ? error : toStorageError(error, { action: "write", target, root });
    }
    return new DownloadLock(file);
  }

  /**
   * Tells, without creating or writing anything, whether another holder has the lock: throws
   * the same error as {@linkcode DownloadLock.acquire} if so. A session checks this before it
   * starts anything that would write (the DHT saves its state on close).
   *
   * @param root As for {@linkcode DownloadLock.acquire}.
   * @param path As for {@linkcode DownloadLock.acquire}.
   * @param options The folder and torrent named in the message.
   * @throws {ShoalError} (code `IN_USE`) when the lock is held.
   */
  static async check(root: string, path: string, options: DownloadLockOptions): Promise<void> {
    const target = resolve(root, path);
    let file: Deno.FsFile;
    try {
      // Only an existing regular file can be locked by someone; a link is left for acquire() to refuse.
      if (!(await Deno.lstat(target)).isFile) return;
      file = await Deno.open(target, { read: true });
    } catch (error) {
      // No lock file: nobody holds it. Anything else acquire() reports with its own message.
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return;
      throw toStorageError(error, { action: "read", target, root });
    }
    try {
      if (!(await file.tryLock(true))) throw inUse(options, await readPid(file));
    } finally {
      file.close();
    }
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

function inUse(options: DownloadLockOptions, pid: number | null): ShoalError {
  const by = pid === null ? "" : ` (pid ${pid})`;
  return new ShoalError("IN_USE", `shoal is already using ${options.folder} for ${options.torrent}${by}`);
}

/** The pid the holder wrote, or `null` when the file holds none (yet). */
async function readPid(file: Deno.FsFile): Promise<number | null> {
  const buffer = new Uint8Array(32);
  await file.seek(0, Deno.SeekMode.Start);
  const n = await file.read(buffer);
  const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0)).trim();
  return /^\d{1,10}$/.test(text) ? Number(text) : null;
}
