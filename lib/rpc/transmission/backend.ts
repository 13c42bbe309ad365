/**
 * The contract between the Transmission RPC methods and what runs the torrents. The
 * methods (`methods_*.ts`) speak Transmission's protocol; a backend keeps the torrents'
 * numeric ids, dates and settings and does the work. `sessionBackend()` (in
 * `session_backend.ts`) keeps them in memory over one shoal session; a daemon keeps them on
 * disk. A backend throws {@linkcode TransmissionRpcError} (or any Error) for what it cannot
 * do; its message becomes the response's `result`.
 *
 * Units are Transmission's: dates in seconds since the epoch (0: never), speeds in kB/s
 * (1000 bytes per second), sizes in bytes.
 *
 * @module
 */

import type { Torrent } from "../../torrent.ts";
import type { Metainfo } from "../../types.ts";

export type { TransmissionRpcError } from "./rpc_error.ts";

/**
 * Transmission's numeric torrent status: 0 stopped, 1 queued to check, 2 checking,
 * 3 queued to download, 4 downloading, 5 queued to seed, 6 seeding.
 */
export type TransmissionStatus = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** Transmission's statuses by name. */
export const TR_STATUS = {
  stopped: 0,
  checkWait: 1,
  checking: 2,
  downloadWait: 3,
  downloading: 4,
  seedWait: 5,
  seeding: 6,
} as const satisfies Record<string, TransmissionStatus>;

/** Transmission's file priorities: -1 low, 0 normal, 1 high. */
export type TransmissionPriority = -1 | 0 | 1;

/** How a seed goal applies: 0 the session's, 1 this torrent's own, 2 none (seed forever). */
export type SeedGoalMode = 0 | 1 | 2;

/** One torrent as the backend knows it: a snapshot, read by `torrent-get`. */
export interface RpcTorrentEntry {
  /** Its numeric id, unique for the backend's life (never reused). */
  readonly id: number;
  /** The info-hash, 40 lower-case hex characters. */
  readonly hashString: string;
  /** The running shoal torrent; null while a magnet link waits for metadata, or when stopped before it ran. */
  readonly torrent: Torrent | null;
  /** The torrent's metadata, once known (from the file, or fetched for a magnet link). */
  readonly metainfo: Metainfo | null;
  /** Display name (a magnet link's `dn`, or its hash, until the metadata is known). */
  readonly name: string;
  /** Transmission's status. */
  readonly status: TransmissionStatus;
  /** Folder the torrent's files are in. */
  readonly downloadDir: string;
  /** Labels (free text). */
  readonly labels: readonly string[];
  /** When it was added (seconds since the epoch). */
  readonly addedDate: number;
  /** When it was last started (0: never). */
  readonly startDate: number;
  /** When its download completed (0: not yet). */
  readonly doneDate: number;
  /** When a byte last moved either way (0: never). */
  readonly activityDate: number;
  /** Place in the queue, 0 first. */
  readonly queuePosition: number;
  /** 0 none, 1 tracker warning, 2 tracker error, 3 local error (as Transmission). */
  readonly error: 0 | 1 | 2 | 3;
  /** What went wrong, or "". */
  readonly errorString: string;
  /** Whether each file (metainfo order) is wanted; empty until the metadata is known. */
  readonly wanted: readonly boolean[];
  /** Priority of each file (metainfo order); empty until the metadata is known. */
  readonly priorities: readonly TransmissionPriority[];
  /** Seed ratio goal and how it applies. */
  readonly seedRatioLimit: number;
  /** See {@linkcode SeedGoalMode}. */
  readonly seedRatioMode: SeedGoalMode;
  /** Seed idle goal in minutes and how it applies. */
  readonly seedIdleLimit: number;
  /** See {@linkcode SeedGoalMode}. */
  readonly seedIdleMode: SeedGoalMode;
  /** This torrent's download limit, kB/s, and whether it applies. */
  readonly downloadLimit: number;
  /** Whether {@linkcode RpcTorrentEntry.downloadLimit} applies. */
  readonly downloadLimited: boolean;
  /** This torrent's upload limit, kB/s. */
  readonly uploadLimit: number;
  /** Whether {@linkcode RpcTorrentEntry.uploadLimit} applies. */
  readonly uploadLimited: boolean;
  /** Whether the session's limits apply too. */
  readonly honorsSessionLimits: boolean;
  /** Most peers for this torrent. */
  readonly peerLimit: number;
  /** Bytes downloaded over the torrent's life (all runs the backend remembers). */
  readonly downloadedEver: number;
  /** Bytes uploaded over the torrent's life. */
  readonly uploadedEver: number;
  /** Bytes that failed their hash check over the torrent's life. */
  readonly corruptEver: number;
  /** Seconds spent downloading and seeding over the torrent's life. */
  readonly secondsDownloading: number;
  /** See {@linkcode RpcTorrentEntry.secondsDownloading}. */
  readonly secondsSeeding: number;
  /** A magnet link for the torrent. */
  readonly magnetLink: string;
  /** True once it stopped seeding because a seed goal was reached (Transmission's "Finished"). */
  readonly isFinished: boolean;
  /** Progress of a data check, 0 to 1 (0 when not checking). */
  readonly recheckProgress: number;
  /** Progress of the metadata fetch of a magnet link, 0 to 1 (1 once known). */
  readonly metadataPercentComplete: number;
}

