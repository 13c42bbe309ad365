/**
 * The one accept loop of every TCP listener (peers, the tracker's HTTP endpoint, later the
 * RPC server): a failed `accept` (EMFILE at the descriptor limit, ENFILE, ECONNABORTED) waits
 * with back-off and tries again instead of ending the loop; only closing the listener (or
 * the signal) ends it.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { isClosedSocketError, ListenerBackoff, pause } from "./backoff.ts";

/** Accepts taken before yielding to the event loop (so that closed sockets are freed). */
export const ACCEPTS_PER_TURN = 8;

/** Options of {@linkcode acceptLoop}. */
export interface AcceptLoopOptions<C extends Deno.Conn> {
  /** Takes each accepted connection; must not throw (a throw is logged and the connection closed). */
  onConnection: (conn: C) => void;
  /** What is listening, for messages. @default {"Listener"} */
  name?: string;
  /** Log category. @default {"net"} */
  category?: string;
  /** Where pressure (failed accepts) and recovery are logged. */
  logger?: Logger | undefined;
  /** Ends the loop (close the listener too). */
  signal?: AbortSignal;
  /** First retry delay in ms. @default {MIN_RETRY_DELAY_MS} */
  minDelayMs?: number;
  /** Largest retry delay in ms. @default {MAX_RETRY_DELAY_MS} */
  maxDelayMs?: number;
}

/**
 * Accepts connections until the listener is closed or the signal aborts; never rejects.
 *
 * @example
 * ```ts
 * import { acceptLoop } from "./accept_loop.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const loop = acceptLoop(listener, { name: "Echo listener", onConnection: (conn) => conn.close() });
 * listener.close();
 * await loop;
 * ```
 *
 * @param listener The listener.
 * @param options The handler, names for the log, and the retry delays.
 * @returns A promise that resolves when the loop has ended.
 */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  options: AcceptLoopOptions<C>,
): Promise<void> {
  await serveConnections(acceptConnections(listener, options), { ...options, close: closeQuietly });
}

/** Options of {@linkcode acceptConnections}. */
export type AcceptConnectionsOptions = Omit<AcceptLoopOptions<Deno.Conn>, "onConnection">;

/**
 * The accepted connections of a listener, as an async iterable: a failed `accept` waits with
 * back-off and tries again, and every {@linkcode ACCEPTS_PER_TURN} accepts it yields to the
 * event loop. It ends when the listener is closed or the signal aborts.
 *
 * @example
 * ```ts
 * import { acceptConnections } from "./accept_loop.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const connections = acceptConnections(listener, { name: "Echo listener" });
 * listener.close();
 * for await (const conn of connections) conn.close(); // ends at once: the listener is closed
 * ```
 *
 * @param listener Anything with `accept()` (a Deno listener).
 * @param options Names for the log, the retry delays, the signal.
 * @returns The connections.
 */
export async function* acceptConnections<C>(
  listener: { accept(): Promise<C> },
  options: AcceptConnectionsOptions = {},
): AsyncGenerator<C, void, undefined> {
  const backoff = new ListenerBackoff({
    name: options.name ?? "Listener",
    category: options.category ?? "net",
    logger: options.logger,
    ...(options.minDelayMs !== undefined ? { minDelayMs: options.minDelayMs } : {}),
    ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
  });
  const signal = options.signal;
  let sinceYield = 0;
  while (!signal?.aborted) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isClosedSocketError(error) || signal?.aborted) return;
      await pause(backoff.failed(error), signal);
      continue;
    }
    backoff.succeeded();
    // An accept with a full backlog completes without a turn of the event loop; closed
    // sockets are only freed on a turn. Yield now and then, or a flood of connections that
    // are closed at once (refused, evicted) still runs the process out of descriptors.
    if (++sinceYield >= ACCEPTS_PER_TURN) {
      sinceYield = 0;
      await pause(0);
    }
    yield conn;
  }
}

/** Options of {@linkcode serveConnections}. */
export interface ServeConnectionsOptions<C> {
  /** Takes each connection; must not throw (a throw is logged and the connection closed). */
  onConnection: (conn: C) => void;
  /** Closes a connection whose handler threw; must not throw. */
  close: (conn: C) => void;
  /** What is listening, for messages. @default {"Listener"} */
  name?: string;
  /** Log category. @default {"net"} */
  category?: string;
  /** Where a failing handler is logged. */
  logger?: Logger | undefined;
}

/**
 * Hands each connection of any listener (any transport's) to a handler until the
 * connections end; a handler that throws is logged, its connection closed, and the loop goes
 * on. Never rejects.
 *
 * @example
 * ```ts
 * import { serveConnections } from "./accept_loop.ts";
 * const conns = [{ close() {} }];
 * await serveConnections(conns, { onConnection: (c) => c.close(), close: (c) => c.close() });
 * ```
 *
 * @param connections The accepted connections (a transport listener).
 * @param options The handler, how to close, names for the log.
 * @returns A promise that resolves when the connections end.
 */
export async function serveConnections<C>(
  connections: AsyncIterable<C> | Iterable<C>,
  options: ServeConnectionsOptions<C>,
): Promise<void> {
  for await (const conn of connections) {
    try {
      options.onConnection(conn);
    } catch (error) {
      // A handler bug must not end the loop: log it and drop this one connection.
      options.logger?.error(
        options.category ?? "net",
        `${options.name ?? "Listener"}: connection handler failed: ${String(error)}`,
      );
      options.close(conn);
    }
  }
}

/**
 * Closes a connection, ignoring that it may be closed already.
 *
 * @example
 * ```ts ignore
 * closeQuietly(conn);
 * ```
 *
 * @param conn The connection.
 */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // Closed already (by the peer's reset or by another path): nothing left to free.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
