/**
 * BEP 11, peer exchange (`ut_pex`): tells each connected peer, at most once a minute, which
 * peers we connected to or lost since our last message, and learns peers from theirs. It is
 * an ordinary {@linkcode PeerExtension}: a torrent registers one {@linkcode UtPex} (never for
 * a private torrent) and calls {@linkcode UtPex.tick} from its timer.
 *
 * What we advertise: only peers we hold a handshaken connection with, at an address others
 * can dial: the address we dialled, or, for a peer that dialled us, its host with the
 * listening port from its extended handshake (`p`); a peer that dialled us without giving a
 * port is left out. At most 50 added and 50 dropped peers per message, never the recipient
 * itself, no empty messages; the first message carries the current peers.
 *
 * What we accept: messages of at most 8 KiB (a larger one drops the peer); of each, the
 * first 50 added and 50 dropped entries (the rest are ignored); at most 3 messages per
 * minute from one peer (more are ignored, and a peer that keeps sending them is dropped).
 *
 * @module
 */

import { decode, encode } from "../bencode.ts";
import { ProtocolError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ExtensionPeer, PeerExtension } from "../types.ts";
import { decodeCompactPeer, encodeCompactPeer, formatAddress, tryParseAddress } from "../net/address.ts";
import { concatBytes } from "../net/bytes.ts";

/** Least time between two PEX messages to one peer, in ms (BEP 11: once a minute). */
export const PEX_INTERVAL_MS = 60_000;
/** Most added (and, separately, dropped) peers in one message, sent or used (BEP 11). */
export const MAX_PEX_PEERS = 50;
/** Largest PEX message accepted; a larger one drops the peer. */
export const MAX_PEX_MESSAGE_BYTES = 8 * 1024;
/** Most PEX messages used from one peer per {@linkcode PEX_INTERVAL_MS}. */
export const MAX_PEX_MESSAGES_PER_INTERVAL = 3;
/** Messages over the rate ignored before the peer is dropped for flooding. */
const MAX_IGNORED_MESSAGES = 10;

/** `added.f` flag: the peer prefers encrypted connections. */
export const PEX_FLAG_ENCRYPTION = 0x01;
/** `added.f` flag: the peer is a seed (or upload-only). */
export const PEX_FLAG_SEED = 0x02;
/** `added.f` flag: the peer supports uTP. */
export const PEX_FLAG_UTP = 0x04;
/** `added.f` flag: the peer supports the holepunch extension. */
export const PEX_FLAG_HOLEPUNCH = 0x08;
/** `added.f` flag: the sender reached the peer by connecting to it (it accepts connections). */
export const PEX_FLAG_REACHABLE = 0x10;

/** One peer in a PEX message. */
export interface PexPeer {
  /** "a.b.c.d:port" or "[v6]:port". */
  readonly address: string;
  /** `added.f` bits (`PEX_FLAG_*`); 0 when unknown. */
  readonly flags: number;
}

/** The content of a PEX message, IPv4 and IPv6 together. */
export interface PexMessage {
  /** Peers the sender connected to since its last message. */
  readonly added: readonly PexPeer[];
  /** Peers the sender lost since its last message. */
  readonly dropped: readonly string[];
}

/** A decoded PEX message. */
export interface DecodedPexMessage extends PexMessage {
  /** Entries left out: over the cap, port 0, or addresses nobody can dial. */
  readonly ignored: number;
}