/** Which files to download and at what priority (file indices, metainfo order). */
export interface FileChoices {
  /** Files to download. */
  readonly filesWanted?: readonly number[];
  /** Files to skip. */
  readonly filesUnwanted?: readonly number[];
  /** Files of high priority. */
  readonly priorityHigh?: readonly number[];
  /** Files of normal priority. */
  readonly priorityNormal?: readonly number[];
  /** Files of low priority (shoal downloads them at normal priority). */
  readonly priorityLow?: readonly number[];
}

/** What `torrent-add` asks for. Exactly one of `metainfo`, `filename` is set. */
export interface AddTorrentRequest extends FileChoices {
  /** The .torrent file's bytes. */
  readonly metainfo?: Uint8Array;
  /** A magnet link, a path on the server or an http(s) URL of a .torrent file. */
  readonly filename?: string;
  /** Add it stopped. @default the session's `start-added-torrents` */
  readonly paused?: boolean;
  /** Folder for its files. @default the session's download dir */
  readonly downloadDir?: string;
  /** Labels. */
  readonly labels?: readonly string[];
  /** Most peers. */
  readonly peerLimit?: number;
}

/** What `torrent-add` did. */
export interface AddTorrentResult {
  /** True when the torrent was in the backend already (nothing was added). */
  readonly duplicate: boolean;
  /** The torrent (the one already there for a duplicate). */
  readonly entry: RpcTorrentEntry;
}

/** What `torrent-set` changes; absent fields are kept. */
export interface TorrentChanges extends FileChoices {
  /** Download limit, kB/s. */
  readonly downloadLimit?: number;
  /** Whether it applies. */
  readonly downloadLimited?: boolean;
  /** Upload limit, kB/s. */
  readonly uploadLimit?: number;
  /** Whether it applies. */
  readonly uploadLimited?: boolean;
  /** Whether the session's limits apply too. */
  readonly honorsSessionLimits?: boolean;
  /** Replaces the labels. */
  readonly labels?: readonly string[];
  /** Seed ratio goal. */
  readonly seedRatioLimit?: number;
  /** See {@linkcode SeedGoalMode}. */
  readonly seedRatioMode?: SeedGoalMode;
  /** Seed idle goal, minutes. */
  readonly seedIdleLimit?: number;
  /** See {@linkcode SeedGoalMode}. */
  readonly seedIdleMode?: SeedGoalMode;
  /** Most peers. */
  readonly peerLimit?: number;
  /** Bandwidth priority (-1, 0, 1). */
  readonly bandwidthPriority?: TransmissionPriority;
  /** Place in the queue. */
  readonly queuePosition?: number;
}

