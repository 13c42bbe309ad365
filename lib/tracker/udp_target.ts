/**
 * The address of a UDP tracker (BEP 15): its `udp://host:port` URL checked and resolved.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { formatAddress, formatIp, parseIp } from "../net/address.ts";
import { TrackerError } from "./types.ts";

/** A resolved UDP tracker address. */
export interface UdpTarget {
  /** The tracker URL as given. */
  url: string;
  /** Its IP address (no brackets). */
  ip: string;
  /** Its port. */
  port: number;
  /** Address family, which picks the socket. */
  family: 4 | 6;
  /** "ip:port" or "[ip]:port", the cache key of connection ids. */
  key: string;
}

/**
 * Parses and resolves `udp://host:port` (an IP literal as it is, `localhost` as 127.0.0.1,
 * a name by DNS, IPv4 preferred).
 *
 * @example
 * ```ts
 * import { resolveUdpTarget } from "./udp_target.ts";
 * console.log((await resolveUdpTarget("udp://127.0.0.1:6969/announce")).key); // "127.0.0.1:6969"
 * ```
 *
 * @param url The tracker URL.
 * @returns Its address.
 * @throws {TrackerError} for a URL that is not a UDP tracker's (not retryable) or a host that does not resolve.
 */
export async function resolveUdpTarget(url: string): Promise<UdpTarget> {
  if (!URL.canParse(url)) throw new TrackerError(`Invalid tracker URL: ${url}`, { retryable: false });
  const parsed = new URL(url);
  if (parsed.protocol !== "udp:") {
    throw new TrackerError(`Unsupported tracker URL scheme for UDP: ${parsed.protocol}`, {
      retryable: false,
    });
  }
  const port = Number(parsed.port);
  if (parsed.port === "" || !(port >= 1 && port <= 65535)) {
    throw new TrackerError(`UDP tracker URL has no valid port: ${url}`, { retryable: false });
  }
  let host = parsed.hostname.toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") throw new TrackerError(`UDP tracker URL has no host: ${url}`, { retryable: false });
  let ip = parseIp(host === "localhost" ? "127.0.0.1" : host);
  if (ip === null) {
    let addresses: { address: string; family: number }[];
    try {
      addresses = await lookup(host, { all: true });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new TrackerError(`Cannot resolve UDP tracker host ${host}: ${message}`, { cause: error });
    }
    const chosen = addresses.find((a) => a.family === 4) ?? addresses[0];
    ip = chosen === undefined ? null : parseIp(chosen.address);
    if (ip === null) throw new TrackerError(`Cannot resolve UDP tracker host ${host}: no address`);
  }
  const text = formatIp(ip);
  const family = ip.length === 4 ? 4 : 6;
  return { url, ip: text, port, family, key: formatAddress(text, port) };
}
