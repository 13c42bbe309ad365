/**
 * The UDP front end of the built-in tracker (BEP 15): connect, announce, scrape and error
 * packets, one packet in, at most one packet out.
 *
 * Connection ids are stateless: the first 8 bytes of HMAC-SHA1 over the client's address
 * and a one-minute time bucket, keyed with a random secret; the current and previous
 * buckets are accepted, so an id lives one to two minutes and costs no memory. Replies to
 * addresses that have not proven themselves with a valid connection id (connect replies and
 * "invalid connection id" errors) are rate-limited per source address and never larger
 * than the request plus a few bytes, so the tracker cannot be used to amplify traffic.
 * Every reply is bounded in size; packets too short to carry a transaction id are dropped.
 *
 * @module
 */

import { createHmac } from "node:crypto";
import {
  type AnnounceInput,
  ID_LENGTH,
  isAllowed,
  LOG_CATEGORY,
  normalizeAddress,
  type PeerAddress,
  type TrackerContext,
} from "./swarm_registry.ts";
import { toHex } from "../net/bytes.ts";
import * as bep15 from "./udp_protocol.ts";

const ANNOUNCE_LENGTH = 98;
const BUCKET_MS = 60_000;
const EVENTS = ["none", "completed", "started", "stopped"] as const;

/** Options of {@linkcode UdpTrackerHandler}. */
export interface UdpTrackerHandlerOptions {
  /**
   * Key of the connection-id HMAC; random when absent (ids then die with the process).
   *
   * @default {20 random bytes}
   */
  secret?: Uint8Array;
  /**
   * Largest reply in bytes; announce answers carry fewer peers to fit (1200 keeps IPv6
   * replies under the minimum IPv6 MTU).
   *
   * @default {1200}
   */
  maxReplyBytes?: number;
  /**
   * Unverified replies (connect answers, "invalid connection id" errors) allowed per
   * source address and second.
   *
   * @default {50}
   */
  repliesPerSecond?: number;
  /**
   * Burst of unverified replies a source address may get at once.
   *
   * @default {200}
   */
  replyBurst?: number;
  /**
   * Most source addresses whose rate is tracked; the least recently seen are forgotten.
   *
   * @default {10_000}
   */
  maxRateEntries?: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * Answers BEP 15 packets. Pure packet-in, packet-out: the socket lives in the server.
 *
 * @example
 * ```ts
 * import { UdpTrackerHandler } from "./server_udp.ts";
 * import { SwarmRegistry } from "./swarm_registry.ts";
 * const handler = new UdpTrackerHandler({
 *   registry: new SwarmRegistry(),
 *   allowList: undefined,
 *   interval: 1800,
 *   minInterval: 60,
 *   defaultNumwant: 50,
 *   maxNumwant: 200,
 *   counters: { announces: 0, scrapes: 0, errors: 0, dropped: 0 },
 *   logger: undefined,
 *   now: Date.now,
 * });
 * const connect = new Uint8Array(16);
 * new DataView(connect.buffer).setBigUint64(0, 0x41727101980n);
 * const reply = handler.handle(connect, { transport: "udp", hostname: "127.0.0.1", port: 6881 });
 * console.log(reply?.length); // 16
 * ```
 */
export class UdpTrackerHandler {
  readonly #ctx: TrackerContext;
  readonly #secret: Uint8Array;
  readonly #maxReply: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxRateEntries: number;
  readonly #buckets = new Map<string, Bucket>();

  /**
   * Creates the handler.
   *
   * @param context Registry, policy, counters and clock.
   * @param options Secret, reply size and rate limits.
   */
  constructor(context: TrackerContext, options: UdpTrackerHandlerOptions = {}) {
    this.#ctx = context;
    this.#secret = options.secret?.slice() ?? crypto.getRandomValues(new Uint8Array(20));
    this.#maxReply = Math.max(64, options.maxReplyBytes ?? 1200);
    this.#rate = options.repliesPerSecond ?? 50;
    this.#burst = options.replyBurst ?? 200;
    this.#maxRateEntries = Math.max(1, options.maxRateEntries ?? 10_000);
  }

