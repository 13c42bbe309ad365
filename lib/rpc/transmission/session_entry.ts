/**
 * What `sessionBackend()` keeps per torrent (`TorrentRecord`), its snapshot as an
 * `RpcTorrentEntry`, the mapping of Transmission's wanted/priority pair onto shoal's file
 * priorities, and the deletion of one torrent's files (and only those).
 *
 * @module
 */

import { dirname, resolve, sep } from "node:path";
import type { FilePriority } from "../../file_priority.ts";
import type { Torrent } from "../../torrent.ts";
import type { Metainfo } from "../../types.ts";
import { checkLinksStayInside } from "../../storage/safe_open.ts";
import { formatMagnet, type MagnetLink } from "../../magnet.ts";
import {
  type QueueMove,
  type RpcSessionSettings,
  type RpcTorrentEntry,
  type SeedGoalMode,
  TR_STATUS,
  type TransmissionPriority,
  type TransmissionStatus,
} from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";

/** Where a record is in its life. */
export type RecordPhase = "fetching" | "checking" | "running" | "stopped";

/** One torrent of the session backend. */
export interface TorrentRecord {
  readonly id: number;
  readonly hash: string;
  name: string;
  /** What to give `session.add` (bytes, parsed metadata, or a magnet link). */
  source: Metainfo | MagnetLink;
  metainfo: Metainfo | null;
  torrent: Torrent | null;
  phase: RecordPhase;
  /** The user wants it running (start/stop). */
  wantRunning: boolean;
  /** Aborts the add in progress (metadata fetch, data check). */
  abort: AbortController | null;
  /** The add in progress. */
  run: Promise<void> | null;
  downloadDir: string;
  labels: string[];
  addedDate: number;
  startDate: number;
  doneDate: number;
  activityDate: number;
  queuePosition: number;
  error: 0 | 3;
  errorString: string;
  wanted: boolean[];
  priorities: TransmissionPriority[];
  /** Asked for before a magnet link's metadata was known: applied once it is. */
  pendingFiles: {
    wanted?: readonly number[];
    unwanted?: readonly number[];
    high?: readonly number[];
    low?: readonly number[];
  } | null;
  seedRatioLimit: number;
  seedRatioMode: SeedGoalMode;
  seedIdleLimit: number;
  seedIdleMode: SeedGoalMode;
  downloadLimit: number;
  downloadLimited: boolean;
  uploadLimit: number;
  uploadLimited: boolean;
  peerLimit: number;
  /** Bytes of earlier `Torrent` objects of this record (before a verify or a location change). */
  downloadedBase: number;
  uploadedBase: number;
  corruptBase: number;
  secondsDownloading: number;
  secondsSeeding: number;
  recheckProgress: number;
  isFinished: boolean;
}

/**
 * A new record, stopped, every file wanted at normal priority.
 *
 * @param id Its id.
 * @param source What the session adds.
 * @param metainfo Its metadata, if known.
 * @param place Folder, date, queue position, and the settings that give the defaults.
 * @returns The record.
 */
export function makeRecord(
  id: number,
  source: TorrentRecord["source"],
  metainfo: Metainfo | null,
  place: { downloadDir: string; addedDate: number; queuePosition: number; settings: RpcSessionSettings },
): TorrentRecord {
  const files = metainfo?.files.length ?? 0;
  return {
    id,
    hash: source.infoHashHex,
    name: metainfo?.name ?? ("trackers" in source && source.name ? source.name : source.infoHashHex),
    source,
    metainfo,
    torrent: null,
    phase: "stopped",
    wantRunning: true,
    abort: null,
    run: null,
    downloadDir: place.downloadDir,
    labels: [],
    addedDate: place.addedDate,
    startDate: 0,
    doneDate: 0,
    activityDate: 0,
    queuePosition: place.queuePosition,
    error: 0,
    errorString: "",
    wanted: new Array<boolean>(files).fill(true),
    priorities: new Array<0>(files).fill(0),
    pendingFiles: null,
    seedRatioLimit: place.settings.seedRatioLimit,
    seedRatioMode: 0,
    seedIdleLimit: place.settings.idleSeedingLimit,
    seedIdleMode: 0,
    downloadLimit: 100,
    downloadLimited: false,
    uploadLimit: 100,
    uploadLimited: false,
    peerLimit: place.settings.peerLimitPerTorrent,
    downloadedBase: 0,
    uploadedBase: 0,
    corruptBase: 0,
    secondsDownloading: 0,
    secondsSeeding: 0,
    recheckProgress: 0,
    isFinished: false,
  };
}

