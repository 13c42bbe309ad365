/**
 * Opening files under a folder other people may write into (a shared download folder) without
 * following symbolic links planted there. Every writer below the download folder goes through
 * here: payload files, resume data, saved metadata, DHT state and lock files.
 *
 * The rules. The root (the folder the user named) may itself be a symbolic link: that is the
 * user's choice, and it is created when missing. Below it:
 *
 * - nothing is written or created through a symbolic link. Each folder on the way is
 *   examined with `lstat` and created one level at a time (never `mkdir -p`, which follows
 *   links); the file is opened with `O_NOFOLLOW`; then, before any byte is written, the opened
 *   handle is checked again: `fstat` of the handle must be the same file as `lstat` of the
 *   path, and every folder on the way must still be a real folder. shoal's own files, written
 *   whole to a temporary file and renamed into place, replace a link found at their own name
 *   (a rename acts on the link, never on what it points to);
 * - a payload file may be read (to verify and seed) through symbolic links only when the real
 *   path stays inside the root's real path, as `createTorrent` accepts links inside
 *   the folder; shoal's own files (resume data, DHT state, saved metadata) are never read
 *   through a link;
 * - only regular files are used, opened with `O_NONBLOCK` so a planted FIFO cannot hang us.
 *
 * Races: Deno has no `openat`, so a folder swapped for a link between the check and the open
 * can still redirect the open itself. The check after the open catches it, and the handle is
 * closed unused: nothing is written and no file is truncated (files are never opened with
 * `O_TRUNC`); at worst an empty file is left where the link pointed. A refusal is a
 * {@linkcode StorageError} naming the path.
 *
 * @module
 */

import { constants } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readlink, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { StorageError } from "../errors.ts";
import { errorCode } from "./storage.ts";
import { toHex } from "../net/bytes.ts";

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const READ_NO_FOLLOW = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const WRITE_EXISTING = O_RDWR | O_NOFOLLOW | O_NONBLOCK;
const WRITE_NEW = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK;

/** Options of {@linkcode openInside}. */
export interface OpenInsideOptions {
  /**
   * `"read"` opens for reading; `"write"` for reading and writing, creating the file and its
   * folders when missing (never truncating an existing file).
   */
  mode: "read" | "write";
  /**
   * For reading only: follow symbolic links whose real target stays inside the root (payload
   * files); otherwise any link below the root is refused. @default {false}
   */
  followInside?: boolean;
}

/**
 * Thrown by {@linkcode readFileInside} when the file is larger than allowed.
 *
 * @example
 * ```ts
 * import { FileTooLargeError } from "./safe_open.ts";
 * const e = new FileTooLargeError("/dl/.shoal/x.resume", 1 << 20, 4096);
 * console.log(e.message); // "/dl/.shoal/x.resume has 1048576 bytes, at most 4096 expected"
 * ```
 */
export class FileTooLargeError extends StorageError {
  /**
   * Creates the error.
   *
   * @param path The file.
   * @param size Its size.
   * @param maxBytes The largest size accepted.
   */
  constructor(path: string, size: number, maxBytes: number) {
    super(`${path} has ${size} bytes, at most ${maxBytes} expected`);
  }
}

/** What identifies a file: device and inode, as `fstat` and `lstat` report them. */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number | null;
}

/** A path below a root, split into its components. */
interface Anchored {
  /** The absolute root. */
  readonly base: string;
  /** The absolute path. */
  readonly full: string;
  /** The components of the path below the root (at least one). */
  readonly parts: readonly string[];
}

/**
 * Opens a file below `root` under the rules of this module.
 *
 * @example
 * ```ts
 * import { openInside } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * const handle = await openInside(dir, "album/track.flac", { mode: "write" });
 * await handle.write(new Uint8Array([1, 2, 3]), 0, 3, 0);
 * await handle.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The folder below which no planted link is followed (it must exist, except that
 * writing creates folders below it).
 * @param target The file, relative to `root` or absolute inside it.
 * @param options Reading or writing, and whether links inside the root may be followed.
 * @returns An open handle on a regular file.
 * @throws {StorageError} when a symbolic link is in the way, the path leaves `root`, or the
 * file is not a regular file. Other failures (missing file, permissions) are thrown as the file
 * system reported them, for the caller to name its action.
 */
