/**
 * The fields of `torrent-get`: one function per Transmission field name, computed from a
 * backend entry and its shoal `Torrent`. Field names a client asks for that are not here are
 * left out of the answer, as Transmission does with names it does not know.
 *
 * @module
 */

import type { TorrentStats } from "../../torrent_types.ts";
import { type RpcTorrentEntry, TR_STATUS } from "./backend.ts";
import { fileList, fileStats, peerList, trackerList, trackerStats } from "./torrent_lists.ts";

/** Transmission's "no ETA" (-1: not downloading) and "unknown ETA" (-2). */
export const ETA_NOT_AVAILABLE = -1;
/** See {@linkcode ETA_NOT_AVAILABLE}. */
export const ETA_UNKNOWN = -2;
/** Transmission's ratio "not available" (nothing moved) and "infinite" (uploaded, never downloaded). */
export const RATIO_NOT_AVAILABLE = -1;
/** See {@linkcode RATIO_NOT_AVAILABLE}. */
export const RATIO_INFINITE = -2;

/** What a field function sees: the entry and values worked out once per torrent. */
export interface FieldContext {
  /** The backend's entry. */
  readonly entry: RpcTorrentEntry;
  /** The torrent's statistics (null without a running torrent). */
  readonly stats: TorrentStats | null;
  /** Bytes of the wanted files (0 before the metadata is known). */
  readonly sizeWhenDone: number;
  /** Wanted bytes not verified yet. */
  readonly leftUntilDone: number;
  /** The time, seconds since the epoch. */
  readonly now: number;
}

/**
 * Works out the values several fields share.
 *
 * @param entry The backend's entry.
 * @param now The time, seconds since the epoch.
 * @returns The context of its field functions.
 */
export function fieldContext(entry: RpcTorrentEntry, now: number): FieldContext {
  const stats = entry.torrent?.stats() ?? null;
  // Transmission's sizeWhenDone is the bytes of the wanted files, whether the torrent runs or not
  // (shoal's wantedBytes counts whole pieces, which may overlap skipped files).
  const files = entry.metainfo?.files ?? [];
  const sizeWhenDone = files.reduce((sum, f, i) => sum + (entry.wanted[i] === false ? 0 : f.length), 0);
  let leftUntilDone = sizeWhenDone;
  if (stats !== null) {
    leftUntilDone = stats.done
      ? 0
      : Math.min(sizeWhenDone, Math.max(0, Math.round(stats.wantedBytes * (1 - stats.percent / 100))));
  }
  return { entry, stats, sizeWhenDone, leftUntilDone, now };
}

function ratio(uploaded: number, downloaded: number): number {
  if (downloaded > 0) return uploaded / downloaded;
  return uploaded > 0 ? RATIO_INFINITE : RATIO_NOT_AVAILABLE;
}

function haveValid(c: FieldContext): number {
  return c.stats?.completedBytes ?? 0;
}

function eta(c: FieldContext): number {
  if (c.entry.status !== TR_STATUS.downloading) return ETA_NOT_AVAILABLE;
  if (c.leftUntilDone === 0) return 0;
  const seconds = c.stats?.eta;
  return seconds === null || seconds === undefined ? ETA_UNKNOWN : Math.round(seconds);
}

function peerCounts(c: FieldContext): { sending: number; getting: number; seeds: boolean } {
  let sending = 0;
  let getting = 0;
  let seeds = false;
  for (const peer of c.entry.torrent?.peers() ?? []) {
    if (peer.flags.amInterested && !peer.flags.peerChoking) sending++;
    if (peer.flags.peerInterested && !peer.flags.amChoking) getting++;
    if (peer.percent >= 100) seeds = true;
  }
  return { sending, getting, seeds };
}

function percentDone(c: FieldContext): number {
  if (c.sizeWhenDone === 0) return c.entry.metainfo === null ? 0 : 1;
  return (c.sizeWhenDone - c.leftUntilDone) / c.sizeWhenDone;
}

type Field = (c: FieldContext) => unknown;

