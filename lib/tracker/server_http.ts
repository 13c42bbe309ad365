/**
 * The HTTP front end of the built-in tracker (BEP 3 announce, BEP 23 compact peers, BEP 7
 * `peers6`, BEP 48 scrape). The query string is parsed by hand from the raw URL: the
 * info-hash and peer id are raw bytes, percent-encoded, which `URLSearchParams` would
 * mangle by decoding them as UTF-8.
 *
 * Tracker-level failures (bad info-hash, bad port, torrent not allowed) are bencoded
 * `failure reason` replies with status 200, as clients expect; anything that is not a
 * tracker request at all gets a short 4xx.
 *
 * @module
 */

import { type BEncodable, encode } from "../bencode.ts";
import {
  type AnnounceInput,
  binaryString,
  ID_LENGTH,
  isAllowed,
  LOG_CATEGORY,
  normalizeAddress,
  type PeerAddress,
  type SwarmCounts,
  type TrackerContext,
} from "./swarm_registry.ts";
import { concatBytes, toHex } from "../net/bytes.ts";

/** Limits of the HTTP front end. */
export interface HttpLimits {
  /** Longest accepted request target (path and query), in characters. */
  readonly maxUrlLength: number;
  /** Most info-hashes in one scrape request. */
  readonly maxScrapeHashes: number;
  /** Most torrents listed by a scrape that names none; more than that refuses it. */
  readonly maxFullScrape: number;
}

/** Default {@linkcode HttpLimits}. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxUrlLength: 8192,
  maxScrapeHashes: 100,
  maxFullScrape: 1000,
};

const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

/**
 * Answers one HTTP request to the tracker. Never throws for bad input.
 *
 * @example
 * ```ts
 * import { handleHttpRequest } from "./server_http.ts";
 * import { SwarmRegistry } from "./swarm_registry.ts";
 * const context = {
 *   registry: new SwarmRegistry(),
 *   allowList: undefined,
 *   interval: 1800,
 *   minInterval: 60,
 *   defaultNumwant: 50,
 *   maxNumwant: 200,
 *   counters: { announces: 0, scrapes: 0, errors: 0, dropped: 0 },
 *   logger: undefined,
 *   now: Date.now,
 * };
 * const response = handleHttpRequest(
 *   new Request("http://127.0.0.1/announce?info_hash=%01"),
 *   { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
 *   context,
 * );
 * console.log(await response.text()); // "d14:failure reason17:Invalid info_hashe"
 * ```
 *
 * @param request The request.
 * @param remote The connection's remote address (the peer's address; any `ip` parameter is ignored).
 * @param context Registry, policy and counters.
 * @param limits URL and scrape limits.
 * @returns The response.
 */
export function handleHttpRequest(
  request: Request,
  remote: Deno.NetAddr,
  context: TrackerContext,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): Response {
  const url = request.url;
  const authority = url.indexOf("://");
  const pathStart = url.indexOf("/", authority < 0 ? 0 : authority + 3);
  const target = pathStart < 0 ? "/" : url.slice(pathStart);
  if (target.length > limits.maxUrlLength) return refuse(context, 414, "URI too long");
  const hash = target.indexOf("#");
  const withoutFragment = hash < 0 ? target : target.slice(0, hash);
  const q = withoutFragment.indexOf("?");
  const path = q < 0 ? withoutFragment : withoutFragment.slice(0, q);
  const query = q < 0 ? "" : withoutFragment.slice(q + 1);
  if (path !== "/announce" && path !== "/scrape") return refuse(context, 404, "Not found");
  if (request.method !== "GET") {
    context.counters.errors++;
    return new Response("Method not allowed\n", { status: 405, headers: { ...TEXT_HEADERS, allow: "GET" } });
  }
  const params = parseQuery(query);
  if (params === undefined) return failure(context, "Invalid query string");
  const address = normalizeAddress(remote.hostname);
  if (address === undefined) return failure(context, "Cannot determine the peer's address");
  return path === "/announce" ? announce(params, address, context) : scrape(params, context, limits);
}

/** Query parameters: binary-string name to raw byte values, in order. */
type Params = Map<string, Uint8Array[]>;

