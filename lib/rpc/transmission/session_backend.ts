/**
 * `sessionBackend()`: a {@linkcode TransmissionBackend} over one running shoal session,
 * keeping ids, dates and settings in memory (nothing survives the process; a daemon keeps
 * them on disk). A real backend, for a script that wants Transmission RPC control of an
 * in-process session.
 *
 * Stop is `torrent.pause()`, start is `resume()` (or a new add after a failure); verify and
 * a location change remove the torrent from the session and add it again (verify deletes
 * the resume data first, so every piece is read). Paths given by clients (download folders,
 * `.torrent` paths, `free-space`) must be inside the configured roots.
 *
 * @module
 */

import type { BaseSession } from "../../session.ts";
import type { Metainfo } from "../../types.ts";
import { readTorrentSource } from "./torrent_source.ts";
import { changedSettings, initialSettings, KB, sessionLimits } from "./session_settings.ts";
import { knownMetadata, watchTorrent } from "./record_watch.ts";
import { checkInsideRoots, freeSpaceInside, portTestUnsupported, processStats } from "./backend_shared.ts";
import type {
  AddTorrentRequest,
  AddTorrentResult,
  QueueMove,
  RpcSessionSettings,
  RpcSessionStats,
  RpcTorrentEntry,
  TorrentChanges,
  TransmissionBackend,
  TransmissionEncryption,
} from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";
import {
  applyFileChanges,
  deleteTorrentFiles,
  lifeBytes,
  makeRecord,
  moveInQueue,
  placeInQueue,
  recordEntry,
  shoalPriorities,
  type TorrentRecord,
} from "./session_entry.ts";

/** Options of {@linkcode sessionBackend}: how the session was made (it does not tell) and where clients may point. */
export interface SessionBackendOptions {
  /** The session's download folder (the default for new torrents, and a root). */
  downloadDir: string;
  /** More folders clients may use (download folders, `.torrent` paths, free space). @default {[]} */
  roots?: readonly string[];
  /** What `session-get` reports as `config-dir`. @default {""} */
  configDir?: string;
  /** The session's encryption, as Transmission names it. @default {"preferred"} */
  encryption?: TransmissionEncryption;
  /** Whether the session runs the DHT, PEX and local discovery. @default {dht false, pex true, lpd true} */
  dht?: boolean;
  /** See {@linkcode SessionBackendOptions.dht}. */
  pex?: boolean;
  /** See {@linkcode SessionBackendOptions.dht}. */
  lpd?: boolean;
  /** The session's connection limits. @default {200 and 50} */
  peerLimitGlobal?: number;
  /** See {@linkcode SessionBackendOptions.peerLimitGlobal}. */
  peerLimitPerTorrent?: number;
  /** Fetches `.torrent` URLs. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Clock, ms. @default {Date.now} */
  now?: () => number;
}

/**
 * Makes a Transmission RPC backend over a running session.
 *
 * @example
 * ```ts ignore
 * import { Session } from "@shoal/shoal";
 * import { sessionBackend, TransmissionRpcServer } from "@shoal/shoal/rpc";
 * await using session = new Session({ downloadDir: "/srv/downloads" });
 * await using rpc = new TransmissionRpcServer(sessionBackend(session, { downloadDir: "/srv/downloads" }));
 * console.log(rpc.listen().port);
 * ```
 *
 * @param session The session (its torrents added directly are adopted, with ids too).
 * @param options The download folder and how the session was made.
 * @returns The backend.
 */
export function sessionBackend(session: BaseSession, options: SessionBackendOptions): TransmissionBackend {
  return new SessionBackend(session, options);
}

class SessionBackend implements TransmissionBackend {
  readonly #session: BaseSession;
  readonly #options: SessionBackendOptions;
  readonly #now: () => number;
  readonly #records = new Map<number, TorrentRecord>();
  readonly #removed: { id: number; at: number }[] = [];
  #nextId = 1;
  #settings: RpcSessionSettings;
  readonly #startedAt: number;
  #filesAdded = 0;
  #removedBytes = { downloaded: 0, uploaded: 0 };

  constructor(session: BaseSession, options: SessionBackendOptions) {
    this.#session = session;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#settings = initialSettings(options, session.port);
  }

