/**
 * A small hardened HTTP/1.1 server on `Deno.listen`, for the built-in tracker and later the
 * daemon's RPC and web UI. `Deno.serve` has no header timeout and no connection cap, so one
 * host sending requests slowly (slowloris) could hold every descriptor of the process; this
 * server bounds everything a client controls:
 *
 * - connections in all and per address (`MAX_HTTP_CONNECTIONS`,
 *   `MAX_HTTP_CONNECTIONS_PER_ADDRESS` in `limits.ts`); at the global cap the connection that has
 *   waited longest for a request is closed to make room, and every connection counts
 *   against the process's descriptor budget;
 * - the request head (bytes, field count, deadline) and the body (bytes, deadline);
 * - keep-alive (idle deadline, requests per connection) and pipelining (one request at a
 *   time, in order);
 * - a handler that throws gets a 500 and the server goes on; a failed accept is retried.
 *
 * Handlers take a standard `Request` and return a standard `Response`, whose body may be a
 * stream (sent chunked as it comes, e.g. Server-Sent Events); `request.signal` aborts when
 * the client goes away during a streaming response or the server closes.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { acceptLoop, closeQuietly } from "../net/accept_loop.ts";
import { type DescriptorBudget, processDescriptors } from "../net/descriptor_budget.ts";
import { PressureLog } from "../net/pressure_log.ts";
import { ConnectionInput, HttpRequestError, HttpTimeoutError } from "./connection_input.ts";
import { DEFAULT_HTTP_SERVER_LIMITS, type HttpServerLimits } from "./limits.ts";
import { parseRequestHead, type RequestHead } from "./request_head.ts";
import { writeResponse } from "./response_writer.ts";
import { unmapIPv4 } from "../net/address.ts";
import { concatBytes } from "../net/bytes.ts";

/** Where a request came from. */
export interface HttpRequestInfo {
  /** The client's address (IPv4-mapped IPv6 addresses unmapped). */
  readonly remoteAddr: Deno.NetAddr;
  /** The address the request arrived on. */
  readonly localAddr: Deno.NetAddr;
}

/** Answers one request. A throw or rejection becomes a 500 (see `onError`). */
export type HttpHandler = (request: Request, info: HttpRequestInfo) => Response | Promise<Response>;

/** Options of {@linkcode HttpServer}. */
export interface HttpServerOptions {
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one. @default {0} */
  port?: number;
  /** Limits; absent ones take the defaults of `lib/http/limits.ts`. */
  limits?: Partial<HttpServerLimits>;
  /** What this server is, for messages. @default {"HTTP server"} */
  name?: string;
  /** Log category. @default {"http"} */
  category?: string;
  /** Where pressure, handler failures and bad requests are logged. */
  logger?: Logger | undefined;
  /** Descriptor budget every connection takes a slot of. @default the process's shared budget */
  descriptorBudget?: DescriptorBudget;
  /** Makes the answer to a handler that threw. @default a plain-text 500 */
  onError?: (error: unknown) => Response;
}

/** Counters of an {@linkcode HttpServer}. */
export interface HttpServerStats {
  /** Connections open now. */
  readonly connections: number;
  /** Requests handed to the handler. */
  readonly requests: number;
  /** Requests refused before the handler (4xx/5xx from the parser, timeouts). */
  readonly badRequests: number;
  /** Connections closed at a deadline (head, body, idle, write). */
  readonly timeouts: number;
  /** Connections refused at accept (address cap, no descriptor). */
  readonly refused: number;
  /** Waiting connections closed to make room for new ones. */
  readonly evicted: number;
  /** Handler throws and rejections (each answered with a 500). */
  readonly handlerErrors: number;
}

interface Connection {
  readonly conn: Deno.TcpConn;
  readonly host: string;
  /** Aborts the current request (client gone during a streaming answer, server closing). */
  abort: AbortController;
  gone: boolean;
}

/**
 * An HTTP/1.1 server with bounded resources per client.
 *
 * @example
 * ```ts
 * import { HttpServer } from "./server.ts";
 * await using server = new HttpServer(() => new Response("hello\n"), { hostname: "127.0.0.1" });
 * const { port } = server.listen();
 * const response = await fetch(`http://127.0.0.1:${port}/`);
 * console.log(await response.text()); // "hello\n"
 * ```
 */
