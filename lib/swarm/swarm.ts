/**
 * The peers of one torrent (or one metadata fetch), as a set of addresses: candidates by
 * source, whom to dial next (back-off per address, caps on connections and dials), admission
 * (connection cap, duplicates, bans, connections to ourselves), bans and connection counting.
 * What to do with a handshaken peer is its owner's: {@linkcode SwarmOptions.onPeer}.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { parseAddress, parsePeerAddress } from "../net/address.ts";
import { equalBytes } from "../net/bytes.ts";
import { dialWithEncryption } from "../peer/dial.ts";
import type { HandshakenPeer } from "../peer/handshake_read.ts";
import type { Encryption, Transport } from "../types.ts";
import type { Handshake } from "../wire/handshake.ts";
import { type Candidate, Candidates, type PeerSource } from "./candidates.ts";
import { DIAL_TIMEOUT_MS, type SwarmPolicy } from "./constants.ts";

/** What bans are kept in: a `BanList` (by IP, with smart ban) or, by default, exact addresses. */
export interface BanRecord {
  /** Whether an address is banned. */
  isBanned(address: string): boolean;
  /** Bans an address; false when it was banned already. */
  ban(address: string): boolean;
}

/** How a swarm dials (the fields its owners' options share). */
export interface DialSettings {
  /** Connection encryption plugin; absent: plaintext only. */
  readonly encryption?: Encryption | undefined;
  /** How peers are dialled. @default {tcpTransport()} */
  readonly transport?: Transport | undefined;
  /** Deadline for dialling plus handshake, in ms. @default {DIAL_TIMEOUT_MS} */
  readonly dialTimeoutMs?: number | undefined;
}

/** Options of {@linkcode Swarm}. */
export interface SwarmOptions {
  /** Caps and back-off. */
  policy: SwarmPolicy;
  /** Our 20-byte peer id (a peer with it is ourselves). */
  peerId: Uint8Array;
  /** The handshake we send. */
  handshake: () => Handshake;
  /** Where the swarm logs. */
  logger: Logger;
  /** Log category. */
  category: string;
  /** Whether the owner dials and takes peers now (false: stopped, checking, done). */
  active: () => boolean;
  /** Gets a new handshaken peer (its duplicate, banned and self cases are dropped already). */
  onPeer: (address: string, peer: HandshakenPeer, outgoing: boolean) => void;
  /** Bans. @default exact addresses */
  bans?: BanRecord;
  /** Asks a wider authority (the session) whether a dial may start. */
  admit?: ((address: string) => boolean) | undefined;
  /** Tells a wider authority a connection (or dial) opened (+1) or closed (-1). */
  countConnection?: ((delta: number, address: string) => void) | undefined;
  /** Tells a wider authority a dial started (+1) or ended (-1). */
  countDial?: ((delta: number, address: string) => void) | undefined;
  /** How peers are dialled: the owner's own options (`TorrentOptions`, `FetchMetadataOptions`). */
  dial?: DialSettings;
  /** Aborts dials in progress. */
  signal?: AbortSignal | undefined;
  /** Clock. @default {Date.now} */
  now?: () => number;
}

/** A banned set by exact address. */
class AddressBans implements BanRecord {
  readonly #set = new Set<string>();
  isBanned(address: string): boolean {
    return this.#set.has(address);
  }
  ban(address: string): boolean {
    if (this.#set.has(address)) return false;
    this.#set.add(address);
    return true;
  }
}

/**
 * One swarm's candidates, dials, admission, bans and connection count.
 *
 * @example
 * ```ts ignore
 * import { Swarm } from "./swarm.ts";
 * import { METADATA_SWARM } from "./constants.ts";
 * const swarm = new Swarm({
 *   policy: METADATA_SWARM, peerId, handshake: () => ({ infoHash, peerId, reserved }),
 *   logger, category: "metadata", active: () => true,
 *   onPeer: (address, peer) => swarm.connected(address, peer.remote.peerId, true),
 * });
 * swarm.add(["127.0.0.1:6881"], "manual");
 * ```
 */
export class Swarm {
  readonly #options: SwarmOptions;
  readonly #policy: SwarmPolicy;
  readonly #now: () => number;
  readonly #candidates: Candidates;
  readonly #bans: BanRecord;
  readonly #connecting = new Set<string>();
  /** Connected addresses, with their peer ids. */
  readonly #connected = new Map<string, Uint8Array>();
  readonly #outgoing = new Set<string>();
  readonly #tried = new Set<string>();
  readonly #handshaken = new Set<string>();

