/**
 * The announcer: keeps one torrent announced to its trackers (BEP 12 multitracker).
 *
 * - The trackers of each tier are shuffled once (with the injectable `random`), then
 *   tried in order; a tracker that answers moves to the front of its tier.
 * - Every tier is announced to independently, one working tracker per tier (like
 *   libtorrent's `announce_to_all_tiers`): a dead tracker in one tier does not hold up
 *   another tier.
 * - The working tracker is announced to again after its `interval`, clamped to
 *   `[minIntervalSeconds, maxIntervalSeconds]`. A tracker that fails waits
 *   `retryBaseSeconds * 2^(failures - 1)`, capped at `retryMaxSeconds`, and the next
 *   tracker of the tier is tried at once. A tracker answering HTTP 410 (`gone`), or whose
 *   URL cannot be used, is never tried again.
 * - Events: `started` on the first successful announce to each tracker, `completed` once
 *   after {@linkcode Announcer.completed}, `stopped` at {@linkcode Announcer.stop} to the
 *   trackers that got a `started` (given up after a timeout).
 *
 * Every outcome is logged with category `tracker` and fields `tracker`, `event`,
 * `peers`, `interval`, `error`. The torrent's `private` flag is the caller's business:
 * the announcer only talks to the trackers it is given.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { httpAnnounce, type HttpTrackerOptions } from "./http_tracker.ts";
import { type AnnounceEvent, type AnnounceRequest, type AnnounceResponse, TrackerError } from "./types.ts";
import { UdpTrackerClient } from "./udp_tracker.ts";
import { buildTiers, type Tier, type Tracker, type TrackerStatus } from "./announce_tiers.ts";
export type { TrackerStatus } from "./announce_tiers.ts";

/** Options for {@linkcode Announcer}. */
export interface AnnouncerOptions {
  /** Tracker URLs by tier (`announce-list`, or `[[announce]]`); duplicates and blanks are dropped. */
  tiers: readonly (readonly string[])[];
  /** The 20-byte info-hash. */
  infoHash: Uint8Array;
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** The TCP port we accept peers on. */
  port: number;
  /** Transfer counts, read at each announce. */
  stats: () => { uploaded: number; downloaded: number; left: number };
  /** Receives the peers of each answer that has some. */
  onPeers: (peers: string[], tracker: string) => void;
  /** Where announce outcomes are logged (category `tracker`). */
  logger: Logger;
  /** The session's UDP tracker client; without one the announcer makes its own and closes it at stop. */
  udp?: UdpTrackerClient;
  /** Random numbers in [0, 1), for the tier shuffle and the `key`. @default {Math.random} */
  random?: () => number;
  /** Clock in milliseconds. @default {Date.now} */
  now?: () => number;
  /** Options for HTTP announces (timeout, body cap). */
  http?: HttpTrackerOptions;
  /** Floor of the announce interval and of `min interval`, in seconds. @default {60} */
  minIntervalSeconds?: number;
  /** Ceiling of the announce interval, in seconds. @default {3600} */
  maxIntervalSeconds?: number;
  /** First wait after a failed announce, doubled on each failure in a row, in seconds. @default {15} */
  retryBaseSeconds?: number;
  /** Ceiling of the wait after failures, in seconds. @default {1800} */
  retryMaxSeconds?: number;
  /** Peers asked for in each announce (0 on `stopped`). @default {50} */
  numwant?: number;
  /** Starts a timer. @default {setTimeout} */
  setTimer?: (callback: () => void, ms: number) => unknown;
  /** Cancels a timer made by `setTimer`. @default {clearTimeout} */
  clearTimer?: (handle: unknown) => void;
}

/**
 * Keeps a torrent announced to its trackers.
 *
 * @example
 * ```ts
 * import { Announcer } from "./announcer.ts";
 * import { Logger } from "../log.ts";
 * const announcer = new Announcer({
 *   tiers: [["http://127.0.0.1:1/announce"]],
 *   infoHash: new Uint8Array(20),
 *   peerId: new TextEncoder().encode("-SH0100-abcdefghijkl"),
 *   port: 6881,
 *   stats: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
 *   onPeers: (peers, tracker) => console.log(tracker, peers),
 *   logger: new Logger(),
 * });
 * console.log(announcer.status()[0]?.state); // "idle"
 * await announcer.stop();
 * ```
 */
