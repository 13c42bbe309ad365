/**
 * Binding a peer listener through any {@linkcode Transport}: the "::" default with its
 * fallback to IPv4 where a machine has no IPv6, and the transport's error (Deno's
 * `AddrInUse`, `AddrNotAvailable`, permission errors) told as a {@linkcode ShoalError} a
 * person can act on.
 *
 * @module
 */

import { ShoalError } from "../errors.ts";
import type { Transport, TransportListener } from "../types.ts";

/**
 * Listens on `hostname` (absent: "::", then "0.0.0.0" if that fails for a reason other than
 * the port being in use) and `port`.
 *
 * @example
 * ```ts
 * import { bindListener } from "./bind_listener.ts";
 * import { tcpTransport } from "./tcp_transport.ts";
 * const listener = bindListener(tcpTransport(), "127.0.0.1", 0);
 * console.log(listener.port > 0); // true
 * listener.close();
 * ```
 *
 * @param transport The transport.
 * @param hostname The address asked for, if any.
 * @param port The port (0: any free one).
 * @returns The listener.
 * @throws {ShoalError} `LISTEN` or `PERMISSION`, saying what went wrong.
 */
export function bindListener(
  transport: Transport,
  hostname: string | undefined,
  port: number,
): TransportListener {
  try {
    try {
      return transport.listen({ hostname: hostname ?? "::", port });
    } catch (error) {
      // No IPv6 on this machine: fall back to IPv4 only.
      if (hostname !== undefined || error instanceof Deno.errors.AddrInUse) throw error;
      return transport.listen({ hostname: "0.0.0.0", port });
    }
  } catch (error) {
    throw listenError(error, hostname, port);
  }
}

/** A transport's error from `listen` as a {@linkcode ShoalError} a person can act on. */
function listenError(error: unknown, hostname: string | undefined, port: number): Error {
  const host = hostname === undefined ? "" : hostname.includes(":") ? `[${hostname}]` : hostname;
  const where = host === "" ? `port ${port}` : port === 0 ? host : `${host}:${port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return new ShoalError("LISTEN", `Cannot listen on ${where}: the port is already in use`, {
      cause: error,
    });
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new ShoalError(
      "LISTEN",
      `Cannot listen on ${where}: this machine has no such address`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    const message = (error as Error).message;
    // Ports below 1024 need privileges; Deno's own permission checks say "Requires net access".
    return /Requires|--allow/.test(message)
      ? new ShoalError("PERMISSION", `Cannot listen: run with --allow-net (${message})`, { cause: error })
      : new ShoalError("LISTEN", `Cannot listen on ${where}: permission denied (${message})`, {
        cause: error,
      });
  }
  if (
    error instanceof TypeError || error instanceof URIError ||
    (error instanceof Error && /resolve|lookup|not known/i.test(error.message))
  ) {
    return new ShoalError("LISTEN", `Cannot listen on ${where}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}