function announce(params: Params, address: PeerAddress, ctx: TrackerContext): Response {
  const infoHash = params.get("info_hash")?.[0];
  if (infoHash === undefined || infoHash.length !== ID_LENGTH) return failure(ctx, "Invalid info_hash");
  const peerId = params.get("peer_id")?.[0];
  if (peerId === undefined || peerId.length !== ID_LENGTH) return failure(ctx, "Invalid peer_id");
  const port = parseUint(params.get("port")?.[0]);
  if (port === undefined || port < 1 || port > 65535) return failure(ctx, "Invalid port");
  if (!isAllowed(ctx.allowList, infoHash)) return failure(ctx, "Torrent not allowed on this tracker");
  const leftText = params.get("left")?.[0];
  let seed = false;
  if (leftText !== undefined) {
    const text = binaryString(leftText);
    if (!/^\d{1,20}$/.test(text)) return failure(ctx, "Invalid left");
    seed = /^0+$/.test(text);
  }
  const eventText = binaryString(params.get("event")?.[0] ?? new Uint8Array());
  const event = eventText === "started" || eventText === "completed" || eventText === "stopped"
    ? eventText
    : "none";
  if (event === "completed") seed = true;
  const numwantText = params.get("numwant")?.[0];
  let numwant = ctx.defaultNumwant;
  if (numwantText !== undefined) {
    const text = binaryString(numwantText);
    if (/^\d{1,9}$/.test(text)) numwant = Number(text);
    // Anything else (negative, garbage) keeps the default, as clients mean "don't care".
  }
  numwant = Math.min(numwant, ctx.maxNumwant);
  const input: AnnounceInput = { infoHash, peerId, address, port, seed, event, numwant };
  const result = ctx.registry.announce(input);
  ctx.counters.announces++;
  ctx.logger?.debug(LOG_CATEGORY, "HTTP announce", {
    torrent: toHex(infoHash),
    peer: `${address.ip}:${port}`,
    event,
    peers: result.peers.length,
  });
  const compact = binaryString(params.get("compact")?.[0] ?? new Uint8Array()) !== "0";
  const noPeerId = binaryString(params.get("no_peer_id")?.[0] ?? new Uint8Array()) === "1";
  const body = new Map<string, BEncodable>([
    ["interval", ctx.interval],
    ["min interval", ctx.minInterval],
    ["complete", result.complete],
    ["incomplete", result.incomplete],
    ["downloaded", result.downloaded],
  ]);
  if (compact) {
    const v4 = result.peers.filter((p) => p.address.family === 4);
    const v6 = result.peers.filter((p) => p.address.family === 6);
    body.set("peers", concatBytes(v4.map((p) => p.compact)));
    if (v6.length > 0) body.set("peers6", concatBytes(v6.map((p) => p.compact)));
  } else {
    body.set(
      "peers",
      result.peers.map((p) =>
        noPeerId
          ? { ip: p.address.ip, port: p.port }
          : { ip: p.address.ip, "peer id": p.peerId, port: p.port }
      ),
    );
  }
  return ok(encode(body));
}

function scrape(params: Params, ctx: TrackerContext, limits: HttpLimits): Response {
  const requested = params.get("info_hash") ?? [];
  if (requested.length > limits.maxScrapeHashes) {
    return failure(ctx, `Too many info_hash parameters: at most ${limits.maxScrapeHashes}`);
  }
  const files = new Map<string, SwarmCounts>();
  const zero: SwarmCounts = { complete: 0, incomplete: 0, downloaded: 0 };
  if (requested.length === 0) {
    if (ctx.registry.torrents > limits.maxFullScrape) {
      return failure(ctx, "Full scrape refused: name the torrents with info_hash");
    }
    for (const infoHash of ctx.registry.infoHashes(limits.maxFullScrape)) {
      if (!isAllowed(ctx.allowList, infoHash)) continue;
      files.set(binaryString(infoHash), ctx.registry.scrape(infoHash) ?? zero);
    }
  } else {
    for (const infoHash of requested) {
      if (infoHash.length !== ID_LENGTH) return failure(ctx, "Invalid info_hash");
      if (!isAllowed(ctx.allowList, infoHash)) continue;
      files.set(binaryString(infoHash), ctx.registry.scrape(infoHash) ?? zero);
    }
  }
  ctx.counters.scrapes++;
  const body = new Map([["files", new Map([...files].map(([k, v]) => [k, { ...v }]))]]);
  return ok(encode(body));
}

function ok(body: Uint8Array): Response {
  // The encoder returns a fresh buffer of its own.
  return new Response(body as Uint8Array<ArrayBuffer>, { status: 200, headers: TEXT_HEADERS });
}

function failure(ctx: TrackerContext, reason: string): Response {
  ctx.counters.errors++;
  ctx.logger?.debug(LOG_CATEGORY, "HTTP request refused", { reason });
  return ok(encode({ "failure reason": reason }));
}

function refuse(ctx: TrackerContext, status: number, text: string): Response {
  ctx.counters.errors++;
  return new Response(`${text}\n`, { status, headers: TEXT_HEADERS });
}

function parseUint(bytes: Uint8Array | undefined): number | undefined {
  if (bytes === undefined) return undefined;
  const text = binaryString(bytes);
  return /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}

/**
 * Parses a query string into raw bytes per parameter, or `undefined` when it holds a bad
 * percent escape or a character that cannot appear in a URL.
 */
function parseQuery(query: string): Params | undefined {
  const params: Params = new Map();
  if (query === "") return params;
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = percentDecode(eq < 0 ? pair : pair.slice(0, eq));
    const value = percentDecode(eq < 0 ? "" : pair.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    const key = binaryString(name);
    const list = params.get(key);
    if (list === undefined) params.set(key, [value]);
    else list.push(value);
  }
  return params;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Decodes `%XX` escapes and `+` (a space) to raw bytes; only printable ASCII is accepted. */
function percentDecode(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(text.charCodeAt(i + 1));
      const lo = hexValue(text.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c === 0x2b) {
      out[n++] = 0x20;
    } else if (c > 0x20 && c < 0x7f) {
      out[n++] = c;
    } else {
      return undefined;
    }
  }
  return out.subarray(0, n);
}