/** Transmission's connection encryption settings. */
export type TransmissionEncryption = "required" | "preferred" | "tolerated";

/** The session's settings, as `session-get` shows them and `session-set` changes them. */
export interface RpcSessionSettings {
  /** Default folder for new torrents. */
  readonly downloadDir: string;
  /** Where the backend keeps its state ("" when it keeps none). */
  readonly configDir: string;
  /** The peer listening port. */
  readonly peerPort: number;
  /** Global download limit, kB/s, and whether it applies. */
  readonly speedLimitDown: number;
  /** See {@linkcode RpcSessionSettings.speedLimitDown}. */
  readonly speedLimitDownEnabled: boolean;
  /** Global upload limit, kB/s, and whether it applies. */
  readonly speedLimitUp: number;
  /** See {@linkcode RpcSessionSettings.speedLimitUp}. */
  readonly speedLimitUpEnabled: boolean;
  /** Alternative ("turtle") limits, kB/s, and whether they apply instead. */
  readonly altSpeedDown: number;
  /** See {@linkcode RpcSessionSettings.altSpeedDown}. */
  readonly altSpeedUp: number;
  /** See {@linkcode RpcSessionSettings.altSpeedDown}. */
  readonly altSpeedEnabled: boolean;
  /** Connection encryption. */
  readonly encryption: TransmissionEncryption;
  /** DHT, PEX, local discovery and uTP. */
  readonly dhtEnabled: boolean;
  /** See {@linkcode RpcSessionSettings.dhtEnabled}. */
  readonly pexEnabled: boolean;
  /** See {@linkcode RpcSessionSettings.dhtEnabled}. */
  readonly lpdEnabled: boolean;
  /** See {@linkcode RpcSessionSettings.dhtEnabled}. */
  readonly utpEnabled: boolean;
  /** Most connections in all and per torrent. */
  readonly peerLimitGlobal: number;
  /** See {@linkcode RpcSessionSettings.peerLimitGlobal}. */
  readonly peerLimitPerTorrent: number;
  /** Default seed ratio goal and whether it applies. */
  readonly seedRatioLimit: number;
  /** See {@linkcode RpcSessionSettings.seedRatioLimit}. */
  readonly seedRatioLimited: boolean;
  /** Default seed idle goal in minutes and whether it applies. */
  readonly idleSeedingLimit: number;
  /** See {@linkcode RpcSessionSettings.idleSeedingLimit}. */
  readonly idleSeedingLimitEnabled: boolean;
  /** Start torrents when added (unless `paused` says otherwise). */
  readonly startAddedTorrents: boolean;
  /** Download queue: whether it applies and how many download at once. */
  readonly downloadQueueEnabled: boolean;
  /** See {@linkcode RpcSessionSettings.downloadQueueEnabled}. */
  readonly downloadQueueSize: number;
  /** Seed queue: whether it applies and how many seed at once. */
  readonly seedQueueEnabled: boolean;
  /** See {@linkcode RpcSessionSettings.seedQueueEnabled}. */
  readonly seedQueueSize: number;
}

/** Byte and time counters of `session-stats`. */
export interface RpcStatsCounters {
  /** Bytes uploaded. */
  readonly uploadedBytes: number;
  /** Bytes downloaded. */
  readonly downloadedBytes: number;
  /** Torrents added. */
  readonly filesAdded: number;
  /** Sessions started. */
  readonly sessionCount: number;
  /** Seconds the session ran. */
  readonly secondsActive: number;
}

