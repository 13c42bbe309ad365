/**
 * What `sessionBackend()` does when a record's torrent is known: take its metadata (and
 * apply the file choices made before a magnet link's metadata arrived), then follow its
 * events for the dates, the seeding and downloading seconds, errors and the seed goals.
 *
 * @module
 */

import type { RpcSessionSettings } from "./backend.ts";
import type { Torrent } from "../../torrent.ts";
import type { Metainfo } from "../../types.ts";
import { applyFileChanges, type TorrentRecord } from "./session_entry.ts";
import { seedGoalMet } from "./session_settings.ts";

/**
 * The metadata is known (a magnet link's arrived): files, and what was asked for them.
 *
 * @param record The record.
 * @param meta Its metadata.
 */
export function knownMetadata(record: TorrentRecord, meta: Metainfo): void {
  if (record.metainfo !== null && record.wanted.length === meta.files.length) return;
  record.metainfo = meta;
  record.name = meta.name;
  record.wanted = new Array<boolean>(meta.files.length).fill(true);
  record.priorities = new Array<0>(meta.files.length).fill(0);
  const pending = record.pendingFiles;
  record.pendingFiles = null;
  if (pending === null) return;
  try {
    applyFileChanges(record, pending);
  } catch (error) {
    record.error = 3;
    record.errorString = `files asked for when added: ${(error as Error).message}`;
  }
}

/** What {@linkcode watchTorrent} reads. */
export interface WatchContext {
  /** The time, seconds since the epoch. */
  now(): number;
  /** The session's settings now (for the seed goals). */
  settings(): RpcSessionSettings;
}

/**
 * Follows a record's torrent: activity and done dates, seconds downloading and seeding,
 * fatal errors, and pausing it (Transmission's "Finished") at its seed goal.
 *
 * @param record The record.
 * @param torrent Its torrent (events of an older torrent of the record are ignored).
 * @param context Clock and settings.
 */
export function watchTorrent(record: TorrentRecord, torrent: Torrent, context: WatchContext): void {
  torrent.addEventListener("progress", (e) => {
    if (record.torrent !== torrent) return;
    const stats = e.detail;
    if (stats.downloadRate > 0 || stats.uploadRate > 0) record.activityDate = context.now();
    if (stats.state === "downloading") record.secondsDownloading++;
    if (stats.state === "seeding") record.secondsSeeding++;
    if (stats.done && record.doneDate === 0) record.doneDate = context.now();
    if (torrent.state !== "seeding" || !seedGoalMet(record, context.settings(), context.now())) return;
    record.isFinished = true;
    record.wantRunning = false;
    torrent.pause().catch((error: Error) => {
      record.error = 3;
      record.errorString = `cannot stop at the seed goal: ${error.message}`;
    });
  });
  torrent.addEventListener("done", () => {
    if (record.torrent === torrent && record.doneDate === 0) record.doneDate = context.now();
  });
  torrent.addEventListener("error", (e) => {
    if (record.torrent !== torrent) return;
    record.error = 3;
    record.errorString = e.detail.error.message;
  });
}
