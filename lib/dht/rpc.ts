/**
 * KRPC over one UDP socket: outgoing queries matched to their answers by transaction id,
 * incoming queries handed to a handler whose answer is sent back, and the limits that keep
 * the socket from being abused.
 *
 * - **Per-source limit**: every datagram from a source (an IP address; an IP and port on
 *   loopback, where test networks put many nodes on 127.0.0.1) takes a token from that
 *   source's bucket *before* it is decoded; over the limit it is dropped unread.
 * - **Global outgoing budget**: every datagram we send, query or answer, takes its size from
 *   one byte bucket; an answer over budget is not sent and a query over budget fails at once
 *   as `unsent`. With answers never much larger than the queries they answer (the node caps
 *   `get_peers` values), the socket cannot be used as an amplifier.
 * - **Transactions**: ids are 4 random bytes; an answer is taken only from the address the
 *   query went to, otherwise (or for an unknown id) it is ignored and counted. At most
 *   `maxPending` queries wait at once.
 * - **Malformed input**: a query that carried a transaction id but is invalid gets error 203;
 *   an unknown method gets error 204 (from the handler); anything else invalid is dropped.
 *
 * IPv4 only: datagrams from other families are dropped.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { ShoalError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseIp, tryParseAddress, unmapIPv4 } from "../net/address.ts";
import {
  decodeKrpc,
  encodeKrpc,
  KRPC_ERRORS,
  KrpcDecodeError,
  type KrpcErrorMessage,
  type KrpcQuery,
  type KrpcResponse,
  MAX_MESSAGE_BYTES,
} from "./krpc.ts";
import { RateGate, RateGates } from "./rate_gate.ts";
import { receivePackets } from "../net/receive_loop.ts";
import { latin1 } from "../net/bytes.ts";
import { emptyKrpcStats, type KrpcSocketStats } from "./krpc_stats.ts";
export type { KrpcSocketStats } from "./krpc_stats.ts";

/** Limits on what a DHT node receives and sends. */
export interface DhtRateLimits {
  /** Datagrams per second accepted from one source. @default {20} */
  perSourcePerSecond?: number;
  /** Datagrams one source may send at once after a quiet spell. @default {50} */
  perSourceBurst?: number;
  /** Bytes per second sent in all (queries and answers). @default {128 * 1024} */
  outgoingBytesPerSecond?: number;
  /** Bytes that may be sent at once after a quiet spell. @default {64 * 1024} */
  outgoingBurst?: number;
}

/** An answer to an incoming query: a response body or an error. */
export type KrpcAnswer = Omit<KrpcResponse, "t" | "ip"> | Omit<KrpcErrorMessage, "t">;

/** A query to send, without its transaction id. */
export type OutgoingQuery = KrpcQuery extends infer Q ? Q extends { q: "unknown" } ? never : Omit<Q, "t">
  : never;

/** How an outgoing query ended. */
export type QueryOutcome =
  | { type: "response"; response: KrpcResponse }
  | { type: "error"; error: KrpcErrorMessage }
  | { type: "timeout" }
  | { type: "unsent"; reason: string };

/** Options for {@linkcode KrpcSocket}. */
export interface KrpcSocketOptions {
  /** Address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /** UDP port; 0 picks one. @default {0} */
  port?: number;
  /** Answers incoming queries; `null` sends nothing. */
  handler: (query: KrpcQuery, from: string) => KrpcAnswer | null;
  /** Rate limits. */
  rateLimits?: DhtRateLimits;
  /** Time to wait for an answer, in ms. @default {4000} */
  timeoutMs?: number;
  /** Most queries waiting for an answer. @default {512} */
  maxPending?: number;
  /** Our client version (`v`). @default {"SH\x01\x00"} */
  version?: Uint8Array;
  /** Logger (category `dht`, debug level). */
  logger?: Logger;
  /** Clock in ms, for the rate limits. @default {Date.now} */
  now?: () => number;
}

interface Pending {
  address: string;
  timer: ReturnType<typeof setTimeout>;
  resolve: (outcome: QueryOutcome) => void;
}