/**
 * Puts a record at a queue position, renumbering the others from 0.
 *
 * @param records Every record.
 * @param record The one to move.
 * @param position Where (clamped).
 */
export function placeInQueue(
  records: readonly TorrentRecord[],
  record: TorrentRecord,
  position: number,
): void {
  const order = records.filter((r) => r !== record).sort((a, b) => a.queuePosition - b.queuePosition);
  order.splice(Math.max(0, Math.min(position, order.length)), 0, record);
  order.forEach((r, i) => (r.queuePosition = i));
}

/**
 * Moves records to the top or bottom of the queue, or one place up or down, keeping their order.
 *
 * @param records Every record.
 * @param moving The ones to move.
 * @param where Where to.
 */
export function moveInQueue(
  records: readonly TorrentRecord[],
  moving: readonly TorrentRecord[],
  where: QueueMove,
): void {
  const sorted = [...moving].sort((a, b) => a.queuePosition - b.queuePosition);
  for (const record of where === "down" || where === "top" ? sorted.reverse() : sorted) {
    const at = record.queuePosition;
    const target = where === "top"
      ? 0
      : where === "bottom"
      ? records.length
      : where === "up"
      ? at - 1
      : at + 1;
    placeInQueue(records, record, target);
  }
}

/**
 * Transmission's status of a record.
 *
 * @param record The record.
 * @returns The numeric status.
 */
export function recordStatus(record: TorrentRecord): TransmissionStatus {
  if (record.phase === "fetching") return TR_STATUS.downloading;
  if (record.phase === "checking") return TR_STATUS.checking;
  if (record.phase === "stopped" || record.torrent === null) return TR_STATUS.stopped;
  switch (record.torrent.state) {
    case "checking":
      return TR_STATUS.checking;
    case "downloading":
      return TR_STATUS.downloading;
    case "seeding":
      return TR_STATUS.seeding;
    default:
      return TR_STATUS.stopped;
  }
}

/**
 * The record's bytes over its life: earlier torrents plus the running one.
 *
 * @param record The record.
 * @returns Downloaded, uploaded and corrupt bytes.
 */
export function lifeBytes(record: TorrentRecord): { downloaded: number; uploaded: number; corrupt: number } {
  const stats = record.torrent?.stats();
  return {
    downloaded: record.downloadedBase + (stats?.downloaded ?? 0),
    uploaded: record.uploadedBase + (stats?.uploaded ?? 0),
    corrupt: record.corruptBase + (stats?.failedBytes ?? 0),
  };
}

/**
 * A magnet link for a torrent whose metadata is known (its trackers and web seeds, no peers).
 *
 * @param meta The metadata.
 * @param name The display name.
 * @returns The link.
 */
export function magnetOf(meta: Metainfo, name: string): string {
  return formatMagnet({
    infoHash: meta.infoHash,
    infoHashHex: meta.infoHashHex,
    name,
    trackers: meta.announceList.flat(),
    webSeeds: [...meta.urlList],
    peers: [],
  });
}

/**
 * A record's snapshot for the RPC methods.
 *
 * @param record The record.
 * @returns The entry.
 */
export function recordEntry(record: TorrentRecord): RpcTorrentEntry {
  const bytes = lifeBytes(record);
  return {
    id: record.id,
    hashString: record.hash,
    torrent: record.torrent,
    metainfo: record.metainfo,
    name: record.name,
    status: recordStatus(record),
    downloadDir: record.downloadDir,
    labels: [...record.labels],
    addedDate: record.addedDate,
    startDate: record.startDate,
    doneDate: record.doneDate,
    activityDate: record.activityDate,
    queuePosition: record.queuePosition,
    error: record.error,
    errorString: record.errorString,
    wanted: [...record.wanted],
    priorities: [...record.priorities],
    seedRatioLimit: record.seedRatioLimit,
    seedRatioMode: record.seedRatioMode,
    seedIdleLimit: record.seedIdleLimit,
    seedIdleMode: record.seedIdleMode,
    downloadLimit: record.downloadLimit,
    downloadLimited: record.downloadLimited,
    uploadLimit: record.uploadLimit,
    uploadLimited: record.uploadLimited,
    honorsSessionLimits: true,
    peerLimit: record.peerLimit,
    downloadedEver: bytes.downloaded,
    uploadedEver: bytes.uploaded,
    corruptEver: bytes.corrupt,
    secondsDownloading: record.secondsDownloading,
    secondsSeeding: record.secondsSeeding,
    magnetLink: "trackers" in record.source
      ? formatMagnet({ ...record.source, peers: [] })
      : magnetOf(record.metainfo!, record.name),
    isFinished: record.isFinished,
    recheckProgress: record.recheckProgress,
    metadataPercentComplete: record.metainfo === null ? 0 : 1,
  };
}

