/**
 * Compact peer lists (BEP 23 for IPv4, BEP 7 for IPv6): each peer is its address in
 * network byte order followed by a 2-byte big-endian port, 6 bytes for IPv4 and 18 for
 * IPv6. Shared by the tracker clients and the built-in tracker.
 *
 * Peer addresses are strings: `"1.2.3.4:5"` for IPv4 and `"[::1]:5"` for IPv6, the
 * IPv6 part in its canonical compressed lower-case form (RFC 5952).
 *
 * @module
 */

/**
 * Decodes a compact peer list. Only whole entries are decoded: trailing bytes that do
 * not make a whole entry are ignored (callers compare `bytes.length` with the entry size
 * to report them). Entries with port 0 cannot be dialled and are skipped.
 *
 * @example
 * ```ts
 * import { decodeCompactPeers } from "./compact.ts";
 * const peers = decodeCompactPeers(new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]), 4);
 * console.log(peers); // ["127.0.0.1:6881"]
 * ```
 *
 * @param bytes The compact list.
 * @param family 4 for 6-byte IPv4 entries (`peers`), 6 for 18-byte IPv6 entries (`peers6`).
 * @returns The peers, in order (not deduplicated).
 */
export function decodeCompactPeers(bytes: Uint8Array, family: 4 | 6): string[] {
  const ipLength = family === 4 ? 4 : 16;
  const size = ipLength + 2;
  const peers: string[] = [];
  for (let at = 0; at + size <= bytes.length; at += size) {
    const port = (bytes[at + ipLength]! << 8) | bytes[at + ipLength + 1]!;
    if (port === 0) continue;
    const ip = formatIp(bytes.subarray(at, at + ipLength));
    peers.push(family === 4 ? `${ip}:${port}` : `[${ip}]:${port}`);
  }
  return peers;
}

/**
 * Encodes one peer address as a compact entry: 6 bytes for `"a.b.c.d:port"`, 18 bytes
 * for `"[v6]:port"`.
 *
 * @example
 * ```ts
 * import { encodeCompactPeer } from "./compact.ts";
 * console.log(encodeCompactPeer("127.0.0.1:6881")); // Uint8Array(6) [127, 0, 0, 1, 26, 225]
 * console.log(encodeCompactPeer("[::1]:6881")?.length); // 18
 * console.log(encodeCompactPeer("example.org:6881")); // null
 * ```
 *
 * @param address The address.
 * @returns The entry, or `null` when the address is not an IP literal with a port from 1 to 65535.
 */
export function encodeCompactPeer(address: string): Uint8Array | null {
  let hostText: string;
  let portText: string;
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    if (close < 0 || address[close + 1] !== ":") return null;
    hostText = address.slice(1, close);
    portText = address.slice(close + 2);
    if (!hostText.includes(":")) return null;
  } else {
    const colon = address.indexOf(":");
    if (colon < 0 || address.indexOf(":", colon + 1) >= 0) return null;
    hostText = address.slice(0, colon);
    portText = address.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  const ip = parseIp(hostText);
  if (ip === null) return null;
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = port >> 8;
  out[ip.length + 1] = port & 0xff;
  return out;
}

/**
 * Parses an IPv4 (`"1.2.3.4"`) or IPv6 (`"::1"`, `"::ffff:1.2.3.4"`, no brackets, no
 * zone) address literal.
 *
 * @example
 * ```ts
 * import { parseIp } from "./compact.ts";
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
 * import { formatIp } from "./compact.ts";
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
 * import { normalizeHost } from "./compact.ts";
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
