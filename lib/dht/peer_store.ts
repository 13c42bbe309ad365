/**
 * Peers announced to us with `announce_peer`, per info-hash, with caps and expiry.
 *
 * Caps keep a flood from using memory: at most `maxInfoHashes` torrents, `maxPeersPerHash`
 * peers per torrent (a full torrent drops its oldest announce for a new one), and at most
 * `maxHashesPerIp` torrents announced from one IP address. A new torrent is refused when the
 * store is full (after expired entries are purged), so a flood cannot push out what is there.
 * An announce lives `ttlMs` (30 minutes) unless renewed.
 *
 * @module
 */

import { hostOf } from "../net/address.ts";

/** Options for {@linkcode PeerStore}. */
export interface PeerStoreOptions {
  /** Most info-hashes stored. @default {2000} */
  maxInfoHashes?: number;
  /** Most peers per info-hash. @default {200} */
  maxPeersPerHash?: number;
  /** Most info-hashes one IP address may have announced at a time. @default {64} */
  maxHashesPerIp?: number;
  /** Lifetime of an announce in ms. @default {30 * 60_000} */
  ttlMs?: number;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/** Why {@linkcode PeerStore.add} refused an announce (or `"stored"`). */
export type StoreOutcome = "stored" | "store-full" | "ip-limit";

/**
 * Announced peers per info-hash.
 *
 * @example
 * ```ts
 * import { PeerStore } from "./peer_store.ts";
 * const store = new PeerStore();
 * store.add("aa".repeat(20), "10.0.0.1:6881");
 * console.log(store.get("aa".repeat(20), 50)); // ["10.0.0.1:6881"]
 * ```
 */
export class PeerStore {
  readonly #maxHashes: number;
  readonly #maxPeers: number;
  readonly #maxPerIp: number;
  readonly #ttl: number;
  readonly #now: () => number;
  /** info-hash hex → peer address → expiry (ms); insertion order is announce order. */
  readonly #hashes = new Map<string, Map<string, number>>();
  /** IP → info-hashes it has a live announce in. */
  readonly #byIp = new Map<string, Set<string>>();

  /**
   * Creates an empty store.
   *
   * @param options Caps, lifetime and clock.
   */
  constructor(options: PeerStoreOptions = {}) {
    this.#maxHashes = options.maxInfoHashes ?? 2000;
    this.#maxPeers = options.maxPeersPerHash ?? 200;
    this.#maxPerIp = options.maxHashesPerIp ?? 64;
    this.#ttl = options.ttlMs ?? 30 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Info-hashes with at least one live peer (expired ones may still count until purged). */
  get infoHashes(): number {
    return this.#hashes.size;
  }

  /** Peers stored, all info-hashes together. */
  get peers(): number {
    let n = 0;
    for (const peers of this.#hashes.values()) n += peers.size;
    return n;
  }

  /**
   * Stores or renews an announce.
   *
   * @param infoHash Info-hash as hex.
   * @param address The peer, `"a.b.c.d:port"` (IP from the packet's source).
   * @returns What happened.
   */
  add(infoHash: string, address: string): StoreOutcome {
    const now = this.#now();
    const ip = hostOf(address);
    let peers = this.#hashes.get(infoHash);
    const ipHashes = this.#byIp.get(ip);
    if (!ipHashes?.has(infoHash) && (ipHashes?.size ?? 0) >= this.#maxPerIp) {
      this.purge();
      if ((this.#byIp.get(ip)?.size ?? 0) >= this.#maxPerIp) return "ip-limit";
    }
    if (peers === undefined) {
      if (this.#hashes.size >= this.#maxHashes) {
        this.purge();
        if (this.#hashes.size >= this.#maxHashes) return "store-full";
      }
      peers = new Map();
      this.#hashes.set(infoHash, peers);
    }
    peers.delete(address);
    peers.set(address, now + this.#ttl);
    while (peers.size > this.#maxPeers) {
      const oldest = peers.keys().next().value!;
      peers.delete(oldest);
      this.#forgetIp(oldest, infoHash, peers);
    }
    let set = this.#byIp.get(ip);
    if (set === undefined) this.#byIp.set(ip, set = new Set());
    set.add(infoHash);
    return "stored";
  }

  /**
   * Live peers of an info-hash, a random sample when there are more than `max`.
   *
   * @param infoHash Info-hash as hex.
   * @param max Most peers returned.
   * @returns `"a.b.c.d:port"` addresses.
   */
  get(infoHash: string, max: number): string[] {
    const peers = this.#hashes.get(infoHash);
    if (peers === undefined) return [];
    const now = this.#now();
    const live: string[] = [];
    for (const [address, expires] of peers) if (expires > now) live.push(address);
    for (let i = live.length - 1; i > 0 && live.length > max; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    return live.slice(0, max);
  }

  /** Drops expired announces and empty info-hashes. */
  purge(): void {
    const now = this.#now();
    for (const [hash, peers] of this.#hashes) {
      for (const [address, expires] of peers) {
        if (expires > now) continue;
        peers.delete(address);
        this.#forgetIp(address, hash, peers);
      }
      if (peers.size === 0) this.#hashes.delete(hash);
    }
  }

  /** An announce was removed: forget the IP's membership if it has no other port there. */
  #forgetIp(address: string, hash: string, peers: Map<string, number>): void {
    const ip = hostOf(address);
    for (const other of peers.keys()) if (hostOf(other) === ip) return;
    const set = this.#byIp.get(ip);
    set?.delete(hash);
    if (set?.size === 0) this.#byIp.delete(ip);
  }
}