/**
 * A KRPC endpoint on one UDP socket.
 *
 * @example
 * ```ts
 * import { KrpcSocket } from "./rpc.ts";
 * const id = new Uint8Array(20);
 * const a = new KrpcSocket({ hostname: "127.0.0.1", handler: () => ({ y: "r", id }) });
 * const b = new KrpcSocket({ hostname: "127.0.0.1", handler: () => null });
 * const port = a.open();
 * b.open();
 * const outcome = await b.query(`127.0.0.1:${port}`, { y: "q", q: "ping", id });
 * console.log(outcome.type); // "response"
 * await a.close();
 * await b.close();
 * ```
 */
export class KrpcSocket {
  readonly #options: KrpcSocketOptions;
  readonly #sources: RateGates;
  readonly #budget: RateGate;
  readonly #pending = new Map<string, Pending>();
  readonly #version: Uint8Array;
  #conn: Deno.DatagramConn | null = null;
  #loop: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #stats: KrpcSocketStats = emptyKrpcStats();

  /**
   * Creates the endpoint (call {@linkcode KrpcSocket.open} to bind it).
   *
   * @param options Address, handler and limits.
   */
  constructor(options: KrpcSocketOptions) {
    this.#options = options;
    const limits = options.rateLimits ?? {};
    const now = options.now ?? Date.now;
    this.#sources = new RateGates({
      rate: limits.perSourcePerSecond ?? 20,
      burst: limits.perSourceBurst ?? 50,
      now,
    });
    this.#budget = new RateGate({
      rate: limits.outgoingBytesPerSecond ?? 128 * 1024,
      burst: limits.outgoingBurst ?? 64 * 1024,
      now,
    });
    this.#version = options.version ?? new Uint8Array([0x53, 0x48, 1, 0]);
  }

  /** The bound port (0 before {@linkcode KrpcSocket.open}). */
  get port(): number {
    return this.#conn ? (this.#conn.addr as Deno.NetAddr).port : 0;
  }

  /** The bound address. */
  get hostname(): string {
    return this.#conn ? (this.#conn.addr as Deno.NetAddr).hostname : this.#options.hostname ?? "0.0.0.0";
  }

  /** A copy of the counters. */
  get stats(): KrpcSocketStats {
    return { ...this.#stats };
  }

  /** Queries waiting for an answer. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Binds the socket and starts receiving.
   *
   * @returns The bound port.
   * @throws {ShoalError} (code `UNSTABLE_NET`) when Deno runs without `--unstable-net`.
   * @throws {Deno.errors.AddrInUse} when the port is taken (and other bind errors).
   */
  open(): number {
    if (this.#conn !== null) return this.port;
    if (typeof Deno.listenDatagram !== "function") {
      throw new ShoalError(
        "UNSTABLE_NET",
        "Cannot open a UDP socket for the DHT: run Deno with --unstable-net",
      );
    }
    this.#conn = Deno.listenDatagram({
      transport: "udp",
      hostname: this.#options.hostname ?? "0.0.0.0",
      port: this.#options.port ?? 0,
    });
    this.#loop = this.#receive(this.#conn);
    return this.port;
  }

  /**
   * Sends a query and waits for its answer.
   *
   * @param address `"a.b.c.d:port"`.
   * @param query The query without a transaction id.
   * @param timeoutMs Time to wait, in ms. @default the socket's `timeoutMs`
   * @returns How it ended (never rejects).
   */
  query(
    address: string,
    query: OutgoingQuery,
    timeoutMs: number = this.#options.timeoutMs ?? 4000,
  ): Promise<QueryOutcome> {
    const conn = this.#conn;
    if (conn === null || this.#closed) return Promise.resolve({ type: "unsent", reason: "socket closed" });
    if (this.#pending.size >= (this.#options.maxPending ?? 512)) {
      return Promise.resolve({ type: "unsent", reason: "too many queries waiting" });
    }
    const target = tryParseAddress(address);
    if (target === null) return Promise.resolve({ type: "unsent", reason: `invalid address ${address}` });
    let t: Uint8Array;
    do t = randomBytes(4); while (this.#pending.has(latin1(t)));
    const bytes = encodeKrpc({ ...query, t } as KrpcQuery, { version: this.#version });
    if (!this.#budget.take(bytes.length)) {
      this.#stats.overBudget++;
      return Promise.resolve({ type: "unsent", reason: "outgoing budget exhausted" });
    }
    const key = latin1(t);
    return new Promise<QueryOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        this.#stats.timeouts++;
        resolve({ type: "timeout" });
      }, timeoutMs);
      this.#pending.set(key, { address, timer, resolve });
      this.#stats.queriesOut++;
      this.#stats.bytesOut += bytes.length;
      conn.send(bytes, { transport: "udp", hostname: target.hostname, port: target.port }).catch((error) => {
        const pending = this.#pending.get(key);
        if (pending === undefined) return;
        clearTimeout(pending.timer);
        this.#pending.delete(key);
        resolve({ type: "unsent", reason: (error as Error).message });
      });
    });
  }

  /** Closes the socket; waiting queries end as `unsent`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve({ type: "unsent", reason: "socket closed" });
    }
    this.#pending.clear();
    try {
      this.#conn?.close();
    } catch (error) {
      this.#options.logger?.debug("dht", `Closing the DHT socket failed: ${(error as Error).message}`);
    }
    await this.#loop;
  }

  async #receive(conn: Deno.DatagramConn): Promise<void> {
    // Ends only when the socket is closed: a failed receive is retried with back-off.
    for await (
      const [data, from] of receivePackets(conn, {
        name: "DHT socket",
        category: "dht",
        logger: this.#options.logger,
      })
    ) {
      try {
        this.#dispatch(data, from);
      } catch (error) {
        // A handler bug must not stop the node: log it and keep serving.
        this.#options.logger?.error("dht", `Cannot handle a DHT datagram: ${(error as Error).message}`);
      }
    }
  }

  #dispatch(data: Uint8Array, from: Deno.NetAddr): void {
    const host = unmapIPv4(from.hostname);
    const ip = parseIp(host);
    if (ip === null || ip.length !== 4) return;
    const address = `${host}:${from.port}`;
    const source = ip[0] === 127 ? address : host;
    if (!this.#sources.take(source)) {
      this.#stats.rateLimited++;
      return;
    }
    if (data.length > MAX_MESSAGE_BYTES) {
      this.#stats.malformed++;
      return;
    }
    let message;
    try {
      message = decodeKrpc(data);
    } catch (error) {
      if (!(error instanceof KrpcDecodeError)) throw error;
      this.#stats.malformed++;
      this.#options.logger?.debug("dht", `Ignored a DHT datagram: ${error.message}`, { from: address });
      const t = error.transactionId;
      if (t === null) return;
      if (error.kind === "query" || error.kind === "unknown") {
        this.#send(
          { y: "e", code: KRPC_ERRORS.protocol, message: "Protocol Error" },
          t,
          address,
          host,
          from.port,
        );
      } else {this.#settle(t, address, {
          type: "error",
          error: { y: "e", t, code: 0, message: error.message },
        });}
      return;
    }
    if (message.y === "q") {
      this.#stats.queriesIn++;
      const answer = this.#options.handler(message, address);
      if (answer !== null) this.#send(answer, message.t, address, host, from.port);
      return;
    }
    this.#settle(
      message.t,
      address,
      message.y === "r" ? { type: "response", response: message } : { type: "error", error: message },
    );
  }

  #settle(t: Uint8Array, address: string, outcome: QueryOutcome): void {
    const key = latin1(t);
    const pending = this.#pending.get(key);
    if (pending === undefined || pending.address !== address) {
      this.#stats.unexpected++;
      this.#options.logger?.debug("dht", "Ignored a DHT answer: unknown transaction or wrong address", {
        from: address,
      });
      return;
    }
    clearTimeout(pending.timer);
    this.#pending.delete(key);
    pending.resolve(outcome);
  }

  #send(answer: KrpcAnswer, t: Uint8Array, address: string, host: string, port: number): void {
    const conn = this.#conn;
    if (conn === null || this.#closed) return;
    const bytes = encodeKrpc({ ...answer, t } as KrpcResponse | KrpcErrorMessage, {
      version: this.#version,
      ip: address,
    });
    if (!this.#budget.take(bytes.length)) {
      this.#stats.overBudget++;
      return;
    }
    this.#stats.answersOut++;
    this.#stats.bytesOut += bytes.length;
    conn.send(bytes, { transport: "udp", hostname: host, port }).catch((error) =>
      this.#options.logger?.debug("dht", `Cannot send a DHT answer: ${(error as Error).message}`, {
        to: address,
      })
    );
  }
}
