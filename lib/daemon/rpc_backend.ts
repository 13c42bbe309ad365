/**
 * `managerBackend()`: the Transmission RPC backend of `shoal daemon`, over a
 * {@linkcode TorrentManager}. Ids are the manager's stable ids; adding, removing, stopping
 * (pause), starting, verifying and `torrent-set` (files, priorities, limits, labels, seed
 * goals) go to the manager, so they are saved and survive a restart. The session settings
 * are `sessionBackend()`'s: speed limits may be changed (until the daemon restarts), the
 * rest is fixed by how the daemon was started. What the manager cannot do (queue, location,
 * rename, peer limits) is refused with a clear "not supported" error.
 *
 * @module
 */

import type { BaseSession } from "../session.ts";
import type {
  AddTorrentRequest,
  AddTorrentResult,
  RpcSessionSettings,
  RpcSessionStats,
  RpcTorrentEntry,
  TorrentChanges,
  TransmissionBackend,
  TransmissionEncryption,
  TransmissionPriority,
  TransmissionStatus,
} from "../rpc/transmission/backend.ts";
import { TR_STATUS } from "../rpc/transmission/backend.ts";
import { TransmissionRpcError } from "../rpc/transmission/rpc_error.ts";
import { changedSettings, initialSettings, KB, sessionLimits } from "../rpc/transmission/session_settings.ts";
import { magnetOf } from "../rpc/transmission/session_entry.ts";
import {
  checkInsideRoots,
  freeSpaceInside,
  portTestUnsupported,
  processStats,
} from "../rpc/transmission/backend_shared.ts";
import type { TorrentManager } from "./manager.ts";
import type { FileRank } from "./record.ts";
import type { DaemonTorrentState, TorrentSnapshot } from "./snapshot.ts";
import { type AddSource, sourceFromFilename } from "./torrent_source.ts";

/** Options of {@linkcode managerBackend}: how the daemon was started. */
export interface ManagerBackendOptions {
  /** The session the manager runs its torrents in (its port, its global limits). */
  session: BaseSession;
  /** The manager's default download folder (the default for new torrents, and a root). */
  downloadDir: string;
  /** The state folder, reported as `config-dir`. */
  stateDir: string;
  /** More folders clients may use (download folders, `.torrent` paths, free space). @default {[]} */
  roots?: readonly string[];
  /** The global limits the daemon started with, bytes per second (0: none). @default {none} */
  limits?: { upload: number; download: number };
  /** Encryption, as Transmission names it. @default {"preferred"} */
  encryption?: TransmissionEncryption;
  /** DHT, PEX and local discovery. @default {dht false, pex true, lpd true} */
  dht?: boolean;
  /** See {@linkcode ManagerBackendOptions.dht}. */
  pex?: boolean;
  /** See {@linkcode ManagerBackendOptions.dht}. */
  lpd?: boolean;
  /** Clock, ms. @default {Date.now} */
  now?: () => number;
}

/**
 * Makes the Transmission RPC backend of a torrent manager.
 *
 * @example
 * ```ts ignore
 * import { TransmissionRpcServer } from "@shoal/shoal/rpc";
 * const backend = managerBackend(manager, { session, downloadDir, stateDir });
 * await using rpc = new TransmissionRpcServer(backend, { port: 9091 });
 * rpc.listen();
 * ```
 *
 * @param manager The manager.
 * @param options The session and how the daemon was started.
 * @returns The backend.
 */
export function managerBackend(manager: TorrentManager, options: ManagerBackendOptions): TransmissionBackend {
  return new ManagerBackend(manager, options);
}

const STATUS: Readonly<Record<DaemonTorrentState, TransmissionStatus>> = {
  magnet: TR_STATUS.downloadWait,
  checking: TR_STATUS.checking,
  downloading: TR_STATUS.downloading,
  seeding: TR_STATUS.seeding,
  paused: TR_STATUS.stopped,
  finished: TR_STATUS.stopped,
  error: TR_STATUS.stopped,
};

const PRIORITY: Readonly<Record<FileRank, TransmissionPriority>> = { low: -1, normal: 0, high: 1 };

const seconds = (ms: number | null): number => (ms === null ? 0 : Math.floor(ms / 1000));

const anyGiven = (...values: unknown[]): boolean => values.some((v) => v !== undefined);

function unsupported(what: string): never {
  throw new TransmissionRpcError(`${what} is not supported by shoal daemon yet`);
}

class ManagerBackend implements TransmissionBackend {
  readonly #manager: TorrentManager;
  readonly #options: ManagerBackendOptions;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #removed: { id: number; at: number }[] = [];
  #settings: RpcSessionSettings;
  #filesAdded = 0;

  constructor(manager: TorrentManager, options: ManagerBackendOptions) {
    this.#manager = manager;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    const first = initialSettings({ ...options, configDir: options.stateDir }, options.session.port);
    const { upload = 0, download = 0 } = options.limits ?? {};
    this.#settings = {
      ...first,
      ...(download > 0 ? { speedLimitDown: download / KB, speedLimitDownEnabled: true } : {}),
      ...(upload > 0 ? { speedLimitUp: upload / KB, speedLimitUpEnabled: true } : {}),
    };
    manager.addEventListener("removed", (e) => {
      this.#removed.push({ id: e.detail.id, at: this.#now() });
      if (this.#removed.length > 1000) this.#removed.splice(0, this.#removed.length - 1000);
    });
  }

