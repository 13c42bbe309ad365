/**
 * Peer addresses: one parser for "host:port" and "[v6]:port" (loose for addresses that come
 * from the network, strict for addresses a person typed), formatting, the host of an
 * address, IPv4-mapped IPv6 normalisation, IP literals as bytes, and the compact peer forms
 * (BEP 23 for IPv4, BEP 7 for IPv6): each peer is its address in network byte order
 * followed by a 2-byte big-endian port, 6 bytes for IPv4 and 18 for IPv6.
 *
 * Peer addresses are strings: `"1.2.3.4:5"` for IPv4 and `"[::1]:5"` for IPv6, the IPv6
 * part in its canonical compressed lower-case form (RFC 5952) where this module formats it.
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
  const parsed = checkAddress(address, strict);
  if (typeof parsed !== "string") return parsed;
  if (strict) throw new PeerAddressError(address, parsed);
  throw new TypeError(`Invalid peer address '${address}': expected HOST:PORT or [IPv6]:PORT`);
}

/**
 * Parses an address like {@linkcode parseAddress}, but answers `null` instead of throwing:
 * for addresses from the network (or a magnet link) where a bad one is skipped.
 *
 * @example
 * ```ts
 * import { tryParseAddress } from "./address.ts";
 * console.log(tryParseAddress("10.0.0.1:80")); // { hostname: "10.0.0.1", port: 80 }
 * console.log(tryParseAddress("1.2.3:80", { strict: true })); // null
 * ```
 *
 * @param address The address.
 * @param options Strict or loose.
 * @returns Its host and port, or `null` when it is not one.
 */
export function tryParseAddress(address: string, options: ParseAddressOptions = {}): PeerAddress | null {
  const parsed = checkAddress(address, options.strict ?? false);
  return typeof parsed === "string" ? null : parsed;
}

/** The address, or what is wrong with it in words. */
function checkAddress(address: string, strict: boolean): PeerAddress | string {
  const split = splitAddress(address);
  if (typeof split === "string") return split;
  const { hostname, portText, bracketed } = split;
  if (bracketed) {
    if (strict && (!/^[0-9a-f:.]+$/i.test(hostname) || !URL.canParse(`http://[${hostname}]/`))) {
      return `'${hostname}' is not an IPv6 address`;
    }
  } else if (!strict) {
    if (/[\[\]]/.test(hostname)) return `'${hostname}' is not a host name or an IP address`;
  } else if (/^[0-9.]+$/.test(hostname)) {
    const parts = hostname.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
      return `'${hostname}' is not an IPv4 address (four numbers from 0 to 255, such as 192.0.2.7)`;
    }
  } else if (!HOST_NAME.test(hostname)) {
    return `'${hostname}' is not a host name or an IP address`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `the port '${portText}' is not a number from 1 to 65535`;
  if (split.port === null) return `the port ${Number(portText)} is not from 1 to 65535`;
  return { hostname, port: split.port };
}

interface SplitAddress {
  readonly hostname: string;
  readonly portText: string;
  /** The port, or null when `portText` is not a number from 1 to 65535. */
  readonly port: number | null;
  readonly bracketed: boolean;
}

