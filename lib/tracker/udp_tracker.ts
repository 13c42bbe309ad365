/**
 * UDP tracker client (BEP 15): connect, announce, scrape.
 *
 * One {@linkcode UdpTrackerClient} owns one UDP socket (`0.0.0.0:0`, plus `[::]:0`
 * opened on first use of an IPv6 tracker) and a receive loop that hands each datagram
 * to the request waiting for its transaction id. A datagram is ignored (the request
 * keeps waiting) when it is shorter than 8 bytes, carries an unknown transaction id,
 * comes from another address than the tracker's, has another action than the one
 * expected (the error action 3 aside), or is too short for its action.
 *
 * Retransmission follows BEP 15: a request unanswered after `baseTimeoutMs * 2^n`
 * (n = 0, 1, ...) is sent again, at most `maxRetries` times; the defaults (15 s, 3) give
 * waits of 15, 30, 60 and 120 s, about 4 minutes in all, before the call fails.
 * Connection ids are cached per tracker address for 60 s after they were received. When
 * a request sent with a cached connection id gets an error or no answer, the id may have
 * expired on the tracker's side: the client drops it and connects again, once per call.
 *
 * IPv6 peers: the peer entries of an announce answer are 6 bytes from a tracker reached
 * over IPv4 and 18 bytes from one reached over IPv6 (the address family of the socket).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { decodeCompactPeers, normalizeHost } from "../net/address.ts";
import { dedupePeers, noteRemainder } from "./http_tracker.ts";
import {
  type AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  TrackerError,
} from "./types.ts";
import { abortable } from "../net/abortable.ts";
import { resolveUdpTarget, type UdpTarget } from "./udp_target.ts";
import { toHex } from "../net/bytes.ts";
import * as bep15 from "./udp_protocol.ts";

/** Options for {@linkcode UdpTrackerClient}. */
export interface UdpTrackerClientOptions {
  /** First retransmission timeout; the n-th retransmission waits `baseTimeoutMs * 2^n`. @default {15000} */
  baseTimeoutMs?: number;
  /** Retransmissions after the first send before a call fails (3 → waits of 15, 30, 60, 120 s). @default {3} */
  maxRetries?: number;
  /** Clock for connection-id expiry, in milliseconds. @default {Date.now} */
  now?: () => number;
  /** Local address the IPv4 socket binds to. @default {"0.0.0.0"} */
  hostname?: string;
  /** Local address the IPv6 socket binds to. @default {"::"} */
  hostname6?: string;
  /** Most peers kept from one announce answer. @default {1000} */
  maxPeers?: number;
  /** Where ignored datagrams and reconnections are logged (debug level, category `tracker`). */
  logger?: Logger;
}

/** Options of one {@linkcode UdpTrackerClient} call. */
export interface UdpCallOptions {
  /** Aborts the call; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

const CONNECTION_ID_LIFETIME_MS = 60_000;
const EVENT_CODES: Readonly<Record<AnnounceEvent, number>> = { completed: 1, started: 2, stopped: 3 };

interface Socket {
  conn: Deno.DatagramConn;
  loop: Promise<void>;
}

/** Collects the datagrams meant for one transaction id. */
class Waiter {
  readonly target: UdpTarget;
  readonly action: number;
  readonly minLength: number;
  #replies: Uint8Array[] = [];
  #failure: unknown = undefined;
  #wake: (() => void) | undefined;

  constructor(target: UdpTarget, action: number, minLength: number) {
    this.target = target;
    this.action = action;
    this.minLength = minLength;
  }

  deliver(reply: Uint8Array): void {
    this.#replies.push(reply);
    this.#wake?.();
  }

  fail(error: unknown): void {
    this.#failure ??= error;
    this.#wake?.();
  }

  /** The next reply, or `null` after `timeoutMs` without one. */
  next(timeoutMs: number, signal: AbortSignal | undefined): Promise<Uint8Array | null> {
    const ready = this.#replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const finish = (timedOut: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#wake = undefined;
        const reply = this.#replies.shift();
        if (reply !== undefined) resolve(reply);
        else if (timedOut) resolve(null);
        else if (signal?.aborted) reject(signal.reason);
        else reject(this.#failure);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(true), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => finish(false);
    });
  }
}

/**
 * A BEP 15 UDP tracker client, shared by all torrents of a session.
 *
 * @example
 * ```ts ignore
 * import { UdpTrackerClient } from "./udp_tracker.ts";
 * await using udp = new UdpTrackerClient();
 * const answer = await udp.announce("udp://tracker.example:6969/announce", {
 *   infoHash: new Uint8Array(20),
 *   peerId: new TextEncoder().encode("-SH0100-abcdefghijkl"),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 1000, event: "started", key: 0x1234abcd,
 * });
 * console.log(answer.peers);
 * ```
 */