export async function openInside(
  root: string,
  target: string,
  options: OpenInsideOptions,
): Promise<FileHandle> {
  const at = anchor(root, target);
  if (options.mode === "write") return await openForWrite(at);
  if (options.followInside === true) return await openFollowingInside(at);
  await checkFolders(at, false);
  let handle: FileHandle;
  try {
    handle = await open(at.full, READ_NO_FOLLOW);
  } catch (error) {
    if (errorCode(error) === "ELOOP") throw await linkRefusal(at, at.full, "read");
    throw error;
  }
  return await verified(handle, at, () => checkUnchanged(at, handle));
}

/**
 * Creates the root (following the user's own path, like `mkdir -p`) and then each missing
 * folder of `target` below it one level at a time, refusing symbolic links and files in the way.
 *
 * @example
 * ```ts
 * import { ensureFolderInside } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await ensureFolderInside(dir, ".shoal")); // "<dir>/.shoal"
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The folder the user named.
 * @param target A folder below it (relative or absolute inside it), or `""` for the root itself.
 * @returns The absolute path of the folder.
 * @throws {StorageError} when a symbolic link or a file is in the way, or the path leaves
 * `root`. Other failures are thrown as the file system reported them.
 */
export async function ensureFolderInside(root: string, target: string): Promise<string> {
  const base = resolve(root);
  await mkdir(base, { recursive: true });
  if (target === "" || resolve(base, target) === base) return base;
  const at = anchor(base, target);
  await checkFolders({ ...at, parts: [...at.parts, ""] }, true);
  return at.full;
}

/** The outcome of {@linkcode writeFileAtomic}. */
export interface WriteAtomicResult {
  /** False when the folder could not be synced after the rename (the file is in place, but a crash right now could lose the rename). */
  folderSynced: boolean;
}

/**
 * Writes a whole file below `root` so that a crash leaves the old content or the new one:
 * writes a temporary file in the same folder (created with `O_EXCL`), syncs it, renames it over
 * the target, then syncs the folder (best effort). Missing folders below `root` are created; the
 * root must exist. A symbolic link at the target is replaced by the file, never followed (a
 * rename acts on the link itself).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(dir, ".shoal/state.dat", new TextEncoder().encode("hello"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The folder below which no planted link is followed.
 * @param target The file, relative to `root` or absolute inside it.
 * @param bytes The content.
 * @returns Whether the folder sync succeeded.
 * @throws {StorageError} when a link is in the way or the path leaves `root`; the temporary
 * file is removed. Other failures are thrown as the file system reported them.
 */
export async function writeFileAtomic(
  root: string,
  target: string,
  bytes: Uint8Array,
): Promise<WriteAtomicResult> {
  const at = anchor(root, target);
  await checkFolders(at, true);
  const random = toHex(crypto.getRandomValues(new Uint8Array(6)));
  const tempName = `.${basename(at.full)}.${random}.tmp`;
  const temp: Anchored = {
    ...at,
    full: join(dirname(at.full), tempName),
    parts: [...at.parts.slice(0, -1), tempName],
  };
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp.full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    await checkUnchanged(temp, handle);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, done);
      if (bytesWritten <= 0) throw new Error(`Write made no progress at byte ${done}`);
      done += bytesWritten;
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp.full, at.full);
  } catch (error) {
    await handle?.close().catch(() => {/* the error being thrown is what matters */});
    try {
      await rm(temp.full, { force: true });
    } catch (cleanup) {
      const message = error instanceof Error ? error.message : String(error);
      throw new StorageError(`${message} (and the temporary file ${temp.full} could not be removed)`, {
        cause: new AggregateError([error, cleanup]),
      });
    }
    throw error;
  }
  return { folderSynced: await syncFolder(dirname(at.full)) };
}

/**
 * Reads a whole file below `root` that shoal itself wrote (resume data, saved metadata, DHT
 * state): never through a symbolic link, only a regular file, at most `maxBytes`.
 *
 * @example
 * ```ts
 * import { readFileInside } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await readFileInside(dir, ".shoal/none.resume", 1024)); // null
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The folder below which no planted link is followed.
 * @param target The file, relative to `root` or absolute inside it.
 * @param maxBytes The largest size accepted.
 * @returns The bytes, or `null` when there is no such file.
 * @throws {FileTooLargeError} when the file is larger than `maxBytes`.
 * @throws {StorageError} when a link is in the way or the file is not a regular file. Other failures are thrown as the file system reported them.
 */