export class HttpServer implements AsyncDisposable {
  readonly #handler: HttpHandler;
  readonly #options: HttpServerOptions;
  readonly #limits: HttpServerLimits;
  readonly #budget: DescriptorBudget;
  readonly #pressure: PressureLog;
  readonly #name: string;
  readonly #category: string;
  #listener: Deno.TcpListener | undefined;
  #loop: Promise<void> | undefined;
  readonly #connections = new Set<Connection>();
  /** Connections waiting for a request head, oldest first. */
  readonly #waiting = new Set<Connection>();
  readonly #perHost = new Map<string, number>();
  readonly #serving = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #stats = { requests: 0, badRequests: 0, timeouts: 0, refused: 0, evicted: 0, handlerErrors: 0 };

  /**
   * Creates the server; nothing listens until {@linkcode HttpServer.listen}.
   *
   * @param handler Answers requests.
   * @param options Address, limits, names and logger.
   */
  constructor(handler: HttpHandler, options: HttpServerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    this.#limits = { ...DEFAULT_HTTP_SERVER_LIMITS, ...options.limits };
    for (const [key, value] of Object.entries(this.#limits)) {
      if (!(typeof value === "number" && value >= 1)) {
        throw new RangeError(`Invalid HTTP limit ${key}: ${value}`);
      }
    }
    this.#budget = options.descriptorBudget ?? processDescriptors();
    this.#name = options.name ?? "HTTP server";
    this.#category = options.category ?? "http";
    this.#pressure = new PressureLog(this.#category, options.logger);
  }

  /**
   * Starts listening and accepting.
   *
   * @returns The address listened on (with the chosen port).
   * @throws {Deno.errors.AddrInUse} and other socket errors; an Error when called twice.
   */
  listen(): Deno.NetAddr {
    if (this.#listener !== undefined || this.#closing !== undefined) {
      throw new Error(`${this.#name} was already started or closed`);
    }
    const listener = Deno.listen({
      hostname: this.#options.hostname ?? "127.0.0.1",
      port: this.#options.port ?? 0,
      transport: "tcp",
    });
    this.#listener = listener;
    this.#loop = acceptLoop(listener, {
      name: this.#name,
      category: this.#category,
      logger: this.#options.logger,
      onConnection: (conn) => this.#accepted(conn),
    });
    return listener.addr;
  }

  /** The address listened on. @throws {Error} before {@linkcode HttpServer.listen}. */
  get addr(): Deno.NetAddr {
    if (this.#listener === undefined) throw new Error(`${this.#name} is not listening`);
    return this.#listener.addr;
  }

  /** Counters. */
  get stats(): HttpServerStats {
    return { connections: this.#connections.size, ...this.#stats };
  }

  /**
   * Stops accepting, closes every connection (streaming answers are aborted) and waits.
   * Safe to call more than once.
   *
   * @returns A promise that settles when nothing is left open.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      this.#listener?.close();
    } catch (error) {
      // Closed already: nothing to stop.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    await this.#loop;
    for (const c of [...this.#connections]) this.#drop(c);
    await Promise.allSettled([...this.#serving]);
  }

  /** Same as {@linkcode HttpServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #accepted(conn: Deno.TcpConn): void {
    const host = unmapIPv4((conn.remoteAddr as Deno.NetAddr).hostname);
    if (this.#closing !== undefined) {
      closeQuietly(conn);
      return;
    }
    const maxPerAddress = this.#limits.maxConnectionsPerAddress;
    if ((this.#perHost.get(host) ?? 0) >= maxPerAddress) {
      this.#refuse(conn, `${maxPerAddress} connections from one address`, host);
      return;
    }
    while (this.#connections.size >= this.#limits.maxConnections || this.#budget.full) {
      const oldest = this.#waiting.values().next();
      if (oldest.done) {
        this.#refuse(conn, this.#budget.full ? "no file descriptor left" : "connection cap reached", host);
        return;
      }
      this.#stats.evicted++;
      this.#pressure.note(
        `${this.#name} under pressure: closed the connection waiting longest for a request`,
        {
          peer: oldest.value.host,
          connections: this.#connections.size,
        },
      );
      this.#drop(oldest.value);
    }
    const c: Connection = { conn, host, abort: new AbortController(), gone: false };
    this.#connections.add(c);
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1);
    this.#budget.take();
    const serving = this.#serve(c).catch((error) => {
      // A failure of the server's own code ends this connection only.
      this.#options.logger?.warn(this.#category, `${this.#name}: connection failed: ${String(error)}`, {
        peer: host,
      });
    }).finally(() => {
      this.#drop(c);
      this.#serving.delete(serving);
    });
    this.#serving.add(serving);
  }

  #refuse(conn: Deno.TcpConn, why: string, host: string): void {
    this.#stats.refused++;
    this.#pressure.note(`${this.#name} under pressure: refused a connection (${why})`, {
      peer: host,
      connections: this.#connections.size,
    });
    closeQuietly(conn);
  }

  /** Closes a connection and forgets it at once (the serve loop then ends). */
  #drop(c: Connection): void {
    if (c.gone) return;
    c.gone = true;
    c.abort.abort(new Deno.errors.ConnectionAborted("Connection closed"));
    this.#connections.delete(c);
    this.#waiting.delete(c);
    const n = (this.#perHost.get(c.host) ?? 1) - 1;
    if (n <= 0) this.#perHost.delete(c.host);
    else this.#perHost.set(c.host, n);
    this.#budget.give();
    closeQuietly(c.conn);
  }

  #setWaiting(c: Connection, waiting: boolean): void {
    if (c.gone) return;
    if (waiting) this.#waiting.add(c);
    else this.#waiting.delete(c);
  }

  async #serve(c: Connection): Promise<void> {
    const limits = this.#limits;
    const input = new ConnectionInput(c.conn.readable, limits.maxHeaderBytes + 64 * 1024);
    let streaming = false;
    input.onEnd = () => {
      // The client closed its side: a streaming answer has no one left to read it.
      if (streaming) c.abort.abort(new Deno.errors.ConnectionAborted("Client closed the connection"));
    };
    const writer = c.conn.writable.getWriter();
    const localAddr = c.conn.localAddr as Deno.NetAddr;
    const remote = c.conn.remoteAddr as Deno.NetAddr;
    const info: HttpRequestInfo = { remoteAddr: { ...remote, hostname: c.host }, localAddr };
    try {
      for (let served = 0; !c.gone; served++) {
        this.#setWaiting(c, true);
        const first = served === 0;
        const idleDeadline = Date.now() + (first ? limits.headerTimeoutMs : limits.idleTimeoutMs);
        let head: RequestHead;
        let body: Uint8Array | null;
        let started = false;
        try {
          if (!(await input.waitForData(idleDeadline))) return;
          started = true;
          const bytes = await input.readHead(
            limits.maxHeaderBytes,
            first ? idleDeadline : Date.now() + limits.headerTimeoutMs,
          );
          if (bytes === null) return;
          head = parseRequestHead(bytes, limits.maxHeaderCount);
          this.#setWaiting(c, false);
          body = await this.#readBody(input, head, writer);
        } catch (error) {
          if (!(error instanceof HttpRequestError)) throw error;
          if (error instanceof HttpTimeoutError) this.#stats.timeouts++;
          this.#stats.badRequests++;
          // A connection that never sent a byte of this request is closed without an answer.
          if (started) {
            this.#options.logger?.debug(this.#category, `${this.#name}: bad request: ${error.message}`, {
              peer: c.host,
              status: error.status,
            });
            await writeResponse(writer, plain(error.status, error.message), {
              head: false,
              minor: 1,
              keepAlive: false,
              writeTimeoutMs: limits.writeTimeoutMs,
              signal: c.abort.signal,
            });
          }
          return;
        }
        const keepAlive = head.keepAlive && served + 1 < limits.maxRequestsPerConnection &&
          this.#closing === undefined;
        let request: Request;
        try {
          request = makeRequest(head, body, localAddr, c.abort.signal);
        } catch (error) {
          this.#stats.badRequests++;
          await writeResponse(writer, plain(400, `Bad request: ${(error as Error).message}`), {
            head: false,
            minor: head.minor,
            keepAlive: false,
            writeTimeoutMs: limits.writeTimeoutMs,
            signal: c.abort.signal,
          });
          return;
        }
        this.#stats.requests++;
        const response = await this.#answer(request, info);
        streaming = true;
        const written = await writeResponse(writer, response, {
          head: head.method === "HEAD",
          minor: head.minor,
          keepAlive,
          writeTimeoutMs: limits.writeTimeoutMs,
          signal: c.abort.signal,
        });
        streaming = false;
        if (!written.keepAlive) return;
        c.abort = new AbortController();
      }
    } catch (error) {
      if (c.gone) return; // closed by eviction or by close(): the failed read or write is expected
      if (error instanceof Deno.errors.TimedOut) this.#stats.timeouts++;
      // A client that went away mid-answer is routine.
      this.#options.logger?.debug(this.#category, `${this.#name}: connection ended: ${String(error)}`, {
        peer: c.host,
      });
    } finally {
      this.#drop(c);
      await input.finished;
    }
  }

  async #answer(request: Request, info: HttpRequestInfo): Promise<Response> {
    try {
      const response = await this.#handler(request, info);
      if (!(response instanceof Response)) throw new TypeError("The handler did not return a Response");
      return response;
    } catch (error) {
      this.#stats.handlerErrors++;
      this.#options.logger?.warn(this.#category, `${this.#name}: handler failed: ${String(error)}`, {
        peer: info.remoteAddr.hostname,
      });
      try {
        return this.#options.onError?.(error) ?? plain(500, "Internal server error");
      } catch (second) {
        this.#options.logger?.warn(this.#category, `${this.#name}: error handler failed: ${String(second)}`);
        return plain(500, "Internal server error");
      }
    }
  }

  async #readBody(
    input: ConnectionInput,
    head: RequestHead,
    writer: WritableStreamDefaultWriter<Uint8Array>,
  ): Promise<Uint8Array | null> {
    const limits = this.#limits;
    if (head.body.kind === "none") return null;
    if (head.body.kind === "length" && head.body.length > limits.maxBodyBytes) {
      throw new HttpRequestError(413, `Request body too large (at most ${limits.maxBodyBytes} bytes)`);
    }
    const expects = head.headers.some(([n, v]) => n === "expect" && v.toLowerCase() === "100-continue");
    if (expects && head.minor === 1) {
      await writer.write(new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    const deadline = Date.now() + limits.bodyTimeoutMs;
    const parts: Uint8Array[] = [];
    let total = 0;
    const take = async (n: number) => {
      while (n > 0) {
        const part = await input.readSome(n, deadline);
        parts.push(part);
        n -= part.length;
      }
    };
    if (head.body.kind === "length") {
      await take(head.body.length);
      total = head.body.length;
    } else {
      for (;;) {
        const line = new TextDecoder().decode(await input.readLine(1024, deadline));
        const m = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?$/.exec(line);
        if (m === null) throw new HttpRequestError(400, "Malformed chunk size");
        const size = parseInt(m[1]!, 16);
        if (size === 0) break;
        total += size;
        if (total > limits.maxBodyBytes) {
          throw new HttpRequestError(413, `Request body too large (at most ${limits.maxBodyBytes} bytes)`);
        }
        await take(size);
        if ((await input.readLine(2, deadline)).length !== 0) {
          throw new HttpRequestError(400, "Malformed chunk end");
        }
      }
      // Trailer fields are read and dropped.
      for (let i = 0;; i++) {
        if (i > limits.maxHeaderCount) throw new HttpRequestError(431, "Too many trailer fields");
        if ((await input.readLine(limits.maxHeaderBytes, deadline)).length === 0) break;
      }
    }
    return concatBytes(parts);
  }
}

function plain(status: number, text: string): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

function makeRequest(
  head: RequestHead,
  body: Uint8Array | null,
  local: Deno.NetAddr,
  signal: AbortSignal,
): Request {
  let url: string;
  if (head.target.startsWith("/")) {
    const host = head.headers.find(([n]) => n === "host")?.[1];
    if (head.headers.filter(([n]) => n === "host").length > 1) throw new TypeError("more than one Host");
    if (host !== undefined && !/^[A-Za-z0-9.\-_~:\[\]%]+$/.test(host)) throw new TypeError("invalid Host");
    const authority = host !== undefined && host !== ""
      ? host
      : local.hostname.includes(":")
      ? `[${local.hostname}]:${local.port}`
      : `${local.hostname}:${local.port}`;
    url = `http://${authority}${head.target}`;
  } else if (/^https?:\/\//i.test(head.target)) {
    url = head.target;
  } else {
    throw new TypeError("the request target must be a path or an absolute URL");
  }
  const withBody = body !== null && head.method !== "GET" && head.method !== "HEAD";
  return new Request(url, {
    method: head.method,
    headers: head.headers as [string, string][],
    signal,
    ...(withBody ? { body: body as Uint8Array<ArrayBuffer> } : {}),
  });
}
