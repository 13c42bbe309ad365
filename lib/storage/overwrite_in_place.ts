/**
 * {@linkcode overwriteInPlace}: the full-disk fallback of writing resume data.
 *
 * @module
 */

import { type FileHandle, lstat } from "node:fs/promises";
import { openInside } from "./safe_open.ts";
import { errorCode, toStorageError } from "./storage.ts";

/**
 * Rewrites a small file that shoal wrote (resume data) in place, for when the disk is full: a
 * temporary copy for an atomic replace does not fit, but the blocks of the previous file do (it
 * keeps about the same size), so what was verified is not lost. Not atomic: a crash in the
 * middle leaves a damaged file, which a file with a checksum (resume data) shows, and the data
 * is then verified, never wrongly trusted. Links below `root` are not followed.
 *
 * @example
 * ```ts ignore
 * import { overwriteInPlace } from "./overwrite_in_place.ts";
 * const saved = await overwriteInPlace("./downloads", "./downloads/.shoal/abc.resume", bytes);
 * ```
 *
 * @param root The folder below which no symbolic link is followed.
 * @param target The file to rewrite.
 * @param bytes Its new content.
 * @returns True when the file was rewritten; false when there was none, or it still did not fit.
 * @throws {StorageError} for any other failure.
 */
export async function overwriteInPlace(root: string, target: string, bytes: Uint8Array): Promise<boolean> {
  try {
    await lstat(target);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return false;
    throw toStorageError(error, { action: "stat", target, root });
  }
  let handle: FileHandle | undefined;
  try {
    handle = await openInside(root, target, { mode: "write" });
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, done);
      if (bytesWritten <= 0) return false;
      done += bytesWritten;
    }
    await handle.truncate(bytes.length);
    await handle.sync();
    return true;
  } catch (error) {
    const code = errorCode(error);
    // Still no room (the new data needs a block more): the caller reports the full disk.
    if (code === "ENOSPC" || code === "EDQUOT") return false;
    throw toStorageError(error, { action: "write", target, root });
  } finally {
    await handle?.close();
  }
}