export class UdpTrackerClient implements AsyncDisposable {
  #baseTimeoutMs: number;
  #maxRetries: number;
  #now: () => number;
  #hostname: string;
  #hostname6: string;
  #maxPeers: number;
  #logger: Logger | undefined;
  #sockets: { 4?: Socket; 6?: Socket } = {};
  #waiters = new Map<number, Waiter>();
  #connections = new Map<string, { id: Uint8Array; at: number }>();
  #closed = false;

  /**
   * Creates the client; no socket is opened until the first call.
   *
   * @param options Timeouts, retries, clock, bind addresses.
   */
  constructor(options: UdpTrackerClientOptions = {}) {
    this.#baseTimeoutMs = options.baseTimeoutMs ?? 15_000;
    this.#maxRetries = options.maxRetries ?? 3;
    this.#now = options.now ?? Date.now;
    this.#hostname = options.hostname ?? "0.0.0.0";
    this.#hostname6 = options.hostname6 ?? "::";
    this.#maxPeers = options.maxPeers ?? 1000;
    this.#logger = options.logger;
  }

  /**
   * Announces to a UDP tracker.
   *
   * @param url The tracker URL, `udp://host:port[/path]`.
   * @param req What to announce (`trackerId` is not used over UDP).
   * @param options Cancellation.
   * @returns The tracker's answer; `peers` holds IPv4 or IPv6 peers by the tracker's address family.
   * @throws {TrackerError} when the tracker does not answer after every retransmission,
   * answers with the error action, or the URL cannot be used (`retryable: false`).
   */
  async announce(url: string, req: AnnounceRequest, options: UdpCallOptions = {}): Promise<AnnounceResponse> {
    if (req.infoHash.length !== 20 || req.peerId.length !== 20) {
      throw new RangeError("Invalid announce: info-hash and peer id must be 20 bytes");
    }
    const body = new Uint8Array(82);
    const view = new DataView(body.buffer);
    body.set(req.infoHash, 0);
    body.set(req.peerId, 20);
    view.setBigUint64(40, u64(req.downloaded));
    view.setBigUint64(48, u64(req.left));
    view.setBigUint64(56, u64(req.uploaded));
    view.setUint32(64, req.event === undefined ? 0 : EVENT_CODES[req.event]);
    view.setUint32(68, 0); // IP address: the sender's
    view.setUint32(72, req.key >>> 0);
    view.setInt32(
      76,
      req.numwant === undefined ? -1 : Math.max(0, Math.min(0x7fffffff, Math.trunc(req.numwant))),
    );
    view.setUint16(80, req.port & 0xffff);
    const { reply, target } = await this.#call(
      url,
      bep15.ACTION_ANNOUNCE,
      body,
      20,
      "announce",
      options.signal,
    );
    const replyView = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    const issues: string[] = [];
    const list = reply.subarray(20);
    const found = decodeCompactPeers(list, target.family);
    noteRemainder(list.length, target.family === 4 ? 6 : 18, "peers", issues);
    const out: AnnounceResponse = {
      interval: replyView.getInt32(8),
      leechers: replyView.getUint32(12),
      seeders: replyView.getUint32(16),
      peers: dedupePeers(found, this.#maxPeers, issues),
    };
    if (issues.length > 0) out.issues = issues;
    return out;
  }

  /**
   * Scrapes a UDP tracker (74 info-hashes per request; more are asked in turn).
   *
   * @param url The tracker URL, `udp://host:port[/path]`.
   * @param infoHashes The 20-byte info-hashes.
   * @param options Cancellation.
   * @returns Counts by lower-case hex info-hash.
   * @throws {TrackerError} as {@linkcode UdpTrackerClient.announce} does.
   */
  async scrape(
    url: string,
    infoHashes: Uint8Array[],
    options: UdpCallOptions = {},
  ): Promise<Map<string, ScrapeEntry>> {
    const out = new Map<string, ScrapeEntry>();
    for (let first = 0; first < infoHashes.length; first += bep15.MAX_SCRAPE_HASHES) {
      const hashes = infoHashes.slice(first, first + bep15.MAX_SCRAPE_HASHES);
      const body = new Uint8Array(20 * hashes.length);
      hashes.forEach((hash, i) => {
        if (hash.length !== 20) {
          throw new RangeError(`Invalid info-hash: expected 20 bytes, got ${hash.length}`);
        }
        body.set(hash, 20 * i);
      });
      const minLength = 8 + 12 * hashes.length;
      const { reply } = await this.#call(url, bep15.ACTION_SCRAPE, body, minLength, "scrape", options.signal);
      const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
      hashes.forEach((hash, i) => {
        const at = 8 + 12 * i;
        out.set(toHex(hash), {
          seeders: view.getUint32(at),
          completed: view.getUint32(at + 4),
          leechers: view.getUint32(at + 8),
        });
      });
    }
    return out;
  }