/** The one place "host:port" and "[v6]:port" are taken apart; a string says what is wrong. */
function splitAddress(address: string): SplitAddress | string {
  let hostname: string;
  let portText: string;
  const bracketed = address.startsWith("[");
  if (bracketed) {
    const close = address.indexOf("]");
    if (close < 0) return `no ']' closes the IPv6 address (${EXPECTED})`;
    if (address[close + 1] !== ":") return `no port after the IPv6 address (${EXPECTED})`;
    hostname = address.slice(1, close);
    if (hostname === "") return `'' is not an IPv6 address`;
    portText = address.slice(close + 2);
  } else {
    const colon = address.lastIndexOf(":");
    if (colon < 0) return `no port (${EXPECTED})`;
    hostname = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (hostname === "") return `no host before the port (${EXPECTED})`;
    if (hostname.includes(":")) return `an IPv6 address needs brackets, as in [${hostname}]:${portText}`;
  }
  const value = Number(portText);
  const port = /^\d{1,5}$/.test(portText) && value >= 1 && value <= 65535 ? value : null;
  return { hostname, portText, port, bracketed };
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

/**
 * Decodes a compact peer list. Only whole entries are decoded: trailing bytes that do
 * not make a whole entry are ignored (callers compare `bytes.length` with the entry size
 * to report them). Entries with port 0 cannot be dialled and are skipped.
 *
 * @example
 * ```ts
 * import { decodeCompactPeers } from "./address.ts";
 * const peers = decodeCompactPeers(new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]), 4);
 * console.log(peers); // ["127.0.0.1:6881"]
 * ```
 *
 * @param bytes The compact list.
 * @param family 4 for 6-byte IPv4 entries (`peers`), 6 for 18-byte IPv6 entries (`peers6`).
 * @returns The peers, in order (not deduplicated).
 */
export function decodeCompactPeers(bytes: Uint8Array, family: 4 | 6): string[] {
  const size = family === 4 ? 6 : 18;
  const peers: string[] = [];
  for (let at = 0; at + size <= bytes.length; at += size) {
    const peer = decodeCompactPeer(bytes.subarray(at, at + size));
    if (peer !== null) peers.push(peer);
  }
  return peers;
}

/**
 * Decodes one compact entry (6 bytes IPv4, 18 bytes IPv6: address, then a big-endian port)
 * as `"a.b.c.d:port"` or `"[v6]:port"`.
 *
 * @example
 * ```ts
 * import { decodeCompactPeer } from "./address.ts";
 * console.log(decodeCompactPeer(new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]))); // "127.0.0.1:6881"
 * ```
 *
 * @param entry 6 or 18 bytes.
 * @returns The address, or `null` for port 0 (nobody can dial it).
 * @throws {RangeError} when the entry is neither 6 nor 18 bytes long.
 */
export function decodeCompactPeer(entry: Uint8Array): string | null {
  const ipLength = entry.length - 2;
  const port = (entry[ipLength]! << 8) | entry[ipLength + 1]!;
  if (port === 0) return null;
  return formatAddress(formatIp(entry.subarray(0, ipLength)), port);
}

/**
 * Encodes one peer address as a compact entry: 6 bytes for `"a.b.c.d:port"`, 18 bytes
 * for `"[v6]:port"`.
 *
 * @example
 * ```ts
 * import { encodeCompactPeer } from "./address.ts";
 * console.log(encodeCompactPeer("127.0.0.1:6881")); // Uint8Array(6) [127, 0, 0, 1, 26, 225]
 * console.log(encodeCompactPeer("[::1]:6881")?.length); // 18
 * console.log(encodeCompactPeer("example.org:6881")); // null
 * ```
 *
 * @param address The address.
 * @returns The entry, or `null` when the address is not an IP literal with a port from 1 to 65535.
 */
export function encodeCompactPeer(address: string): Uint8Array | null {
  const split = splitAddress(address);
  if (typeof split === "string" || split.port === null) return null;
  const ip = parseIp(split.hostname);
  if (ip === null || (ip.length === 16) !== split.bracketed) return null;
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = split.port >> 8;
  out[ip.length + 1] = split.port & 0xff;
  return out;
}

/**
 * Parses an IPv4 (`"1.2.3.4"`) or IPv6 (`"::1"`, `"::ffff:1.2.3.4"`, no brackets, no
 * zone) address literal.
 *
 * @example
 * ```ts
 * import { parseIp } from "./address.ts";
 * console.log(parseIp("10.0.0.1")); // Uint8Array(4) [10, 0, 0, 1]
 * console.log(parseIp("::1")?.length); // 16
 * console.log(parseIp("localhost")); // null
 * ```
 *
 * @param text The literal.
 * @returns 4 or 16 bytes, or `null` when it is not an IP literal.
 */
export function parseIp(text: string): Uint8Array | null {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/**
 * Formats 4 or 16 address bytes: dotted quad, or canonical compressed IPv6 (RFC 5952:
 * lower case, longest run of two or more zero groups as `::`, no brackets).
 *
 * @example
 * ```ts
 * import { formatIp } from "./address.ts";
 * console.log(formatIp(new Uint8Array([192, 168, 1, 2]))); // "192.168.1.2"
 * const v6 = new Uint8Array(16);
 * v6[15] = 1;
 * console.log(formatIp(v6)); // "::1"
 * ```
 *
 * @param bytes 4 or 16 bytes.
 * @returns The address text.
 * @throws {RangeError} when `bytes` is neither 4 nor 16 bytes long.
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`Cannot format an IP address of ${bytes.length} bytes`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of zero groups (first one on a tie), if at least two long.
  let bestStart = -1, bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (bestLength < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/**
 * Normalises an IP literal to the form {@linkcode formatIp} gives, so two spellings of one
 * address compare equal; anything else (a host name) is returned lower-cased.
 *
 * @example
 * ```ts
 * import { normalizeHost } from "./address.ts";
 * console.log(normalizeHost("0:0:0:0:0:0:0:1")); // "::1"
 * console.log(normalizeHost("Tracker.Example")); // "tracker.example"
 * ```
 *
 * @param host An IP literal (IPv6 without brackets) or host name.
 * @returns The normalised text.
 */
export function normalizeHost(host: string): string {
  const ip = parseIp(host);
  return ip === null ? host.toLowerCase() : formatIp(ip);
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    // Decimal only, no leading zeros (they read as octal in some parsers).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    out[i] = value;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  if (text.length > 45) return null;
  let tail: Uint8Array | null = null;
  let body = text;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) >= 0) {
    tail = parseIpv4(text.slice(lastColon + 1));
    if (tail === null) return null;
    body = text.slice(0, lastColon + 1) + "0:0"; // placeholder groups, overwritten below
  }
  const halves = body.split("::");
  if (halves.length > 2) return null;
  const parse = (half: string): number[] | null => {
    if (half === "") return [];
    const groups: number[] = [];
    for (const group of half.split(":")) {
      if (!/^[0-9a-f]{1,4}$/i.test(group)) return null;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || rest === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    if (head.length + rest.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    if (head.length !== 8) return null;
    groups = head;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail !== null) out.set(tail, 12);
  return out;
}