  get #roots(): string[] {
    return [this.#options.downloadDir, ...(this.#options.roots ?? [])];
  }

  #seconds(): number {
    return Math.floor(this.#now() / 1000);
  }

  #record(id: number): TorrentRecord {
    const record = this.#records.get(id);
    if (record === undefined) throw new TransmissionRpcError(`no torrent with id ${id}`);
    return record;
  }

  #checkRoot(path: string, what: string): string {
    return checkInsideRoots(path, this.#roots, what);
  }

  torrents(): readonly RpcTorrentEntry[] {
    this.#adopt();
    return [...this.#records.values()].map(recordEntry);
  }

  /** Torrents added to the session directly get records too. */
  #adopt(): void {
    const known = new Set([...this.#records.values()].map((r) => r.hash));
    for (const torrent of this.#session.torrents) {
      if (known.has(torrent.infoHash)) continue;
      const record = this.#newRecord(torrent.metainfo, torrent.metainfo, this.#settings.downloadDir);
      record.torrent = torrent;
      record.phase = "running";
      record.wanted = torrent.filePriorities.map((p) => p !== "skip");
      record.priorities = torrent.filePriorities.map((p) => (p === "high" ? 1 : 0));
      watchTorrent(record, torrent, { now: () => this.#seconds(), settings: () => this.#settings });
    }
  }

  removedSince(seconds: number): readonly number[] {
    const since = this.#now() - seconds * 1000;
    return this.#removed.filter((r) => r.at >= since).map((r) => r.id);
  }

  #newRecord(source: TorrentRecord["source"], metainfo: Metainfo | null, downloadDir: string): TorrentRecord {
    const record = makeRecord(this.#nextId++, source, metainfo, {
      downloadDir,
      addedDate: this.#seconds(),
      queuePosition: this.#records.size,
      settings: this.#settings,
    });
    this.#records.set(record.id, record);
    this.#filesAdded++;
    return record;
  }

  async add(request: AddTorrentRequest): Promise<AddTorrentResult> {
    const source = await readTorrentSource(request, {
      checkPath: (path) => this.#checkRoot(path, "torrent file"),
      ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
    });
    const existing = [...this.#records.values()].find((r) => r.hash === source.infoHashHex);
    if (existing !== undefined) return { duplicate: true, entry: recordEntry(existing) };
    const downloadDir = this.#checkRoot(request.downloadDir ?? this.#settings.downloadDir, "download folder");
    const metainfo = "pieceHashes" in source ? source : null;
    const pending = {
      ...(request.filesWanted ? { wanted: request.filesWanted } : {}),
      ...(request.filesUnwanted ? { unwanted: request.filesUnwanted } : {}),
      ...(request.priorityHigh ? { high: request.priorityHigh } : {}),
      ...(request.priorityLow ? { low: request.priorityLow } : {}),
    };
    const record = this.#newRecord(source, metainfo, downloadDir);
    try {
      if (metainfo !== null) applyFileChanges(record, pending);
      else record.pendingFiles = pending;
    } catch (error) {
      this.#records.delete(record.id);
      throw error;
    }
    record.labels = [...(request.labels ?? [])];
    if (request.peerLimit !== undefined && request.peerLimit !== record.peerLimit) {
      this.#records.delete(record.id);
      throw new TransmissionRpcError(
        `torrent-add: "peer-limit" other than ${record.peerLimit} is not supported yet`,
      );
    }
    record.wantRunning = !(request.paused ?? !this.#settings.startAddedTorrents);
    this.#launch(record);
    return { duplicate: false, entry: recordEntry(record) };
  }

  /** Adds the record's torrent to the session in the background (metadata, check, start). */
  #launch(record: TorrentRecord): void {
    const abort = new AbortController();
    record.abort = abort;
    record.phase = record.metainfo === null ? "fetching" : "checking";
    record.error = 0;
    record.errorString = "";
    const limited = (on: boolean, kb: number) => (on ? kb * KB : 0);
    const run = this.#session.add(record.metainfo ?? record.source, {
      downloadDir: record.downloadDir,
      signal: abort.signal,
      ...(record.metainfo !== null
        ? { filePriorities: shoalPriorities(record.wanted, record.priorities) }
        : {}),
      uploadLimit: limited(record.uploadLimited, record.uploadLimit),
      downloadLimit: limited(record.downloadLimited, record.downloadLimit),
      onTorrent: (torrent) => {
        record.phase = "checking";
        record.metainfo ??= torrent.metainfo;
        torrent.addEventListener("checking", (e) => {
          record.recheckProgress = e.detail.piecesToCheck === 0
            ? 1
            : e.detail.checkedPieces / e.detail.piecesToCheck;
        });
      },
    }).then(async (torrent) => {
      record.abort = null;
      record.torrent = torrent;
      knownMetadata(record, torrent.metainfo);
      // What torrent-set changed while the data was checked: the torrent started with the old values.
      applyFileChanges(record, {});
      torrent.setLimits({
        download: limited(record.downloadLimited, record.downloadLimit),
        upload: limited(record.uploadLimited, record.uploadLimit),
      });
      record.phase = "running";
      record.recheckProgress = 0;
      record.startDate = this.#seconds();
      watchTorrent(record, torrent, { now: () => this.#seconds(), settings: () => this.#settings });
      if (!record.wantRunning && (torrent.state === "downloading" || torrent.state === "seeding")) {
        await torrent.pause().catch((error: Error) => {
          record.error = 3;
          record.errorString = `cannot stop after adding: ${error.message}`;
        });
      }
    }, (error: Error) => {
      record.abort = null;
      record.phase = "stopped";
      record.recheckProgress = 0;
      if (abort.signal.aborted) return; // stopped, removed or moved on purpose
      record.error = 3;
      record.errorString = error.message;
    });
    const tracked: Promise<void> = run.finally(() => {
      if (record.run === tracked) record.run = null;
    });
    record.run = tracked;
  }

  /** Takes the record's torrent out of the session (keeping its byte counts) and waits for any add. */
  async #detach(record: TorrentRecord): Promise<void> {
    record.abort?.abort(new TransmissionRpcError("Stopped by an RPC request"));
    await record.run;
    const torrent = record.torrent;
    if (torrent === null) return;
    const stats = torrent.stats();
    record.downloadedBase += stats.downloaded;
    record.uploadedBase += stats.uploaded;
    record.corruptBase += stats.failedBytes;
    record.torrent = null;
    record.phase = "stopped";
    await this.#session.remove(torrent);
  }

  async remove(id: number, options: { deleteData: boolean }): Promise<void> {
    const record = this.#record(id);
    this.#records.delete(id);
    const resumePath = record.torrent?.resumePath;
    await this.#detach(record);
    this.#removedBytes.downloaded += record.downloadedBase;
    this.#removedBytes.uploaded += record.uploadedBase;
    this.#removed.push({ id, at: this.#now() });
    if (this.#removed.length > 1000) this.#removed.splice(0, this.#removed.length - 1000);
    if (options.deleteData && record.metainfo !== null) {
      await deleteTorrentFiles(record.metainfo, record.downloadDir);
      if (resumePath !== undefined) await Deno.remove(resumePath).catch((e: Error) => ignoreMissing(e));
    }
  }

  async start(id: number): Promise<void> {
    const record = this.#record(id);
    record.wantRunning = true;
    record.isFinished = false;
    const torrent = record.torrent;
    if (record.run !== null) return; // the add in progress starts it
    if (torrent?.state === "paused") torrent.resume();
    else if (torrent === null || torrent.state === "stopped" || torrent.state === "error") {
      await this.#detach(record);
      this.#launch(record);
    }
  }

  async stop(id: number): Promise<void> {
    const record = this.#record(id);
    record.wantRunning = false;
    if (record.run !== null) {
      await this.#detach(record);
      return;
    }
    const torrent = record.torrent;
    if (torrent?.state === "downloading" || torrent?.state === "seeding") await torrent.pause();
  }

  async verify(id: number): Promise<void> {
    const record = this.#record(id);
    if (record.metainfo === null) {
      throw new TransmissionRpcError(`torrent ${id} has no metadata yet to verify`);
    }
    const resumePath = record.torrent?.resumePath;
    await this.#detach(record);
    if (resumePath !== undefined) await Deno.remove(resumePath).catch((e: Error) => ignoreMissing(e));
    this.#launch(record);
  }

  reannounce(id: number): Promise<void> {
    this.#record(id).torrent?.reannounce();
    return Promise.resolve();
  }

  async set(id: number, changes: TorrentChanges): Promise<void> {
    const record = this.#record(id);
    if (changes.honorsSessionLimits === false) {
      throw new TransmissionRpcError(
        "torrent-set: shoal always applies the session's limits (honorsSessionLimits)",
      );
    }
    if (changes.peerLimit !== undefined && changes.peerLimit !== record.peerLimit) {
      throw new TransmissionRpcError("torrent-set: changing peer-limit of a torrent is not supported yet");
    }
    if (changes.bandwidthPriority !== undefined && changes.bandwidthPriority !== 0) {
      throw new TransmissionRpcError("torrent-set: bandwidthPriority is not supported yet");
    }
    const files = {
      ...(changes.filesWanted ? { wanted: changes.filesWanted } : {}),
      ...(changes.filesUnwanted ? { unwanted: changes.filesUnwanted } : {}),
      ...(changes.priorityHigh ? { high: changes.priorityHigh } : {}),
      ...(changes.priorityNormal ? { normal: changes.priorityNormal } : {}),
      ...(changes.priorityLow ? { low: changes.priorityLow } : {}),
    };
    if (Object.keys(files).length > 0) {
      if (record.metainfo === null) {
        throw new TransmissionRpcError(`torrent ${id} has no metadata yet: its files are unknown`);
      }
      applyFileChanges(record, files);
    }
    record.downloadLimit = changes.downloadLimit ?? record.downloadLimit;
    record.downloadLimited = changes.downloadLimited ?? record.downloadLimited;
    record.uploadLimit = changes.uploadLimit ?? record.uploadLimit;
    record.uploadLimited = changes.uploadLimited ?? record.uploadLimited;
    record.torrent?.setLimits({
      download: record.downloadLimited ? record.downloadLimit * KB : 0,
      upload: record.uploadLimited ? record.uploadLimit * KB : 0,
    });
    if (changes.labels) record.labels = [...changes.labels];
    record.seedRatioLimit = changes.seedRatioLimit ?? record.seedRatioLimit;
    record.seedRatioMode = changes.seedRatioMode ?? record.seedRatioMode;
    record.seedIdleLimit = changes.seedIdleLimit ?? record.seedIdleLimit;
    record.seedIdleMode = changes.seedIdleMode ?? record.seedIdleMode;
    if (changes.queuePosition !== undefined) {
      placeInQueue([...this.#records.values()], record, changes.queuePosition);
    }
    return await Promise.resolve();
  }

  async setLocation(id: number, location: string, options: { move: boolean }): Promise<void> {
    const record = this.#record(id);
    const folder = this.#checkRoot(location, "download folder");
    if (options.move) {
      throw new TransmissionRpcError("torrent-set-location: moving the files is not supported yet");
    }
    await this.#detach(record);
    record.downloadDir = folder;
    this.#launch(record);
  }

  renamePath(): Promise<{ path: string; name: string }> {
    return Promise.reject(new TransmissionRpcError("torrent-rename-path is not supported yet"));
  }

  moveInQueue(ids: readonly number[], where: QueueMove): void {
    moveInQueue([...this.#records.values()], ids.map((id) => this.#record(id)), where);
  }

  settings(): RpcSessionSettings {
    return { ...this.#settings, peerPort: this.#session.port };
  }

  setSettings(changes: Partial<RpcSessionSettings>): Promise<void> {
    const downloadDir = changes.downloadDir === undefined
      ? undefined
      : this.#checkRoot(changes.downloadDir, "download folder");
    this.#settings = changedSettings(this.settings(), {
      ...changes,
      ...(downloadDir ? { downloadDir } : {}),
    });
    this.#session.setLimits(sessionLimits(this.#settings));
    return Promise.resolve();
  }

  stats(): RpcSessionStats {
    return processStats(
      [this.#removedBytes, ...[...this.#records.values()].map(lifeBytes)],
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

function ignoreMissing(error: Error): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
