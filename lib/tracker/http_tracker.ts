/**
 * HTTP(S) tracker client (BEP 3): announce and scrape.
 *
 * Announces ask for compact answers (`compact=1`) and understand compact IPv4 peers
 * (BEP 23), dictionary peers and compact IPv6 peers in `peers6` (BEP 7). The answer body
 * is read as a stream and cut at a size cap; every call has a timeout. A compact list
 * whose length is not a multiple of the entry size is not an error: the whole entries
 * are used and the problem is reported in {@linkcode AnnounceResponse.issues}, so one
 * sloppy tracker still gives us peers.
 *
 * @module
 */

import { type BDict, type BValue, decode, keyBytes } from "../bencode.ts";
import { BencodeError } from "../errors.ts";
import { decodeCompactPeers, formatAddress, formatIp, parseIp } from "../net/address.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  type TrackerClientOptions,
  TrackerError,
} from "./types.ts";
import { concatBytes, latin1, toHex } from "../net/bytes.ts";

/** Options for {@linkcode httpAnnounce} and {@linkcode httpScrape}. */
export interface HttpTrackerOptions extends TrackerClientOptions {
  /** Largest answer body accepted, in bytes; a longer one is cut and rejected. @default {2097152} */
  maxBodyBytes?: number;
  /** Most peers kept from one answer (after deduplication). @default {1000} */
  maxPeers?: number;
  /** The `User-Agent` header. @default {"shoal/0.1"} */
  userAgent?: string;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_BODY = 2 * 1024 * 1024;
const DEFAULT_MAX_PEERS = 1000;
const DEFAULT_INTERVAL = 1800;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/**
 * Announces to an HTTP(S) tracker.
 *
 * @example
 * ```ts ignore
 * import { httpAnnounce } from "./http_tracker.ts";
 * const answer = await httpAnnounce("http://tracker.example/announce", {
 *   infoHash: new Uint8Array(20),
 *   peerId: new TextEncoder().encode("-SH0100-abcdefghijkl"),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 1000, event: "started", numwant: 50, key: 0x1234abcd,
 * });
 * console.log(answer.interval, answer.peers);
 * ```
 *
 * @param url The announce URL (`http:` or `https:`); an existing query string is kept.
 * @param req What to announce.
 * @param options Timeout, signal, size caps.
 * @returns The tracker's answer.
 * @throws {TrackerError} when the tracker cannot be reached, refuses (`failure reason`),
 * answers with a status other than 200 (`gone` on 410), or answers something unusable.
 */
export async function httpAnnounce(
  url: string,
  req: AnnounceRequest,
  options: HttpTrackerOptions = {},
): Promise<AnnounceResponse> {
  checkHash(req.infoHash, "info-hash");
  checkHash(req.peerId, "peer id");
  const params = [
    `info_hash=${percentEncodeBytes(req.infoHash)}`,
    `peer_id=${percentEncodeBytes(req.peerId)}`,
    `port=${wholeNumber(req.port)}`,
    `uploaded=${wholeNumber(req.uploaded)}`,
    `downloaded=${wholeNumber(req.downloaded)}`,
    `left=${wholeNumber(req.left)}`,
  ];
  if (req.event !== undefined) params.push(`event=${req.event}`);
  params.push("compact=1");
  if (req.numwant !== undefined) params.push(`numwant=${wholeNumber(req.numwant)}`);
  params.push(`key=${(req.key >>> 0).toString(16).padStart(8, "0")}`);
  if (req.trackerId !== undefined) params.push(`trackerid=${percentEncodeBytes(keyBytes(req.trackerId))}`);
  const dict = await fetchDict(withQuery(url, params), options, "announce");
  return parseAnnounce(dict, options.maxPeers ?? DEFAULT_MAX_PEERS);
}

/**
 * Derives the scrape URL from an announce URL by the BEP 48 rule: the last path segment
 * must start with `announce`, which is replaced by `scrape`; the query string is kept.
 *
 * @example
 * ```ts
 * import { scrapeUrl } from "./http_tracker.ts";
 * console.log(scrapeUrl("http://t.example/x/announce.php?k=1")); // "http://t.example/x/scrape.php?k=1"
 * console.log(scrapeUrl("http://t.example/a")); // null
 * ```
 *
 * @param announceUrl The announce URL (`http:` or `https:`).
 * @returns The scrape URL, or `null` when the tracker does not support scraping by that rule.
 */
export function scrapeUrl(announceUrl: string): string | null {
  if (!URL.canParse(announceUrl)) return null;
  const protocol = new URL(announceUrl).protocol;
  if (protocol !== "http:" && protocol !== "https:") return null;
  const cut = announceUrl.search(/[?#]/);
  const path = cut < 0 ? announceUrl : announceUrl.slice(0, cut);
  const rest = cut < 0 ? "" : announceUrl.slice(cut);
  const slash = path.lastIndexOf("/");
  // The slash must belong to the path, not to "http://".
  if (slash < path.indexOf("//") + 2) return null;
  const segment = path.slice(slash + 1);
  if (!segment.startsWith("announce")) return null;
  return `${path.slice(0, slash + 1)}scrape${segment.slice("announce".length)}${rest}`;
}

/**
 * Scrapes an HTTP(S) tracker for the counts of some torrents.
 *
 * @example
 * ```ts ignore
 * import { httpScrape, scrapeUrl } from "./http_tracker.ts";
 * const counts = await httpScrape(scrapeUrl("http://tracker.example/announce")!, [new Uint8Array(20)]);
 * console.log(counts.get("00".repeat(20))?.seeders);
 * ```
 *
 * @param url The scrape URL (see {@linkcode scrapeUrl}).
 * @param infoHashes The 20-byte info-hashes to ask about.
 * @param options Timeout, signal, size cap.
 * @returns Counts by lower-case hex info-hash, for the asked torrents the tracker knows.
 * @throws {TrackerError} as {@linkcode httpAnnounce} does.
 */
export async function httpScrape(
  url: string,
  infoHashes: Uint8Array[],
  options: HttpTrackerOptions = {},
): Promise<Map<string, ScrapeEntry>> {
  for (const hash of infoHashes) checkHash(hash, "info-hash");
  const dict = await fetchDict(
    withQuery(url, infoHashes.map((hash) => `info_hash=${percentEncodeBytes(hash)}`)),
    options,
    "scrape",
  );
  const files = dict.get("files");
  if (!(files instanceof Map)) throw new TrackerError("Tracker scrape answer has no 'files' dictionary");
  const wanted = new Set(infoHashes.map(toHex));
  const out = new Map<string, ScrapeEntry>();
  for (const [key, value] of files) {
    if (key.length !== 20 || !(value instanceof Map)) continue;
    const hex = toHex(keyBytes(key));
    if (!wanted.has(hex)) continue;
    out.set(hex, {
      seeders: count(value.get("complete")) ?? 0,
      completed: count(value.get("downloaded")) ?? 0,
      leechers: count(value.get("incomplete")) ?? 0,
    });
  }
  return out;
}

/**
 * Percent-encodes raw bytes for a query string: unreserved characters (`A-Z a-z 0-9 - . _ ~`)
 * stay, every other byte becomes `%XX` (upper-case hex).
 *
 * @example
 * ```ts
 * import { percentEncodeBytes } from "./http_tracker.ts";
 * console.log(percentEncodeBytes(new Uint8Array([0x12, 0x41, 0xff, 0x2e]))); // "%12A%FF."
 * ```
 *
 * @param bytes The bytes.
 * @returns The encoded text.
 */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

// ---------------------------------------------------------------------------

function checkHash(bytes: Uint8Array, what: string): void {
  if (bytes.length !== 20) throw new RangeError(`Invalid ${what}: expected 20 bytes, got ${bytes.length}`);
}

function wholeNumber(value: number): string {
  return Number.isFinite(value) ? String(Math.max(0, Math.trunc(value))) : "0";
}

/** Appends query parameters to a URL, keeping its own query string and dropping a fragment. */
function withQuery(url: string, params: string[]): string {
  const hash = url.indexOf("#");
  const base = hash < 0 ? url : url.slice(0, hash);
  if (params.length === 0) return base;
  const separator = !base.includes("?") ? "?" : base.endsWith("?") || base.endsWith("&") ? "" : "&";
  return `${base}${separator}${params.join("&")}`;
}

/** Fetches a URL, checks status and size, decodes the body, and throws on `failure reason`. */
async function fetchDict(url: string, options: HttpTrackerOptions, what: string): Promise<BDict> {
  if (!URL.canParse(url)) throw new TrackerError(`Invalid tracker URL: ${url}`, { retryable: false });
  const protocol = new URL(url).protocol;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new TrackerError(`Unsupported tracker URL scheme for HTTP ${what}: ${protocol}`, {
      retryable: false,
    });
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signals = [AbortSignal.timeout(timeoutMs)];
  if (options.signal !== undefined) signals.push(options.signal);
  const signal = AbortSignal.any(signals);
  const fail = (error: unknown): never => {
    if (error instanceof TrackerError) throw error;
    if (options.signal?.aborted) throw options.signal.reason;
    if (signal.aborted) {
      throw new TrackerError(`Tracker did not answer the ${what} within ${timeoutMs} ms`, { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new TrackerError(`Cannot reach tracker for ${what}: ${message}`, { cause: error });
  };
  let response: Response;
  try {
    response = await fetch(url, { signal, headers: { "user-agent": options.userAgent ?? "shoal/0.1" } });
  } catch (error) {
    return fail(error);
  }
  const status = `HTTP ${response.status}${response.statusText === "" ? "" : ` ${response.statusText}`}`;
  if (response.status === 410) {
    await discard(response);
    throw new TrackerError(`Tracker answered ${status}: it is gone, stop using it`, {
      retryable: false,
      gone: true,
    });
  }
  let body: Uint8Array;
  try {
    body = await readCapped(
      response,
      response.status === 200 ? options.maxBodyBytes ?? DEFAULT_MAX_BODY : 65536,
    );
  } catch (error) {
    return fail(error);
  }
  if (response.status !== 200) {
    const reason = failureReasonOf(body);
    throw new TrackerError(`Tracker answered ${status}${reason === undefined ? "" : `: ${reason}`}`);
  }
  let value: BValue;
  try {
    value = decode(body, { maxDepth: 16, maxTokens: 500_000 });
  } catch (error) {
    if (!(error instanceof BencodeError)) throw error;
    throw new TrackerError(
      `Tracker ${what} answer is not bencode (starts with ${
        JSON.stringify(text(body.subarray(0, 40)))
      }): ${error.message}`,
      { cause: error },
    );
  }
  if (!(value instanceof Map)) throw new TrackerError(`Tracker ${what} answer is not a dictionary`);
  const failure = value.get("failure reason");
  if (failure !== undefined) {
    const never = value.get("retry in") instanceof Uint8Array &&
      text(value.get("retry in") as Uint8Array) === "never";
    const reason = failure instanceof Uint8Array ? text(failure) : "(no reason given)";
    throw new TrackerError(`Tracker refused the ${what}: ${reason}`, { retryable: !never });
  }
  return value;
}

/** Reads a body, failing once it passes `max` bytes (checked on each chunk, so a huge body is cut early). */
async function readCapped(response: Response, max: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await discard(response);
    throw new TrackerError(`Tracker answer of ${declared} bytes exceeds the limit of ${max}`);
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new TrackerError(`Tracker answer exceeds the limit of ${max} bytes`);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch (error) {
    // The connection may already be gone; nothing is lost by not draining it.
    if (!(error instanceof Error)) throw error;
  }
}

function failureReasonOf(body: Uint8Array): string | undefined {
  try {
    const value = decode(body, { maxDepth: 4, maxTokens: 1000 });
    const reason = value instanceof Map ? value.get("failure reason") : undefined;
    return reason instanceof Uint8Array ? text(reason) : undefined;
  } catch (error) {
    if (error instanceof BencodeError) return undefined;
    throw error;
  }
}

function parseAnnounce(dict: BDict, maxPeers: number): AnnounceResponse {
  const issues: string[] = [];
  let interval = integer(dict.get("interval"));
  if (interval === undefined) {
    issues.push(`Tracker sent no interval: using ${DEFAULT_INTERVAL} s`);
    interval = DEFAULT_INTERVAL;
  }
  const found: string[] = [];
  const peers = dict.get("peers");
  if (peers instanceof Uint8Array) {
    found.push(...decodeCompactPeers(peers, 4));
    noteRemainder(peers.length, 6, "peers", issues);
  } else if (Array.isArray(peers)) {
    let bad = 0;
    for (const entry of peers) {
      const address = dictPeer(entry);
      if (address === undefined) bad++;
      else found.push(address);
    }
    if (bad > 0) issues.push(`Skipped ${bad} malformed dictionary peer${bad === 1 ? "" : "s"}`);
  } else if (peers !== undefined) {
    issues.push("Ignored 'peers': neither a compact string nor a list");
  }
  const peers6 = dict.get("peers6");
  if (peers6 instanceof Uint8Array) {
    found.push(...decodeCompactPeers(peers6, 6));
    noteRemainder(peers6.length, 18, "peers6", issues);
  } else if (peers6 !== undefined) {
    issues.push("Ignored 'peers6': not a compact string");
  }
  const out: AnnounceResponse = { interval, peers: dedupePeers(found, maxPeers, issues) };
  const minInterval = integer(dict.get("min interval"));
  if (minInterval !== undefined) out.minInterval = minInterval;
  const trackerId = dict.get("tracker id");
  if (trackerId instanceof Uint8Array && trackerId.length > 0 && trackerId.length <= 256) {
    out.trackerId = latin1(trackerId);
  }
  const seeders = count(dict.get("complete"));
  if (seeders !== undefined) out.seeders = seeders;
  const leechers = count(dict.get("incomplete"));
  if (leechers !== undefined) out.leechers = leechers;
  const warning = dict.get("warning message");
  if (warning instanceof Uint8Array) out.warning = text(warning);
  if (issues.length > 0) out.issues = issues;
  return out;
}

/**
 * Deduplicates peers and keeps at most `max`, noting a cut in `issues`.
 *
 * @example
 * ```ts
 * import { dedupePeers } from "./http_tracker.ts";
 * const issues: string[] = [];
 * console.log(dedupePeers(["1.2.3.4:5", "1.2.3.4:5", "[::1]:6"], 10, issues)); // ["1.2.3.4:5", "[::1]:6"]
 * ```
 *
 * @param peers The peers, in order.
 * @param max The most to keep.
 * @param issues Where to note that peers were cut.
 * @returns The first `max` distinct peers.
 */
export function dedupePeers(peers: Iterable<string>, max: number, issues: string[]): string[] {
  // Bounded by the caller's input (a capped answer body), so counting every distinct peer is cheap.
  const seen = new Set<string>(peers);
  const kept = [...seen].slice(0, Math.max(0, max));
  if (seen.size > kept.length) issues.push(`Tracker sent ${seen.size} peers: kept the first ${kept.length}`);
  return kept;
}

/**
 * Notes in `issues` a compact list whose length is not a multiple of its entry size.
 *
 * @example
 * ```ts
 * import { noteRemainder } from "./http_tracker.ts";
 * const issues: string[] = [];
 * noteRemainder(15, 6, "peers", issues);
 * console.log(issues[0]); // "Compact 'peers' of 15 bytes is not a multiple of 6: used 2 peers, ignored 3 trailing bytes"
 * ```
 *
 * @param length The list's length in bytes.
 * @param size The entry size (6 or 18).
 * @param name The list's name, for the message.
 * @param issues Where to note it.
 */
export function noteRemainder(length: number, size: number, name: string, issues: string[]): void {
  const rest = length % size;
  if (rest === 0) return;
  issues.push(
    `Compact '${name}' of ${length} bytes is not a multiple of ${size}: ` +
      `used ${Math.floor(length / size)} peers, ignored ${rest} trailing bytes`,
  );
}

function dictPeer(entry: BValue): string | undefined {
  if (!(entry instanceof Map)) return undefined;
  const ipValue = entry.get("ip");
  const port = integer(entry.get("port"));
  if (!(ipValue instanceof Uint8Array) || port === undefined || port < 1 || port > 65535) return undefined;
  const host = latin1(ipValue.subarray(0, 300));
  const ip = parseIp(host);
  if (ip !== null) return formatAddress(formatIp(ip), port);
  return HOST_NAME.test(host) ? `${host.toLowerCase()}:${port}` : undefined;
}

/** An integer value as a number (bigints beyond the safe range become ±Infinity-ish large numbers). */
function integer(value: BValue | undefined): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

function count(value: BValue | undefined): number | undefined {
  const n = integer(value);
  return n === undefined || n < 0 || !Number.isSafeInteger(n) ? undefined : n;
}

/** Tracker-supplied text, made safe to log: UTF-8 with replacement, control characters removed, capped. */
function text(bytes: Uint8Array): string {
  // deno-lint-ignore no-control-regex
  const clean = new TextDecoder().decode(bytes.subarray(0, 1024)).replace(/[\u0000-\u001f\u007f]/g, " ");
  return clean.length > 300 ? `${clean.slice(0, 300)}...` : clean;
}
