/**
 * Magnet URIs (BEP 9, with BEP 53 `so` file selection): parse untrusted links into a
 * {@linkcode MagnetLink}, and format one back.
 *
 * @module
 */

import { MagnetError } from "./errors.ts";
import { tryParseAddress } from "./net/address.ts";
import { fromHex, toHex } from "./net/bytes.ts";

/** A parsed magnet link. */
export interface MagnetLink {
  /** The v1 info-hash (20 bytes). */
  infoHash: Uint8Array;
  /** The info-hash as 40 lower-case hex characters. */
  infoHashHex: string;
  /** Display name (`dn`), if given. */
  name?: string;
  /** Tracker URLs (`tr`): http, https, udp or wss; deduplicated, in order. */
  trackers: string[];
  /** Web seed URLs (`ws`): http or https; deduplicated, in order. */
  webSeeds: string[];
  /** Peer addresses (`x.pe`) as `host:port`, IPv6 as `[::1]:port`; deduplicated, in order. */
  peers: string[];
  /** File indices to download (BEP 53 `so`), sorted and unique; absent means all files. */
  selectOnly?: number[];
}

/** Longest magnet URI accepted, in characters. */
const MAX_URI_LENGTH = 64 * 1024;
const MAX_TRACKERS = 100;
const MAX_WEB_SEEDS = 50;
const MAX_PEERS = 200;
/** Most file indices a `so` parameter may select. */
const MAX_SELECTED = 100_000;
/** Highest file index a `so` parameter may name (a torrent has at most a million files by default). */
const MAX_FILE_INDEX = 999_999;

const TRACKER_SCHEMES = new Set(["http:", "https:", "udp:", "wss:"]);
const WEB_SEED_SCHEMES = new Set(["http:", "https:"]);
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * Parses a magnet URI. It needs an `xt=urn:btih:` parameter with a 40-character hex or
 * 32-character base32 info-hash (the first one counts when there are several). Malformed or
 * surplus trackers, web seeds and peers are dropped one by one rather than failing the link.
 *
 * @example
 * ```ts
 * import { parseMagnet } from "./magnet.ts";
 * const link = parseMagnet(
 *   "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=My+File&tr=udp%3A%2F%2F127.0.0.1%3A6969",
 * );
 * console.log(link.name, link.trackers); // "My File" ["udp://127.0.0.1:6969"]
 * ```
 *
 * @param uri The magnet URI.
 * @returns The parsed link.
 * @throws {MagnetError} when the URI is too long, is not a magnet URI, or has no usable
 * BitTorrent v1 info-hash.
 */
export function parseMagnet(uri: string): MagnetLink {
  if (uri.length > MAX_URI_LENGTH) {
    throw new MagnetError(
      `Invalid magnet link: ${uri.length} characters exceed the maximum of ${MAX_URI_LENGTH}`,
    );
  }
  const text = uri.trim();
  if (!/^magnet:\?/i.test(text)) {
    throw new MagnetError("Invalid magnet link: it does not start with 'magnet:?'");
  }
  const hashAt = text.indexOf("#");
  const query = text.slice("magnet:?".length, hashAt < 0 ? undefined : hashAt);

  let infoHash: Uint8Array | undefined;
  let sawV2 = false;
  let name: string | undefined;
  const trackers = new Set<string>();
  const webSeeds = new Set<string>();
  const peers = new Set<string>();
  let selectOnly: number[] | undefined;

  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    // Keys may be numbered ("tr.1", "xt.2") and are case-insensitive.
    const key = percentDecode(rawKey, false).toLowerCase().replace(/\.\d+$/, "");
    switch (key) {
      case "xt": {
        const value = percentDecode(rawValue, false).trim();
        if (/^urn:btih:/i.test(value)) {
          if (infoHash === undefined) infoHash = decodeInfoHash(value.slice("urn:btih:".length));
        } else if (/^urn:btmh:/i.test(value)) {
          sawV2 = true;
        }
        break;
      }
      case "dn":
        if (name === undefined && rawValue !== "") name = percentDecode(rawValue, true);
        break;
      case "tr":
        addUrl(trackers, percentDecode(rawValue, false), TRACKER_SCHEMES, MAX_TRACKERS);
        break;
      case "ws":
        addUrl(webSeeds, percentDecode(rawValue, false), WEB_SEED_SCHEMES, MAX_WEB_SEEDS);
        break;
      case "x.pe": {
        const peer = parsePeer(percentDecode(rawValue, false).trim());
        if (peer !== undefined && peers.size < MAX_PEERS) peers.add(peer);
        break;
      }
      case "so":
        if (selectOnly === undefined) selectOnly = parseSelectOnly(percentDecode(rawValue, false));
        break;
    }
  }

  if (infoHash === undefined) {
    if (sawV2) {
      throw new MagnetError("Invalid magnet link: v2-only links (xt=urn:btmh:) are not supported yet");
    }
    throw new MagnetError("Invalid magnet link: no xt=urn:btih: parameter");
  }
  const link: MagnetLink = {
    infoHash,
    infoHashHex: toHex(infoHash),
    trackers: [...trackers],
    webSeeds: [...webSeeds],
    peers: [...peers],
  };
  if (name !== undefined) link.name = name;
  if (selectOnly !== undefined && selectOnly.length > 0) link.selectOnly = selectOnly;
  return link;
}

