/**
 * The numbers of a swarm, in one place: how many addresses are kept, how long a failed
 * address waits before it is dialled again, when it is given up on, how many connections a
 * swarm holds. Each user of {@linkcode Swarm} picks a {@linkcode SwarmPolicy}: the download and
 * seed path ({@linkcode TORRENT_SWARM}) and the metadata fetch ({@linkcode METADATA_SWARM}).
 *
 * @module
 */

/** How a swarm keeps and retries its peers. */
export interface SwarmPolicy {
  /** Most peer addresses kept to try, from all sources together. */
  readonly maxCandidates: number;
  /** Wait after the first failure of an address, in ms; doubled after each further one. */
  readonly retryBaseMs: number;
  /** Longest wait between two dials of one address, in ms. */
  readonly retryMaxMs: number;
  /** Failures (failed dials and dropped connections) after which an address is forgotten. */
  readonly maxFailures: number;
  /** Most connections at once, dials in progress included. */
  readonly maxConnections: number;
  /** Most dials in progress at once (on top of `maxConnections`). */
  readonly maxDials: number;
  /** A connection that completes its handshake clears its address's failures. */
  readonly forgiveOnConnect: boolean;
  /** A second connection with a peer id already connected is dropped. */
  readonly uniquePeerIds: boolean;
}

/**
 * Deadline for dialling plus the BitTorrent handshake, in ms (both policies' default).
 *
 * @example
 * ```ts
 * import { DIAL_TIMEOUT_MS } from "./constants.ts";
 * console.log(DIAL_TIMEOUT_MS); // 10000
 * ```
 */
export const DIAL_TIMEOUT_MS = 10_000;

/**
 * The download and seed path: many addresses, slow retries (a peer that failed is probably
 * gone), 50 connections.
 *
 * @example
 * ```ts
 * import { TORRENT_SWARM } from "./constants.ts";
 * console.log(TORRENT_SWARM.maxConnections); // 50
 * ```
 */
export const TORRENT_SWARM: SwarmPolicy = Object.freeze({
  maxCandidates: 2000,
  retryBaseMs: 5_000,
  retryMaxMs: 300_000,
  maxFailures: 8,
  maxConnections: 50,
  maxDials: Infinity,
  forgiveOnConnect: true,
  uniquePeerIds: true,
});

/**
 * The metadata fetch: fewer addresses and connections, quick retries (the fetch is short and
 * any peer with the metadata will do).
 *
 * @example
 * ```ts
 * import { METADATA_SWARM } from "./constants.ts";
 * console.log(METADATA_SWARM.maxConnections); // 8
 * ```
 */
export const METADATA_SWARM: SwarmPolicy = Object.freeze({
  maxCandidates: 500,
  retryBaseMs: 2_000,
  retryMaxMs: 60_000,
  maxFailures: 6,
  maxConnections: 8,
  maxDials: Infinity,
  forgiveOnConnect: false,
  uniquePeerIds: false,
});