  get #roots(): string[] {
    return [this.#options.downloadDir, ...(this.#options.roots ?? [])];
  }

  #checkRoot(path: string, what: string): string {
    return checkInsideRoots(path, this.#roots, what);
  }

  #snapshot(id: number): TorrentSnapshot {
    const snapshot = this.#manager.get(id);
    if (snapshot === undefined) throw new TransmissionRpcError(`no torrent with id ${id}`);
    return snapshot;
  }

  #entry(snapshot: TorrentSnapshot, queuePosition: number): RpcTorrentEntry {
    const { torrent = null, metainfo = null } = this.#manager.live(snapshot.id) ?? {};
    const byIndex = new Map(snapshot.files.map((f) => [f.index, f]));
    const files = metainfo?.files ?? [];
    const { limits, seedGoals } = snapshot;
    return {
      id: snapshot.id,
      hashString: snapshot.hash,
      torrent,
      metainfo,
      name: snapshot.name,
      status: STATUS[snapshot.state],
      downloadDir: snapshot.downloadDir,
      labels: snapshot.labels,
      addedDate: seconds(snapshot.addedAt),
      startDate: 0,
      doneDate: seconds(snapshot.doneAt),
      activityDate: seconds(snapshot.activityAt),
      queuePosition,
      error: snapshot.error === null ? 0 : 3,
      errorString: snapshot.error ?? "",
      wanted: files.map((_, i) => byIndex.get(i)?.wanted ?? true),
      priorities: files.map((_, i) => PRIORITY[byIndex.get(i)?.priority ?? "normal"]),
      seedRatioLimit: seedGoals.ratio ?? this.#settings.seedRatioLimit,
      seedRatioMode: seedGoals.ratio === null ? 2 : 1,
      seedIdleLimit: seedGoals.idleMinutes ?? this.#settings.idleSeedingLimit,
      seedIdleMode: seedGoals.idleMinutes === null ? 2 : 1,
      downloadLimit: limits.download > 0 ? limits.download / KB : 100,
      downloadLimited: limits.download > 0,
      uploadLimit: limits.upload > 0 ? limits.upload / KB : 100,
      uploadLimited: limits.upload > 0,
      honorsSessionLimits: true,
      peerLimit: this.#settings.peerLimitPerTorrent,
      downloadedEver: snapshot.downloadedEver,
      uploadedEver: snapshot.uploadedEver,
      corruptEver: snapshot.stats?.failedBytes ?? 0,
      secondsDownloading: 0,
      secondsSeeding: 0,
      magnetLink: snapshot.magnet ?? (metainfo === null ? "" : magnetOf(metainfo, snapshot.name)),
      isFinished: snapshot.state === "finished",
      recheckProgress: 0,
      metadataPercentComplete: metainfo === null ? 0 : 1,
    };
  }

  torrents(): readonly RpcTorrentEntry[] {
    return this.#manager.snapshot().map((s, i) => this.#entry(s, i));
  }

  removedSince(secs: number): readonly number[] {
    const since = this.#now() - secs * 1000;
    return this.#removed.filter((r) => r.at >= since).map((r) => r.id);
  }

  async add(request: AddTorrentRequest): Promise<AddTorrentResult> {
    if (request.peerLimit !== undefined && request.peerLimit !== this.#settings.peerLimitPerTorrent) {
      unsupported('torrent-add: "peer-limit"');
    }
    let source: AddSource;
    if (request.metainfo !== undefined) source = { torrent: request.metainfo };
    else {
      source = sourceFromFilename(request.filename!);
      if ("path" in source) this.#checkRoot(source.path, "torrent file");
    }
    const ranked = [...(request.priorityHigh ?? []), ...(request.priorityLow ?? [])].length > 0;
    if (ranked && "magnet" in source) {
      unsupported("torrent-add: file priorities for a magnet link (set them once its metadata is known)");
    }
    const downloadDir = this.#checkRoot(request.downloadDir ?? this.#settings.downloadDir, "download folder");
    const added = await this.#manager.add(source, {
      downloadDir,
      paused: request.paused ?? !this.#settings.startAddedTorrents,
      labels: request.labels ?? [],
      ...(request.filesUnwanted ? { unwanted: request.filesUnwanted } : {}),
    });
    if (!added.duplicate) {
      this.#filesAdded++;
      for (
        const [files, priority] of [[request.priorityHigh, "high"], [request.priorityLow, "low"]] as const
      ) {
        if (files && files.length > 0) await this.#manager.setFiles(added.id, { files, priority });
      }
    }
    const index = this.#manager.snapshot().findIndex((s) => s.id === added.id);
    return { duplicate: added.duplicate, entry: this.#entry(this.#snapshot(added.id), index) };
  }

  async remove(id: number, options: { deleteData: boolean }): Promise<void> {
    this.#snapshot(id);
    await this.#manager.remove(id, options);
  }

  async start(id: number): Promise<void> {
    this.#snapshot(id);
    await this.#manager.resume(id);
  }

  async stop(id: number): Promise<void> {
    this.#snapshot(id);
    await this.#manager.pause(id);
  }

  async verify(id: number): Promise<void> {
    this.#snapshot(id);
    await this.#manager.recheck(id);
  }

  reannounce(id: number): Promise<void> {
    this.#snapshot(id);
    this.#manager.reannounce(id);
    return Promise.resolve();
  }

  async set(id: number, changes: TorrentChanges): Promise<void> {
    const now = this.#snapshot(id);
    if (changes.honorsSessionLimits === false) {
      throw new TransmissionRpcError(
        "torrent-set: shoal always applies the session's limits (honorsSessionLimits)",
      );
    }
    if (changes.peerLimit !== undefined && changes.peerLimit !== this.#settings.peerLimitPerTorrent) {
      unsupported("torrent-set: changing peer-limit of a torrent");
    }
    if (changes.bandwidthPriority !== undefined && changes.bandwidthPriority !== 0) {
      unsupported("torrent-set: bandwidthPriority");
    }
    if (changes.queuePosition !== undefined) unsupported("torrent-set: queuePosition");
    const fileChanges = [
      { files: changes.filesWanted, wanted: true },
      { files: changes.filesUnwanted, wanted: false },
      { files: changes.priorityHigh, priority: "high" },
      { files: changes.priorityNormal, priority: "normal" },
      { files: changes.priorityLow, priority: "low" },
    ] as const;
    for (const { files, ...what } of fileChanges) {
      if (files && files.length > 0) await this.#manager.setFiles(id, { files, ...what });
    }
    const limit = (limited: boolean | undefined, kb: number | undefined, bytes: number): number => {
      const on = limited ?? bytes > 0;
      return on ? Math.round((kb ?? (bytes > 0 ? bytes / KB : 100)) * KB) : 0;
    };
    const limitsChanged = anyGiven(
      changes.downloadLimit,
      changes.downloadLimited,
      changes.uploadLimit,
      changes.uploadLimited,
    );
    if (limitsChanged) {
      await this.#manager.setLimits(id, {
        download: limit(changes.downloadLimited, changes.downloadLimit, now.limits.download),
        upload: limit(changes.uploadLimited, changes.uploadLimit, now.limits.upload),
      });
    }
    if (changes.labels) await this.#manager.setLabels(id, changes.labels);
    const goal = (mode: number | undefined, value: number | undefined, current: number | null) => {
      if (mode === 0 || mode === 2) return null; // the daemon has no session-wide goal: none
      if (mode === 1) return value ?? current ?? 0;
      return value !== undefined && current !== null ? value : current;
    };
    const goalsChanged = anyGiven(
      changes.seedRatioLimit,
      changes.seedRatioMode,
      changes.seedIdleLimit,
      changes.seedIdleMode,
    );
    if (goalsChanged) {
      await this.#manager.setSeedGoals(id, {
        ratio: goal(changes.seedRatioMode, changes.seedRatioLimit, now.seedGoals.ratio),
        idleMinutes: goal(changes.seedIdleMode, changes.seedIdleLimit, now.seedGoals.idleMinutes),
      });
    }
  }

  setLocation(): Promise<void> {
    return Promise.reject(
      new TransmissionRpcError("torrent-set-location is not supported by shoal daemon yet"),
    );
  }

  renamePath(): Promise<{ path: string; name: string }> {
    return Promise.reject(new TransmissionRpcError("torrent-rename-path is not supported yet"));
  }

  moveInQueue(): void {
    unsupported("queue-move (shoal daemon has no queue)");
  }

  settings(): RpcSessionSettings {
    return { ...this.#settings, peerPort: this.#options.session.port };
  }

  setSettings(changes: Partial<RpcSessionSettings>): Promise<void> {
    if (changes.downloadDir !== undefined && changes.downloadDir !== this.#settings.downloadDir) {
      return Promise.reject(
        new TransmissionRpcError(
          'session-set: changing "download-dir" of shoal daemon is not supported (use --download-dir)',
        ),
      );
    }
    for (const key of ["seedRatioLimited", "idleSeedingLimitEnabled"] as const) {
      if (changes[key] === true && changes[key] !== this.#settings[key]) {
        return Promise.reject(
          new TransmissionRpcError(`session-set: "${key}" is not supported by shoal daemon yet`),
        );
      }
    }
    try {
      this.#settings = changedSettings(this.settings(), changes);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#options.session.setLimits(sessionLimits(this.#settings));
    return Promise.resolve();
  }

  stats(): RpcSessionStats {
    return processStats(
      this.#manager.snapshot().map((s) => ({ downloaded: s.downloadedEver, uploaded: s.uploadedEver })),
      this.#filesAdded,
      this.#now() - this.#startedAt,
    );
  }

  freeSpace(path: string): Promise<number> {
    return freeSpaceInside(path, this.#roots);
  }

  portTest(): Promise<boolean> {
    return portTestUnsupported();
  }
}
