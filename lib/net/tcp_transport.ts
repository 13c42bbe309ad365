/**
 * The TCP {@linkcode Transport}, shoal's default: the only module that opens peer
 * connections with `Deno.connect` and peer listeners with `Deno.listen`. A connection's
 * streams are the socket's own (`conn.readable`, `conn.writable`): no stream stage and no
 * copy is added per chunk. Accepts that fail (EMFILE at the descriptor limit) are retried
 * with back-off inside the listener's iteration ({@linkcode acceptConnections}).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Duplex, Transport, TransportConnection, TransportListener } from "../types.ts";
import { abortable } from "./abortable.ts";
import { acceptConnections } from "./accept_loop.ts";
import { formatAddress, parseAddress, unmapIPv4 } from "./address.ts";

/** Options for {@linkcode tcpTransport}. */
export interface TcpTransportOptions {
  /** Where accept failures (descriptor pressure) and recovery are logged. */
  logger?: Logger;
  /** Log category of those messages. @default {"session"} */
  category?: string;
  /** What is listening, for those messages. @default {"Peer listener"} */
  name?: string;
}

/**
 * Makes the TCP transport: `connect` dials with `Deno.connect` (Nagle off), `listen` binds
 * with `Deno.listen` and yields accepted connections until closed.
 *
 * @example
 * ```ts
 * import { tcpTransport } from "./tcp_transport.ts";
 * const tcp = tcpTransport();
 * const listener = tcp.listen({ hostname: "127.0.0.1", port: 0 });
 * const dialled = await tcp.connect(`127.0.0.1:${listener.port}`, AbortSignal.timeout(5000));
 * for await (const accepted of listener) {
 *   console.log(accepted.remoteAddress); // "127.0.0.1:<port>"
 *   accepted.close();
 *   break;
 * }
 * dialled.close();
 * listener.close();
 * ```
 *
 * @param options Logger for the listener's accept back-off.
 * @returns The transport.
 */
export function tcpTransport(options: TcpTransportOptions = {}): Transport {
  return {
    name: "tcp",
    async connect(address: string, signal: AbortSignal): Promise<TransportConnection> {
      const { hostname, port } = parseAddress(address);
      const connecting = Deno.connect({ hostname, port, transport: "tcp" });
      const conn = await abortable(connecting, signal, (late) => connDuplex(late).close());
      conn.setNoDelay(true);
      return connDuplex(conn);
    },
    listen({ hostname, port }): TransportListener {
      const listener = Deno.listen({ hostname, port, transport: "tcp" });
      const accepted = acceptConnections(listener, {
        name: options.name ?? "Peer listener",
        category: options.category ?? "session",
        ...(options.logger ? { logger: options.logger } : {}),
      });
      return {
        hostname,
        port: listener.addr.port,
        close() {
          try {
            listener.close();
          } catch (error) {
            // Closed twice: nothing left to free.
            if (!(error instanceof Deno.errors.BadResource)) throw error;
          }
        },
        async *[Symbol.asyncIterator]() {
          for await (const conn of accepted) {
            conn.setNoDelay(true);
            yield connDuplex(conn);
          }
        },
      };
    },
  };
}

/**
 * Wraps a Deno TCP connection as a {@linkcode TransportConnection} whose `close()` never
 * throws. The streams are the connection's own.
 *
 * @example
 * ```ts ignore
 * const duplex = connDuplex(await Deno.connect({ hostname: "127.0.0.1", port: 6881 }));
 * ```
 *
 * @param conn The connection.
 * @returns The duplex.
 */
export function connDuplex(conn: Deno.TcpConn): TransportConnection {
  let closed = false;
  const remote = conn.remoteAddr;
  const duplex: Duplex & { remoteAddress: string } = {
    remoteAddress: formatAddress(unmapIPv4(remote.hostname), remote.port),
    readable: conn.readable,
    writable: conn.writable,
    // Deno's socket sink resolves a write after writing all of it: the buffer is free again.
    reusableWrites: true,
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch (error) {
        // Closing an already-closed resource is the only expected failure here.
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    },
  };
  return duplex;
}