/** Every field `torrent-get` can answer, by Transmission name. */
export const TORRENT_FIELDS: Readonly<Record<string, Field>> = {
  activityDate: (c) => c.entry.activityDate,
  addedDate: (c) => c.entry.addedDate,
  bandwidthPriority: () => 0,
  comment: (c) => c.entry.metainfo?.comment ?? "",
  corruptEver: (c) => c.entry.corruptEver,
  creator: (c) => c.entry.metainfo?.createdBy ?? "",
  dateCreated: (c) => c.entry.metainfo?.creationDate ?? 0,
  desiredAvailable: (c) => peerCounts(c).seeds ? c.leftUntilDone : 0,
  doneDate: (c) => c.entry.doneDate,
  downloadDir: (c) => c.entry.downloadDir,
  downloadedEver: (c) => c.entry.downloadedEver,
  downloadLimit: (c) => c.entry.downloadLimit,
  downloadLimited: (c) => c.entry.downloadLimited,
  error: (c) => c.entry.error,
  errorString: (c) => c.entry.errorString,
  eta,
  etaIdle: () => ETA_NOT_AVAILABLE,
  "file-count": (c) => c.entry.metainfo?.files.length ?? 0,
  files: (c) => fileList(c.entry),
  fileStats: (c) => fileStats(c.entry),
  hashString: (c) => c.entry.hashString,
  haveUnchecked: () => 0,
  haveValid,
  honorsSessionLimits: (c) => c.entry.honorsSessionLimits,
  id: (c) => c.entry.id,
  isFinished: (c) => c.entry.isFinished,
  isPrivate: (c) => c.entry.metainfo?.private ?? false,
  isStalled: () => false,
  labels: (c) => [...c.entry.labels],
  leftUntilDone: (c) => c.leftUntilDone,
  magnetLink: (c) => c.entry.magnetLink,
  metadataPercentComplete: (c) => c.entry.metadataPercentComplete,
  name: (c) => c.entry.name,
  "peer-limit": (c) => c.entry.peerLimit,
  peers: (c) => peerList(c.entry),
  peersConnected: (c) => c.stats?.peers ?? 0,
  peersGettingFromUs: (c) => peerCounts(c).getting,
  peersSendingToUs: (c) => peerCounts(c).sending,
  percentComplete: (c) =>
    c.entry.metainfo === null ? 0 : haveValid(c) / Math.max(1, c.entry.metainfo.totalLength),
  percentDone,
  pieceCount: (c) => c.entry.metainfo?.pieceCount ?? 0,
  pieceSize: (c) => c.entry.metainfo?.pieceLength ?? 0,
  pieces: (c) => c.entry.torrent?.have.toBytes().toBase64() ?? "",
  priorities: (c) => [...c.entry.priorities],
  queuePosition: (c) => c.entry.queuePosition,
  rateDownload: (c) => Math.round(c.stats?.downloadRate ?? 0),
  rateUpload: (c) => Math.round(c.stats?.uploadRate ?? 0),
  recheckProgress: (c) => c.entry.recheckProgress,
  secondsDownloading: (c) => c.entry.secondsDownloading,
  secondsSeeding: (c) => c.entry.secondsSeeding,
  seedIdleLimit: (c) => c.entry.seedIdleLimit,
  seedIdleMode: (c) => c.entry.seedIdleMode,
  seedRatioLimit: (c) => c.entry.seedRatioLimit,
  seedRatioMode: (c) => c.entry.seedRatioMode,
  sizeWhenDone: (c) => c.sizeWhenDone,
  startDate: (c) => c.entry.startDate,
  status: (c) => c.entry.status,
  totalSize: (c) => c.entry.metainfo?.totalLength ?? 0,
  trackers: (c) => trackerList(c.entry),
  trackerStats: (c) => trackerStats(c.entry),
  uploadedEver: (c) => c.entry.uploadedEver,
  uploadLimit: (c) => c.entry.uploadLimit,
  uploadLimited: (c) => c.entry.uploadLimited,
  uploadRatio: (c) => ratio(c.entry.uploadedEver, c.entry.downloadedEver || haveValid(c)),
  wanted: (c) => c.entry.wanted.map((w) => (w ? 1 : 0)),
  webseeds: (c) => [...(c.entry.metainfo?.urlList ?? [])],
  webseedsSendingToUs: () => 0,
};

/**
 * One torrent's answer to `torrent-get`: the asked fields that are known, in the asked order.
 *
 * @example
 * ```ts ignore
 * const row = torrentObject(entry, ["id", "name", "status"], Date.now() / 1000);
 * ```
 *
 * @param entry The backend's entry.
 * @param fields Transmission field names.
 * @param now The time, seconds since the epoch.
 * @returns Field name to value.
 */
export function torrentObject(
  entry: RpcTorrentEntry,
  fields: readonly string[],
  now: number,
): Record<string, unknown> {
  const context = fieldContext(entry, now);
  const out: Record<string, unknown> = {};
  for (const name of fields) {
    const field = Object.hasOwn(TORRENT_FIELDS, name) ? TORRENT_FIELDS[name] : undefined;
    if (field !== undefined) out[name] = field(context);
  }
  return out;
}
