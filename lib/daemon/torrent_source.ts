/**
 * What can be added to the daemon, and turning each kind into metainfo bytes or a magnet link:
 * .torrent bytes, a local .torrent path, a magnet link, or an http(s) URL of a .torrent
 * (fetched with a size cap and a timeout).
 *
 * @module
 */

import { formatMagnet, type MagnetLink, parseMagnet } from "../magnet.ts";
import { parseMetainfo } from "../metainfo.ts";
import { readTorrentFile } from "../torrent_file.ts";
import { concatBytes } from "../net/bytes.ts";
import { ShoalError } from "../errors.ts";
import type { Metainfo } from "../types.ts";
import { DaemonError } from "./errors.ts";

/**
 * A torrent to add: its bytes, a local .torrent path, a magnet link, or an http(s) URL of a
 * .torrent. {@linkcode sourceFromFilename} makes one from the text Transmission's
 * `torrent-add` calls `filename`.
 */
export type AddSource =
  | { readonly torrent: Uint8Array }
  | { readonly path: string }
  | { readonly magnet: string }
  | { readonly url: string };

/** A source made ready: metainfo with the bytes to store, or a magnet link. */
export type ResolvedSource =
  | { readonly kind: "metainfo"; readonly metainfo: Metainfo; readonly bytes: Uint8Array }
  | { readonly kind: "magnet"; readonly link: MagnetLink; readonly uri: string };

/** Options of {@linkcode resolveSource}. */
export interface ResolveSourceOptions {
  /** The fetch used for URLs. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Deadline of a URL fetch, in ms. @default {30_000} */
  timeoutMs?: number;
  /** Largest .torrent accepted from a URL, in bytes. @default {10 MiB} */
  maxBytes?: number;
  /** Aborts a URL fetch. */
  signal?: AbortSignal;
}

/**
 * Tells a Transmission-style `filename` apart: a magnet link, an http(s) URL, else a path.
 *
 * @example
 * ```ts
 * import { sourceFromFilename } from "./torrent_source.ts";
 * console.log(sourceFromFilename("https://example.com/x.torrent")); // { url: "https://example.com/x.torrent" }
 * console.log(sourceFromFilename("/srv/x.torrent")); // { path: "/srv/x.torrent" }
 * ```
 *
 * @param filename The text.
 * @returns The source.
 */
export function sourceFromFilename(filename: string): AddSource {
  const text = filename.trim();
  if (/^magnet:/i.test(text)) return { magnet: text };
  if (/^https?:\/\//i.test(text)) return { url: text };
  return { path: filename };
}

/**
 * Reads, fetches or parses a source.
 *
 * @example
 * ```ts ignore
 * const resolved = await resolveSource({ magnet: "magnet:?xt=urn:btih:..." });
 * console.log(resolved.kind); // "magnet"
 * ```
 *
 * @param source What to add.
 * @param options The fetch, its deadline and size cap.
 * @returns The metainfo and its bytes, or the magnet link.
 * @throws {DaemonError} `INVALID_SOURCE` for something that is not a torrent, `FETCH_FAILED`
 * for a URL that cannot be fetched; `MetainfoError` / `MagnetError` for invalid content.
 */
export async function resolveSource(
  source: AddSource,
  options: ResolveSourceOptions = {},
): Promise<ResolvedSource> {
  if ("magnet" in source) {
    const link = parseMagnet(source.magnet);
    return { kind: "magnet", link, uri: formatMagnet(link) };
  }
  let bytes: Uint8Array;
  if ("torrent" in source) bytes = new Uint8Array(source.torrent);
  else if ("path" in source) {
    try {
      bytes = await readTorrentFile(source.path);
    } catch (error) {
      if (error instanceof ShoalError) throw error;
      throw new DaemonError("INVALID_SOURCE", `Cannot read ${source.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  } else if ("url" in source) bytes = await fetchTorrent(source.url, options);
  else {throw new DaemonError(
      "INVALID_SOURCE",
      "Nothing to add: give torrent bytes, a path, a magnet link or a URL",
    );}
  return { kind: "metainfo", metainfo: parseMetainfo(bytes), bytes };
}

/**
 * Fetches a .torrent over http(s), refusing more than `maxBytes` and giving up after
 * `timeoutMs`.
 *
 * @example
 * ```ts ignore
 * const bytes = await fetchTorrent("https://example.com/x.torrent", { timeoutMs: 5000 });
 * ```
 *
 * @param url The URL.
 * @param options Fetch, deadline, size cap, signal.
 * @returns The body.
 * @throws {DaemonError} `INVALID_SOURCE` for another scheme, `FETCH_FAILED` otherwise.
 */
export async function fetchTorrent(url: string, options: ResolveSourceOptions = {}): Promise<Uint8Array> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DaemonError("INVALID_SOURCE", `Invalid URL: ${url}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DaemonError("INVALID_SOURCE", `Cannot fetch ${url}: only http and https URLs are fetched`);
  }
  const maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const failed = (why: string, cause?: unknown): never => {
    throw new DaemonError(
      "FETCH_FAILED",
      `Cannot fetch ${url}: ${why}`,
      cause === undefined ? {} : { cause },
    );
  };
  try {
    const response = await (options.fetch ?? fetch)(url, { signal, redirect: "follow" });
    if (!response.ok) {
      await response.body?.cancel();
      return failed(`the server answered ${response.status} ${response.statusText}`.trim());
    }
    const declared = Number(response.headers.get("content-length") ?? "NaN");
    if (declared > maxBytes) {
      await response.body?.cancel();
      return failed(`it is ${declared} bytes long, more than the ${maxBytes} accepted`);
    }
    const chunks: Uint8Array[] = [];
    let length = 0;
    if (response.body !== null) {
      for await (const chunk of response.body) {
        length += chunk.length;
        if (length > maxBytes) return failed(`it is more than the ${maxBytes} bytes accepted`);
        chunks.push(chunk);
      }
    }
    return concatBytes(chunks);
  } catch (error) {
    if (error instanceof DaemonError) throw error;
    if (timeout.aborted) return failed(`no answer within ${timeoutMs / 1000} s`, error);
    return failed((error as Error).message, error);
  }
}