export class Announcer {
  #options: AnnouncerOptions;
  #tiers: Tier[];
  #now: () => number;
  #setTimer: (callback: () => void, ms: number) => unknown;
  #clearTimer: (handle: unknown) => void;
  #minInterval: number;
  #maxInterval: number;
  #retryBase: number;
  #retryMax: number;
  #numwant: number;
  #key: number;
  #udp: UdpTrackerClient | undefined;
  #ownUdp = false;
  #started = false;
  #completed = false;
  #stopping: Promise<void> | undefined;
  #abort = new AbortController();
  #runs = new Set<Promise<void>>();

  /**
   * Creates the announcer; nothing is sent before {@linkcode Announcer.start}.
   *
   * @param options Trackers, torrent, callbacks and tuning.
   */
  constructor(options: AnnouncerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
    this.#clearTimer = options.clearTimer ??
      ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
    this.#minInterval = options.minIntervalSeconds ?? 60;
    this.#maxInterval = Math.max(this.#minInterval, options.maxIntervalSeconds ?? 3600);
    this.#retryBase = options.retryBaseSeconds ?? 15;
    this.#retryMax = options.retryMaxSeconds ?? 1800;
    this.#numwant = options.numwant ?? 50;
    this.#udp = options.udp;
    const random = options.random ?? Math.random;
    this.#key = Math.floor(random() * 0x1_0000_0000) >>> 0;
    this.#tiers = buildTiers(options.tiers, random, this.#maxInterval, this.#minInterval);
  }

