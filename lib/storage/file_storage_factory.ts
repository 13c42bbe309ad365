/**
 * {@linkcode fileStorage}: the storage factory for files on disk, shoal's default (`mod.ts`
 * passes it to every session). Each torrent gets a {@linkcode FileStorage} under its download
 * folder, after a free-space check.
 *
 * @module
 */

import type { StorageFactory } from "../types.ts";
import { FileStorage } from "./file_storage.ts";
import { checkFreeSpace } from "./free_space.ts";

/** Options of {@linkcode fileStorage}. */
export interface FileStorageFactoryOptions {
  /** Most file handles each torrent keeps open at once. @default {64} */
  maxOpenFiles?: number;
}

/**
 * Stores each torrent's files under its download folder (the default storage). Before
 * anything is created it refuses, with a `DiskFullError`, a download whose wanted files need
 * more bytes than the folder's file system has free (unless the session's `checkFreeSpace`
 * is off); then it opens a {@linkcode FileStorage}: every path checked to stay inside the
 * folder, no write through a symbolic link, the folder and zero-byte files created. Resume
 * data is kept in `<downloadDir>/.shoal`, and files longer than the torrent's are trimmed
 * once complete (both only for this storage).
 *
 * @example
 * ```ts ignore
 * import { fileStorage, Session } from "./mod.ts";
 * await using session = new Session({ downloadDir: "./downloads", storage: fileStorage({ maxOpenFiles: 16 }) });
 * ```
 *
 * @param options Handle cache size.
 * @returns The factory.
 */
export function fileStorage(options: FileStorageFactoryOptions = {}): StorageFactory {
  return async (meta, context) => {
    if (context.checkFreeSpace) {
      await checkFreeSpace(context.downloadDir, meta, { skipFiles: context.skipFiles });
    }
    return await FileStorage.open(context.downloadDir, meta, {
      skipFiles: context.skipFiles,
      ...(options.maxOpenFiles !== undefined ? { maxOpenFiles: options.maxOpenFiles } : {}),
    });
  };
}