  /**
   * Handles one datagram.
   *
   * @param packet The datagram's bytes.
   * @param from Where it came from.
   * @returns The reply to send back to `from`, or `undefined` to send nothing.
   */
  handle(packet: Uint8Array, from: Deno.NetAddr): Uint8Array | undefined {
    const ctx = this.#ctx;
    const address = normalizeAddress(from.hostname);
    if (packet.length < 16 || address === undefined) return this.#drop();
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    const action = view.getUint32(8);
    const transaction = packet.subarray(12, 16);
    if (action === bep15.ACTION_CONNECT) {
      if (view.getBigUint64(0) !== bep15.PROTOCOL_ID) return this.#drop();
      if (!this.#take(address.ip)) return this.#drop();
      const reply = new Uint8Array(16);
      new DataView(reply.buffer).setUint32(0, bep15.ACTION_CONNECT);
      reply.set(transaction, 4);
      reply.set(this.#connectionId(address.ip, Math.floor(ctx.now() / BUCKET_MS)), 8);
      return reply;
    }
    if (!this.#validConnection(packet.subarray(0, 8), address.ip)) {
      if (!this.#take(address.ip)) return this.#drop();
      return this.#error(transaction, "Invalid connection id");
    }
    if (action === bep15.ACTION_ANNOUNCE) return this.#announce(packet, view, transaction, address);
    if (action === bep15.ACTION_SCRAPE) return this.#scrape(packet, transaction);
    return this.#error(transaction, "Unknown action");
  }

  #announce(packet: Uint8Array, view: DataView, transaction: Uint8Array, address: PeerAddress): Uint8Array {
    const ctx = this.#ctx;
    if (packet.length < ANNOUNCE_LENGTH) return this.#error(transaction, "Malformed announce: too short");
    const infoHash = packet.slice(16, 16 + ID_LENGTH);
    const peerId = packet.slice(36, 36 + ID_LENGTH);
    const left = view.getBigUint64(64);
    const event = EVENTS[view.getUint32(80)] ?? "none";
    const wanted = view.getInt32(92);
    const port = view.getUint16(96);
    if (port === 0) return this.#error(transaction, "Invalid port");
    if (!isAllowed(ctx.allowList, infoHash)) {
      return this.#error(transaction, "Torrent not allowed on this tracker");
    }
    const entry = address.family === 4 ? 6 : 18;
    const fit = Math.floor((this.#maxReply - 20) / entry);
    const numwant = Math.min(wanted < 0 ? ctx.defaultNumwant : wanted, ctx.maxNumwant, fit);
    const input: AnnounceInput = {
      infoHash,
      peerId,
      address,
      port,
      seed: left === 0n || event === "completed",
      event,
      numwant,
      family: address.family,
    };
    const result = ctx.registry.announce(input);
    ctx.counters.announces++;
    ctx.logger?.debug(LOG_CATEGORY, "UDP announce", {
      torrent: toHex(infoHash),
      peer: `${address.ip}:${port}`,
      event,
      peers: result.peers.length,
    });
    const reply = new Uint8Array(20 + result.peers.length * entry);
    const out = new DataView(reply.buffer);
    out.setUint32(0, bep15.ACTION_ANNOUNCE);
    reply.set(transaction, 4);
    out.setUint32(8, ctx.interval);
    out.setUint32(12, Math.min(result.incomplete, 0xffffffff));
    out.setUint32(16, Math.min(result.complete, 0xffffffff));
    let at = 20;
    for (const peer of result.peers) {
      reply.set(peer.compact, at);
      at += entry;
    }
    return reply;
  }

  #scrape(packet: Uint8Array, transaction: Uint8Array): Uint8Array {
    const ctx = this.#ctx;
    const fit = Math.floor((this.#maxReply - 8) / 12);
    const count = Math.min(Math.floor((packet.length - 16) / ID_LENGTH), bep15.MAX_SCRAPE_HASHES, fit);
    const reply = new Uint8Array(8 + 12 * count);
    const out = new DataView(reply.buffer);
    out.setUint32(0, bep15.ACTION_SCRAPE);
    reply.set(transaction, 4);
    for (let i = 0; i < count; i++) {
      const infoHash = packet.subarray(16 + i * ID_LENGTH, 16 + (i + 1) * ID_LENGTH);
      const counts = isAllowed(ctx.allowList, infoHash) ? ctx.registry.scrape(infoHash) : undefined;
      if (counts === undefined) continue;
      out.setUint32(8 + 12 * i, Math.min(counts.complete, 0xffffffff));
      out.setUint32(12 + 12 * i, Math.min(counts.downloaded, 0xffffffff));
      out.setUint32(16 + 12 * i, Math.min(counts.incomplete, 0xffffffff));
    }
    ctx.counters.scrapes++;
    return reply;
  }

  #error(transaction: Uint8Array, message: string): Uint8Array {
    this.#ctx.counters.errors++;
    this.#ctx.logger?.debug(LOG_CATEGORY, "UDP request refused", { reason: message });
    const text = new TextEncoder().encode(message);
    const reply = new Uint8Array(8 + text.length);
    new DataView(reply.buffer).setUint32(0, bep15.ACTION_ERROR);
    reply.set(transaction, 4);
    reply.set(text, 8);
    return reply;
  }

  #drop(): undefined {
    this.#ctx.counters.dropped++;
    return undefined;
  }

  #connectionId(ip: string, bucket: number): Uint8Array {
    const mac = createHmac("sha1", this.#secret).update(`${ip}|${bucket}`).digest();
    return new Uint8Array(mac.buffer, mac.byteOffset, 8);
  }

  #validConnection(id: Uint8Array, ip: string): boolean {
    const bucket = Math.floor(this.#ctx.now() / BUCKET_MS);
    return equal8(id, this.#connectionId(ip, bucket)) || equal8(id, this.#connectionId(ip, bucket - 1));
  }

  /** Token bucket per source address for unverified replies. */
  #take(ip: string): boolean {
    const now = this.#ctx.now();
    let bucket = this.#buckets.get(ip);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, last: now };
      while (this.#buckets.size >= this.#maxRateEntries) {
        const oldest = this.#buckets.keys().next();
        if (oldest.done) break;
        this.#buckets.delete(oldest.value);
      }
    } else {
      this.#buckets.delete(ip);
      const elapsed = Math.max(0, now - bucket.last) / 1000;
      bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#rate);
      bucket.last = now;
    }
    this.#buckets.set(ip, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }
}

function equal8(a: Uint8Array, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < 8; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
