/**
 * The limits of shoal's HTTP/1.1 server (`lib/http/server.ts`), in one place. Defaults suit
 * a home server: a tracker, an RPC endpoint or a web UI answering a handful of clients,
 * with enough room left that one host sending slowly (slowloris) or opening connections and
 * sending nothing cannot take the server or the process down.
 *
 * @module
 */

/** Most connections open at once. Past it, the oldest connection that is waiting for a request is closed; if none is, the new one is refused. */
export const MAX_HTTP_CONNECTIONS = 256;
/** Most connections open at once from one IP address; more are refused. */
export const MAX_HTTP_CONNECTIONS_PER_ADDRESS = 16;
/** Most bytes of request line plus headers; more gets 431. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Most header lines in one request; more gets 431. */
export const MAX_HEADER_COUNT = 100;
/** Time from a connection's start (or the first byte of a later request) to the end of the headers; then it is closed (408). */
export const HEADER_TIMEOUT_MS = 10_000;
/** Most bytes of a request body; more gets 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Time to receive a whole request body once the headers are in; then it is closed (408). */
export const BODY_TIMEOUT_MS = 30_000;
/** Time a kept-alive connection may wait for the first byte of its next request. */
export const IDLE_TIMEOUT_MS = 5_000;
/** Requests served on one connection before it is closed (the client reconnects). */
export const MAX_REQUESTS_PER_CONNECTION = 1_000;
/** Time to write a response out (a stalled reader is dropped); streaming bodies restart it with every chunk. */
export const WRITE_TIMEOUT_MS = 30_000;

/** Limits of an {@linkcode HttpServer}; see the constants of this module for each default. */
export interface HttpServerLimits {
  /** Most connections open at once. @default {MAX_HTTP_CONNECTIONS} */
  readonly maxConnections: number;
  /** Most connections from one IP address. @default {MAX_HTTP_CONNECTIONS_PER_ADDRESS} */
  readonly maxConnectionsPerAddress: number;
  /** Most bytes of request line plus headers. @default {MAX_HEADER_BYTES} */
  readonly maxHeaderBytes: number;
  /** Most header fields. @default {MAX_HEADER_COUNT} */
  readonly maxHeaderCount: number;
  /** Deadline for the request head, in ms. @default {HEADER_TIMEOUT_MS} */
  readonly headerTimeoutMs: number;
  /** Most bytes of a request body. @default {MAX_BODY_BYTES} */
  readonly maxBodyBytes: number;
  /** Deadline for the request body, in ms. @default {BODY_TIMEOUT_MS} */
  readonly bodyTimeoutMs: number;
  /** Wait for the next request on a kept-alive connection, in ms. @default {IDLE_TIMEOUT_MS} */
  readonly idleTimeoutMs: number;
  /** Requests per connection. @default {MAX_REQUESTS_PER_CONNECTION} */
  readonly maxRequestsPerConnection: number;
  /** Deadline for each write of a response, in ms. @default {WRITE_TIMEOUT_MS} */
  readonly writeTimeoutMs: number;
}

/** The default {@linkcode HttpServerLimits}. */
export const DEFAULT_HTTP_SERVER_LIMITS: HttpServerLimits = {
  maxConnections: MAX_HTTP_CONNECTIONS,
  maxConnectionsPerAddress: MAX_HTTP_CONNECTIONS_PER_ADDRESS,
  maxHeaderBytes: MAX_HEADER_BYTES,
  maxHeaderCount: MAX_HEADER_COUNT,
  headerTimeoutMs: HEADER_TIMEOUT_MS,
  maxBodyBytes: MAX_BODY_BYTES,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  maxRequestsPerConnection: MAX_REQUESTS_PER_CONNECTION,
  writeTimeoutMs: WRITE_TIMEOUT_MS,
};