  /**
   * Creates the instance.
   *
   * @param options Policy, identity, hooks.
   */
  constructor(options: SwarmOptions) {
    this.#options = options;
    this.#policy = options.policy;
    this.#now = options.now ?? Date.now;
    this.#candidates = new Candidates(options.policy);
    this.#bans = options.bans ?? new AddressBans();
  }

  /** The candidate list. */
  get candidates(): Candidates {
    return this.#candidates;
  }

  /** Connections plus dials in progress. */
  get size(): number {
    return this.#connected.size + this.#connecting.size;
  }

  /** Dials in progress. */
  get dialing(): number {
    return this.#connecting.size;
  }

  /** Distinct addresses dialled so far. */
  get tried(): number {
    return this.#tried.size;
  }

  /** Distinct addresses that completed a handshake so far. */
  get handshaken(): number {
    return this.#handshaken.size;
  }

  /**
   * Whether an address is connected (or being dialled).
   *
   * @param address "host:port".
   * @returns True if so.
   */
  has(address: string): boolean {
    return this.#connected.has(address) || this.#connecting.has(address);
  }

  /**
   * Whether a connected peer is one we dialled.
   *
   * @param address "host:port".
   * @returns True if outgoing.
   */
  isOutgoing(address: string): boolean {
    return this.#outgoing.has(address);
  }

  /**
   * Whether an address is banned.
   *
   * @param address "host:port".
   * @returns True if banned.
   */
  isBanned(address: string): boolean {
    return this.#bans.isBanned(address);
  }