/**
 * Formats a magnet link as a URI that {@linkcode parseMagnet} reads back to the same link.
 *
 * @example
 * ```ts
 * import { formatMagnet, parseMagnet } from "./magnet.ts";
 * const link = parseMagnet("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=0,2-4");
 * console.log(formatMagnet({ ...link, name: "a b" }));
 * // "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a%20b&so=0,2-4"
 * ```
 *
 * @param link The link; `infoHash` must be 20 bytes.
 * @returns The magnet URI.
 * @throws {MagnetError} when the info-hash is not 20 bytes.
 */
export function formatMagnet(link: MagnetLink): string {
  if (link.infoHash.length !== 20) {
    throw new MagnetError(
      `Cannot format magnet link: the info-hash is ${link.infoHash.length} bytes, not 20`,
    );
  }
  let uri = `magnet:?xt=urn:btih:${toHex(link.infoHash)}`;
  if (link.name !== undefined) uri += `&dn=${percentEncode(link.name)}`;
  for (const tracker of link.trackers) uri += `&tr=${percentEncode(tracker)}`;
  for (const seed of link.webSeeds) uri += `&ws=${percentEncode(seed)}`;
  for (const peer of link.peers) uri += `&x.pe=${percentEncode(peer)}`;
  if (link.selectOnly !== undefined && link.selectOnly.length > 0) {
    uri += `&so=${formatRanges(link.selectOnly)}`;
  }
  return uri;
}

function decodeInfoHash(text: string): Uint8Array {
  if (/^[0-9a-f]{40}$/i.test(text)) return fromHex(text);
  if (/^[a-z2-7]{32}$/i.test(text)) {
    const out = new Uint8Array(20);
    let bits = 0;
    let acc = 0;
    let at = 0;
    for (const ch of text.toUpperCase()) {
      acc = (acc << 5) | BASE32.indexOf(ch);
      bits += 5;
      if (bits >= 8) {
        bits -= 8;
        out[at++] = (acc >> bits) & 0xff;
      }
    }
    return out;
  }
  const shown = text.length > 80 ? text.slice(0, 80) + "…" : text;
  throw new MagnetError(
    `Invalid magnet link: btih info-hash '${shown}' is neither 40 hex nor 32 base32 characters`,
  );
}

/**
 * Decodes `%XX` escapes as UTF-8 (invalid sequences become U+FFFD; a `%` without two hex
 * digits is kept as is); with `plusIsSpace`, `+` becomes a space.
 */
function percentDecode(text: string, plusIsSpace: boolean): string {
  if (!text.includes("%")) return plusIsSpace ? text.replaceAll("+", " ") : text;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "%" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === "+" && plusIsSpace) {
      bytes.push(0x20);
    } else {
      const code = text.codePointAt(i)!;
      const ch = String.fromCodePoint(code);
      for (const b of encoder.encode(ch)) bytes.push(b);
      i += ch.length - 1;
    }
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(new Uint8Array(bytes));
}

/** Escapes a value for a magnet URI, leaving `:`, `/`, `@`, `[`, `]` and `,` readable. */
function percentEncode(text: string): string {
  return encodeURIComponent(text.toWellFormed()).replace(
    /%(3A|2F|40|5B|5D|2C)/gi,
    (m) => decodeURIComponent(m),
  );
}

function addUrl(into: Set<string>, value: string, schemes: ReadonlySet<string>, max: number): void {
  const text = value.trim();
  if (into.size >= max || text === "" || !URL.canParse(text)) return;
  const url = new URL(text);
  if (!schemes.has(url.protocol) || url.hostname === "") return;
  into.add(text);
}

/** Normalises a `host:port` peer address; `undefined` when it is not one. */
function parsePeer(text: string): string | undefined {
  const parsed = tryParseAddress(text, { strict: true });
  if (parsed === null) return undefined;
  const { hostname, port } = parsed;
  // IPv6 compressed and lower-case, host names lower-case.
  return hostname.includes(":")
    ? `${new URL(`http://[${hostname}]/`).hostname}:${port}`
    : `${hostname.toLowerCase()}:${port}`;
}

/** Parses a BEP 53 `so` value ("0,2,4-6"); malformed entries are skipped, the result is capped. */
function parseSelectOnly(text: string): number[] {
  const ranges: [number, number][] = [];
  for (const entry of text.split(",")) {
    const match = /^\s*(\d{1,7})(?:-(\d{1,7}))?\s*$/.exec(entry);
    if (match === null) continue;
    const first = Number(match[1]);
    const last = Math.min(match[2] === undefined ? first : Number(match[2]), MAX_FILE_INDEX);
    if (first <= last) ranges.push([first, last]);
  }
  // Expand the ranges in order, skipping overlaps, so the work is bounded by the cap.
  ranges.sort((a, b) => a[0] - b[0]);
  const selected: number[] = [];
  let next = 0;
  for (const [first, last] of ranges) {
    for (let i = Math.max(first, next); i <= last && selected.length < MAX_SELECTED; i++) selected.push(i);
    next = Math.max(next, last + 1);
    if (selected.length >= MAX_SELECTED) break;
  }
  return selected;
}

/** Formats sorted-or-not indices as BEP 53 ranges ("0,2-4"). */
function formatRanges(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].filter((i) => Number.isSafeInteger(i) && i >= 0).sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