  /** Starts announcing: the first announce to each tier carries `event=started`. Does nothing the second time. */
  start(): void {
    if (this.#started || this.#stopping !== undefined) return;
    this.#started = true;
    for (const tier of this.#tiers) this.#run(tier);
  }

  /**
   * Tells the trackers the download has finished (`event=completed`, once per tracker
   * that got `started`). Call it when the last piece is verified, not when a torrent
   * starts out complete.
   */
  completed(): void {
    if (this.#completed) return;
    this.#completed = true;
    if (!this.#started || this.#stopping !== undefined) return;
    for (const tier of this.#tiers) this.#poke(tier, "completed");
  }

  /**
   * Announces now to each tier's working tracker (to get more peers), or as soon as its
   * `min interval` allows. Trackers in backoff after failures keep their schedule.
   */
  announceNow(): void {
    if (!this.#started || this.#stopping !== undefined) return;
    for (const tier of this.#tiers) this.#poke(tier, "peers");
  }

  /**
   * Stops announcing: cancels timers and announces in progress, then sends
   * `event=stopped` to every tracker that got a successful `started`, in parallel, and
   * gives up on those still unanswered after `timeoutMs`. Closes the UDP client if the
   * announcer made it. Later calls return the same promise.
   *
   * @param timeoutMs How long to wait for the `stopped` announces.
   * @returns A promise that settles when done (it never rejects).
   */
  stop(timeoutMs = 3000): Promise<void> {
    this.#stopping ??= this.#stop(timeoutMs);
    return this.#stopping;
  }

  /**
   * The state of each tracker, tier by tier, in the order they are tried.
   *
   * @returns One entry per tracker.
   */
  status(): TrackerStatus[] {
    const out: TrackerStatus[] = [];
    for (const tier of this.#tiers) {
      for (const t of tier.trackers) {
        const s: TrackerStatus = { url: t.url, tier: t.tier, state: t.state, peersReceived: t.peersReceived };
        if (t.lastAnnounce !== undefined) s.lastAnnounce = t.lastAnnounce;
        if (t.lastError !== undefined) s.lastError = t.lastError;
        if (t.seeders !== undefined) s.seeders = t.seeders;
        if (t.leechers !== undefined) s.leechers = t.leechers;
        if (this.#stopping === undefined && !t.dead) {
          if (t.state === "working" && tier.nextAt !== undefined) s.nextAnnounce = tier.nextAt;
          else if (t.state === "failed" && tier.trackers[0]?.state !== "working") {
            s.nextAnnounce = Math.max(t.retryAt, tier.nextAt ?? t.retryAt);
          }
        }
        out.push(s);
      }
    }
    return out;
  }

  async #stop(timeoutMs: number): Promise<void> {
    for (const tier of this.#tiers) this.#cancelTimer(tier);
    this.#abort.abort(new TrackerError("Announcer stopped", { retryable: false }));
    const deadline = new AbortController();
    const timer = this.#setTimer(
      () => deadline.abort(new TrackerError(`Gave up on 'stopped' announces after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const targets = this.#tiers.flatMap((tier) => tier.trackers).filter((t) => t.started && !t.dead);
      await Promise.all(targets.map((t) => this.#announceStopped(t, deadline.signal)));
      // Announces in progress were aborted above; they end at once unless stuck in a
      // step that cannot be aborted (a DNS lookup), which the deadline bounds.
      await Promise.race([Promise.all([...this.#runs]), untilAborted(deadline.signal)]);
    } finally {
      this.#clearTimer(timer);
      if (this.#ownUdp && this.#udp !== undefined) await this.#udp[Symbol.asyncDispose]();
    }
  }

  async #announceStopped(t: Tracker, signal: AbortSignal): Promise<void> {
    try {
      await this.#send(t.url, { ...this.#request("stopped", t), numwant: 0 }, signal);
      t.started = false;
      t.lastAnnounce = this.#now();
      t.state = "idle";
      this.#options.logger.info("tracker", "Announced stopped", { tracker: t.url, event: "stopped" });
    } catch (error) {
      t.lastError = messageOf(error);
      this.#options.logger.warn("tracker", `Announce 'stopped' failed: ${t.lastError}`, {
        tracker: t.url,
        event: "stopped",
        error: t.lastError,
      });
    }
  }

  /** Runs a round on a tier unless one is running, keeping track of it for stop(). */
  #run(tier: Tier): void {
    if (tier.busy || this.#stopping !== undefined) return;
    tier.busy = true;
    this.#cancelTimer(tier);
    const run = this.#round(tier).finally(() => {
      tier.busy = false;
      this.#runs.delete(run);
      const wanted = tier.wanted;
      tier.wanted = undefined;
      if (wanted !== undefined && this.#stopping === undefined) this.#poke(tier, wanted);
    });
    this.#runs.add(run);
  }

  /** Tries the tier's trackers in order until one answers, then schedules the next round. */
  async #round(tier: Tier): Promise<void> {
    for (const t of [...tier.trackers]) {
      if (t.dead || t.retryAt > this.#now()) continue;
      const ok = await this.#announce(t);
      if (this.#stopping !== undefined) return;
      if (ok) {
        tier.trackers.splice(tier.trackers.indexOf(t), 1);
        tier.trackers.unshift(t);
        for (const other of tier.trackers) if (other !== t && other.state === "working") other.state = "idle";
        this.#schedule(tier, this.#now() + t.interval * 1000);
        return;
      }
    }
    const live = tier.trackers.filter((t) => !t.dead);
    if (live.length === 0) {
      delete tier.nextAt;
      this.#options.logger.error("tracker", `No usable tracker left in tier ${tier.index}`, {
        tier: tier.index,
      });
      return;
    }
    this.#schedule(tier, Math.min(...live.map((t) => t.retryAt)));
  }

  /** Reacts to completed()/announceNow(): announce now, or when min interval allows. */
  #poke(tier: Tier, reason: "peers" | "completed"): void {
    if (tier.busy) {
      tier.wanted = tier.wanted === "peers" ? "peers" : reason;
      return;
    }
    const front = tier.trackers[0];
    if (front === undefined || front.dead || front.state !== "working") return; // backoff keeps its schedule
    const completedDue = this.#completed && front.started && !front.completedSent;
    if (reason === "completed" && !completedDue) return;
    const allowedAt = completedDue ? 0 : (front.lastAnnounce ?? 0) + front.minInterval * 1000;
    if (allowedAt <= this.#now()) this.#run(tier);
    else if (tier.nextAt === undefined || allowedAt < tier.nextAt) this.#schedule(tier, allowedAt);
  }

  #schedule(tier: Tier, at: number): void {
    this.#cancelTimer(tier);
    if (this.#stopping !== undefined) return;
    tier.nextAt = at;
    tier.timer = this.#setTimer(() => {
      tier.timer = undefined;
      this.#run(tier);
    }, Math.max(0, at - this.#now()));
  }

  #cancelTimer(tier: Tier): void {
    if (tier.timer !== undefined) this.#clearTimer(tier.timer);
    tier.timer = undefined;
  }

  #request(event: AnnounceEvent | undefined, t: Tracker): AnnounceRequest {
    const { uploaded, downloaded, left } = this.#options.stats();
    const req: AnnounceRequest = {
      infoHash: this.#options.infoHash,
      peerId: this.#options.peerId,
      port: this.#options.port,
      uploaded,
      downloaded,
      left,
      numwant: this.#numwant,
      key: this.#key,
    };
    if (event !== undefined) req.event = event;
    if (t.trackerId !== undefined) req.trackerId = t.trackerId;
    return req;
  }

  /** One announce to one tracker; true when it answered. */
  async #announce(t: Tracker): Promise<boolean> {
    const event: AnnounceEvent | undefined = !t.started
      ? "started"
      : this.#completed && !t.completedSent
      ? "completed"
      : undefined;
    const logger = this.#options.logger;
    t.state = "announcing";
    let response: AnnounceResponse;
    try {
      response = await this.#send(t.url, this.#request(event, t), this.#abort.signal);
    } catch (error) {
      t.lastAnnounce = this.#now();
      if (this.#abort.signal.aborted) {
        t.state = "idle";
        return false;
      }
      this.#failed(t, error, event);
      return false;
    }
    const now = this.#now();
    t.lastAnnounce = now;
    t.state = "working";
    t.failures = 0;
    t.retryAt = 0;
    delete t.lastError;
    if (event === "started") {
      t.started = true;
      t.completedSent = this.#completed;
    } else if (event === "completed") {
      t.completedSent = true;
    }
    if (response.trackerId !== undefined) t.trackerId = response.trackerId;
    t.interval = this.#clampInterval(response.interval);
    t.minInterval = Math.min(t.interval, this.#clampInterval(response.minInterval ?? this.#minInterval));
    if (response.seeders !== undefined) t.seeders = response.seeders;
    if (response.leechers !== undefined) t.leechers = response.leechers;
    t.peersReceived += response.peers.length;
    const fields: Record<string, string | number | boolean | null> = {
      tracker: t.url,
      event: event ?? null,
      peers: response.peers.length,
      interval: t.interval,
    };
    if (response.seeders !== undefined) fields.seeders = response.seeders;
    if (response.leechers !== undefined) fields.leechers = response.leechers;
    logger.info("tracker", `Announced to ${t.url}: ${response.peers.length} peers`, fields);
    if (t.interval !== response.interval) {
      logger.warn(
        "tracker",
        `Tracker asked for an interval of ${response.interval} s: using ${t.interval} s`,
        {
          tracker: t.url,
          interval: t.interval,
        },
      );
    }
    if (response.warning !== undefined) {
      logger.warn("tracker", `Tracker warning: ${response.warning}`, {
        tracker: t.url,
        warning: response.warning,
      });
    }
    for (const issue of response.issues ?? []) {
      logger.warn("tracker", `Tracker answer: ${issue}`, { tracker: t.url, issue });
    }
    if (response.peers.length > 0) {
      try {
        this.#options.onPeers(response.peers, t.url);
      } catch (error) {
        logger.error("tracker", `onPeers threw: ${messageOf(error)}`, {
          tracker: t.url,
          error: messageOf(error),
        });
      }
    }
    return true;
  }

  #failed(t: Tracker, error: unknown, event: AnnounceEvent | undefined): void {
    const message = messageOf(error);
    const logger = this.#options.logger;
    t.lastError = message;
    if (error instanceof TrackerError && error.gone) {
      t.state = "gone";
      t.dead = true;
      logger.warn("tracker", `Tracker is gone, not using it again: ${message}`, {
        tracker: t.url,
        event: event ?? null,
        error: message,
      });
      return;
    }
    t.state = "failed";
    if (error instanceof TrackerError && !error.retryable) {
      t.dead = true;
      logger.error("tracker", `Announce failed, not retrying: ${message}`, {
        tracker: t.url,
        event: event ?? null,
        error: message,
      });
      return;
    }
    t.failures++;
    const wait = Math.min(this.#retryMax, this.#retryBase * 2 ** (t.failures - 1));
    t.retryAt = this.#now() + wait * 1000;
    logger.warn("tracker", `Announce failed: ${message}`, {
      tracker: t.url,
      event: event ?? null,
      error: message,
      failures: t.failures,
      retryIn: wait,
    });
  }

  #clampInterval(seconds: number): number {
    if (Number.isNaN(seconds)) return this.#minInterval;
    return Math.min(this.#maxInterval, Math.max(this.#minInterval, Math.round(seconds)));
  }

  #send(url: string, req: AnnounceRequest, signal: AbortSignal): Promise<AnnounceResponse> {
    if (!URL.canParse(url)) {
      return Promise.reject(new TrackerError(`Invalid tracker URL: ${url}`, { retryable: false }));
    }
    const protocol = new URL(url).protocol;
    if (protocol === "http:" || protocol === "https:") {
      const http = this.#options.http ?? {};
      const signals = http.signal === undefined ? [signal] : [signal, http.signal];
      return httpAnnounce(url, req, { ...http, signal: AbortSignal.any(signals) });
    }
    if (protocol === "udp:") {
      if (this.#udp === undefined) {
        this.#udp = new UdpTrackerClient({ logger: this.#options.logger });
        this.#ownUdp = true;
      }
      return this.#udp.announce(url, req, { signal });
    }
    return Promise.reject(
      new TrackerError(`Unsupported tracker URL scheme: ${protocol} (${url})`, { retryable: false }),
    );
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