export async function readFileInside(
  root: string,
  target: string,
  maxBytes: number,
): Promise<Uint8Array | null> {
  let handle: FileHandle;
  try {
    handle = await openInside(root, target, { mode: "read" });
  } catch (error) {
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return null;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const path = resolve(root, target);
    if (size > maxBytes) throw new FileTooLargeError(path, size, maxBytes);
    const out = new Uint8Array(size + 1);
    let done = 0;
    for (;;) {
      const { bytesRead } = await handle.read(out, done, out.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
      if (done === out.length) throw new StorageError(`${path} grew while being read`);
    }
    return out.slice(0, done);
  } finally {
    await handle.close();
  }
}

/**
 * Checks that the paths below `root` lead through no symbolic link whose real target is
 * outside the root's real path (links to places inside it are accepted, for reading). Folders
 * shared by several paths are examined once.
 *
 * @example
 * ```ts
 * import { checkLinksStayInside } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * await checkLinksStayInside(dir, ["album/a.flac", "album/b.flac"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The download folder.
 * @param targets Paths relative to `root` or absolute inside it; missing ones are fine.
 * @throws {StorageError} naming the first link that leads outside (or nowhere).
 */
export async function checkLinksStayInside(root: string, targets: Iterable<string>): Promise<void> {
  const base = resolve(root);
  let realBase: string | undefined;
  const checked = new Set<string>();
  for (const target of targets) {
    const at = anchor(base, target);
    let path = base;
    for (const part of at.parts) {
      path = join(path, part);
      if (checked.has(path)) continue;
      checked.add(path);
      const info = await lstatOrNull(path);
      if (info === null) break;
      if (!info.isSymbolicLink()) continue;
      realBase ??= await realpath(base);
      let real: string | undefined;
      try {
        real = await realpath(path);
      } catch (error) {
        // A link to nothing: reported below with what it points to.
        if (errorCode(error) !== "ENOENT" && errorCode(error) !== "ELOOP") throw error;
      }
      if (real === undefined || !isStrictlyInside(realBase, real)) {
        const to = await linkTarget(path);
        throw new StorageError(
          `Refusing to use ${path}: it is a symbolic link to ${to}, ${
            real === undefined ? "which does not exist" : "outside"
          } the download folder ${base} (remove the link, or put the data itself there)`,
        );
      }
    }
  }
}

/**
 * Checks a handle opened by other means (such as `Deno.open`) against its path: the path must
 * still be the same regular file, reached through real folders only.
 *
 * @example
 * ```ts
 * import { checkOpenedInside } from "./safe_open.ts";
 * const dir = await Deno.makeTempDir();
 * using file = await Deno.open(`${dir}/x.lock`, { read: true, write: true, create: true });
 * await checkOpenedInside(dir, "x.lock", await file.stat());
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The folder below which no planted link is followed.
 * @param target The file's path, relative to `root` or absolute inside it.
 * @param opened What `fstat` of the handle reported.
 * @throws {StorageError} when the path no longer leads to that file through real folders.
 */
export async function checkOpenedInside(
  root: string,
  target: string,
  opened: { readonly dev: number; readonly ino: number | null; readonly isFile: boolean },
): Promise<void> {
  const at = anchor(root, target);
  if (!opened.isFile) throw new StorageError(`Refusing to use ${at.full}: it is not a regular file`);
  await checkFolders(at, false);
  await checkSame(at, opened);
}

// ---------------------------------------------------------------------------------------------

function anchor(root: string, target: string): Anchored {
  if (root.includes("\0") || target.includes("\0")) {
    throw new StorageError(
      `Cannot use path '${target.replaceAll("\0", "\\0")}': it contains a NUL character`,
    );
  }
  const base = resolve(root);
  const full = resolve(base, target);
  const rel = relative(base, full);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new StorageError(`Cannot use path '${target}': it is not inside the folder ${base}`);
  }
  return { base, full, parts: rel.split(sep) };
}

