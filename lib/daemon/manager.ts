/**
 * The torrent manager: many torrents in one session, each with a stable id and a durable
 * record in the state folder, restored as they were after a restart or a crash. What the
 * Transmission RPC and the HTTP API call.
 *
 * @module
 */

import { resolve } from "node:path";
import type { BaseSession } from "../session.ts";
import type { Logger } from "../log.ts";
import type { Torrent } from "../torrent.ts";
import type { Metainfo } from "../types.ts";
import { parsePeerAddress } from "../net/address.ts";
import { DaemonError } from "./errors.ts";
import { deleteTorrentData } from "./delete_data.ts";
import { countersOf, type Entry, foldCounters, pushPriorities } from "./entry.ts";
import { resultOf, seedGoalReached, stateOf } from "./entry.ts";
import { type StartContext, startTorrent } from "./start_torrent.ts";
import { ManagerEvents } from "./manager_events.ts";
import type { SeedGoals, TorrentLimits, TorrentRecord } from "./record.ts";
import { snapshotOf, type TorrentSnapshot } from "./snapshot.ts";
import type { StateStore } from "./state_store.ts";
import {
  type AddSource,
  type ResolvedSource,
  resolveSource,
  type ResolveSourceOptions,
} from "./torrent_source.ts";
import { applyFileChange, checkGoals, checkLabels, checkLimits, type FileChange } from "./settings_check.ts";

export type { FileChange } from "./settings_check.ts";

/** Options of {@linkcode TorrentManager.open}. */
export interface TorrentManagerOptions {
  /** The session every torrent runs in (closed by {@linkcode TorrentManager.close}). */
  session: BaseSession;
  /** The opened state folder. */
  store: StateStore;
  /** Download folder of torrents added without one. */
  downloadDir: string;
  /** Logger. @default the session's */
  logger?: Logger;
  /** Milliseconds between checks of seed goals, activity and states. @default {1000} */
  tickMs?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
  /** How URLs of .torrent files are fetched (fetch, timeout, size cap). */
  fetch?: Omit<ResolveSourceOptions, "signal">;
}

/** Options of {@linkcode TorrentManager.add}. */
export interface ManagerAddOptions {
  /** Folder for the torrent's files. @default the manager's `downloadDir` */
  downloadDir?: string;
  /** Add it paused. @default {false} */
  paused?: boolean;
  /** Labels. @default {[]} */
  labels?: readonly string[];
  /** Peers to dial ("host:port"), besides those trackers, DHT and PEX find. @default {[]} */
  peers?: readonly string[];
  /** Rate limits (bytes per second, 0: none). @default {no limit} */
  limits?: Partial<TorrentLimits>;
  /** Seed goals. @default {none} */
  seedGoals?: Partial<SeedGoals>;
  /** Files not to download (indices), once the metadata is known. @default {[]} */
  unwanted?: readonly number[];
}

/** What {@linkcode TorrentManager.add} returns. */
export interface AddResult {
  /** The torrent's id. */
  id: number;
  /** Its info-hash, hex. */
  hash: string;
  /** Its name. */
  name: string;
  /** True when it was already there (nothing was added). */
  duplicate: boolean;
}

/** Options of {@linkcode TorrentManager.remove}. */
export interface RemoveOptions {
  /** Also delete the torrent's own files (and the folders they leave empty). @default {false} */
  deleteData?: boolean;
}

/**
 * Owns many torrents in one session. Every change is saved before the method resolves.
 *
 * @example
 * ```ts ignore
 * const store = await StateStore.open(stateDir, { logger: session.logger });
 * const manager = await TorrentManager.open({ session, store, downloadDir });
 * const { id } = await manager.add({ path: "x.torrent" }, { labels: ["linux"] });
 * manager.addEventListener("state-changed", (e) => console.log(e.detail.id, e.detail.to));
 * console.log(manager.get(id)?.state); // "checking"
 * await manager.pause(id);
 * await manager.close();
 * ```
 */
export class TorrentManager extends ManagerEvents {
  readonly #session: BaseSession;
  readonly #store: StateStore;
  readonly #downloadDir: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #fetch: Omit<ResolveSourceOptions, "signal">;
  readonly #byId = new Map<number, Entry>();
  readonly #byHash = new Map<string, Entry>();
  readonly #adding = new Map<string, Promise<AddResult>>();
  readonly #timer: ReturnType<typeof setInterval>;
  #ticks = 0;
  #closing: Promise<void> | undefined;
  readonly #context: StartContext;

