/**
 * The memory of the built-in tracker: which peers announced which torrents, bounded in
 * every direction (peers expire, torrents and peers are capped, the oldest are evicted
 * first), plus the address helpers and the shared context its HTTP and UDP front ends use.
 *
 * Nothing here does I/O; the clock is injected, so expiry is tested without sleeping.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { formatIp, parseIp } from "../net/address.ts";
import { equalBytes, toHex } from "../net/bytes.ts";

/** Length of an info-hash and of a peer id, in bytes. */
export const ID_LENGTH = 20;

/** An IP address as the tracker keeps it: normalised text, raw bytes and family. */
export interface PeerAddress {
  /** Canonical text: dotted quad for IPv4, compressed lower-case form for IPv6. */
  readonly ip: string;
  /** 4 bytes (IPv4) or 16 bytes (IPv6). */
  readonly bytes: Uint8Array;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/** Strips IPv6 brackets and a zone id ("[fe80::1%eth0]" → "fe80::1"). */
function unbracket(text: string): string {
  let s = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  return s;
}

/**
 * Normalises the address a packet or connection came from: IPv4-mapped IPv6 addresses
 * (`::ffff:1.2.3.4`, seen on dual-stack sockets) become plain IPv4.
 *
 * @example
 * ```ts
 * import { normalizeAddress } from "./swarm_registry.ts";
 * console.log(normalizeAddress("::ffff:127.0.0.1")?.ip); // "127.0.0.1"
 * console.log(normalizeAddress("::1")?.family); // 6
 * ```
 *
 * @param hostname The remote address as the socket reports it.
 * @returns The normalised address, or `undefined` when it cannot be parsed.
 */
export function normalizeAddress(hostname: string): PeerAddress | undefined {
  const bytes = parseIp(unbracket(hostname)) ?? undefined;
  if (bytes === undefined) return undefined;
  if (bytes.length === 16 && isV4Mapped(bytes)) {
    const v4 = bytes.slice(12);
    return { ip: formatIp(v4), bytes: v4, family: 4 };
  }
  return { ip: formatIp(bytes), bytes, family: bytes.length === 4 ? 4 : 6 };
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Turns bytes into a binary string (one char per byte), the form used as map keys.
 *
 * @example
 * ```ts
 * import { binaryString } from "./swarm_registry.ts";
 * console.log(binaryString(new Uint8Array([65, 66]))); // "AB"
 * ```
 *
 * @param bytes The bytes.
 * @returns The binary string.
 */
export function binaryString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** What a peer said in an announce, already validated by the front end. */
export interface AnnounceInput {
  /** The torrent (20 bytes). */
  readonly infoHash: Uint8Array;
  /** The announcing peer's id (20 bytes). */
  readonly peerId: Uint8Array;
  /** Where the request came from (normalised); the tracker ignores any `ip` the client claims. */
  readonly address: PeerAddress;
  /** The peer's listen port, 1 to 65535. */
  readonly port: number;
  /** True when the peer has the whole torrent (`left` is 0, or `event=completed`). */
  readonly seed: boolean;
  /** The announce event. */
  readonly event: "started" | "completed" | "stopped" | "none";
  /** Number of peers wanted (already capped by the front end). */
  readonly numwant: number;
  /** Only return peers of this family (UDP); both when absent (HTTP). */
  readonly family?: 4 | 6;
}

/** A peer handed out by {@linkcode SwarmRegistry.announce}. */
export interface RegistryPeer {
  /** Its peer id (20 bytes). */
  readonly peerId: Uint8Array;
  /** Its address. */
  readonly address: PeerAddress;
  /** Its listen port. */
  readonly port: number;
  /** The compact form: address bytes then the port, big-endian (6 or 18 bytes). */
  readonly compact: Uint8Array;
}

/** Counts of one swarm, as scrapes report them. */
export interface SwarmCounts {
  /** Seeders (BEP 48 `complete`). */
  readonly complete: number;
  /** Leechers (`incomplete`). */
  readonly incomplete: number;
  /** Completed downloads seen (`downloaded`). */
  readonly downloaded: number;
}

/** The answer to an announce: the swarm's counts and a random subset of its peers. */
export interface AnnounceResult extends SwarmCounts {
  /** Peers for the requester, never the requester itself; seeds first for a leecher. */
  readonly peers: readonly RegistryPeer[];
}

interface PeerEntry extends RegistryPeer {
  readonly key: string;
  seed: boolean;
  lastSeen: number;
  /** Index in its swarm's `seeds` or `leechers` array. */
  slot: number;
}

class Swarm {
  /** By `ip|peerId`, in order of last announce (oldest first). */
  readonly peers = new Map<string, PeerEntry>();
  readonly seeds: PeerEntry[] = [];
  readonly leechers: PeerEntry[] = [];
  downloaded = 0;
  lastActivity: number;

  constructor(now: number) {
    this.lastActivity = now;
  }

  add(entry: PeerEntry): void {
    const list = entry.seed ? this.seeds : this.leechers;
    entry.slot = list.length;
    list.push(entry);
    this.peers.set(entry.key, entry);
  }

  remove(entry: PeerEntry): void {
    const list = entry.seed ? this.seeds : this.leechers;
    const last = list.pop()!;
    if (last !== entry) {
      list[entry.slot] = last;
      last.slot = entry.slot;
    }
    this.peers.delete(entry.key);
  }

  /** Removes the least recently seen peer. */
  removeOldest(): void {
    const first = this.peers.values().next();
    if (!first.done) this.remove(first.value);
  }
}

/** Options of {@linkcode SwarmRegistry}. */
export interface SwarmRegistryOptions {
  /**
   * Seconds after its last announce at which a peer is forgotten.
   *
   * @default {3660}
   */
  peerTtlSeconds?: number;
  /**
   * Most torrents tracked at once; a new one evicts the least recently announced.
   *
   * @default {100_000}
   */
  maxTorrents?: number;
  /**
   * Most peers per torrent; a new one evicts the torrent's least recently seen peer.
   *
   * @default {5_000}
   */
  maxPeersPerTorrent?: number;
  /**
   * Most peers over all torrents; a new one evicts the oldest peer of the least recently
   * announced torrent.
   *
   * @default {1_000_000}
   */
  maxPeers?: number;
  /**
   * Milliseconds clock.
   *
   * @default {Date.now}
   */
  now?: () => number;
  /**
   * Random number source in [0, 1), for the peer subsets.
   *
   * @default {Math.random}
   */
  random?: () => number;
}

/**
 * The tracker's swarms: peers by torrent, with expiry, caps and eviction.
 *
 * @example
 * ```ts
 * import { normalizeAddress, SwarmRegistry } from "./swarm_registry.ts";
 * const registry = new SwarmRegistry();
 * const infoHash = new Uint8Array(20).fill(1);
 * const announce = (id: number, port: number, seed: boolean) =>
 *   registry.announce({
 *     infoHash,
 *     peerId: new Uint8Array(20).fill(id),
 *     address: normalizeAddress("127.0.0.1")!,
 *     port,
 *     seed,
 *     event: "started",
 *     numwant: 50,
 *   });
 * announce(1, 6881, true);
 * console.log(announce(2, 6882, false).peers.map((p) => p.port)); // [6881]
 * ```
 */
export class SwarmRegistry {
  readonly #swarms = new Map<string, Swarm>();
  readonly #ttlMs: number;
  readonly #maxTorrents: number;
  readonly #maxPeersPerTorrent: number;
  readonly #maxPeers: number;
  readonly #now: () => number;
  readonly #random: () => number;
  #peerCount = 0;

  /**
   * Creates an empty registry.
   *
   * @param options Expiry, caps and clock.
   */
  constructor(options: SwarmRegistryOptions = {}) {
    this.#ttlMs = (options.peerTtlSeconds ?? 3660) * 1000;
    this.#maxTorrents = Math.max(1, options.maxTorrents ?? 100_000);
    this.#maxPeersPerTorrent = Math.max(1, options.maxPeersPerTorrent ?? 5_000);
    this.#maxPeers = Math.max(1, options.maxPeers ?? 1_000_000);
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** Number of torrents with a swarm. */
  get torrents(): number {
    return this.#swarms.size;
  }

  /** Number of peers over all swarms. */
  get peers(): number {
    return this.#peerCount;
  }

  /**
   * Records an announce and picks peers for the requester.
   *
   * @param input The validated announce.
   * @returns The swarm's counts (after this announce) and the peers for the requester.
   */
  announce(input: AnnounceInput): AnnounceResult {
    const now = this.#now();
    const hashKey = binaryString(input.infoHash);
    let swarm = this.#swarms.get(hashKey);
    if (swarm !== undefined) {
      this.#expire(swarm, now);
      // Move to the end: the map is kept in order of last activity.
      this.#swarms.delete(hashKey);
    } else if (input.event === "stopped") {
      return { complete: 0, incomplete: 0, downloaded: 0, peers: [] };
    } else {
      while (this.#swarms.size >= this.#maxTorrents) this.#evictOldestSwarm();
      swarm = new Swarm(now);
    }
    this.#swarms.set(hashKey, swarm);
    swarm.lastActivity = now;

    const key = `${input.address.ip}|${binaryString(input.peerId)}`;
    const existing = swarm.peers.get(key);
    const wasSeed = existing?.seed;
    if (existing !== undefined) {
      swarm.remove(existing);
      this.#peerCount--;
    }
    if (input.event === "completed" && wasSeed !== true) swarm.downloaded++;

    let peers: RegistryPeer[] = [];
    if (input.event !== "stopped") {
      peers = this.#pick(swarm, input);
      while (swarm.peers.size >= this.#maxPeersPerTorrent) {
        swarm.removeOldest();
        this.#peerCount--;
      }
      while (this.#peerCount >= this.#maxPeers) this.#evictOnePeer(swarm);
      swarm.add(makeEntry(key, input, now));
      this.#peerCount++;
    } else if (swarm.peers.size === 0 && swarm.downloaded === 0) {
      this.#swarms.delete(hashKey);
    }
    return {
      complete: swarm.seeds.length,
      incomplete: swarm.leechers.length,
      downloaded: swarm.downloaded,
      peers,
    };
  }

  /**
   * The counts of one torrent (peers past their lifetime are dropped first).
   *
   * @param infoHash The torrent (20 bytes).
   * @returns Its counts, or `undefined` when no peer announced it.
   */
  scrape(infoHash: Uint8Array): SwarmCounts | undefined {
    const swarm = this.#swarms.get(binaryString(infoHash));
    if (swarm === undefined) return undefined;
    this.#expire(swarm, this.#now());
    return { complete: swarm.seeds.length, incomplete: swarm.leechers.length, downloaded: swarm.downloaded };
  }

  /**
   * Lists tracked info-hashes, most recently announced last.
   *
   * @param limit The most to return.
   * @returns Up to `limit` info-hashes (copies).
   */
  infoHashes(limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const key of this.#swarms.keys()) {
      if (out.length >= limit) break;
      const bytes = new Uint8Array(key.length);
      for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
      out.push(bytes);
    }
    return out;
  }

  /**
   * Forgets every peer past its lifetime, and every swarm left empty for a lifetime.
   *
   * @returns The number of peers removed.
   */
  sweep(): number {
    const now = this.#now();
    const before = this.#peerCount;
    for (const [key, swarm] of this.#swarms) {
      this.#expire(swarm, now);
      if (swarm.peers.size === 0 && now - swarm.lastActivity >= this.#ttlMs) this.#swarms.delete(key);
    }
    return before - this.#peerCount;
  }

  /** Removes expired peers from the front of a swarm (its peers are in order of last announce). */
  #expire(swarm: Swarm, now: number): void {
    for (const entry of swarm.peers.values()) {
      if (now - entry.lastSeen < this.#ttlMs) break;
      swarm.remove(entry);
      this.#peerCount--;
    }
  }

  #evictOldestSwarm(): void {
    const first = this.#swarms.entries().next();
    if (first.done) return;
    const [key, swarm] = first.value;
    this.#peerCount -= swarm.peers.size;
    this.#swarms.delete(key);
  }

  /** Evicts the oldest peer of the least recently active swarm that has peers. */
  #evictOnePeer(fallback: Swarm): void {
    for (const swarm of this.#swarms.values()) {
      if (swarm.peers.size > 0) {
        swarm.removeOldest();
        this.#peerCount--;
        return;
      }
    }
    if (fallback.peers.size > 0) {
      fallback.removeOldest();
      this.#peerCount--;
    }
  }

  /** A random subset of the swarm: seeds first for a leecher, only leechers for a seed. */
  #pick(swarm: Swarm, input: AnnounceInput): RegistryPeer[] {
    const out: RegistryPeer[] = [];
    if (input.numwant <= 0) return out;
    const requesterIp = input.address.ip;
    const accept = (p: PeerEntry): boolean =>
      (input.family === undefined || p.address.family === input.family) &&
      !(p.address.ip === requesterIp && (p.port === input.port || equalBytes(p.peerId, input.peerId)));
    if (!input.seed) this.#sample(swarm.seeds, input.numwant, accept, out);
    this.#sample(swarm.leechers, input.numwant, accept, out);
    return out;
  }

  /** Sparse Fisher-Yates: visits `list` in random order until `out` holds `want` entries. */
  #sample(list: PeerEntry[], want: number, accept: (p: PeerEntry) => boolean, out: RegistryPeer[]): void {
    const n = list.length;
    const moved = new Map<number, number>();
    for (let i = 0; i < n && out.length < want; i++) {
      const j = i + Math.floor(this.#random() * (n - i));
      const chosen = moved.get(j) ?? j;
      moved.set(j, moved.get(i) ?? i);
      const entry = list[chosen]!;
      if (accept(entry)) out.push(entry);
    }
  }
}

function makeEntry(key: string, input: AnnounceInput, now: number): PeerEntry {
  const addr = input.address.bytes;
  const compact = new Uint8Array(addr.length + 2);
  compact.set(addr);
  compact[addr.length] = input.port >> 8;
  compact[addr.length + 1] = input.port & 0xff;
  return {
    key,
    peerId: input.peerId.slice(),
    address: { ip: input.address.ip, bytes: addr.slice(), family: input.address.family },
    port: input.port,
    compact,
    seed: input.seed,
    lastSeen: now,
    slot: 0,
  };
}

/** Mutable counters the front ends share. */
export interface TrackerCounters {
  /** Announces answered with peers (HTTP and UDP). */
  announces: number;
  /** Scrapes answered. */
  scrapes: number;
  /** Requests refused with a failure reason, an error packet or an HTTP error status. */
  errors: number;
  /** UDP packets dropped without a reply (malformed or over the rate limit). */
  dropped: number;
}

/** What the HTTP and UDP front ends share: the registry, the policy and the counters. */
export interface TrackerContext {
  /** The swarms. */
  readonly registry: SwarmRegistry;
  /** Allowed info-hashes as lower-case hex, or `undefined` for an open tracker. */
  readonly allowList: ReadonlySet<string> | undefined;
  /** Announce interval in seconds. */
  readonly interval: number;
  /** Minimum announce interval in seconds. */
  readonly minInterval: number;
  /** Peers returned when the client does not say how many it wants. */
  readonly defaultNumwant: number;
  /** Most peers returned in one answer. */
  readonly maxNumwant: number;
  /** Counters. */
  readonly counters: TrackerCounters;
  /** Where to log, if anywhere. */
  readonly logger: Logger | undefined;
  /** Milliseconds clock. */
  readonly now: () => number;
}

/** Log category of the built-in tracker. */
export const LOG_CATEGORY = "tracker-server";

/**
 * Tells whether the tracker serves a torrent.
 *
 * @example
 * ```ts
 * import { isAllowed } from "./swarm_registry.ts";
 * console.log(isAllowed(undefined, new Uint8Array(20))); // true (open tracker)
 * console.log(isAllowed(new Set(["ab".repeat(20)]), new Uint8Array(20))); // false
 * ```
 *
 * @param allowList Allowed info-hashes (lower-case hex), or `undefined` for all.
 * @param infoHash The torrent.
 * @returns Whether announces and scrapes of it are answered.
 */
export function isAllowed(allowList: ReadonlySet<string> | undefined, infoHash: Uint8Array): boolean {
  return allowList === undefined || allowList.has(toHex(infoHash));
}
