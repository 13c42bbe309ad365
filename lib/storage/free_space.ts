/**
 * Free space: how many bytes a torrent's wanted files still need on disk, how many the file
 * system has free, the check a torrent runs before it writes anything
 * ({@linkcode checkFreeSpace}), and the {@linkcode DiskFullError} of a write that found the disk
 * full ({@linkcode diskFullError}).
 *
 * @module
 */

import { stat, statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { DiskFullError } from "../errors.ts";
import { resolveInside } from "../safe_path.ts";
import type { Metainfo } from "../types.ts";
import { errorCode } from "./storage.ts";

/** Which files count: those not skipped. */
export interface SpaceOptions {
  /** Indices of files that are not downloaded (file priority "skip"). @default {none} */
  skipFiles?: ReadonlySet<number>;
}

/**
 * Bytes the wanted files of a torrent still need on disk: for each file, its length less what
 * is already allocated for it. A file at full length with all its blocks costs nothing more.
 * This is an estimate: allocated blocks (`st_blocks`) are counted, so a sparse file written in
 * places counts only those places, but file systems that compress, deduplicate or copy on
 * write can need more or less, and block rounding and metadata are ignored.
 *
 * @example
 * ```ts ignore
 * import { bytesToWrite } from "./free_space.ts";
 * console.log(await bytesToWrite("./downloads", meta)); // 0 once everything is on disk
 * ```
 *
 * @param root The download folder.
 * @param meta The torrent.
 * @param options Files that are skipped.
 * @returns The bytes still to allocate.
 */
export async function bytesToWrite(
  root: string,
  meta: Metainfo,
  options: SpaceOptions = {},
): Promise<number> {
  const absRoot = resolve(root);
  let needed = 0;
  for (let i = 0; i < meta.files.length; i++) {
    const file = meta.files[i]!;
    if (file.pad || file.length === 0 || options.skipFiles?.has(i)) continue;
    needed += Math.max(0, file.length - (await allocatedBytes(absRoot, file.safePath)));
  }
  return needed;
}

/**
 * Bytes allocated on disk for a file of the torrent: 0 when it is missing, or its path cannot
 * be used (opening the storage reports that problem, with its own clear message).
 */
async function allocatedBytes(root: string, relative: string): Promise<number> {
  let info;
  try {
    info = await stat(resolveInside(root, relative));
  } catch {
    // Missing (the usual case), or a path that FileStorage.open refuses with its own message:
    // the whole file counts as still needed.
    return 0;
  }
  // st_blocks counts 512-byte units whatever the block size; a file system that does not report
  // it gives 0, and the apparent size is used then.
  return info.isFile() ? (info.blocks > 0 ? info.blocks * 512 : info.size) : 0;
}

/** What {@linkcode freeSpace} found. */
export interface FreeSpace {
  /** Bytes an unprivileged user may still write on the file system. */
  readonly free: number;
  /** The mount point of that file system (the highest folder above `path` on it). */
  readonly mount: string;
}

/**
 * The free space of the file system that holds `path` (or would hold it: a folder not made
 * yet is looked up through its nearest existing parent).
 *
 * @example
 * ```ts ignore
 * import { freeSpace } from "./free_space.ts";
 * const { free, mount } = await freeSpace("./downloads");
 * ```
 *
 * @param path A file or folder.
 * @returns Free bytes and the mount point.
 */
export async function freeSpace(path: string): Promise<FreeSpace> {
  let existing = resolve(path);
  for (;;) {
    try {
      await stat(existing);
      break;
    } catch (error) {
      const code = errorCode(error);
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(existing) === existing) throw error;
      existing = dirname(existing);
    }
  }
  const fs = await statfs(existing);
  const device = (await stat(existing)).dev;
  let mount = existing;
  while (dirname(mount) !== mount && (await stat(dirname(mount))).dev === device) mount = dirname(mount);
  return { free: Number(fs.bavail) * Number(fs.bsize), mount };
}

/**
 * Refuses to start a download that cannot fit: throws a {@linkcode DiskFullError} when the
 * bytes the wanted files still need ({@linkcode bytesToWrite}) are more than the free space of
 * the download folder's file system. Nothing is written. Some file systems report free space
 * wrongly (network and FUSE mounts, quotas): the check can be turned off
 * (`checkFreeSpace: false` on the session or torrent, `--no-space-check` in the CLI).
 *
 * @example
 * ```ts ignore
 * import { checkFreeSpace } from "./free_space.ts";
 * await checkFreeSpace("./downloads", meta); // throws when it does not fit
 * ```
 *
 * @param root The download folder (it may not exist yet).
 * @param meta The torrent.
 * @param options Files that are skipped.
 * @throws {DiskFullError} naming the folder, the bytes needed and the bytes free.
 */
export async function checkFreeSpace(
  root: string,
  meta: Metainfo,
  options: SpaceOptions = {},
): Promise<void> {
  const needed = await bytesToWrite(root, meta, options);
  if (needed === 0) return;
  let space: FreeSpace;
  try {
    space = await freeSpace(root);
  } catch (error) {
    // No answer (statfs unsupported, a folder we may not look into): nothing to go by, so the
    // download starts, and a full disk is still reported when a write finds it.
    if (errorCode(error) !== undefined) return;
    throw error;
  }
  const { free, mount } = space;
  if (needed <= free) return;
  throw new DiskFullError(
    `Not enough free space for ${resolve(root)}: the download needs ${formatSize(needed)} more, ` +
      `${formatSize(free)} free on ${mount}`,
    { path: resolve(root), needed, free },
  );
}

/**
 * Turns a write's "no space left on device" into a {@linkcode DiskFullError} that names the
 * file and says how much the download still needs and how much is free; any other error gives
 * `undefined`.
 *
 * @example
 * ```ts ignore
 * import { diskFullError } from "./free_space.ts";
 * const full = await diskFullError(error, { root, meta, path });
 * throw full ?? toStorageError(error, { action: "write", target: path });
 * ```
 *
 * @param error What the write threw.
 * @param where The download folder, the torrent, the file written and the skipped files.
 * @returns The error to throw, or `undefined` when the disk is not full.
 */
export async function diskFullError(
  error: unknown,
  where: { root: string; meta: Metainfo; path: string; skipFiles?: ReadonlySet<number> },
): Promise<DiskFullError | undefined> {
  const code = errorCode(error);
  if (code !== "ENOSPC" && code !== "EDQUOT") return undefined;
  let needed = 0;
  let space: FreeSpace = { free: 0, mount: where.root };
  try {
    needed = await bytesToWrite(
      where.root,
      where.meta,
      where.skipFiles ? { skipFiles: where.skipFiles } : {},
    );
    space = await freeSpace(where.path);
  } catch (measuring) {
    // The sizes only add detail to the message; the disk-full error is what matters.
    return new DiskFullError(
      `Disk full writing ${where.path} (free space unknown: ${(measuring as Error).message})`,
      { path: where.path, needed, free: 0 },
      { cause: error },
    );
  }
  const what = code === "EDQUOT" ? "Disk quota exceeded" : "Disk full";
  return new DiskFullError(
    `${what} writing ${where.path}: the download needs ${formatSize(needed)} more, ` +
      `${formatSize(space.free)} free on ${space.mount}`,
    { path: where.path, needed, free: space.free },
    { cause: error },
  );
}

/** Bytes for a message: "512 B", "1.50 KiB", "12.00 MiB". */
function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${value.toFixed(2)} ${units[i]}`;
}