/** Options for {@linkcode decodePexMessage}. */
export interface DecodePexOptions {
  /** Largest payload accepted. @default {8192} */
  maxBytes?: number;
  /** Most added (and dropped) entries used; later ones are ignored. @default {50} */
  maxPeers?: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Encodes a PEX message payload (the bencoded dictionary after the extended message id).
 * Addresses that are not IP literals with a port are skipped.
 *
 * @example
 * ```ts
 * import { decodePexMessage, encodePexMessage, PEX_FLAG_SEED } from "./ut_pex.ts";
 * const payload = encodePexMessage({ added: [{ address: "10.0.0.2:6881", flags: PEX_FLAG_SEED }], dropped: [] });
 * console.log(decodePexMessage(payload).added); // [{ address: "10.0.0.2:6881", flags: 2 }]
 * ```
 *
 * @param message Added and dropped peers.
 * @returns The payload.
 * @throws {RangeError} when more than 50 peers are added or dropped.
 */
export function encodePexMessage(message: PexMessage): Uint8Array {
  if (message.added.length > MAX_PEX_PEERS || message.dropped.length > MAX_PEX_PEERS) {
    throw new RangeError(
      `Cannot encode a PEX message of ${message.added.length} added and ${message.dropped.length} ` +
        `dropped peers: at most ${MAX_PEX_PEERS} each`,
    );
  }
  const added4: Uint8Array[] = [], flags4: number[] = [], added6: Uint8Array[] = [], flags6: number[] = [];
  for (const peer of message.added) {
    const entry = encodeCompactPeer(peer.address);
    if (entry === null) continue;
    if (entry.length === 6) {
      added4.push(entry);
      flags4.push(peer.flags & 0xff);
    } else {
      added6.push(entry);
      flags6.push(peer.flags & 0xff);
    }
  }
  const dropped4: Uint8Array[] = [], dropped6: Uint8Array[] = [];
  for (const address of message.dropped) {
    const entry = encodeCompactPeer(address);
    if (entry !== null) (entry.length === 6 ? dropped4 : dropped6).push(entry);
  }
  return encode({
    added: concatBytes(added4),
    "added.f": Uint8Array.from(flags4),
    added6: concatBytes(added6),
    "added6.f": Uint8Array.from(flags6),
    dropped: concatBytes(dropped4),
    dropped6: concatBytes(dropped6),
  });
}

/**
 * Decodes a PEX message payload from a peer. Keys of the wrong type count as absent, unknown
 * keys are ignored, partial trailing entries are ignored; only the first `maxPeers` added and
 * dropped entries are used, and addresses nobody can dial (port 0, unspecified, multicast,
 * broadcast) are left out.
 *
 * @example
 * ```ts
 * import { decodePexMessage } from "./ut_pex.ts";
 * import { encode } from "../bencode.ts";
 * const payload = encode({ added: new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]), "added.f": new Uint8Array([0x10]) });
 * console.log(decodePexMessage(payload).added); // [{ address: "127.0.0.1:6881", flags: 16 }]
 * ```
 *
 * @param payload The bencoded dictionary.
 * @param options Size and entry caps.
 * @returns The peers, and how many entries were left out.
 * @throws {ProtocolError} when the payload is over `maxBytes`, not bencode, or not a dictionary.
 */
export function decodePexMessage(payload: Uint8Array, options: DecodePexOptions = {}): DecodedPexMessage {
  const maxBytes = options.maxBytes ?? MAX_PEX_MESSAGE_BYTES;
  const maxPeers = options.maxPeers ?? MAX_PEX_PEERS;
  if (payload.length > maxBytes) {
    throw new ProtocolError(`PEX message of ${payload.length} bytes exceeds ${maxBytes}`);
  }
  let value;
  try {
    value = decode(payload, { maxDepth: 4, maxTokens: 256, maxBytes });
  } catch (error) {
    throw new ProtocolError(`Malformed PEX message: ${(error as Error).message}`, { cause: error });
  }
  if (!(value instanceof Map)) throw new ProtocolError("PEX message is not a dictionary");
  const bytes = (key: string): Uint8Array => {
    const v = value.get(key);
    return v instanceof Uint8Array ? v : EMPTY;
  };
  let ignored = 0;
  const added: PexPeer[] = [];
  const dropped: string[] = [];
  for (const [key, flagsKey, family] of [["added", "added.f", 4], ["added6", "added6.f", 6]] as const) {
    const flags = bytes(flagsKey);
    for (const [i, address] of entries(bytes(key), family)) {
      if (address === null || added.length >= maxPeers) ignored++;
      else added.push({ address, flags: flags[i] ?? 0 });
    }
  }
  for (const [key, family] of [["dropped", 4], ["dropped6", 6]] as const) {
    for (const [, address] of entries(bytes(key), family)) {
      if (address === null || dropped.length >= maxPeers) ignored++;
      else dropped.push(address);
    }
  }
  return { added, dropped, ignored };
}

/** The whole compact entries of a list, by index, as addresses (null: nobody can dial it). */
function* entries(list: Uint8Array, family: 4 | 6): Generator<[number, string | null]> {
  const size = family === 4 ? 6 : 18;
  for (let i = 0; (i + 1) * size <= list.length; i++) {
    yield [i, entryAddress(list.subarray(i * size, (i + 1) * size))];
  }
}

/** A compact entry (6 or 18 bytes) as an address, or null when nobody can dial it. */
function entryAddress(entry: Uint8Array): string | null {
  const ip = entry.subarray(0, entry.length - 2);
  if (ip.length === 4) {
    // 0.0.0.0 dials this machine on some systems; multicast and broadcast are nobody.
    if (ip[0] === 0 || ip[0]! >= 224) return null;
  } else if (ip.every((b) => b === 0) || ip[0] === 0xff) return null; // unspecified, multicast
  return decodeCompactPeer(entry);
}

/** A peer the torrent is connected to, as {@linkcode UtPex} needs to see it. */
export interface PexConnectedPeer {
  /** "host:port" of the connection (for a peer that dialled us, its port is not a listening one). */
  readonly id: string;
  /** True when we dialled the peer: its `id` is then an address that accepts connections. */
  readonly outgoing: boolean;
  /** True when the peer has every piece. */
  readonly seed: boolean;
  /** The peer's extended handshake, for its listening port `p` (absent or empty when none). */
  readonly handshake?: ReadonlyMap<string, unknown> | undefined;
}

/**
 * The address other peers could dial a connected peer at: the address we dialled, or the
 * host of an incoming connection with the `p` port from its extended handshake.
 *
 * @example
 * ```ts
 * import { pexAddress } from "./ut_pex.ts";
 * console.log(pexAddress({ id: "10.0.0.5:6881", outgoing: true, seed: false })); // "10.0.0.5:6881"
 * console.log(pexAddress({ id: "10.0.0.7:50123", outgoing: false, seed: false, handshake: new Map([["p", 6882]]) }));
 * // "10.0.0.7:6882"
 * console.log(pexAddress({ id: "10.0.0.8:50124", outgoing: false, seed: false })); // null
 * ```
 *
 * @param peer The connected peer.
 * @returns The address, or null when it has none we know.
 */
export function pexAddress(peer: PexConnectedPeer): string | null {
  if (peer.outgoing) return peer.id;
  const p = peer.handshake?.get("p");
  if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) return null;
  const parsed = tryParseAddress(peer.id); // null: an id that is no address (a test's fake, say)
  return parsed === null ? null : formatAddress(parsed.hostname, p);
}

