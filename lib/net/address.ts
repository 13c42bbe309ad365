/**
 * Peer addresses as text: one parser for "host:port" and "[v6]:port" (loose for addresses
 * that come from the network, strict for addresses a person typed), formatting, the host of
 * an address, and IPv4-mapped IPv6 normalisation.
 *
 * @module
 */

import { PeerAddressError } from "../errors.ts";

/** A peer address, split. */
export interface PeerAddress {
  /** IPv4 address, IPv6 address (without brackets) or host name. */
  readonly hostname: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
}

/** Options for {@linkcode parseAddress}. */
export interface ParseAddressOptions {
  /**
   * Check the host too (a full dotted quad, a real IPv6 address, a valid host name) and throw
   * a {@linkcode PeerAddressError} that says what is wrong; otherwise only the shape is
   * checked and the error is a `TypeError`.
   *
   * @default {false}
   */
  readonly strict?: boolean;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i;
const EXPECTED = "expected HOST:PORT, such as 192.0.2.7:6881, [2001:db8::7]:6881 or peer.example:6881";

/**
 * Parses "host:port" or "[v6]:port" with a port from 1 to 65535. Loose by default (the shape
 * only, for addresses from trackers, PEX, DHT); with `strict`, the host is checked as well:
 * something that looks like an IPv4 address (only digits and dots) must be a full dotted
 * quad, so `1.2.3:80` is refused rather than resolved as a name.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./address.ts";
 * console.log(parseAddress("[::1]:6881")); // { hostname: "::1", port: 6881 }
 * console.log(parseAddress("peer.example:6881", { strict: true }).port); // 6881
 * ```
 *
 * @param address The address.
 * @param options Strict or loose.
 * @returns Its host and port.
 * @throws {TypeError} in loose mode, when the shape is wrong.
 * @throws {PeerAddressError} in strict mode, naming the address and what is wrong with it.
 */
export function parseAddress(address: string, options: ParseAddressOptions = {}): PeerAddress {
  const strict = options.strict ?? false;
  const fail = (why: string): never => {
    if (strict) throw new PeerAddressError(address, why);
    throw new TypeError(`Invalid peer address '${address}': expected HOST:PORT or [IPv6]:PORT`);
  };
  let hostname: string;
  let portText: string;
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    if (close < 0) fail(`no ']' closes the IPv6 address (${EXPECTED})`);
    if (address[close + 1] !== ":") fail(`no port after the IPv6 address (${EXPECTED})`);
    hostname = address.slice(1, close);
    if (
      hostname === "" ||
      (strict && (!/^[0-9a-f:.]+$/i.test(hostname) || !URL.canParse(`http://[${hostname}]/`)))
    ) {
      fail(`'${hostname}' is not an IPv6 address`);
    }
    portText = address.slice(close + 2);
  } else {
    const colon = address.lastIndexOf(":");
    if (colon < 0) fail(`no port (${EXPECTED})`);
    hostname = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (hostname === "") fail(`no host before the port (${EXPECTED})`);
    if (hostname.includes(":")) fail(`an IPv6 address needs brackets, as in [${hostname}]:${portText}`);
    if (!strict) {
      if (/[\[\]]/.test(hostname)) fail(`'${hostname}' is not a host name or an IP address`);
    } else if (/^[0-9.]+$/.test(hostname)) {
      const parts = hostname.split(".");
      if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
        fail(`'${hostname}' is not an IPv4 address (four numbers from 0 to 255, such as 192.0.2.7)`);
      }
    } else if (!HOST_NAME.test(hostname)) {
      fail(`'${hostname}' is not a host name or an IP address`);
    }
  }
  if (!(strict ? /^\d{1,5}$/ : /^\d+$/).test(portText)) {
    fail(`the port '${portText}' is not a number from 1 to 65535`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) fail(`the port ${port} is not from 1 to 65535`);
  return { hostname, port };
}

/**
 * The strict check of a peer address given by a person (a `--peer` value,
 * `AddTorrentOptions.peers`), so that a typo is refused with a message that says what is
 * wrong instead of failing later in a dial: {@linkcode parseAddress} with `strict`.
 *
 * @example
 * ```ts
 * import { parsePeerAddress } from "./address.ts";
 * console.log(parsePeerAddress("[::1]:6881")); // { hostname: "::1", port: 6881 }
 * ```
 *
 * @param text The address as typed.
 * @returns Its host and port.
 * @throws {PeerAddressError} naming the address and what is wrong with it.
 */
export function parsePeerAddress(text: string): PeerAddress {
  return parseAddress(text, { strict: true });
}

/**
 * Formats a hostname and port as "host:port", or "[v6]:port" when the host is IPv6.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./address.ts";
 * console.log(formatAddress("::1", 6881)); // "[::1]:6881"
 * ```
 *
 * @param hostname IPv4, IPv6 (no brackets) or a name.
 * @param port The port.
 * @returns The address.
 */
export function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * The host of "host:port" or "[v6]:port" (without brackets), with no validation: for
 * addresses this process formatted itself.
 *
 * @example
 * ```ts
 * import { hostOf } from "./address.ts";
 * console.log(hostOf("[::1]:6881")); // "::1"
 * ```
 *
 * @param address The address.
 * @returns Its host.
 */
export function hostOf(address: string): string {
  return address.startsWith("[")
    ? address.slice(1, address.indexOf("]"))
    : address.slice(0, address.lastIndexOf(":"));
}

/**
 * Normalises an IPv4-mapped IPv6 address ("::ffff:1.2.3.4", an IPv4 peer on a dual-stack
 * socket) to plain IPv4; any other host is returned as it is.
 *
 * @example
 * ```ts
 * import { unmapIPv4 } from "./address.ts";
 * console.log(unmapIPv4("::ffff:192.0.2.7")); // "192.0.2.7"
 * ```
 *
 * @param hostname A host as a socket reports it.
 * @returns The host, IPv4 where it was mapped.
 */
export function unmapIPv4(hostname: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
  return m ? m[1]! : hostname;
}
