/**
 * Names the client behind a peer id, the way other clients' peer lists do: `-TR4060-…` is
 * "Transmission 4.0.6", `-LT2090-…` "libtorrent 2.0.9". Peer ids are chosen by the remote
 * peer, so everything here is only a hint, and the result is always printable ASCII.
 *
 * @module
 */

/** Two-letter Azureus-style client codes (`-XXvvvv-`) of clients seen in public swarms. */
const AZUREUS_CODES: Readonly<Record<string, string>> = {
  A2: "aria2",
  AZ: "Vuze",
  BB: "BitBuddy",
  BC: "BitComet",
  BI: "BiglyBT",
  BT: "BitTorrent",
  DE: "Deluge",
  FD: "Free Download Manager",
  FW: "FrostWire",
  KT: "KTorrent",
  LT: "libtorrent",
  lt: "rTorrent",
  PI: "PicoTorrent",
  qB: "qBittorrent",
  SD: "Thunder",
  SH: "shoal",
  TL: "Tribler",
  TR: "Transmission",
  UT: "µTorrent",
  UM: "µTorrent Mac",
  UW: "µTorrent Web",
  WD: "WebTorrent Desktop",
  WW: "WebTorrent",
  XL: "Xunlei",
};

/** One version character: 0-9, then A-Z for 10-35 (libtorrent's and qBittorrent's convention). */
function versionPart(c: number): number | undefined {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10;
  return undefined;
}

/** "4060" → "4.0.6"; trailing zeros after the second part are dropped. */
function azureusVersion(code: string, digits: Uint8Array): string | undefined {
  const parts: number[] = [];
  for (const c of digits) {
    const part = versionPart(c);
    if (part === undefined) return undefined;
    parts.push(part);
  }
  // Transmission writes 2.94 as "2940" and 3.00 as "3000" (major, then two digits), and
  // 4.0.6 as "4060" (major, minor, patch); the last character marks a development build.
  if (code === "TR") {
    return parts[0]! >= 4 ? `${parts[0]}.${parts[1]}.${parts[2]}` : `${parts[0]}.${parts[1]}${parts[2]}`;
  }
  while (parts.length > 2 && parts.at(-1) === 0) parts.pop();
  return parts.join(".");
}

/** The peer id's first `length` bytes as printable ASCII, dots for the rest. */
function rawPrefix(peerId: Uint8Array, length = 8): string {
  let s = "";
  for (const b of peerId.subarray(0, length)) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
  return s;
}

/**
 * The client a peer id announces, with its version: "Transmission 4.0.6", "aria2 1.37.0",
 * "libtorrent 2.0.9". An unknown Azureus-style code gives the code and version ("XY 1.2");
 * anything else, its first eight bytes as printable ASCII.
 *
 * @example
 * ```ts
 * import { clientName } from "./client_id.ts";
 * console.log(clientName(new TextEncoder().encode("-TR4060-abcdefghijkl"))); // "Transmission 4.0.6"
 * console.log(clientName(new TextEncoder().encode("A2-1-37-0-abcdefghij"))); // "aria2 1.37.0"
 * ```
 *
 * @param peerId The 20-byte peer id from the handshake.
 * @returns A short, printable name.
 */
export function clientName(peerId: Uint8Array): string {
  if (peerId.length >= 8 && peerId[0] === 0x2d && peerId[7] === 0x2d) {
    const code = String.fromCharCode(peerId[1]!, peerId[2]!);
    const version = /^[A-Za-z0-9]{2}$/.test(code) ? azureusVersion(code, peerId.subarray(3, 7)) : undefined;
    if (version !== undefined) return `${AZUREUS_CODES[code] ?? code} ${version}`;
  }
  const text = rawPrefix(peerId, 12);
  // aria2: "A2-1-37-0-" (version 1.37.0).
  const aria2 = /^A2-(\d{1,3})-(\d{1,3})-(\d{1,3})-/.exec(text);
  if (aria2 !== null) return `aria2 ${aria2[1]}.${aria2[2]}.${aria2[3]}`;
  // Mainline style: a letter, then dash-separated version numbers ("M7-4-2--" is BitTorrent 7.4.2).
  const mainline = /^([A-Z])(\d{1,3})-(\d{1,3})-(\d{1,3})-/.exec(text);
  if (mainline !== null) {
    const name = mainline[1] === "M" ? "BitTorrent" : mainline[1]!;
    return `${name} ${mainline[2]}.${mainline[3]}.${mainline[4]}`;
  }
  return rawPrefix(peerId);
}

/**
 * The short code a peer id starts with, as log records carry it (`client=TR4060`): the six
 * characters between the dashes of an Azureus-style id, else the first eight bytes, printable.
 * Stable for scripts that grep logs; {@linkcode clientName} is the one for people.
 *
 * @example
 * ```ts
 * import { clientCode } from "./client_id.ts";
 * console.log(clientCode(new TextEncoder().encode("-TR4060-abcdefghijkl"))); // "TR4060"
 * ```
 *
 * @param peerId The 20-byte peer id from the handshake.
 * @returns The code, printable ASCII.
 */
export function clientCode(peerId: Uint8Array): string {
  const prefix = rawPrefix(peerId);
  return peerId.length >= 8 && peerId[0] === 0x2d && peerId[7] === 0x2d ? prefix.slice(1, 7) : prefix;
}
