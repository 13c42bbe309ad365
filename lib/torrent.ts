/**
 * One torrent's lifecycle: check existing data, download from many peers at once, verify
 * and store pieces, ban peers that send bad data, save resume data, then seed. The parts live
 * in `torrent/`: the start-up (`startup.ts`), the piece pipeline (`piece_pipeline.ts`), the
 * peers (`peer_wiring.ts`) and resume saving (`resume_saver.ts`); this file keeps the state
 * machine, the events and the statistics.
 *
 * @module
 */

import { TypedEventTarget } from "./typed_event_target.ts";
import { Bitfield } from "./bitfield.ts";
import { ShoalError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { BanList } from "./peer/ban_list.ts";
import type { PiecePicker } from "./peer/piece_picker.ts";
import { RateMeter } from "./peer/rate.ts";
import type { Announcer, TrackerStatus } from "./tracker/announcer.ts";
import type { CheckedStorage } from "./storage/storage.ts";
import type { DownloadLock } from "./storage/folder_lock.ts";
import type { OversizedFiles } from "./storage/oversized.ts";
import type { Metainfo } from "./types.ts";
import type { FilePriority } from "./file_priority.ts";
import { startAnnouncer } from "./torrent/announce.ts";
import { FileSelection } from "./torrent/file_selection.ts";
import { registerIncoming } from "./torrent/internal.ts";
import { PeerWiring } from "./torrent/peer_wiring.ts";
import { createPicker, PiecePipeline } from "./torrent/piece_pipeline.ts";
import { ResumeSaver } from "./torrent/resume_saver.ts";
import { statsSnapshot } from "./torrent/stats.ts";
import { closeTorrentData, openTorrentData } from "./torrent/startup.ts";

export type * from "./torrent_types.ts";
import type {
  PeerInfo,
  RateLimits,
  StartupCheck,
  TorrentEventMap,
  TorrentOptions,
  TorrentState,
  TorrentStats,
} from "./torrent_types.ts";

const TICK_MS = 1000;

/** A listener typed by event name (the overloads pick which), or an untyped one. */

/**
 * A torrent being downloaded or seeded. Create it through a session
 * (`session.add(...)`), listen to its events, await {@linkcode Torrent.completed}.
 *
 * @example
 * ```ts ignore
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * torrent.addEventListener("progress", (e) => console.log(e.detail.percent));
 * await torrent.completed;
 * ```
 */
export class Torrent extends TypedEventTarget<TorrentEventMap> implements AsyncDisposable {
  /** The torrent's metadata. */
  readonly metainfo: Metainfo;
  /** Info-hash as hex. */
  readonly infoHash: string;
  /** Settles when every piece is verified (rejects on a fatal error or if stopped first). */
  readonly completed: Promise<void>;

  readonly #options: TorrentOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #have: Bitfield;
  readonly #bans = new BanList();
  readonly #wiring: PeerWiring;
  readonly #resume: ResumeSaver;
  readonly #down = new RateMeter(5);
  readonly #up = new RateMeter(5);
  readonly #abort = new AbortController();
  #picker: PiecePicker | null = null;
  #pipeline: PiecePipeline | null = null;
  /** The torrent's storage backend inside the core's checked layer. */
  #storage: CheckedStorage | null = null;
  /** Held from start to the end of the shutdown: one process at a time writes this data. */
  #lock: DownloadLock | null = null;
  /** Files longer than the torrent's, cut once complete (see oversized.ts). */
  #oversized: OversizedFiles | null = null;
  /** The one shutdown run, shared by `stop()` and a fatal error (so files are closed once). */
  #stopping: Promise<void> | undefined;
  /** The running `start()`, which a shutdown waits for before closing what it opened. */
  #starting: Promise<unknown> | undefined;
  #state: TorrentState = "checking";
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  readonly #completion = Promise.withResolvers<void>();
  #settled = false;
  #startedAt = 0;
  #completedAt = 0;
  #startupCheck: StartupCheck | undefined;
  #announcer: Announcer | null = null;
  #neededDownload = false;
  readonly #files: FileSelection;

  /**
   * Creates the instance.
   *
   * @param metainfo The parsed torrent.
   * @param options Where to store it, plugins, identity.
   */
  constructor(metainfo: Metainfo, options: TorrentOptions) {
    super();
    this.metainfo = metainfo;
    this.infoHash = metainfo.infoHashHex;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger.child({ torrent: metainfo.infoHashHex.slice(0, 12) });
    this.#have = new Bitfield(metainfo.pieceCount);
    this.#files = new FileSelection(metainfo, options.filePriorities, this.#log);
    this.#wiring = new PeerWiring({
      metainfo,
      options,
      have: this.#have,
      bans: this.#bans,
      logger: this.#log,
      now: this.#now,
      signal: this.#abort.signal,
      emit: (type, detail) => this.emit(type, detail),
      active: () => this.#state === "downloading" || this.#state === "seeding",
      seeding: () => this.#state === "seeding",
      wanted: () => this.#files.wanted,
    });
    // Incoming connections reach the wiring through the session's listener, not the public API.
    registerIncoming(this, this.#wiring); // its accepts, handshake and attach
    this.#resume = new ResumeSaver({
      metainfo,
      have: this.#have,
      place: options,
      logger: this.#log,
      now: () => this.#now(),
    });
    this.completed = this.#completion.promise;
    // A caller that never awaits `completed` must not crash the process with an unhandled rejection.
    this.completed.catch(() => {/* reported through the "error" event and the logger */});
  }

  /** Current state. */
  get state(): TorrentState {
    return this.#state;
  }

  /** Our verified pieces (read-only view; do not modify). */
  get have(): Bitfield {
    return this.#have;
  }

  /**
   * The resume file's path. Resume data is kept only for storage that reports its files
   * (`fileStat`, as file storage does); other storage is verified piece by piece at start-up.
   */
  get resumePath(): string {
    return this.#resume.path;
  }

  /** What the start-up data check found (undefined until it is over). */
  get startupCheck(): StartupCheck | undefined {
    return this.#startupCheck;
  }

  /**
   * Opens storage, checks existing data (using resume data when it can be trusted) and starts
   * connecting to peers. Called by the session. Progress of the check goes to `checking`
   * events; `options.signal` stops it at the next piece (start() then rejects with the
   * signal's reason, and no resume data is written: the old file stays as it was).
   *
   * @param options A signal that stops the data check.
   * @returns How many pieces were found complete, trusted from resume data or re-checked.
   */
  start(
    options: { signal?: AbortSignal } = {},
  ): Promise<{ have: number; trusted: number; rechecked: number }> {
    const starting = this.#start(options.signal);
    this.#starting = starting;
    return starting;
  }

  async #start(stop?: AbortSignal): Promise<{ have: number; trusted: number; rechecked: number }> {
    const meta = this.metainfo;
    const stopped = this.#abort.signal;
    try {
      const { storage, oversized, check } = await openTorrentData(meta, {
        options: this.#options,
        have: this.#have,
        skipFiles: this.#files.skipped(),
        logger: this.#log,
        signal: stop ? AbortSignal.any([stopped, stop]) : stopped,
        stopped,
        onChecking: (progress) => this.emit("checking", progress),
        onLock: (lock) => this.#lock = lock,
        onStorage: (storage) => this.#storage = storage,
      });
      this.#oversized = oversized;
      this.#startupCheck = check;
      this.emit("checked", check);
      const picker = this.#picker = createPicker(meta, this.#options, this.#have, this.#log);
      this.#pipeline = this.#makePipeline(picker, storage);
      this.#wiring.begin(picker, this.#pipeline);
      this.#files.apply(picker);
      this.#state = this.#isDone() ? "seeding" : "downloading";
      this.#neededDownload = !this.#isDone();
      this.#startedAt = this.#now();
      this.#startAnnouncing();
      this.#timer = setInterval(() => this.#tick(), TICK_MS);
      if (this.#isDone()) this.#finish();
      else await this.#resume.saveOrWarn(this.#storage);
      return { have: check.have, trusted: check.trusted, rechecked: check.rechecked };
    } catch (error) {
      // start() rejects with it: whoever called reports it, the log only records it.
      this.#fail(error instanceof Error ? error : new Error(String(error)), { thrown: true });
      throw error;
    }
  }

  #makePipeline(picker: PiecePicker, storage: CheckedStorage): PiecePipeline {
    return new PiecePipeline({
      metainfo: this.metainfo,
      have: this.#have,
      picker,
      wanted: () => this.#files.wanted,
      storage,
      bans: this.#bans,
      down: this.#down,
      up: this.#up,
      logger: this.#log,
      now: this.#now,
      hooks: {
        emit: (type, detail) => this.emit(type, detail),
        ban: (address, reason) => this.#wiring.ban(address, reason),
        cancel: (peer, piece, begin) => this.#wiring.cancel(peer, piece, begin),
        verified: (piece) => this.#pieceVerified(piece),
        lost: () => this.#piecesLost(),
        fail: (error) => this.#fail(error),
      },
    });
  }

  #startAnnouncing(): void {
    this.#announcer = startAnnouncer(this.metainfo, this.#options, {
      up: this.#up,
      down: this.#down,
      left: () => this.#files.left(this.#have),
      addPeers: (peers) => this.addPeers(peers, "tracker"),
      logger: this.#log,
    });
  }

  /**
   * Announces to the trackers now (the tracker's `min interval` is still respected), as a
   * user's "ask for more peers" does. Does nothing unless the torrent is downloading or seeding.
   *
   * @example
   * ```ts ignore
   * torrent.reannounce();
   * ```
   */
  reannounce(): void {
    if (this.#state === "downloading" || this.#state === "seeding") this.#announcer?.announceNow();
  }

  /** The state of each tracker (empty when the torrent has none or trackers are off). */
  trackers(): TrackerStatus[] {
    return this.#announcer?.status() ?? [];
  }

  /**
   * Adds peers to connect to ("host:port" or "[v6]:port"). This is the seam every peer source
   * uses (manual peers, trackers, and later DHT, PEX and local discovery). Invalid addresses
   * throw a `PeerAddressError` for manual peers and are skipped for other sources; at most 2000
   * addresses are kept.
   *
   * @param addresses Peer addresses.
   * @param source Where they came from, for logs (`manual`, `tracker`, ...).
   * @returns How many were new.
   */
  addPeers(addresses: Iterable<string>, source = "manual"): number {
    return this.#wiring.add(addresses, source);
  }

  /** A piece was verified and written: announce it, save it soon, finish when it was the last. */
  #pieceVerified(piece: number): void {
    this.#resume.markDirty();
    this.#wiring.sendHave(piece);
    if (this.#isDone()) this.#finish();
    else if (this.#have.count() % 16 === 0) this.#wiring.refreshInterest(true);
  }

  /** Pieces changed or vanished on disk (the pipeline stopped serving them). */
  #piecesLost(): void {
    this.#resume.markDirty();
    if (this.#state === "seeding" && !this.#isDone()) {
      this.#state = "downloading";
      this.#completedAt = 0;
    }
    this.#wiring.refreshInterest();
  }

  #tick(): void {
    const now = this.#now();
    if (this.#state !== "paused") { // paused: no peer work, only resume saving and progress
      this.#ticks++;
      this.#wiring.tick(now, this.#ticks);
      if (this.#ticks % 30 === 15 && this.#state === "downloading" && this.#wiring.size < 5) {
        this.#announcer?.announceNow(); // short of peers: ask again (the tracker's min interval is respected)
      }
      this.#wiring.connectMore();
    }
    if (this.#resume.due(now, (this.#options.resumeInterval ?? 15) * 1000)) {
      this.#resume.saveOrWarn(this.#storage);
    }
    this.emit("progress", this.stats());
  }

  #finish(): void {
    if (this.#state === "stopped" || this.#state === "error") return;
    if (this.#state !== "paused") this.#state = "seeding"; // a paused one seeds once resumed
    this.#completedAt = this.#now();
    if (this.#neededDownload) this.#announcer?.completed();
    const stats = this.stats();
    this.#log.info("torrent", "Download complete", { pieces: this.metainfo.pieceCount });
    // Peers that are complete have nothing to trade with a seed.
    this.#wiring.completed();
    (async () => {
      await this.#pipeline?.idle();
      await this.#oversized?.trimComplete(this.#have);
      await this.#storage?.flush();
      await this.#resume.save(this.#storage);
    })().then(
      () => {
        this.emit("progress", this.stats());
        this.emit("done", stats);
        this.#settle();
      },
      (error) => this.#fail(error instanceof Error ? error : new Error(String(error))),
    );
  }

  #settle(error?: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    if (error) this.#completion.reject(error);
    else this.#completion.resolve();
  }

  #fail(error: Error, options: { thrown?: boolean } = {}): void {
    if (this.#state === "error" || this.#state === "stopped") return;
    this.#state = "error";
    // A start() failure is thrown to the caller, who reports it (the CLI shows one line).
    if (options.thrown) this.#log.debug("torrent", `Torrent stopped: ${error.message}`);
    // `completed: "rejected"`: the same error rejects `completed`, so a caller that reports that
    // rejection (the CLI's one error line) can leave this record out of a display it shares.
    else if (!this.#settled) {
      this.#log.error("torrent", `Torrent stopped: ${error.message}`, { completed: "rejected" });
    } else this.#log.error("torrent", `Torrent stopped: ${error.message}`);
    this.emit("error", { error });
    this.#settle(error);
    this.#shutdown().catch((e) =>
      this.#log.error("torrent", `Cannot shut down cleanly: ${(e as Error).message}`)
    );
  }

  /**
   * Changes this torrent's rate limits while it runs (0 removes a limit).
   *
   * @param limits New limits in bytes per second; absent ones are kept.
   */
  setLimits(limits: RateLimits): void {
    this.#wiring.setLimits(limits);
  }

  /** The priority of each file, in `metainfo.files` order. */
  get filePriorities(): readonly FilePriority[] {
    return this.#files.priorities;
  }

  /**
   * Changes the priority of files while the torrent runs. Skipping a file stops new requests
   * for pieces only it touches (pieces already started are finished); un-skipping one after
   * the download was done resumes downloading (`completed` has settled already and stays so).
   *
   * @param files File indices (in `metainfo.files` order).
   * @param priority "skip", "normal" or "high".
   * @throws {RangeError} when an index is not a file of the torrent.
   */
  setFilePriority(files: number | readonly number[], priority: FilePriority): void {
    const list = typeof files === "number" ? [files] : files;
    this.#files.set(list, priority);
    if (this.#picker === null) return; // applied by start()
    const wasDone = this.#isDone();
    this.#files.apply(this.#picker);
    if (this.#state === "seeding" && wasDone && !this.#isDone()) {
      this.#state = "downloading";
      this.#neededDownload = true;
      this.#completedAt = 0;
      this.#log.info("torrent", "Downloading again: files were selected", { files: list.join(",") });
    } else if (!wasDone && this.#isDone() && (this.#state === "downloading" || this.#state === "paused")) {
      this.#finish();
    }
    this.#wiring.refreshInterest();
  }

  /** Every wanted piece is verified. */
  #isDone(): boolean {
    return this.#picker === null ? this.#have.isComplete() : this.#picker.complete;
  }

  /** A snapshot of progress and rates. */
  stats(): TorrentStats {
    return statsSnapshot({
      metainfo: this.metainfo,
      have: this.#have,
      wanted: this.#files.wanted,
      state: this.#state,
      down: this.#down,
      up: this.#up,
      peers: this.#wiring.size,
      counters: this.#pipeline,
      bufferedBytes: this.#picker?.bufferedBytes ?? 0,
      startedAt: this.#startedAt,
      completedAt: this.#completedAt,
      now: this.#now(),
    });
  }

  /**
   * Pauses the torrent: every connection closes, no peer is dialled and incoming ones are
   * refused, the trackers are told `stopped`, and resume data is saved; the storage stays open
   * and the progress is kept (state `"paused"`). `completed` stays pending (unless writes in
   * flight finish the download). Pausing a paused torrent does nothing.
   *
   * @example
   * ```ts ignore
   * await torrent.pause();
   * torrent.resume();
   * ```
   *
   * @returns Settles once the trackers were told (or gave up) and resume data is saved.
   * @throws {ShoalError} with code `NOT_RUNNING` during the start-up check, or once stopped or failed.
   */
  async pause(): Promise<void> {
    if (this.#state === "paused") return;
    if (this.#state !== "downloading" && this.#state !== "seeding") {
      throw new ShoalError(
        "NOT_RUNNING",
        `Cannot pause a torrent that is ${this.#state}: only a downloading or seeding torrent can be paused`,
      );
    }
    this.#state = "paused";
    this.#log.info("torrent", "Paused");
    this.#wiring.pause();
    // A stopped announcer stays for `trackers()`; resume() makes a new one.
    await Promise.all([this.#announcer?.stop(3000), this.#resume.saveOrWarn(this.#storage)]);
  }

  /**
   * Resumes a paused torrent: back to `"downloading"` or `"seeding"`, the trackers are told
   * `started` again, known peers are dialled and incoming ones accepted. Does nothing when the
   * torrent is not paused.
   *
   * @example
   * ```ts ignore
   * if (torrent.state === "paused") torrent.resume();
   * ```
   */
  resume(): void {
    if (this.#state !== "paused") return;
    const done = this.#isDone();
    this.#state = done ? "seeding" : "downloading";
    if (!done) {
      this.#neededDownload = true;
      this.#completedAt = 0;
    }
    this.#log.info("torrent", "Resumed", { state: this.#state });
    this.#startAnnouncing();
    this.#wiring.connectMore();
  }

  /** Snapshots of the connected peers. */
  peers(): PeerInfo[] {
    return this.#wiring.peers();
  }

  /**
   * Closes every connection, waits for writes, saves resume data and closes files. Calling it
   * again, or while a fatal error is shutting the torrent down, waits for that same shutdown.
   *
   * @throws {StorageError} when the files could not be closed cleanly (data not made durable).
   */
  async stop(): Promise<void> {
    this.#state = "stopped";
    try {
      await this.#shutdown();
    } finally {
      // No-op when `completed` already settled (done, or failed with the fatal error).
      this.#settle(new ShoalError("STOPPED", "Torrent was stopped before it completed"));
    }
  }

  /** Starts the shutdown once; every later call gets the same promise. */
  #shutdown(): Promise<void> {
    this.#stopping ??= this.#runShutdown();
    return this.#stopping;
  }

  async #runShutdown(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const announcing = this.#announcer?.stop(3000);
    this.#abort.abort(new ShoalError("STOPPED", "Torrent stopped"));
    this.#wiring.closeAll();
    // A start() still opening files sees the abort and settles; what it opened is closed below.
    await this.#starting?.catch(() => {/* start() reports its own failure to its caller */});
    await this.#pipeline?.idle();
    await announcing;
    // Only a started torrent has progress worth saving: an aborted check would save none.
    const storage = this.#storage;
    const save = this.#picker === null ? undefined : () => this.#resume.saveOrWarn(storage);
    await closeTorrentData(storage, this.#lock, save);
  }

  /** Same as {@linkcode Torrent.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
