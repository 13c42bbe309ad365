/**
 * The plain, JSON-safe picture of one managed torrent that an RPC or HTTP API answers with.
 *
 * @module
 */

import type { PeerInfo, Torrent, TorrentStats } from "../torrent.ts";
import type { TrackerStatus } from "../tracker/announce_tiers.ts";
import type { Metainfo } from "../types.ts";
import type { FileRank, SeedGoals, TorrentLimits, TorrentRecord } from "./record.ts";

/**
 * Where a managed torrent is: `"magnet"` (waiting for metadata), `"checking"` its data,
 * `"downloading"`, `"seeding"`, `"paused"` by the user, `"finished"` (paused because a seed
 * goal was reached) or `"error"` (stopped; `error` says why).
 */
export type DaemonTorrentState =
  | "magnet"
  | "checking"
  | "downloading"
  | "seeding"
  | "paused"
  | "finished"
  | "error";

/** One file of a snapshot. */
export interface FileSnapshot {
  /** Index in the torrent. */
  index: number;
  /** Path inside the torrent, "/"-separated. */
  path: string;
  /** Size in bytes. */
  length: number;
  /** Bytes of the file in verified pieces. */
  bytesCompleted: number;
  /** Downloaded or skipped. */
  wanted: boolean;
  /** Its priority. */
  priority: FileRank;
}

/** What an API needs of one managed torrent; every field is JSON-safe. */
export interface TorrentSnapshot {
  /** Stable id. */
  id: number;
  /** Info-hash, hex. */
  hash: string;
  /** Name. */
  name: string;
  /** State. */
  state: DaemonTorrentState;
  /** Why it stopped, or null. */
  error: string | null;
  /** The magnet link it came from, or null. */
  magnet: string | null;
  /** Download folder. */
  downloadDir: string;
  /** Labels. */
  labels: string[];
  /** Added, ms since the epoch. */
  addedAt: number;
  /** Completed, ms since the epoch, or null. */
  doneAt: number | null;
  /** Last bytes moved, ms since the epoch, or null. */
  activityAt: number | null;
  /** Rate limits (bytes per second, 0: none). */
  limits: TorrentLimits;
  /** Seed goals. */
  seedGoals: SeedGoals;
  /** Bytes uploaded over every run. */
  uploadedEver: number;
  /** Bytes downloaded over every run. */
  downloadedEver: number;
  /** Total size (null until the metadata is known). */
  totalBytes: number | null;
  /** Piece size (null until the metadata is known). */
  pieceLength: number | null;
  /** Number of pieces (null until the metadata is known). */
  pieceCount: number | null;
  /** BEP 27 private flag (false until known). */
  private: boolean;
  /** The torrent's comment, or null. */
  comment: string | null;
  /** The program that made it, or null. */
  createdBy: string | null;
  /** Its creation date in seconds since the epoch, or null. */
  creationDate: number | null;
  /** The running torrent's statistics, or null when it is not running. */
  stats: TorrentStats | null;
  /** Connected peers. */
  peers: PeerInfo[];
  /** Trackers and their state. */
  trackers: TrackerStatus[];
  /** Files (empty until the metadata is known). */
  files: FileSnapshot[];
}

/**
 * Builds a snapshot (copies everything: the result may be kept and serialised).
 *
 * @example
 * ```ts ignore
 * const json = JSON.stringify(snapshotOf(record, metainfo, torrent, "downloading", live));
 * ```
 *
 * @param record The torrent's record.
 * @param metainfo Its metadata, if known.
 * @param torrent The running torrent, if any.
 * @param state Its state.
 * @param counters Bytes moved over every run, this run included.
 * @returns The snapshot.
 */
export function snapshotOf(
  record: TorrentRecord,
  metainfo: Metainfo | null,
  torrent: Torrent | null,
  state: DaemonTorrentState,
  counters: { uploaded: number; downloaded: number },
): TorrentSnapshot {
  return {
    id: record.id,
    hash: record.hash,
    name: metainfo?.name ?? record.name,
    state,
    error: record.error,
    magnet: record.magnet,
    downloadDir: record.downloadDir,
    labels: [...record.labels],
    addedAt: record.addedAt,
    doneAt: record.doneAt,
    activityAt: record.activityAt,
    limits: { ...record.limits },
    seedGoals: { ...record.seedGoals },
    uploadedEver: counters.uploaded,
    downloadedEver: counters.downloaded,
    totalBytes: metainfo?.totalLength ?? null,
    pieceLength: metainfo?.pieceLength ?? null,
    pieceCount: metainfo?.pieceCount ?? null,
    private: metainfo?.private ?? false,
    comment: metainfo?.comment ?? null,
    createdBy: metainfo?.createdBy ?? null,
    creationDate: metainfo?.creationDate ?? null,
    stats: torrent === null || torrent.state === "stopped" ? null : { ...torrent.stats() },
    peers: torrent === null ? [] : torrent.peers().map((p) => ({ ...p, flags: { ...p.flags } })),
    trackers: torrent === null ? [] : torrent.trackers().map((t) => ({ ...t })),
    files: metainfo === null ? [] : filesOf(record, metainfo, torrent),
  };
}

function filesOf(record: TorrentRecord, metainfo: Metainfo, torrent: Torrent | null): FileSnapshot[] {
  const have = torrent?.have;
  const out: FileSnapshot[] = [];
  for (let index = 0; index < metainfo.files.length; index++) {
    const file = metainfo.files[index]!;
    if (file.pad) continue;
    let bytesCompleted = 0;
    if (have !== undefined && file.length > 0) {
      const first = Math.floor(file.offset / metainfo.pieceLength);
      const last = Math.floor((file.offset + file.length - 1) / metainfo.pieceLength);
      for (let piece = first; piece <= last; piece++) {
        if (!have.get(piece)) continue;
        const start = Math.max(file.offset, piece * metainfo.pieceLength);
        const end = Math.min(file.offset + file.length, (piece + 1) * metainfo.pieceLength);
        bytesCompleted += end - start;
      }
    }
    out.push({
      index,
      path: file.path.join("/"),
      length: file.length,
      bytesCompleted,
      wanted: record.wanted[index] ?? true,
      priority: record.priority[index] ?? "normal",
    });
  }
  return out;
}
