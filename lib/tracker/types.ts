/**
 * Value types shared by the tracker clients (HTTP, UDP) and the announcer, and the
 * {@linkcode TrackerError} they throw.
 *
 * @module
 */

import { ShoalError } from "../errors.ts";

/** The `event` of an announce: `started` first, `completed` once when the download finishes, `stopped` at shutdown. */
export type AnnounceEvent = "started" | "completed" | "stopped";

/** What we tell a tracker in one announce. */
export interface AnnounceRequest {
  /** The 20-byte info-hash. */
  infoHash: Uint8Array;
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** The TCP port we accept peers on. */
  port: number;
  /** Bytes uploaded since the `started` event. */
  uploaded: number;
  /** Bytes downloaded since the `started` event. */
  downloaded: number;
  /** Bytes still needed to complete the torrent. */
  left: number;
  /** The event, if any (none on regular announces). */
  event?: AnnounceEvent;
  /** How many peers we want. @default {the tracker's default (HTTP), -1 (UDP)} */
  numwant?: number;
  /** A random 32-bit value that identifies us across IP changes (sent as 8 hex digits over HTTP). */
  key: number;
  /** The `tracker id` an HTTP tracker gave in an earlier answer, sent back as `trackerid`. */
  trackerId?: string;
}

/**
 * A tracker's answer to an announce. Intervals are what the tracker sent, *not* clamped
 * (they can be 0, negative or huge): the announcer clamps them.
 */
export interface AnnounceResponse {
  /** Seconds the tracker wants between regular announces, as sent. */
  interval: number;
  /** Seconds under which the tracker does not want to be announced to (`min interval`), as sent. */
  minInterval?: number;
  /** The `tracker id` to send back in later announces (HTTP only). */
  trackerId?: string;
  /** Peers with the whole torrent (`complete`), when the tracker says. */
  seeders?: number;
  /** Peers still downloading (`incomplete`), when the tracker says. */
  leechers?: number;
  /** Peers as `"host:port"` or `"[v6]:port"`: deduplicated, capped, port 0 dropped. */
  peers: string[];
  /** The tracker's `warning message`: the announce worked, but the tracker says something is off. */
  warning?: string;
  /**
   * Problems in the answer that the client worked around, each a sentence: a compact
   * list whose length is not a multiple of the entry size (whole entries are used, the
   * rest ignored), malformed dictionary peers skipped, a peer list cut at the cap, a
   * missing interval. The announcer logs each as a warning.
   */
  issues?: string[];
}

/** One torrent's counts in a scrape answer. */
export interface ScrapeEntry {
  /** Peers with the whole torrent (`complete`). */
  seeders: number;
  /** How many times the torrent was downloaded to the end (`downloaded`). */
  completed: number;
  /** Peers still downloading (`incomplete`). */
  leechers: number;
}

/** Options common to the tracker clients' calls. */
export interface TrackerClientOptions {
  /** Give up after this many milliseconds. @default {15000} */
  timeoutMs?: number;
  /** Aborts the call; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options for {@linkcode TrackerError}. */
export interface TrackerErrorOptions extends ErrorOptions {
  /** Whether trying again later may work. @default {true} */
  retryable?: boolean;
  /** Whether the tracker said it is gone for good (HTTP 410). @default {false} */
  gone?: boolean;
}

/**
 * Thrown when a tracker cannot be reached, refuses an announce (`failure reason`, UDP
 * error action) or answers something unusable. `retryable` says whether announcing
 * again later (with backoff) may work; `gone` is set for HTTP 410, after which the
 * announcer stops using that tracker.
 *
 * @example
 * ```ts
 * import { TrackerError } from "./types.ts";
 * const e = new TrackerError("Tracker answered HTTP 410 Gone", { retryable: false, gone: true });
 * console.log(e.code, e.retryable, e.gone); // "TRACKER" false true
 * ```
 */
export class TrackerError extends ShoalError {
  /** Whether trying again later may work. */
  readonly retryable: boolean;
  /** Whether the tracker said it is gone for good (HTTP 410). */
  readonly gone: boolean;

  /**
   * Creates the instance.
   *
   * @param message What went wrong, starting with a capital, no final period.
   * @param options `retryable`, `gone` and `cause`.
   */
  constructor(message: string, options: TrackerErrorOptions = {}) {
    super("TRACKER", message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? true;
    this.gone = options.gone ?? false;
  }
}
