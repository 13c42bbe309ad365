/**
 * The one receive loop of every UDP socket (tracker, DHT, local discovery): a failed
 * `receive` (an ICMP error reported on the socket, ENOBUFS, ENOMEM) waits with back-off and
 * tries again instead of ending the loop; only closing the socket (or the signal) ends it.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { isClosedSocketError, ListenerBackoff, pause } from "./backoff.ts";

/** Options of {@linkcode receivePackets}. */
export interface ReceivePacketsOptions {
  /** Receive buffer (reused for every datagram). @default a fresh buffer per datagram */
  buffer?: Uint8Array;
  /** What is receiving, for messages. @default {"UDP socket"} */
  name?: string;
  /** Log category. @default {"net"} */
  category?: string;
  /** Where pressure (failed receives) and recovery are logged. */
  logger?: Logger | undefined;
  /** Ends the loop (close the socket too). */
  signal?: AbortSignal;
  /** First retry delay in ms. @default {MIN_RETRY_DELAY_MS} */
  minDelayMs?: number;
  /** Largest retry delay in ms. @default {MAX_RETRY_DELAY_MS} */
  maxDelayMs?: number;
}

/** Options of {@linkcode receiveLoop}. */
export interface ReceiveLoopOptions extends ReceivePacketsOptions {
  /**
   * Takes each datagram (with `buffer`, the bytes are only valid until it returns or its
   * promise settles). A throw or rejection is logged; the loop goes on.
   */
  onPacket: (data: Uint8Array, from: Deno.NetAddr) => void | Promise<void>;
}

/**
 * Yields the datagrams a socket receives until it is closed or the signal aborts; failed
 * receives are retried with back-off, never thrown. Datagrams from other transports than
 * UDP are skipped.
 *
 * @example
 * ```ts
 * import { receivePackets } from "./receive_loop.ts";
 * const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * setTimeout(() => socket.close(), 10);
 * for await (const [data, from] of receivePackets(socket, { name: "Example socket" })) {
 *   console.log(data.length, from.hostname);
 * }
 * ```
 *
 * @param conn The socket.
 * @param options Names for the log, the buffer and the retry delays.
 * @returns The datagrams with their source.
 */
export async function* receivePackets(
  conn: Deno.DatagramConn,
  options: ReceivePacketsOptions = {},
): AsyncGenerator<[Uint8Array, Deno.NetAddr]> {
  const backoff = new ListenerBackoff({
    name: options.name ?? "UDP socket",
    category: options.category ?? "net",
    logger: options.logger,
    ...(options.minDelayMs !== undefined ? { minDelayMs: options.minDelayMs } : {}),
    ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
  });
  const signal = options.signal;
  while (!signal?.aborted) {
    let data: Uint8Array;
    let from: Deno.Addr;
    try {
      [data, from] = await conn.receive(options.buffer);
    } catch (error) {
      if (isClosedSocketError(error) || signal?.aborted) return;
      await pause(backoff.failed(error), signal);
      continue;
    }
    backoff.succeeded();
    if (from.transport === "udp") yield [data, from];
  }
}

/**
 * Receives datagrams until the socket is closed or the signal aborts; never rejects.
 *
 * @example
 * ```ts
 * import { receiveLoop } from "./receive_loop.ts";
 * const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const loop = receiveLoop(socket, { onPacket: (data) => console.log(data.length) });
 * socket.close();
 * await loop;
 * ```
 *
 * @param conn The socket.
 * @param options The handler, names for the log, and the retry delays.
 * @returns A promise that resolves when the loop has ended.
 */
export async function receiveLoop(conn: Deno.DatagramConn, options: ReceiveLoopOptions): Promise<void> {
  const name = options.name ?? "UDP socket";
  const category = options.category ?? "net";
  for await (const [data, from] of receivePackets(conn, options)) {
    try {
      await options.onPacket(data, from);
    } catch (error) {
      // A handler bug must not end the loop: log it and drop this one datagram.
      options.logger?.warn(category, `${name}: packet handler failed: ${String(error)}`, {
        peer: from.hostname,
      });
    }
  }
}
