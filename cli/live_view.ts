/**
 * The live view of a running transfer: the status line fitted to the terminal, the peer table
 * below it (`--peers`, or the `p` key), Ctrl+C as a key, and the periodic progress records
 * for `--log jsonl:…`.
 *
 * @module
 */

import type { LogRecord, LogSink, Session, Torrent, TorrentStats } from "../mod.ts";
import type { CliIO, ProgressLine } from "./common.ts";
import { CTRL_C } from "./keys.ts";
import { peerTable } from "./peer_view.ts";
import { statusLine } from "./status_view.ts";

/** Milliseconds between two progress records for `--log jsonl:…`. */
export const PROGRESS_RECORD_INTERVAL_MS = 2000;

/** Options of {@linkcode LiveView}. */
export interface LiveViewOptions {
  /** Where the view is drawn; null with `--quiet` (records and keys still work). */
  readonly progress: ProgressLine | null;
  /** The session, for the DHT counts. */
  readonly session: Session;
  /** Whether the run goes on seeding once complete (the status line then says so). */
  readonly seeding: boolean;
  /** Show the peer table from the start (`--peers`). @default {false} */
  readonly peers?: boolean;
  /** Receives a `progress` record at the start, every {@linkcode PROGRESS_RECORD_INTERVAL_MS} and at the end. */
  readonly records?: LogSink;
  /** Milliseconds between two progress records. @default {PROGRESS_RECORD_INTERVAL_MS} */
  readonly recordIntervalMs?: number;
}

/**
 * Draws a torrent's progress while it runs. {@linkcode LiveView.attach} starts it (keys,
 * redraws on the torrent's `progress` events, records); {@linkcode LiveView.close} stops all
 * of it and gives the terminal back, and must be called on every exit path.
 *
 * @example
 * ```ts ignore
 * const view = new LiveView(io, { progress, session, seeding: false, peers: true });
 * view.attach(torrent);
 * try { await torrent.completed; await view.finish(); } finally { view.close(); }
 * ```
 */
export class LiveView {
  readonly #io: CliIO;
  readonly #options: LiveViewOptions;
  #torrent: Torrent | undefined;
  #showPeers: boolean;
  #seeding: boolean;
  #stopKeys: (() => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /**
   * Creates the view; nothing is drawn, and no key read, before {@linkcode LiveView.attach}.
   *
   * @param io Where to draw, the keys, and `interrupt` for a Ctrl+C key.
   * @param options What to draw and where records go.
   */
  constructor(io: CliIO, options: LiveViewOptions) {
    this.#io = io;
    this.#options = options;
    this.#showPeers = options.peers === true;
    this.#seeding = options.seeding;
  }

  /** Whether the peer table is shown. */
  get showingPeers(): boolean {
    return this.#showPeers;
  }

  /**
   * Starts drawing `torrent`: on each `progress` event, and at once when a key changes the
   * view. Keys are read only when stderr is a terminal and the view is drawn.
   *
   * @param torrent The running torrent.
   */
  attach(torrent: Torrent): void {
    this.#torrent = torrent;
    torrent.addEventListener("progress", (e) => this.draw(e.detail));
    const records = this.#options.records;
    if (records !== undefined) {
      this.#record(torrent.stats());
      this.#timer = setInterval(
        () => this.#record(torrent.stats()),
        this.#options.recordIntervalMs ?? PROGRESS_RECORD_INTERVAL_MS,
      );
    }
    if (this.#io.keys !== undefined && this.#io.isTerminal && this.#options.progress !== null) {
      this.#stopKeys = this.#io.keys.listen((key) => this.#onKey(key));
    }
  }

  /**
   * Draws the status line (and the peer table when shown), throttled by the progress line.
   *
   * @param stats The torrent's statistics.
   * @param force Draw even if the last draw was recent.
   */
  draw(stats: TorrentStats, force = false): void {
    const progress = this.#options.progress;
    if (progress === null || this.#closed) return;
    const { columns, rows } = progress.size;
    const text = statusLine(stats, {
      torrent: this.#torrent,
      session: this.#options.session,
      seeding: this.#seeding,
      columns,
    });
    const block = this.#showPeers && this.#torrent !== undefined
      ? peerTable(this.#torrent.peers(), { columns, maxLines: Math.max(1, rows - 2) })
      : [];
    progress.update(text, block, force);
  }

  /**
   * Draws the last status line (no table) and ends it, and sends a last progress record.
   * The line says "seeding" only when `seeding` is true.
   *
   * @param seeding Whether the run goes on seeding after this line. @default the constructor's
   */
  async finish(seeding = this.#seeding): Promise<void> {
    const torrent = this.#torrent;
    if (torrent === undefined) return;
    this.#seeding = seeding;
    const stats = torrent.stats();
    this.#record(stats);
    const progress = this.#options.progress;
    if (progress === null) return;
    await progress.done(statusLine(stats, {
      torrent,
      session: this.#options.session,
      seeding,
      columns: progress.size.columns,
    }));
  }

  /** Stops keys (restoring the terminal), redraws and records. Safe to call more than once. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    const stop = this.#stopKeys;
    this.#stopKeys = undefined;
    stop?.();
  }

  #onKey(key: string): void {
    if (key.includes(CTRL_C)) {
      this.#io.interrupt?.();
      return;
    }
    if (/p/i.test(key) && this.#torrent !== undefined) {
      this.#showPeers = !this.#showPeers;
      this.draw(this.#torrent.stats(), true);
    }
  }

  #record(stats: TorrentStats): void {
    const sink = this.#options.records;
    const torrent = this.#torrent;
    if (sink === undefined || torrent === undefined) return;
    sink(progressRecord(torrent.infoHash, stats));
  }
}

/**
 * The progress record of `--log jsonl:…`: level `info`, category `progress`, and the fields
 * scripts want (`percent`, byte counts, rates, `peers`, `state`, `eta` in seconds or null).
 *
 * @example
 * ```ts ignore
 * const record = progressRecord(torrent.infoHash, torrent.stats());
 * ```
 *
 * @param infoHash The torrent's info-hash (hex).
 * @param s Its statistics.
 * @returns The record.
 */
export function progressRecord(infoHash: string, s: TorrentStats): LogRecord {
  return {
    time: Date.now(),
    level: "info",
    category: "progress",
    message: "Progress",
    fields: {
      torrent: infoHash,
      state: s.state,
      percent: Math.round(s.percent * 100) / 100,
      completedBytes: s.completedBytes,
      wantedBytes: s.wantedBytes,
      downloaded: s.downloaded,
      uploaded: s.uploaded,
      downloadRate: Math.round(s.downloadRate),
      uploadRate: Math.round(s.uploadRate),
      peers: s.peers,
      eta: s.eta === null ? null : Math.round(s.eta),
    },
  };
}
