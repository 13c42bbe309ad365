/**
 * Deleting a torrent's data when it is removed: only its own files, each resolved inside its
 * download folder (`filePaths`), never through a symbolic link, then the folders they were in
 * when those are left empty. The download folder itself is never removed.
 *
 * @module
 */

import { dirname, join, relative, resolve, sep } from "node:path";
import type { Logger } from "../log.ts";
import { filePaths } from "../storage/file_paths.ts";
import type { Metainfo } from "../types.ts";

/** What {@linkcode deleteTorrentData} did. */
export interface DeleteReport {
  /** Files removed (absolute paths). */
  removed: string[];
  /** Files left, each with why (a link on the way, not a regular file, an error). */
  skipped: { path: string; reason: string }[];
  /** Folders removed because they were left empty. */
  folders: string[];
}

/**
 * Removes a torrent's files under `downloadDir` and then the empty folders they leave. A file
 * reached through a symbolic link (the file itself or any folder below `downloadDir`) is left
 * alone, so nothing outside the download folder is ever deleted.
 *
 * @example
 * ```ts ignore
 * const report = await deleteTorrentData("/srv/downloads", torrent.metainfo, logger);
 * console.log(report.removed.length, report.skipped);
 * ```
 *
 * @param downloadDir The torrent's download folder.
 * @param metainfo The torrent.
 * @param logger Where skipped files are reported.
 * @returns What was removed and what was left.
 */
export async function deleteTorrentData(
  downloadDir: string,
  metainfo: Metainfo,
  logger: Logger,
): Promise<DeleteReport> {
  const root = resolve(downloadDir);
  const report: DeleteReport = { removed: [], skipped: [], folders: [] };
  let paths: (string | null)[];
  try {
    paths = filePaths(root, metainfo);
  } catch (error) {
    logger.warn("daemon", `Not deleting the data of ${metainfo.name}: ${(error as Error).message}`);
    report.skipped.push({ path: root, reason: (error as Error).message });
    return report;
  }
  const folders = new Set<string>();
  for (const path of paths) {
    if (path === null) continue;
    const reason = await whyNotRemovable(root, path);
    if (reason === "absent") continue;
    if (reason !== null) {
      report.skipped.push({ path, reason });
      logger.warn("daemon", `Not deleting ${path}: ${reason}`);
      continue;
    }
    try {
      await Deno.remove(path);
      report.removed.push(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      report.skipped.push({ path, reason: (error as Error).message });
      logger.warn("daemon", `Cannot delete ${path}: ${(error as Error).message}`);
    }
    for (let dir = dirname(path); dir.startsWith(root + sep); dir = dirname(dir)) folders.add(dir);
  }
  // Deepest first, so a parent is tried after its children.
  for (const dir of [...folders].sort((a, b) => b.length - a.length)) {
    if (await whyNotRemovable(root, dir, true) !== null) continue;
    try {
      await Deno.remove(dir); // not recursive: only an empty folder goes
      report.folders.push(dir);
    } catch (error) {
      // Not empty (other files live there) or already gone: the folder stays, as it should.
      if (!(error instanceof Deno.errors.NotFound) && !isNotEmpty(error)) {
        logger.warn("daemon", `Cannot remove folder ${dir}: ${(error as Error).message}`);
      }
    }
  }
  return report;
}

/** Null when `path` is a real file (or folder) reached through real folders only, else why not. */
async function whyNotRemovable(root: string, path: string, folder = false): Promise<string | null> {
  let at = root;
  const parts = relative(root, path).split(sep);
  for (let i = 0; i < parts.length; i++) {
    at = join(at, parts[i]!);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(at);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return "absent";
      }
      return (error as Error).message;
    }
    if (info.isSymlink) return `${at} is a symbolic link (not followed)`;
    const last = i === parts.length - 1;
    if (!last && !info.isDirectory) return `${at} is not a folder`;
    if (last && folder && !info.isDirectory) return `${at} is not a folder`;
    if (last && !folder && !info.isFile) return "not a regular file";
  }
  return null;
}

function isNotEmpty(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ENOTEMPTY" || code === "EEXIST" || /not empty/i.test((error as Error).message);
}
