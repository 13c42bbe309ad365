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
  const name = options.name ?? "Listener";
  const category = options.category ?? "net";
  const backoff = new ListenerBackoff({
    name,
    category,
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
    try {
      options.onConnection(conn);
    } catch (error) {
      // A handler bug must not end the loop: log it and drop this one connection.
      options.logger?.error(category, `${name}: connection handler failed: ${String(error)}`);
      closeQuietly(conn);
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
