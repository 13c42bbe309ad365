/**
 * The DHT as a peer source for one torrent: a lookup (with an announce of our port) when the
 * torrent starts, then every `intervalMs` (5 minutes), or every `shortIntervalMs` (1 minute)
 * while the torrent is short of peers. Found peers go to `onPeers`; each lookup is logged
 * (category `dht`, fields `nodes`, `peers`, `new`, `queried`, `responded`, `announced`, `ms`).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { DhtLookupOptions, DhtLookupResult } from "./node.ts";
import { toHex } from "../net/bytes.ts";

/** The part of a {@linkcode DhtNode} a peer source uses. */
export interface DhtLookupService {
  /** Nodes in the routing table. */
  readonly nodeCount: number;
  /** Runs a lookup. */
  lookup(infoHash: Uint8Array, options?: DhtLookupOptions): Promise<DhtLookupResult>;
}

/** Options for {@linkcode DhtPeerSource}. */
export interface DhtPeerSourceOptions {
  /** The DHT node. */
  node: DhtLookupService;
  /** The torrent's info-hash. */
  infoHash: Uint8Array;
  /** Our TCP listening port, announced to the DHT (0: look up only). */
  port: () => number;
  /** Receives the peers of each lookup; returns how many were new to the torrent. */
  onPeers: (peers: string[]) => number;
  /** True while the torrent wants more peers: lookups then come every `shortIntervalMs`. @default {() => false} */
  wantsPeers?: () => boolean;
  /** Logger (category `dht`). */
  logger?: Logger;
  /** Time between lookups, in ms. @default {5 * 60_000} */
  intervalMs?: number;
  /** Time between lookups while short of peers, in ms. @default {60_000} */
  shortIntervalMs?: number;
}

/** What a {@linkcode DhtPeerSource} has done. */
export interface DhtPeerSourceStatus {
  /** Lookups finished. */
  lookups: number;
  /** Peers the last lookup found. */
  lastPeers: number;
  /** Distinct peers found so far. */
  peersFound: number;
  /** A lookup is running. */
  running: boolean;
}

/**
 * Periodic DHT lookups for one torrent.
 *
 * @example
 * ```ts ignore
 * const source = new DhtPeerSource({
 *   node, infoHash: metainfo.infoHash, port: () => session.port,
 *   onPeers: (peers) => torrent.addPeers(peers, "dht"),
 * });
 * source.start();
 * await source.stop();
 * ```
 */
export class DhtPeerSource {
  readonly #options: DhtPeerSourceOptions;
  readonly #log: Logger | undefined;
  readonly #abort = new AbortController();
  readonly #seen = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | null = null;
  #lookups = 0;
  #lastPeers = 0;
  #stopped = false;

  /**
   * Creates the source (call {@linkcode DhtPeerSource.start}).
   *
   * @param options Node, torrent, schedule.
   */
  constructor(options: DhtPeerSourceOptions) {
    this.#options = options;
    this.#log = options.logger?.child({ torrent: toHex(options.infoHash).slice(0, 12) });
  }

  /** What it has done so far. */
  status(): DhtPeerSourceStatus {
    return {
      lookups: this.#lookups,
      lastPeers: this.#lastPeers,
      peersFound: this.#seen.size,
      running: this.#running !== null,
    };
  }

  /** Starts the first lookup now. */
  start(): void {
    this.lookupNow();
  }

  /** Runs a lookup now, unless one is running. */
  lookupNow(): void {
    if (this.#stopped || this.#running !== null) return;
    clearTimeout(this.#timer);
    this.#running = this.#lookup().finally(() => {
      this.#running = null;
      this.#schedule();
    });
  }

  async #lookup(): Promise<void> {
    const port = this.#options.port();
    let result: DhtLookupResult;
    try {
      result = await this.#options.node.lookup(this.#options.infoHash, {
        signal: this.#abort.signal,
        ...(port > 0 ? { announcePort: port } : {}),
      });
    } catch (error) {
      this.#log?.warn("dht", `DHT lookup failed: ${(error as Error).message}`);
      return;
    }
    if (this.#stopped) return;
    this.#lookups++;
    this.#lastPeers = result.peers.length;
    for (const peer of result.peers) if (this.#seen.size < 10_000) this.#seen.add(peer);
    const added = result.peers.length > 0 ? this.#options.onPeers(result.peers) : 0;
    this.#log?.info("dht", "DHT lookup done", {
      nodes: this.#options.node.nodeCount,
      peers: result.peers.length,
      new: added,
      queried: result.queried,
      responded: result.responded,
      announced: result.announced,
      ms: result.ms,
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    const short = this.#options.wantsPeers?.() ?? false;
    const ms = short ? this.#options.shortIntervalMs ?? 60_000 : this.#options.intervalMs ?? 5 * 60_000;
    this.#timer = setTimeout(() => this.lookupNow(), ms);
  }

  /** Stops: no more lookups; a running one is aborted and awaited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running;
  }
}

/**
 * Runs lookups until one finds peers (for a magnet link with nothing else to start from),
 * waiting `retryMs` between tries.
 *
 * @example
 * ```ts ignore
 * const peers = await findPeers(node, link.infoHash, { signal: AbortSignal.timeout(60_000) });
 * ```
 *
 * @param node The DHT node.
 * @param infoHash The info-hash.
 * @param options Cancellation, retry pause, logger.
 * @returns The peers of the first lookup that found some (empty if aborted first).
 */
export async function findPeers(
  node: DhtLookupService,
  infoHash: Uint8Array,
  options: { signal?: AbortSignal; retryMs?: number; logger?: Logger } = {},
): Promise<string[]> {
  const signal = options.signal;
  while (!signal?.aborted) {
    const result = await node.lookup(infoHash, signal ? { signal } : {});
    options.logger?.info("dht", "DHT lookup done", {
      torrent: toHex(infoHash).slice(0, 12),
      nodes: node.nodeCount,
      peers: result.peers.length,
      queried: result.queried,
      responded: result.responded,
      ms: result.ms,
    });
    if (result.peers.length > 0) return result.peers;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, options.retryMs ?? 5_000);
      signal?.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      }
    });
  }
  return [];
}