/** Options for {@linkcode UtPex}. */
export interface UtPexOptions {
  /** The torrent's connected peers, read when a message is due. */
  peers: () => Iterable<PexConnectedPeer>;
  /** Takes learned peer addresses (the torrent's `addPeers(addresses, "pex")`); returns how many were new. */
  addPeers: (addresses: string[]) => number;
  /** Whether exchanging peers is allowed now (e.g. false once a magnet's metadata says private). @default {() => true} */
  enabled?: () => boolean;
  /** Clock. @default {Date.now} */
  now?: () => number;
  /** Where to log (category `pex`). */
  logger?: Logger;
  /** Largest PEX message accepted; a larger one drops the peer. @default {8192} */
  maxMessageBytes?: number;
}

interface PeerState {
  lastSent: number;
  /** Addresses we told this peer about and have not dropped since. */
  readonly advertised: Set<string>;
  /** When we used its recent messages. */
  received: number[];
  ignored: number;
}

/**
 * The ut_pex extension of one torrent. Register it in the torrent's extensions and call
 * {@linkcode UtPex.tick} about once a second; it sends to each peer that supports it at
 * most once a minute.
 *
 * @example
 * ```ts
 * import { UtPex } from "./ut_pex.ts";
 * const learned: string[] = [];
 * const pex = new UtPex({
 *   peers: () => [{ id: "10.0.0.5:6881", outgoing: true, seed: true }],
 *   addPeers: (addresses) => learned.push(...addresses),
 * });
 * console.log(pex.name); // "ut_pex"
 * pex.tick(); // nothing to send yet: no peer has announced ut_pex
 * ```
 */
export class UtPex implements PeerExtension {
  /** The extension's name in the `m` dictionary. */
  readonly name = "ut_pex";
  readonly #options: UtPexOptions;
  readonly #now: () => number;
  readonly #maxBytes: number;
  readonly #states = new Map<ExtensionPeer, PeerState>();

  /**
   * Creates the extension for one torrent.
   *
   * @param options Where peers come from and go to.
   */
  constructor(options: UtPexOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#maxBytes = options.maxMessageBytes ?? MAX_PEX_MESSAGE_BYTES;
  }

