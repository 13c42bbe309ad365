/**
 * What `torrent-add` names, read into something a session can add: `.torrent` bytes
 * (parsed), a magnet link, an http(s) URL of a `.torrent` (fetched, size-capped) or a path
 * (which the caller checks is inside its folders).
 *
 * @module
 */

import { parseMetainfo } from "../../metainfo.ts";
import { type MagnetLink, parseMagnet } from "../../magnet.ts";
import type { Metainfo } from "../../types.ts";
import type { AddTorrentRequest } from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";

/** Most bytes of a .torrent fetched from a URL or read from a path. */
export const MAX_TORRENT_FILE_BYTES = 16 * 1024 * 1024;

/** Options of {@linkcode readTorrentSource}. */
export interface TorrentSourceOptions {
  /** Refuses a path the client may not read (throws); returns the path to read. */
  checkPath: (path: string) => string;
  /** Fetches URLs. @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

/**
 * Reads the torrent a `torrent-add` request names.
 *
 * @example
 * ```ts ignore
 * const source = await readTorrentSource({ filename: "magnet:?xt=urn:btih:..." }, { checkPath: (p) => p });
 * ```
 *
 * @param request `metainfo` or `filename`.
 * @param options Path check and fetch.
 * @returns Parsed metadata, or a magnet link.
 * @throws {TransmissionRpcError} saying what is wrong with it.
 */
export async function readTorrentSource(
  request: AddTorrentRequest,
  options: TorrentSourceOptions,
): Promise<Metainfo | MagnetLink> {
  const parse = (bytes: Uint8Array) => {
    try {
      return parseMetainfo(bytes);
    } catch (error) {
      throw new TransmissionRpcError(`invalid or corrupt torrent file: ${(error as Error).message}`);
    }
  };
  if (request.metainfo !== undefined) return parse(request.metainfo);
  const name = request.filename!;
  if (/^magnet:/i.test(name)) {
    try {
      return parseMagnet(name);
    } catch (error) {
      throw new TransmissionRpcError(`invalid magnet link: ${(error as Error).message}`);
    }
  }
  if (/^https?:\/\//i.test(name)) {
    const response = await (options.fetch ?? fetch)(name, { signal: AbortSignal.timeout(30_000) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new TransmissionRpcError(`cannot fetch ${name}: HTTP ${response.status}`);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > MAX_TORRENT_FILE_BYTES) {
      throw new TransmissionRpcError(`${name} is larger than a torrent file may be`);
    }
    return parse(bytes);
  }
  const path = options.checkPath(name);
  const info = await Deno.stat(path).catch((error: Error) => {
    throw new TransmissionRpcError(`cannot read ${path}: ${error.message}`);
  });
  if (!info.isFile || info.size > MAX_TORRENT_FILE_BYTES) {
    throw new TransmissionRpcError(`${path} is not a torrent file`);
  }
  return parse(await Deno.readFile(path));
}