  /** Closes the sockets; calls in progress reject with a {@linkcode TrackerError}. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = new TrackerError("UDP tracker client is closed", { retryable: false });
    for (const waiter of this.#waiters.values()) waiter.fail(error);
    this.#waiters.clear();
    for (const socket of Object.values(this.#sockets)) closeQuietly(socket.conn);
  }

  /** Closes the client and waits for its receive loops to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await Promise.all(Object.values(this.#sockets).map((socket) => socket.loop));
  }

  /** Sends one request (connecting first if needed) and waits for its reply, with retransmission. */
  async #call(
    url: string,
    action: number,
    body: Uint8Array,
    minLength: number,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<{ reply: Uint8Array; target: UdpTarget }> {
    if (this.#closed) throw new TrackerError("UDP tracker client is closed", { retryable: false });
    const target = await abortable(resolveUdpTarget(url), signal);
    const state = { attempt: 0 };
    let reconnected = false;
    const { txid, waiter } = this.#register(target, action, minLength);
    try {
      let connection = await this.#connectionId(target, state, signal);
      for (;;) {
        const packet = new Uint8Array(16 + body.length);
        const view = new DataView(packet.buffer);
        packet.set(connection.id, 0);
        view.setUint32(8, action);
        view.setUint32(12, txid);
        packet.set(body, 16);
        await this.#send(target, packet);
        const reply = await waiter.next(this.#timeout(state.attempt), signal);
        if (reply === null) {
          this.#nextAttempt(state, target, what);
          if (!connection.fresh && !reconnected) {
            reconnected = true;
            this.#connections.delete(target.key);
            this.#logger?.debug("tracker", "No answer with a cached connection id: connecting again", {
              tracker: url,
            });
          }
          connection = await this.#connectionId(target, state, signal);
          continue;
        }
        if (readU32(reply, 0) === bep15.ACTION_ERROR) {
          const message = errorText(reply);
          if (!connection.fresh && !reconnected) {
            reconnected = true;
            this.#connections.delete(target.key);
            this.#logger?.debug("tracker", "Error with a cached connection id: connecting again", {
              tracker: url,
              error: message,
            });
            connection = await this.#connectionId(target, state, signal);
            continue;
          }
          throw new TrackerError(`UDP tracker refused the ${what}: ${message}`);
        }
        return { reply, target };
      }
    } finally {
      this.#waiters.delete(txid);
    }
  }

  /** A cached connection id younger than 60 s, or a new one from a connect exchange. */
  async #connectionId(
    target: UdpTarget,
    state: { attempt: number },
    signal: AbortSignal | undefined,
  ): Promise<{ id: Uint8Array; fresh: boolean }> {
    const cached = this.#connections.get(target.key);
    if (cached !== undefined && this.#now() - cached.at < CONNECTION_ID_LIFETIME_MS) {
      return { id: cached.id, fresh: false };
    }
    this.#connections.delete(target.key);
    const { txid, waiter } = this.#register(target, bep15.ACTION_CONNECT, 16);
    try {
      const packet = new Uint8Array(16);
      const view = new DataView(packet.buffer);
      view.setBigUint64(0, bep15.PROTOCOL_ID);
      view.setUint32(8, bep15.ACTION_CONNECT);
      view.setUint32(12, txid);
      for (;;) {
        await this.#send(target, packet);
        const reply = await waiter.next(this.#timeout(state.attempt), signal);
        if (reply === null) {
          this.#nextAttempt(state, target, "connect");
          continue;
        }
        if (readU32(reply, 0) === bep15.ACTION_ERROR) {
          throw new TrackerError(`UDP tracker refused to connect: ${errorText(reply)}`);
        }
        const id = reply.slice(8, 16);
        this.#connections.set(target.key, { id, at: this.#now() });
        return { id, fresh: true };
      }
    } finally {
      this.#waiters.delete(txid);
    }
  }

  #timeout(attempt: number): number {
    return this.#baseTimeoutMs * 2 ** attempt;
  }

  #nextAttempt(state: { attempt: number }, target: UdpTarget, what: string): void {
    state.attempt++;
    if (state.attempt > this.#maxRetries) {
      let waited = 0;
      for (let n = 0; n <= this.#maxRetries; n++) waited += this.#timeout(n);
      throw new TrackerError(
        `UDP tracker did not answer the ${what} after ${this.#maxRetries + 1} tries (${
          waited / 1000
        } s): ${target.url}`,
      );
    }
  }

  #register(target: UdpTarget, action: number, minLength: number): { txid: number; waiter: Waiter } {
    let txid: number;
    do txid = crypto.getRandomValues(new Uint32Array(1))[0]!; while (this.#waiters.has(txid));
    const waiter = new Waiter(target, action, minLength);
    this.#waiters.set(txid, waiter);
    return { txid, waiter };
  }

  async #send(target: UdpTarget, packet: Uint8Array): Promise<void> {
    if (this.#closed) throw new TrackerError("UDP tracker client is closed", { retryable: false });
    const socket = this.#socket(target.family);
    try {
      await socket.conn.send(packet, { transport: "udp", hostname: target.ip, port: target.port });
    } catch (error) {
      if (this.#closed) throw new TrackerError("UDP tracker client is closed", { retryable: false });
      const message = error instanceof Error ? error.message : String(error);
      throw new TrackerError(`Cannot send to UDP tracker ${target.url}: ${message}`, { cause: error });
    }
  }

  #socket(family: 4 | 6): Socket {
    const existing = this.#sockets[family];
    if (existing !== undefined) return existing;
    let conn: Deno.DatagramConn;
    try {
      conn = Deno.listenDatagram({
        transport: "udp",
        hostname: family === 4 ? this.#hostname : this.#hostname6,
        port: 0,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new TrackerError(`Cannot open a UDP socket for IPv${family} trackers: ${message}`, {
        cause: error,
      });
    }
    const socket: Socket = { conn, loop: Promise.resolve() };
    socket.loop = this.#receive(socket, family);
    this.#sockets[family] = socket;
    return socket;
  }

  async #receive(socket: Socket, family: 4 | 6): Promise<void> {
    for (;;) {
      let packet: Uint8Array;
      let from: Deno.Addr;
      try {
        [packet, from] = await socket.conn.receive();
      } catch (error) {
        if (!this.#closed) {
          // The socket is broken: forget it, so the next send opens another one. Calls
          // waiting on it time out and retransmit through the new socket.
          this.#logger?.debug("tracker", "UDP tracker socket failed: opening another on the next send", {
            error: error instanceof Error ? error.message : String(error),
          });
          if (this.#sockets[family] === socket) delete this.#sockets[family];
          closeQuietly(socket.conn);
        }
        return;
      }
      if (from.transport === "udp") this.#dispatch(packet, from);
    }
  }

  #dispatch(packet: Uint8Array, from: Deno.NetAddr): void {
    const ignore = (why: string) =>
      this.#logger?.debug("tracker", `Ignored a UDP tracker datagram: ${why}`, {
        from: `${from.hostname}:${from.port}`,
        bytes: packet.length,
      });
    if (packet.length < 8) return ignore("shorter than 8 bytes");
    const action = readU32(packet, 0);
    const waiter = this.#waiters.get(readU32(packet, 4));
    if (waiter === undefined) return ignore("unknown transaction id");
    if (normalizeHost(from.hostname) !== waiter.target.ip || from.port !== waiter.target.port) {
      return ignore("not from the tracker's address");
    }
    if (action !== waiter.action && action !== bep15.ACTION_ERROR) {
      return ignore(`unexpected action ${action}`);
    }
    if (action !== bep15.ACTION_ERROR && packet.length < waiter.minLength) {
      return ignore("too short for its action");
    }
    waiter.deliver(packet);
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function u64(value: number): bigint {
  return Number.isFinite(value) && value > 0 ? BigInt(Math.trunc(value)) : 0n;
}

function errorText(reply: Uint8Array): string {
  // deno-lint-ignore no-control-regex
  const text = new TextDecoder().decode(reply.subarray(8, 8 + 1024)).replace(/[\u0000-\u001f\u007f]/g, " ");
  const trimmed = text.trim();
  if (trimmed === "") return "(no message)";
  return trimmed.length > 300 ? `${trimmed.slice(0, 300)}...` : trimmed;
}

function closeQuietly(conn: Deno.DatagramConn): void {
  try {
    conn.close();
  } catch (error) {
    // Closing an already-closed socket is the only expected failure here.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
