/**
 * The manager's view of one torrent (its record, metadata, the running `Torrent`) and the pure
 * rules about it: which state it is in, the file priorities it runs with, the bytes it moved,
 * whether a seed goal is reached.
 *
 * @module
 */

import type { FilePriority } from "../file_priority.ts";
import type { Torrent } from "../torrent.ts";
import type { Metainfo } from "../types.ts";
import type { TorrentRecord } from "./record.ts";
import type { DaemonTorrentState } from "./snapshot.ts";

/** One managed torrent, as the manager holds it. */
export interface Entry {
  /** The durable record (the manager saves it after every change). */
  record: TorrentRecord;
  /** The metadata (null while a magnet waits for it). */
  metainfo: Metainfo | null;
  /** The torrent in the session, once added. */
  torrent: Torrent | null;
  /** The running start (the session's add), if any. */
  run: Promise<void> | null;
  /** Aborts the running start. */
  abort: AbortController | null;
  /** The state last reported in a `state-changed` event. */
  state: DaemonTorrentState;
  /** The user's operations on this torrent, one after another. */
  ops: Promise<unknown>;
  /** Bytes of the running torrent already counted in the record's totals. */
  folded: { uploaded: number; downloaded: number };
  /** When it last started seeding (ms), for the idle goal. */
  seedingSince: number;
  /** The record changed since it was last saved. */
  dirty: boolean;
}

/**
 * The state an entry is in now.
 *
 * @example
 * ```ts ignore
 * console.log(stateOf(entry)); // "downloading"
 * ```
 *
 * @param entry The entry.
 * @returns Its state.
 */
export function stateOf(entry: Entry): DaemonTorrentState {
  const { record, torrent } = entry;
  const stopped = record.finished ? "finished" : "paused";
  if (torrent !== null && torrent.state !== "stopped") {
    if (torrent.state === "paused") return stopped;
    if (torrent.state === "error") return "error";
    return torrent.state;
  }
  if (entry.run !== null) return entry.metainfo === null ? "magnet" : "checking";
  if (record.error !== null) return "error";
  if (record.paused || record.finished) return stopped;
  return entry.metainfo === null ? "magnet" : "checking";
}

/**
 * The priorities the session runs the torrent with: a file not wanted is skipped, "high" is
 * high, "low" and "normal" are normal (shoal has no lower priority).
 *
 * @example
 * ```ts ignore
 * session.add(metainfo, { filePriorities: prioritiesOf(record, metainfo.files.length) });
 * ```
 *
 * @param record The record.
 * @param fileCount Number of files of the torrent.
 * @returns One priority per file.
 */
export function prioritiesOf(record: TorrentRecord, fileCount: number): FilePriority[] {
  return Array.from({ length: fileCount }, (_, i) => priorityOf(record, i));
}

/**
 * The priority one file runs with (see {@linkcode prioritiesOf}).
 *
 * @example
 * ```ts ignore
 * torrent.setFilePriority(3, priorityOf(record, 3));
 * ```
 *
 * @param record The record.
 * @param index The file.
 * @returns Its priority.
 */
export function priorityOf(record: TorrentRecord, index: number): FilePriority {
  if (record.wanted[index] === false) return "skip";
  return record.priority[index] === "high" ? "high" : "normal";
}

/**
 * Bytes moved over every run, the running torrent's included.
 *
 * @example
 * ```ts ignore
 * console.log(countersOf(entry).uploaded);
 * ```
 *
 * @param entry The entry.
 * @returns Uploaded and downloaded bytes.
 */
export function countersOf(entry: Entry): { uploaded: number; downloaded: number } {
  const stats = entry.torrent?.stats();
  return {
    uploaded: entry.record.uploadedEver + (stats === undefined ? 0 : stats.uploaded - entry.folded.uploaded),
    downloaded: entry.record.downloadedEver +
      (stats === undefined ? 0 : stats.downloaded - entry.folded.downloaded),
  };
}

/**
 * Moves the running torrent's bytes into the record's totals (call before saving it).
 *
 * @example
 * ```ts ignore
 * foldCounters(entry);
 * await store.saveRecord(entry.record);
 * ```
 *
 * @param entry The entry.
 */
export function foldCounters(entry: Entry): void {
  const stats = entry.torrent?.stats();
  if (stats === undefined) return;
  entry.record.uploadedEver += stats.uploaded - entry.folded.uploaded;
  entry.record.downloadedEver += stats.downloaded - entry.folded.downloaded;
  entry.folded = { uploaded: stats.uploaded, downloaded: stats.downloaded };
}

/**
 * Which seed goal a seeding torrent reached, if any: the ratio (uploaded over every run,
 * divided by the size) or the idle time (minutes since it started seeding or last moved bytes,
 * whichever is later).
 *
 * @example
 * ```ts ignore
 * if (seedGoalReached(entry, Date.now()) !== null) await finish(entry);
 * ```
 *
 * @param entry The entry (seeding).
 * @param now The time, ms since the epoch.
 * @returns `"ratio"`, `"idle"`, or null.
 */
export function seedGoalReached(entry: Entry, now: number): "ratio" | "idle" | null {
  const { ratio, idleMinutes } = entry.record.seedGoals;
  const size = entry.metainfo?.totalLength ?? 0;
  if (ratio !== null && size > 0 && countersOf(entry).uploaded / size >= ratio) return "ratio";
  if (idleMinutes !== null) {
    const since = Math.max(entry.seedingSince, entry.record.activityAt ?? 0);
    if (now - since >= idleMinutes * 60_000) return "idle";
  }
  return null;
}

/**
 * What adding the entry's torrent answers (see `TorrentManager.add`).
 *
 * @example
 * ```ts ignore
 * return { ...resultOf(entry), duplicate: true };
 * ```
 *
 * @param entry The entry.
 * @returns Its id, hash and name, with `duplicate: false`.
 */
export function resultOf(entry: Entry): { id: number; hash: string; name: string; duplicate: boolean } {
  const { id, hash } = entry.record;
  return { id, hash, name: entry.metainfo?.name ?? entry.record.name, duplicate: false };
}

/**
 * Hands the recorded priorities of some files to the entry's running torrent (nothing when it
 * has none, or it stopped or failed).
 *
 * @example
 * ```ts ignore
 * pushPriorities(entry, [0, 2]);
 * ```
 *
 * @param entry The torrent's entry (its record already changed).
 * @param files The indices of the files that changed.
 */
export function pushPriorities(entry: Entry, files: readonly number[]): void {
  const { torrent, metainfo, record } = entry;
  if (torrent === null || metainfo === null || torrent.state === "stopped" || torrent.state === "error") {
    return;
  }
  const now = prioritiesOf(record, metainfo.files.length);
  for (const priority of ["skip", "normal", "high"] as const) {
    const changed = files.filter((i) => now[i] === priority);
    if (changed.length > 0) torrent.setFilePriority(changed, priority);
  }
}
