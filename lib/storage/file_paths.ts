/**
 * Where a torrent's files go under the download folder: every path resolved and checked once,
 * when storage opens (no escape, no collision, not too long to open).
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { StorageError } from "../errors.ts";
import { MAX_ABSOLUTE_PATH_BYTES } from "../limits.ts";
import { resolveInside } from "../safe_path.ts";
import type { Metainfo } from "../types.ts";
import { errorCode, toStorageError } from "./storage.ts";

const utf8Encoder = new TextEncoder();

/**
 * Resolves every non-pad file's path under `root` (`null` for pad files), refusing escapes,
 * collisions (two files on one path, or a file used as a folder) and paths too long to open.
 *
 * @example
 * ```ts
 * import { filePaths } from "./file_paths.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * console.log(filePaths("/downloads", meta)[0]); // "/downloads/x/a.bin"
 * ```
 *
 * @param root The download folder, absolute.
 * @param meta The torrent.
 * @returns One absolute path (or `null`) per file.
 * @throws {StorageError} when a path escapes, collides or is too long.
 */
export function filePaths(root: string, meta: Metainfo): (string | null)[] {
  const paths: (string | null)[] = [];
  const files = new Map<string, number>();
  const folders = new Map<string, number>();
  for (let i = 0; i < meta.files.length; i++) {
    const file = meta.files[i]!;
    if (file.pad) {
      paths.push(null);
      continue;
    }
    // Two independent checks: the shared one, and a stricter one on the components.
    const path = resolveInside(root, file.safePath);
    if (insideRoot(root, file.safePath) !== path) {
      throw new StorageError(`Refusing file path '${file.safePath}': it does not resolve consistently`);
    }
    // Refused now rather than failing with ENAMETOOLONG in the middle of the download.
    const bytes = utf8Encoder.encode(path).length;
    if (bytes > MAX_ABSOLUTE_PATH_BYTES) {
      throw new StorageError(
        `Cannot store file ${i} under ${root}: its path would be ${bytes} bytes long, more than the ` +
          `${MAX_ABSOLUTE_PATH_BYTES} Linux can open (choose a shorter download folder)`,
      );
    }
    const clash = files.get(path) ?? folders.get(path);
    if (clash !== undefined) {
      throw new StorageError(`Cannot store file ${i} at ${path}: file ${clash} uses the same path`);
    }
    files.set(path, i);
    for (let dir = dirname(path); dir !== root && dir.length > root.length; dir = dirname(dir)) {
      const other = files.get(dir);
      if (other !== undefined) {
        throw new StorageError(`Cannot store file ${i} at ${path}: file ${other} uses ${dir} as a file`);
      }
      if (folders.has(dir)) break;
      folders.set(dir, i);
    }
    paths.push(path);
  }
  return paths;
}

/** Joins a torrent's relative path to `root`, throwing if the result could leave `root`. */
function insideRoot(root: string, relativePath: string): string {
  const refuse = (why: string): never => {
    throw new StorageError(`Refusing file path '${relativePath}': ${why}`);
  };
  if (typeof relativePath !== "string" || relativePath.length === 0) refuse("empty path");
  if (relativePath.includes("\0")) refuse("contains a NUL character");
  if (isAbsolute(relativePath) || /^[A-Za-z]:/.test(relativePath) || relativePath.startsWith("\\")) {
    refuse("absolute path");
  }
  for (const part of relativePath.split(/[\\/]/)) {
    if (part === "" || part === "." || part === "..") refuse(`invalid component '${part}'`);
  }
  const full = resolve(root, relativePath);
  const rel = relative(root, full);
  if (rel === "" || rel === ".." || rel.startsWith("../") || isAbsolute(rel)) {
    refuse("leaves the download folder");
  }
  return full;
}

/**
 * Tells what is at `path` (following links), treating a missing entry as `"absent"`.
 *
 * @example
 * ```ts
 * import { kindOf } from "./file_paths.ts";
 * console.log(await kindOf("/tmp", "/tmp")); // "directory"
 * ```
 *
 * @param path What to look at.
 * @param root The download folder, named in a permission error.
 * @returns What is there.
 * @throws {StorageError} when it cannot be examined.
 */
export async function kindOf(path: string, root: string): Promise<"file" | "directory" | "other" | "absent"> {
  try {
    const info = await stat(path);
    return info.isFile() ? "file" : info.isDirectory() ? "directory" : "other";
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") return "absent";
    throw toStorageError(error, { action: "stat", target: path, root });
  }
}