/**
 * shoal's priority of each file from Transmission's wanted flags and priorities (shoal has
 * no "low": low-priority wanted files download at normal priority).
 *
 * @param wanted Wanted per file.
 * @param priorities Transmission priority per file.
 * @returns shoal priorities.
 */
export function shoalPriorities(
  wanted: readonly boolean[],
  priorities: readonly TransmissionPriority[],
): FilePriority[] {
  return wanted.map((w, i) => (!w ? "skip" : priorities[i] === 1 ? "high" : "normal"));
}

/**
 * Applies wanted/priority changes to a record (and its running torrent).
 *
 * @param record The record.
 * @param changes File indices per change (already checked against the file count).
 */
export function applyFileChanges(
  record: TorrentRecord,
  changes: {
    wanted?: readonly number[];
    unwanted?: readonly number[];
    high?: readonly number[];
    normal?: readonly number[];
    low?: readonly number[];
  },
): void {
  const count = record.wanted.length;
  for (const list of Object.values(changes)) {
    const bad = (list as readonly number[]).find((i) => !(i < count));
    if (bad !== undefined) {
      throw new TransmissionRpcError(`torrent ${record.id} has no file ${bad} (it has ${count})`);
    }
  }
  for (const i of changes.wanted ?? []) record.wanted[i] = true;
  for (const i of changes.unwanted ?? []) record.wanted[i] = false;
  for (const i of changes.high ?? []) record.priorities[i] = 1;
  for (const i of changes.normal ?? []) record.priorities[i] = 0;
  for (const i of changes.low ?? []) record.priorities[i] = -1;
  const torrent = record.torrent;
  if (torrent === null) return;
  const target = shoalPriorities(record.wanted, record.priorities);
  const groups = new Map<FilePriority, number[]>();
  target.forEach((p, i) => {
    if (torrent.filePriorities[i] !== p) groups.set(p, [...(groups.get(p) ?? []), i]);
  });
  for (const [priority, files] of groups) torrent.setFilePriority(files, priority);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

/**
 * Deletes a torrent's files from its folder, then the folders they leave empty (up to the
 * torrent's own top folder); nothing else. Links leading outside the folder are refused
 * before anything is deleted.
 *
 * @param meta The torrent.
 * @param downloadDir Its folder.
 * @returns How many files were deleted.
 */
export async function deleteTorrentFiles(meta: Metainfo, downloadDir: string): Promise<number> {
  const root = resolve(downloadDir);
  const files = meta.files.filter((f) => !f.pad).map((f) => f.safePath);
  await checkLinksStayInside(root, files);
  let deleted = 0;
  const folders = new Set<string>();
  for (const path of files) {
    const full = resolve(root, path);
    if (!full.startsWith(root + sep)) continue;
    try {
      await Deno.remove(full);
      deleted++;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    for (let dir = dirname(full); dir.startsWith(root + sep); dir = dirname(dir)) folders.add(dir);
  }
  for (const dir of [...folders].sort((a, b) => b.length - a.length)) {
    try {
      await Deno.remove(dir);
    } catch (error) {
      // A folder holding other files stays.
      if (!(error instanceof Deno.errors.NotFound) && errorCode(error) !== "ENOTEMPTY") throw error;
    }
  }
  return deleted;
}

/**
 * Whether `path` is one of `roots` or inside one (lexically, after resolving).
 *
 * @param path A path.
 * @param roots Allowed folders.
 * @returns True when inside.
 */
export function insideRoots(path: string, roots: readonly string[]): boolean {
  const full = resolve(path);
  return roots.some((root) => {
    const r = resolve(root);
    return full === r || full.startsWith(r.endsWith(sep) ? r : r + sep);
  });
}
