/**
 * A torrent's start-up: take the download lock, open the storage, read the resume data, check
 * what is on disk, note files longer than the torrent's. Progress of the check goes to
 * `onChecking`; whatever is opened is handed over at once (`onLock`, `onStorage`) so a stop
 * during the start-up can close it.
 *
 * @module
 */

import { resolve } from "node:path";
import type { Bitfield } from "../bitfield.ts";
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { DownloadLock, downloadLockPath } from "../storage/folder_lock.ts";
import { FileStorage } from "../storage/file_storage.ts";
import { fileStorage } from "../storage/file_storage_factory.ts";
import { openStorage } from "../storage/open_storage.ts";
import { OversizedFiles } from "../storage/oversized.ts";
import { type CheckProgress, readResume, restoreProgress } from "../storage/resume.ts";
import type { CheckedStorage } from "../storage/storage.ts";
import type { Metainfo } from "../types.ts";
import type { StartupCheck, TorrentOptions } from "../torrent_types.ts";
import { resumeFilePath, resumeRoot } from "./resume_saver.ts";

/** Options of {@linkcode openTorrentData}. */
export interface StartupOptions {
  /** The torrent's options (folders, storage factory, free-space check). */
  readonly options: TorrentOptions;
  /** Filled with the pieces found complete. */
  readonly have: Bitfield;
  /** Files not to create (skipped by the file priorities). */
  readonly skipFiles: Set<number>;
  /** Where the check is logged and resume problems warned of. */
  readonly logger: Logger;
  /** Stops the start-up (the torrent's stop, and the caller's signal). */
  readonly signal: AbortSignal;
  /** The torrent's own stop alone (checked between the steps that open something). */
  readonly stopped: AbortSignal;
  /** Progress of the data check. */
  readonly onChecking: (progress: CheckProgress) => void;
  /** The lock is held: the owner releases it at shutdown. */
  readonly onLock: (lock: DownloadLock) => void;
  /** The storage is open: the owner closes it at shutdown. */
  readonly onStorage: (storage: CheckedStorage) => void;
}

/** What {@linkcode openTorrentData} opened and found. */
export interface StartupResult {
  /** The torrent's storage inside the core's checked layer. */
  readonly storage: CheckedStorage;
  /** Files longer than the torrent's, cut once complete (null for other storage than files). */
  readonly oversized: OversizedFiles | null;
  /** What the data check found. */
  readonly check: StartupCheck;
}

/**
 * Opens a torrent's data and checks it (using resume data when it can be trusted); `have` is
 * filled with what was found.
 *
 * @example
 * ```ts ignore
 * const { storage, check } = await openTorrentData(metainfo, {
 *   options, have, skipFiles: new Set(), logger, signal, stopped: signal,
 *   onChecking: () => {}, onLock: (l) => (lock = l), onStorage: (s) => (store = s),
 * });
 * ```
 *
 * @param meta The torrent.
 * @param startup Options, where progress and opened resources go.
 * @returns The storage, the oversized files and the check's outcome.
 * @throws {ShoalError} when the data is in use, the storage cannot be opened or read, or the signal stops it.
 */
export async function openTorrentData(meta: Metainfo, startup: StartupOptions): Promise<StartupResult> {
  const { options, signal, logger } = startup;
  // First of all: another process using this data means we must not touch anything.
  const place = downloadLockPath(options.downloadDir, options.resumeDir, meta.infoHashHex);
  startup.onLock(
    await DownloadLock.acquire(place.root, place.path, { folder: options.downloadDir, torrent: meta.name }),
  );
  startup.stopped.throwIfAborted();
  // File storage refuses a download that cannot fit before it creates anything.
  const storage = await openStorage(options.storage ?? fileStorage(), meta, {
    downloadDir: resolve(options.downloadDir),
    skipFiles: startup.skipFiles,
    checkFreeSpace: options.checkFreeSpace !== false,
    signal,
  });
  startup.onStorage(storage);
  // Stopped while the files were opening: the shutdown closes them once this settles.
  startup.stopped.throwIfAborted();
  // Storage that cannot report its files keeps no resume data: every piece is verified.
  const stats = storage.canStat;
  const resume = stats
    ? await readResume(resumeFilePath(options, meta.infoHashHex), meta, {
      root: resumeRoot(options),
      onProblem: (problem) => logger.warn("storage", `Ignoring resume data: ${problem.message}`),
    })
    : null;
  const restored = await restoreProgress(storage, meta, resume, {
    signal,
    onProgress: startup.onChecking,
    ...(stats ? {} : { fileStats: false }),
  });
  signal.throwIfAborted();
  for (const i of restored.have) startup.have.set(i);
  let oversized: OversizedFiles | null = null;
  const backend = storage.backend;
  if (backend instanceof FileStorage) {
    oversized = await OversizedFiles.find(backend, meta, startup.have, logger);
    await oversized.trimComplete(startup.have);
  }
  logger.info("storage", "Checked existing data", {
    have: restored.have.size,
    trusted: restored.trusted,
    rechecked: restored.rechecked,
    ...(restored.failed.length > 0 ? { failed: restored.failed.length } : {}),
  });
  const check: StartupCheck = {
    have: restored.have.size,
    pieceCount: meta.pieceCount,
    trusted: restored.trusted,
    rechecked: restored.rechecked,
    usedResume: restored.usedResume,
    failed: restored.failed,
  };
  return { storage, oversized, check };
}

/**
 * Closes what {@linkcode openTorrentData} opened: saves resume data first (when `save` is
 * given), closes the storage, then releases the lock (the data is safe to hand to another
 * process only once the files are closed).
 *
 * @example
 * ```ts ignore
 * await closeTorrentData(storage, lock, () => saver.saveOrWarn(storage));
 * ```
 *
 * @param storage The storage, if it was opened.
 * @param lock The lock, if it was taken.
 * @param save Saves resume data (absent: the start-up did not finish, there is none to save).
 * @throws {StorageError} when the files could not be closed cleanly (data not made durable).
 */
export async function closeTorrentData(
  storage: CheckedStorage | null,
  lock: DownloadLock | null,
  save?: () => Promise<void>,
): Promise<void> {
  try {
    if (storage) {
      await save?.();
      // The reference stays: late reads and writes get "storage is closed", never a null.
      await storage.close().catch((error: unknown) => {
        throw error instanceof StorageError
          ? error
          : new StorageError(`Cannot close files: ${String(error)}`);
      });
    }
  } finally {
    await lock?.release();
  }
}