  #enabled(): boolean {
    return this.#options.enabled?.() ?? true;
  }

  #state(peer: ExtensionPeer): PeerState {
    let state = this.#states.get(peer);
    if (state === undefined) {
      state = { lastSent: -Infinity, advertised: new Set(), received: [], ignored: 0 };
      this.#states.set(peer, state);
    }
    return state;
  }

  /**
   * The peer's extended handshake arrived.
   *
   * @param peer The peer.
   */
  onHandshake(peer: ExtensionPeer): void {
    this.#state(peer);
  }

  /**
   * The peer went away.
   *
   * @param peer The peer.
   */
  onClose(peer: ExtensionPeer): void {
    this.#states.delete(peer);
  }

  /**
   * A PEX message arrived: learns its added peers.
   *
   * @param peer The sender.
   * @param payload The message (valid during the call only).
   * @throws {ProtocolError} when the message is too large, malformed, or the peer floods us.
   */
  onMessage(peer: ExtensionPeer, payload: Uint8Array): void {
    if (payload.length > this.#maxBytes) {
      throw new ProtocolError(`PEX message of ${payload.length} bytes exceeds ${this.#maxBytes}`);
    }
    if (!this.#enabled()) return;
    const state = this.#state(peer);
    const now = this.#now();
    state.received = state.received.filter((t) => now - t < PEX_INTERVAL_MS);
    if (state.received.length >= MAX_PEX_MESSAGES_PER_INTERVAL) {
      if (++state.ignored > MAX_IGNORED_MESSAGES) {
        throw new ProtocolError(`Peer sent PEX messages too often: ${state.ignored} over the rate`);
      }
      this.#options.logger?.debug("pex", "Ignored a PEX message: sent too soon", { peer: peer.id });
      return;
    }
    state.received.push(now);
    const message = decodePexMessage(payload, { maxBytes: this.#maxBytes });
    const addresses = message.added.map((p) => p.address).filter((a) => a !== peer.id);
    const fresh = addresses.length > 0 ? this.#options.addPeers(addresses) : 0;
    this.#options.logger?.debug("pex", "Peers from PEX", {
      peer: peer.id,
      added: addresses.length,
      dropped: message.dropped.length,
      ignored: message.ignored,
      new: fresh,
      peers: addresses.slice(0, 10).join(","),
    });
  }

  /**
   * Sends a PEX message to every peer that supports it, whose last one is at least a
   * minute old, and that has something to learn.
   *
   * @param now The time in ms. @default the clock
   * @returns How many messages were sent.
   */
  tick(now: number = this.#now()): number {
    if (!this.#enabled() || this.#states.size === 0) return 0;
    let current: Map<string, { flags: number; id: string }> | null = null;
    let sent = 0;
    for (const [peer, state] of this.#states) {
      if (!peer.supported || now - state.lastSent < PEX_INTERVAL_MS) continue;
      current ??= this.#current();
      const added: PexPeer[] = [];
      for (const [address, { flags, id }] of current) {
        if (added.length >= MAX_PEX_PEERS) break;
        if (id !== peer.id && !state.advertised.has(address)) added.push({ address, flags });
      }
      const dropped: string[] = [];
      for (const address of state.advertised) {
        if (dropped.length >= MAX_PEX_PEERS) break;
        if (!current.has(address)) dropped.push(address);
      }
      if (added.length === 0 && dropped.length === 0) continue;
      if (!peer.send(encodePexMessage({ added, dropped }))) continue;
      for (const p of added) state.advertised.add(p.address);
      for (const address of dropped) state.advertised.delete(address);
      state.lastSent = now;
      sent++;
      this.#options.logger?.debug("pex", "Sent PEX", {
        peer: peer.id,
        added: added.length,
        dropped: dropped.length,
      });
    }
    return sent;
  }

  /** Our connected peers by the address others can dial them at. */
  #current(): Map<string, { flags: number; id: string }> {
    const current = new Map<string, { flags: number; id: string }>();
    for (const p of this.#options.peers()) {
      const address = pexAddress(p);
      if (address === null || encodeCompactPeer(address) === null) continue;
      const flags = (p.seed ? PEX_FLAG_SEED : 0) | (p.outgoing ? PEX_FLAG_REACHABLE : 0);
      current.set(address, { flags, id: p.id });
    }
    return current;
  }
}