/** What `session-stats` reports (the torrent counts and speeds come from the entries). */
export interface RpcSessionStats {
  /** Since this session started. */
  readonly current: RpcStatsCounters;
  /** Over every session the backend remembers (the current one for an in-memory backend). */
  readonly cumulative: RpcStatsCounters;
}

/** Where `queue-move-*` moves torrents. */
export type QueueMove = "top" | "up" | "down" | "bottom";

/**
 * What the Transmission RPC methods need of whatever runs the torrents. Each method takes
 * torrent ids (from {@linkcode TransmissionBackend.torrents}) and throws a
 * `TransmissionRpcError` for an unknown id or anything it cannot do; it never pretends.
 *
 * @example A backend is what `transmissionRpc()` serves
 * ```ts ignore
 * import { sessionBackend, transmissionRpc } from "@shoal/shoal/rpc";
 * const backend: TransmissionBackend = sessionBackend(session, { downloadDir: "./downloads" });
 * ```
 */
export interface TransmissionBackend {
  /** Snapshots of every torrent, in id order. */
  torrents(): readonly RpcTorrentEntry[];
  /**
   * Ids removed within the last `seconds` (for `ids: "recently-active"`).
   *
   * @param seconds How far back.
   */
  removedSince(seconds: number): readonly number[];
  /**
   * Adds a torrent. Resolves once the torrent has an id (a magnet link's metadata and the data
   * check go on in the background).
   *
   * @param request What to add and how.
   */
  add(request: AddTorrentRequest): Promise<AddTorrentResult>;
  /**
   * Removes a torrent; with `deleteData`, deletes its files (only those) too.
   *
   * @param id The torrent.
   * @param options Whether to delete its data.
   */
  remove(id: number, options: { deleteData: boolean }): Promise<void>;
  /**
   * Starts a stopped torrent (`now`: skipping the queue).
   *
   * @param id The torrent.
   * @param options Skip the queue.
   */
  start(id: number, options: { now: boolean }): Promise<void>;
  /**
   * Stops a torrent: no peers, progress kept.
   *
   * @param id The torrent.
   */
  stop(id: number): Promise<void>;
  /**
   * Checks the torrent's data again, every piece.
   *
   * @param id The torrent.
   */
  verify(id: number): Promise<void>;
  /**
   * Asks the trackers for peers now.
   *
   * @param id The torrent.
   */
  reannounce(id: number): Promise<void>;
  /**
   * Changes limits, file selection, labels, seed goals.
   *
   * @param id The torrent.
   * @param changes What to change.
   */
  set(id: number, changes: TorrentChanges): Promise<void>;
  /**
   * Points the torrent at a new folder; `move` moves its files there first.
   *
   * @param id The torrent.
   * @param location The new folder.
   * @param options Whether to move the files.
   */
  setLocation(id: number, location: string, options: { move: boolean }): Promise<void>;
  /**
   * Renames a file or folder of the torrent.
   *
   * @param id The torrent.
   * @param path The path to rename, as `files[].name` gives it.
   * @param name The new last component.
   * @returns The path and name as renamed.
   */
  renamePath(id: number, path: string, name: string): Promise<{ path: string; name: string }>;
  /**
   * Moves torrents in the queue.
   *
   * @param ids The torrents.
   * @param where Where to.
   */
  moveInQueue(ids: readonly number[], where: QueueMove): void;
  /** The session's settings now. */
  settings(): RpcSessionSettings;
  /**
   * Changes settings. Throws, changing nothing, when one cannot be changed.
   *
   * @param changes What to change.
   */
  setSettings(changes: Partial<RpcSessionSettings>): Promise<void>;
  /** Session counters. */
  stats(): RpcSessionStats;
  /**
   * Free bytes on the file system of `path`; refuses paths outside the backend's folders.
   *
   * @param path A folder.
   */
  freeSpace(path: string): Promise<number>;
  /** Whether the peer port is reachable from outside; throws when the backend cannot tell. */
  portTest(): Promise<boolean>;
}
