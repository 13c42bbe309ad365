/**
 * The tiers of an announcer (BEP 12): the trackers of each tier, deduplicated across tiers
 * and shuffled once, with the state the announcer keeps per tracker and per tier.
 *
 * @module
 */

/** What `Announcer.status()` (announcer.ts) tells about one tracker. */
export interface TrackerStatus {
  /** The announce URL. */
  url: string;
  /** Index of its tier (0 first). */
  tier: number;
  /**
   * `idle` (not tried yet, or standing by behind a working tracker of its tier),
   * `announcing`, `working` (its last announce succeeded), `failed` (its last announce
   * failed; retried after a backoff, or never when the URL cannot be used), `gone`
   * (it answered HTTP 410; never used again).
   */
  state: "idle" | "announcing" | "working" | "failed" | "gone";
  /** When its last announce attempt ended (ms since the epoch, from `now`). */
  lastAnnounce?: number;
  /** When it will be announced to next, if scheduled. */
  nextAnnounce?: number;
  /** Peers received from it in total. */
  peersReceived: number;
  /** The error of its last announce, if that failed. */
  lastError?: string;
  /** Seeders, as its last answer said. */
  seeders?: number;
  /** Leechers, as its last answer said. */
  leechers?: number;
}

/** One tracker of a tier and what the announcer knows of it. */
export interface Tracker {
  url: string;
  tier: number;
  state: TrackerStatus["state"];
  lastAnnounce?: number;
  peersReceived: number;
  lastError?: string;
  seeders?: number;
  leechers?: number;
  /** Failed announces in a row. */
  failures: number;
  /** Not before this time after failures (ms). */
  retryAt: number;
  /** Never used again (gone, or an unusable URL). */
  dead: boolean;
  /** A `started` announce succeeded. */
  started: boolean;
  /** A `completed` announce succeeded (or `started` was sent once complete). */
  completedSent: boolean;
  trackerId?: string;
  /** Clamped interval and min interval of its last answer, in seconds. */
  interval: number;
  minInterval: number;
}

/** One tier: its trackers in the order they are tried, and its schedule. */
export interface Tier {
  index: number;
  trackers: Tracker[];
  busy: boolean;
  /** announceNow() or completed() came while busy: look again when the round ends. */
  wanted: "peers" | "completed" | undefined;
  timer: unknown;
  nextAt?: number;
}

/**
 * Builds the tiers from the announce list: blank and repeated URLs are dropped, and empty
 * tiers with them; each tier is shuffled once with `random` (Fisher-Yates).
 *
 * @example
 * ```ts
 * import { buildTiers } from "./announce_tiers.ts";
 * const tiers = buildTiers([["http://a/announce", " http://a/announce "], []], Math.random, 3600, 60);
 * console.log(tiers.length, tiers[0]?.trackers.length); // 1 1
 * ```
 *
 * @param urls Tracker URLs by tier.
 * @param random Random source in [0, 1).
 * @param maxInterval Interval until a tracker says otherwise, in seconds.
 * @param minInterval Least interval, in seconds.
 * @returns The tiers, in order.
 */
export function buildTiers(
  urls: readonly (readonly string[])[],
  random: () => number,
  maxInterval: number,
  minInterval: number,
): Tier[] {
  const seen = new Set<string>();
  const tiers: Tier[] = [];
  for (const tierUrls of urls) {
    const trackers: Tracker[] = [];
    for (const raw of tierUrls) {
      const url = raw.trim();
      if (url === "" || seen.has(url)) continue;
      seen.add(url);
      trackers.push({
        url,
        tier: tiers.length,
        state: "idle",
        peersReceived: 0,
        failures: 0,
        retryAt: 0,
        dead: false,
        started: false,
        completedSent: false,
        interval: maxInterval,
        minInterval,
      });
    }
    if (trackers.length === 0) continue;
    for (let i = trackers.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [trackers[i], trackers[j]] = [trackers[j]!, trackers[i]!];
    }
    tiers.push({ index: tiers.length, trackers, busy: false, wanted: undefined, timer: undefined });
  }
  return tiers;
}