  /**
   * Bans an address and forgets it as a candidate; the owner closes its connection.
   *
   * @param address "host:port".
   * @param reason Why, for the log.
   * @returns False when it was banned already.
   */
  ban(address: string, reason: string): boolean {
    if (!this.#bans.ban(address)) return false;
    this.#candidates.delete(address);
    this.#options.logger.warn(this.#options.category, `Banned peer: ${reason}`, { peer: address });
    return true;
  }

  /**
   * Adds addresses to dial. Invalid ones throw a `PeerAddressError` for `manual` (a person's
   * typo) and are skipped for other sources; banned and known ones are skipped; at most
   * `maxCandidates` are kept. Then dials what it may.
   *
   * @param addresses "host:port" or "[v6]:port".
   * @param source Where they came from.
   * @returns How many were new.
   */
  add(addresses: Iterable<string>, source: PeerSource): number {
    let added = 0;
    for (const address of addresses) {
      try {
        if (source === "manual") parsePeerAddress(address);
        else parseAddress(address);
      } catch (error) {
        if (source === "manual") throw error;
        this.#options.logger.debug(
          this.#options.category,
          `Skipped an invalid peer address from ${source}: ${(error as Error).message}`,
        );
        continue;
      }
      if (this.#candidates.get(address) !== undefined || this.isBanned(address)) continue;
      if (this.#candidates.full) break;
      this.#candidates.add(address, source);
      added++;
    }
    this.connectMore();
    return added;
  }

  /**
   * Whether a new incoming connection from an address would be taken: not banned, not
   * connected, and a slot free.
   *
   * @param address "host:port".
   * @returns True if admitted.
   */
  admits(address: string): boolean {
    return !this.isBanned(address) && this.size < this.#policy.maxConnections;
  }

  /**
   * Takes a handshaken connection (incoming, or one of ours): drops it when it is ourselves
   * (and forgets the address), a peer id already connected (under `uniquePeerIds`), or the
   * swarm is inactive; else counts it and hands it to `onPeer`.
   *
   * @param address "host:port".
   * @param peer The handshaken connection.
   * @param outgoing Whether we dialled it.
   * @returns True if it was taken.
   */
  accept(address: string, peer: HandshakenPeer, outgoing: boolean): boolean {
    const { logger, category } = this.#options;
    if (!this.#options.active() || this.#connected.has(address)) {
      peer.duplex.close();
      return false;
    }
    if (equalBytes(peer.remote.peerId, this.#options.peerId)) {
      logger.debug(category, "Dropped a connection to ourselves", { peer: address });
      this.#candidates.delete(address);
      peer.duplex.close();
      return false;
    }
    if (this.#policy.uniquePeerIds) {
      for (const id of this.#connected.values()) {
        if (!equalBytes(id, peer.remote.peerId)) continue;
        logger.debug(category, "Dropped a duplicate connection", { peer: address });
        peer.duplex.close();
        return false;
      }
    }
    this.#connected.set(address, peer.remote.peerId);
    this.#handshaken.add(address);
    if (outgoing) this.#outgoing.add(address);
    this.#options.countConnection?.(1, address);
    const c = this.#candidates.get(address);
    if (c !== undefined && this.#policy.forgiveOnConnect) c.failures = 0;
    this.#options.onPeer(address, peer, outgoing);
    return true;
  }

  /**
   * Records that a connection taken by {@linkcode Swarm.accept} closed: its address backs off
   * (or is forgotten when `forever`).
   *
   * @param address "host:port".
   * @param forever Never dial it again.
   */
  closed(address: string, forever = false): void {
    if (!this.#connected.delete(address)) return;
    this.#outgoing.delete(address);
    this.#options.countConnection?.(-1, address);
    this.#candidates.failed(address, this.#now(), forever);
  }

  /**
   * Clears an address's back-off: a connection we closed ourselves (a pause) is not its fault,
   * and it may be dialled again at once.
   *
   * @param address "host:port" (nothing happens when it is not a candidate).
   */
  forgive(address: string): void {
    const c = this.#candidates.get(address);
    if (c === undefined) return;
    c.failures = 0;
    c.nextTry = 0;
  }

  /** Dials candidates whose back-off is over, while there is room. */
  connectMore(): void {
    if (!this.#options.active()) return;
    const now = this.#now();
    for (const c of [...this.#candidates.values()]) {
      if (this.size >= this.#policy.maxConnections) break;
      if (this.#connecting.size >= this.#policy.maxDials) break;
      if (this.has(c.address) || c.nextTry > now || this.isBanned(c.address)) continue;
      if (this.#options.admit && !this.#options.admit(c.address)) continue;
      this.#dial(c);
    }
  }

  #dial(c: Candidate): void {
    const { address } = c;
    const { logger, category } = this.#options;
    this.#connecting.add(address);
    this.#tried.add(address);
    this.#options.countConnection?.(1, address);
    this.#options.countDial?.(1, address);
    const ended = () => {
      this.#connecting.delete(address);
      this.#options.countConnection?.(-1, address);
      this.#options.countDial?.(-1, address);
    };
    dialWithEncryption(address, {
      handshake: this.#options.handshake(),
      encryption: this.#options.dial?.encryption,
      transport: this.#options.dial?.transport,
      timeoutMs: this.#options.dial?.dialTimeoutMs ?? DIAL_TIMEOUT_MS,
      ...(this.#options.signal ? { signal: this.#options.signal } : {}),
      onAttemptFailed: (attempt, error) =>
        logger.debug(category, `${attempt} connection failed: ${(error as Error).message}`, {
          peer: address,
        }),
    }).then(
      (peer) => {
        ended();
        if (this.accept(address, peer, true)) {
          logger.debug(category, "Connected", { peer: address, source: c.source });
        }
      },
      (error) => {
        ended();
        this.#candidates.failed(address, this.#now());
        logger.debug(category, `Cannot connect: ${(error as Error).message}`, { peer: address });
      },
    );
  }
}