  private constructor(options: TorrentManagerOptions) {
    super();
    this.#session = options.session;
    this.#store = options.store;
    this.#downloadDir = resolve(options.downloadDir);
    this.#log = options.logger ?? options.session.logger;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetch ?? {};
    this.#context = {
      session: this.#session,
      store: this.#store,
      log: this.#log,
      now: () => this.#now(),
      closing: () => this.#closing !== undefined,
      save: (entry) => this.#save(entry),
      changed: (entry) => this.#report(entry),
    };
    this.#timer = setInterval(() => this.#tick(), options.tickMs ?? 1000);
  }

  /**
   * Makes a manager and restores every torrent of the store in its recorded state (a paused
   * one stays paused, a magnet goes on fetching its metadata); data whose resume record is
   * valid is not checked again.
   *
   * @param options The session, the store, the default download folder.
   * @returns The manager (torrents start in the background).
   */
  static open(options: TorrentManagerOptions): Promise<TorrentManager> {
    const manager = new TorrentManager(options);
    for (const { record, metainfo } of options.store.loaded) {
      const entry = manager.#entry(record, metainfo);
      if (!(record.paused && metainfo === null)) manager.#launch(entry); // a paused magnet waits
    }
    return Promise.resolve(manager);
  }

  #entry(record: TorrentRecord, metainfo: Entry["metainfo"]): Entry {
    const entry: Entry = {
      record,
      metainfo,
      torrent: null,
      run: null,
      abort: null,
      state: "checking",
      ops: Promise.resolve(),
      folded: { uploaded: 0, downloaded: 0 },
      seedingSince: this.#now(),
      dirty: false,
    };
    entry.state = stateOf(entry);
    this.#byId.set(record.id, entry);
    this.#byHash.set(record.hash, entry);
    return entry;
  }

  /** Number of torrents. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Adds a torrent; resolves once its record (and metainfo) are durable. It then starts in the
   * background: a magnet is listed at once in state "magnet" until its metadata arrives.
   * Adding one already present returns it with `duplicate: true`.
   *
   * @param source Torrent bytes, a local path, a magnet link or an http(s) URL.
   * @param options Folder, paused, labels, peers, limits, seed goals.
   * @returns The id, hash and name.
   * @throws {DaemonError} for an invalid source or setting; `MetainfoError`, `MagnetError`.
   */
  async add(source: AddSource, options: ManagerAddOptions = {}): Promise<AddResult> {
    this.#open();
    const resolved = await resolveSource(source, this.#fetch);
    const hash = resolved.kind === "metainfo" ? resolved.metainfo.infoHashHex : resolved.link.infoHashHex;
    const known = this.#byHash.get(hash);
    if (known !== undefined) return { ...resultOf(known), duplicate: true };
    const pending = this.#adding.get(hash);
    if (pending !== undefined) return { ...(await pending), duplicate: true };
    const adding = this.#addNew(hash, resolved, options);
    this.#adding.set(hash, adding);
    try {
      return await adding;
    } finally {
      this.#adding.delete(hash);
    }
  }

  async #addNew(hash: string, resolved: ResolvedSource, options: ManagerAddOptions): Promise<AddResult> {
    for (const peer of options.peers ?? []) parsePeerAddress(peer);
    const limits = checkLimits({ upload: 0, download: 0 }, options.limits ?? {});
    const seedGoals = checkGoals({ ratio: null, idleMinutes: null }, options.seedGoals ?? {});
    const metainfo = resolved.kind === "metainfo" ? resolved.metainfo : null;
    const wanted = metainfo === null ? [] : metainfo.files.map(() => true);
    if (metainfo !== null && options.unwanted) {
      applyFileChange(wanted, [], metainfo.files.length, { files: options.unwanted, wanted: false });
    }
    const id = await this.#store.allocateId();
    if (resolved.kind === "metainfo") await this.#store.saveTorrent(hash, resolved.bytes);
    const record: TorrentRecord = {
      version: 1,
      id,
      hash,
      name: metainfo?.name ?? (resolved.kind === "magnet" ? resolved.link.name ?? hash : hash),
      magnet: resolved.kind === "magnet" ? resolved.uri : null,
      hasMetainfo: metainfo !== null,
      downloadDir: resolve(options.downloadDir ?? this.#downloadDir),
      paused: options.paused ?? false,
      finished: false,
      wanted,
      priority: [],
      limits,
      seedGoals,
      labels: checkLabels(options.labels ?? []),
      peers: [...(options.peers ?? [])],
      addedAt: this.#now(),
      doneAt: null,
      activityAt: null,
      uploadedEver: 0,
      downloadedEver: 0,
      error: null,
    };
    await this.#store.saveRecord(record);
    this.#open(); // closed while saving: the record is kept and restored next time
    const entry = this.#entry(record, metainfo);
    this.#log.info("daemon", "Added", { id, hash, name: record.name });
    this.emit("added", { id, hash });
    if (!(record.paused && metainfo === null)) this.#launch(entry);
    return resultOf(entry);
  }

  /** Starts the entry's torrent in the session, in the background. */
  #launch(entry: Entry): void {
    const abort = new AbortController();
    entry.abort = abort;
    entry.run = startTorrent(this.#context, entry, abort.signal).catch((error: Error) => {
      // A record or metainfo that cannot be saved: the torrent is reported as failed.
      entry.record.error = `Cannot save the torrent's state: ${error.message}`;
      this.#log.error("daemon", `Torrent ${entry.record.id}: ${entry.record.error}`);
    }).finally(() => {
      if (entry.abort === abort) {
        entry.abort = null;
        entry.run = null;
      }
      this.#report(entry);
    });
    this.#report(entry);
  }

  /** Saves the record (a failure is logged: the next change or the close saves again). */
  #save(entry: Entry): Promise<void> {
    foldCounters(entry);
    entry.dirty = false;
    return this.#store.saveRecord(entry.record).catch((error: Error) => {
      entry.dirty = true;
      this.#log.error("daemon", `Cannot save the record of torrent ${entry.record.id}: ${error.message}`);
    });
  }

  #report(entry: Entry): void {
    const to = stateOf(entry);
    if (to === entry.state || !this.#byId.has(entry.record.id)) return;
    const from = entry.state;
    entry.state = to;
    if (to === "seeding") entry.seedingSince = this.#now();
    if (to === "seeding" && entry.record.doneAt === null) {
      entry.record.doneAt = this.#now(); // every wanted piece verified
      this.#save(entry);
    }
    this.emit("state-changed", { id: entry.record.id, hash: entry.record.hash, from, to });
  }

  #tick(): void {
    const now = this.#now();
    this.#ticks++;
    for (const entry of this.#byId.values()) {
      const torrent = entry.torrent;
      if (torrent !== null) {
        const { uploaded, downloaded } = countersOf(entry);
        if (uploaded !== entry.record.uploadedEver || downloaded !== entry.record.downloadedEver) {
          entry.record.activityAt = now;
          entry.dirty = true;
          foldCounters(entry);
        }
        if (torrent.state === "seeding" && !entry.record.finished) {
          const goal = seedGoalReached(entry, now);
          if (goal !== null) {
            this.#serial(entry, () => this.#finish(entry, goal)).catch((error: Error) =>
              this.#log.warn("daemon", `Cannot pause finished torrent ${entry.record.id}: ${error.message}`)
            );
          }
        }
      }
      if (entry.dirty && this.#ticks % 30 === 0) this.#save(entry);
      this.#report(entry);
    }
  }

  async #finish(entry: Entry, goal: "ratio" | "idle"): Promise<void> {
    if (entry.record.finished || entry.torrent?.state !== "seeding") return;
    entry.record.finished = true;
    this.#log.info("daemon", `Seed goal reached (${goal}): torrent ${entry.record.id} finished`);
    await this.#save(entry);
    await entry.torrent.pause();
    this.#report(entry);
  }

  /** Runs an operation on one torrent after the ones before it. */
  #serial<T>(entry: Entry, op: () => Promise<T>): Promise<T> {
    const run = entry.ops.then(op);
    entry.ops = run.catch(() => {/* the caller of the operation gets the error */});
    return run;
  }

  /** Runs an operation on the torrent with this id, after the ones before it (rejects for an unknown id). */
  #op<T>(id: number, op: (entry: Entry) => Promise<T>): Promise<T> {
    let entry: Entry;
    try {
      entry = this.#find(id);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#serial(entry, () => op(entry));
  }

  #open(): void {
    if (this.#closing !== undefined) throw new DaemonError("CLOSED", "The torrent manager is closed");
  }

  #find(id: number): Entry {
    this.#open();
    const entry = this.#byId.get(id);
    if (entry === undefined) throw new DaemonError("NOT_FOUND", `No torrent with id ${id}`);
    return entry;
  }

  /**
   * The id of the torrent with this info-hash.
   *
   * @param hash 40 hex characters.
   * @returns The id, or undefined.
   */
  idOf(hash: string): number | undefined {
    return this.#byHash.get(hash.toLowerCase())?.record.id;
  }

  /**
   * A snapshot of one torrent.
   *
   * @param id The id.
   * @returns The snapshot, or undefined when there is no such torrent.
   */
  get(id: number): TorrentSnapshot | undefined {
    const entry = this.#byId.get(id);
    if (entry !== undefined) this.#report(entry); // the events and the done date keep up with what is shown
    return entry === undefined
      ? undefined
      : snapshotOf(entry.record, entry.metainfo, entry.torrent, stateOf(entry), countersOf(entry));
  }

  /**
   * The running torrent and the metadata of one torrent, for an API that reads them directly
   * (pieces, peers); treat them as read-only: changes go through the manager.
   *
   * @param id The id.
   * @returns Them, or undefined when there is no such torrent.
   */
  live(id: number): { torrent: Torrent | null; metainfo: Metainfo | null } | undefined {
    const entry = this.#byId.get(id);
    return entry === undefined ? undefined : { torrent: entry.torrent, metainfo: entry.metainfo };
  }

  /**
   * Snapshots of every torrent (or of these ids; unknown ones are left out), by id.
   *
   * @param ids Which torrents. @default all
   * @returns Plain JSON-safe objects.
   */
  snapshot(ids?: readonly number[]): TorrentSnapshot[] {
    const list = ids ?? [...this.#byId.keys()].sort((a, b) => a - b);
    return list.flatMap((id) => this.get(id) ?? []);
  }

  /**
   * Settles when the torrent's current start (metadata fetch, data check) is over.
   *
   * @param id The id.
   */
  async whenStarted(id: number): Promise<void> {
    await this.#find(id).run;
  }

  /**
   * Pauses a torrent (a magnet stops fetching its metadata). Saved: it stays paused after a
   * restart.
   *
   * @param id The id.
   */
  pause(id: number): Promise<void> {
    return this.#op(id, async (entry) => {
      entry.record.paused = true;
      await this.#save(entry);
      if (entry.metainfo === null) await this.#stopTorrent(entry); // a magnet stops fetching
      const torrent = entry.torrent;
      if (torrent?.state === "downloading" || torrent?.state === "seeding") await torrent.pause();
      this.#report(entry); // a torrent still checking is paused when the check ends
    });
  }

  /**
   * Resumes a paused or finished torrent, or starts again one that stopped with an error.
   *
   * @param id The id.
   */
  resume(id: number): Promise<void> {
    return this.#op(id, async (entry) => {
      entry.record.paused = false;
      entry.record.finished = false;
      await this.#save(entry);
      const torrent = entry.torrent;
      if (torrent?.state === "paused") torrent.resume();
      else if (
        entry.run === null && (torrent === null || torrent.state === "error" || torrent.state === "stopped")
      ) {
        await this.#stopTorrent(entry);
        entry.record.error = null;
        this.#launch(entry);
      }
      this.#report(entry);
    });
  }

  /**
   * Checks all data again, ignoring resume data, then goes on paused or running as before.
   * Resolves once the check has started (see {@linkcode TorrentManager.whenStarted}).
   *
   * @param id The id.
   * @throws {DaemonError} `INVALID_ARGUMENT` for a magnet still waiting for metadata.
   */
  recheck(id: number): Promise<void> {
    return this.#op(id, async (entry) => {
      if (entry.metainfo === null) {
        throw new DaemonError("INVALID_ARGUMENT", `Torrent ${id} has no metadata yet: nothing to check`);
      }
      await this.#stopTorrent(entry);
      await this.#store.removeResumeData(entry.record.hash, { metadata: false });
      entry.record.error = null;
      this.#launch(entry);
    });
  }

  /**
   * Asks the trackers for peers now.
   *
   * @param id The id.
   */
  reannounce(id: number): void {
    this.#find(id).torrent?.reannounce();
  }

  /**
   * Changes whether files are downloaded and their priority.
   *
   * @param id The id.
   * @param change The files and what to set.
   * @throws {DaemonError} `INVALID_ARGUMENT` for an index that is not a file, or no metadata yet.
   */
  setFiles(id: number, change: FileChange): Promise<void> {
    return this.#op(id, async (entry) => {
      const meta = entry.metainfo;
      if (meta === null) throw new DaemonError("INVALID_ARGUMENT", `Torrent ${id} has no metadata yet`);
      const { record } = entry;
      applyFileChange(record.wanted, record.priority, meta.files.length, change);
      await this.#save(entry);
      pushPriorities(entry, change.files);
    });
  }

  /**
   * Changes a torrent's rate limits (bytes per second, 0: none).
   *
   * @param id The id.
   * @param limits The limits to change.
   */
  setLimits(id: number, limits: Partial<TorrentLimits>): Promise<void> {
    return this.#op(id, async (entry) => {
      entry.record.limits = checkLimits(entry.record.limits, limits);
      await this.#save(entry);
      entry.torrent?.setLimits(entry.record.limits);
    });
  }

  /**
   * Changes a torrent's seed goals (null removes one).
   *
   * @param id The id.
   * @param goals The goals to change.
   */
  setSeedGoals(id: number, goals: Partial<SeedGoals>): Promise<void> {
    return this.#op(id, async (entry) => {
      entry.record.seedGoals = checkGoals(entry.record.seedGoals, goals);
      await this.#save(entry);
    });
  }

  /**
   * Replaces a torrent's labels.
   *
   * @param id The id.
   * @param labels The labels (trimmed, duplicates dropped).
   */
  setLabels(id: number, labels: readonly string[]): Promise<void> {
    return this.#op(id, async (entry) => {
      entry.record.labels = checkLabels(labels);
      await this.#save(entry);
    });
  }

  /**
   * Removes a torrent: stops it, deletes its record, its metainfo and resume data and, with
   * `deleteData`, its own files (never through a symbolic link) and the folders they leave empty.
   *
   * @param id The id.
   * @param options Whether to delete the data.
   */
  remove(id: number, options: RemoveOptions = {}): Promise<void> {
    return this.#op(id, async (entry) => {
      if (!this.#byId.has(id)) return;
      this.#byId.delete(id);
      this.#byHash.delete(entry.record.hash);
      await this.#stopTorrent(entry);
      await this.#store.removeRecord(entry.record.hash);
      await this.#store.removeResumeData(entry.record.hash, { metadata: true });
      if (options.deleteData && entry.metainfo !== null) {
        await deleteTorrentData(entry.record.downloadDir, entry.metainfo, this.#log);
      }
      this.#log.info("daemon", "Removed", {
        id,
        hash: entry.record.hash,
        deleteData: options.deleteData ?? false,
      });
      this.emit("removed", { id, hash: entry.record.hash });
    });
  }

  async #stopTorrent(entry: Entry): Promise<void> {
    entry.abort?.abort(new DaemonError("CLOSED", "Stopped"));
    await entry.run;
    const torrent = entry.torrent;
    if (torrent === null) return;
    foldCounters(entry);
    entry.torrent = null;
    await this.#session.remove(torrent).catch((error: Error) =>
      this.#log.warn("daemon", `Cannot stop torrent ${entry.record.id} cleanly: ${error.message}`)
    );
  }

  /**
   * Stops every torrent (the trackers are told within a few seconds, resume data is saved),
   * saves every record and closes the session. A second call waits for the first.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    const entries = [...this.#byId.values()];
    for (const entry of entries) {
      foldCounters(entry);
      entry.abort?.abort(new DaemonError("CLOSED", "The daemon is stopping"));
    }
    await this.#session.close();
    await Promise.allSettled(entries.flatMap((entry) => [entry.run, entry.ops]));
    await Promise.all(entries.map((entry) => this.#save(entry)));
  }
}