function isStrictlyInside(base: string, path: string): boolean {
  const rel = relative(base, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Examines (and with `create`, makes) every folder of `at` but the last component. */
async function checkFolders(at: Anchored, create: boolean): Promise<void> {
  let path = at.base;
  for (const part of at.parts.slice(0, -1)) {
    path = join(path, part);
    let info = await lstatOrNull(path);
    if (info === null && create) {
      try {
        await mkdir(path);
      } catch (error) {
        // Someone made it in the meantime: examined below like any existing entry.
        if (errorCode(error) !== "EEXIST") throw error;
      }
      info = await lstatOrNull(path);
    }
    if (info === null) {
      throw Object.assign(new Error(`No such folder: ${path}`), { code: "ENOENT" });
    }
    if (info.isSymbolicLink()) throw await linkRefusal(at, path, create ? "write" : "use");
    if (!info.isDirectory()) {
      throw new StorageError(`Cannot use ${at.full}: ${path} is not a folder`);
    }
  }
}

async function openForWrite(at: Anchored): Promise<FileHandle> {
  await checkFolders(at, true);
  for (let attempt = 0;; attempt++) {
    let handle: FileHandle;
    try {
      handle = await open(at.full, WRITE_EXISTING);
    } catch (error) {
      if (errorCode(error) === "ELOOP") throw await linkRefusal(at, at.full, "write");
      if (errorCode(error) !== "ENOENT") throw error;
      try {
        handle = await open(at.full, WRITE_NEW, 0o666);
      } catch (again) {
        // Created by someone else between the two opens: open what is there now, once.
        if (errorCode(again) === "EEXIST" && attempt === 0) continue;
        if (errorCode(again) === "ELOOP" || errorCode(again) === "EEXIST") {
          throw await linkRefusal(at, at.full, "write");
        }
        throw again;
      }
    }
    return await verified(handle, at, () => checkUnchanged(at, handle));
  }
}

async function openFollowingInside(at: Anchored): Promise<FileHandle> {
  const realBase = await realpath(at.base);
  const inside = async () => {
    const real = await realpath(at.full);
    if (!isStrictlyInside(realBase, real)) {
      throw new StorageError(
        `Refusing to read ${at.full}: it leads through a symbolic link to ${real}, outside the download folder ${at.base}`,
      );
    }
    return real;
  };
  await inside();
  const handle = await open(at.full, O_RDONLY | O_NONBLOCK);
  return await verified(handle, at, async () => {
    const real = await inside();
    const info = await handle.stat();
    const now = await stat(real);
    if (!sameFile(info, now)) throw changedRefusal(at.full);
  });
}

/** Runs `check` on a fresh handle (which must be a regular file); closes it if a check fails. */
async function verified(handle: FileHandle, at: Anchored, check: () => Promise<void>): Promise<FileHandle> {
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new StorageError(`Refusing to use ${at.full}: it is not a regular file`);
    await check();
    return handle;
  } catch (error) {
    await handle.close().catch(() => {/* the refusal being thrown is what matters */});
    throw error;
  }
}

/** The path still leads, through real folders, to the very file `handle` has open. */
async function checkUnchanged(at: Anchored, handle: FileHandle): Promise<void> {
  await checkFolders(at, false);
  await checkSame(at, await handle.stat());
}

async function checkSame(at: Anchored, opened: FileIdentity): Promise<void> {
  const now = await lstatOrNull(at.full);
  if (now?.isSymbolicLink()) throw await linkRefusal(at, at.full, "use");
  if (now === null || !sameFile(opened, now)) throw changedRefusal(at.full);
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function changedRefusal(path: string): StorageError {
  return new StorageError(
    `Refusing to use ${path}: it was replaced while being opened (is someone else changing the folder?)`,
  );
}

async function linkRefusal(
  at: Anchored,
  link: string,
  action: "read" | "write" | "use",
): Promise<StorageError> {
  const what = link === at.full ? "it is" : `${link} is`;
  return new StorageError(
    `Refusing to ${action} ${at.full}: ${what} a symbolic link to ${await linkTarget(
      link,
    )}, and shoal never ${
      action === "read" || action === "use" ? "uses" : "writes through"
    } links inside ${at.base} (remove the link)`,
  );
}

async function linkTarget(path: string): Promise<string> {
  try {
    return await readlink(path);
  } catch (error) {
    // Only for the message: the link may have gone in the meantime.
    return `an unknown target (${error instanceof Error ? error.message : String(error)})`;
  }
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    // Absent, or a file where a folder should be: either way there is nothing to follow.
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return null;
    throw error;
  }
}

async function syncFolder(folder: string): Promise<boolean> {
  try {
    const handle = await open(folder, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  } catch {
    // Best effort by design: the rename already happened and some file systems cannot fsync a
    // folder. The caller learns of it through the result.
    return false;
  }
}
