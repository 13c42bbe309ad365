/**
 * From a magnet link to a torrent the session can run: the metadata comes from the .torrent
 * saved beside the resume data by an earlier fetch (`<resumeDir>/<infohash>.torrent`), or is
 * fetched from peers ({@linkcode fetchMetadata}) and then saved there (atomically), so a
 * restart does not fetch it again. The link's other parts are carried over: `x.pe` peers and
 * the fetch's peers are dialled first, `tr` trackers become extra tiers, `ws` web seeds are
 * recorded on the metainfo (`urlList`; shoal does not download from web seeds), and `so`
 * selects the files to download.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { ShoalError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { type MagnetLink, parseMagnet } from "./magnet.ts";
import { encodeTorrent, parseMetainfo } from "./metainfo.ts";
import { fetchMetadata, type FetchMetadataOptions } from "./metadata_fetch.ts";
import { ensureFolderInside, readFileInside, writeFileAtomic } from "./storage/safe_open.ts";
import { toStorageError } from "./storage/storage.ts";
import type { Metainfo } from "./types.ts";

/** Largest saved .torrent read back (the metadata fetch accepts at most 16 MiB of info). */
const MAX_SAVED_TORRENT_BYTES = 20 * 1024 * 1024;

/** Options for {@linkcode resolveMagnet}: those of the fetch, plus where saved metadata lives. */
export interface ResolveMagnetOptions extends FetchMetadataOptions {
  /** The folder of the torrent's resume data; the metadata is saved there as `<infohash>.torrent`. */
  resumeDir: string;
  /**
   * The folder below which the saved metadata is never reached through a symbolic link (the
   * download folder, when the resume folder is its `.shoal`). @default {resumeDir}
   */
  resumeRoot?: string;
  /** Logger for what happens (category `metadata`). */
  logger: Logger;
}

/** A magnet link with its metadata. */
export interface ResolvedMagnet {
  /** The torrent, `ws` web seeds as its `urlList`, `tr` trackers in its `announceList`. */
  readonly metainfo: Metainfo;
  /** Peers to dial, best first (the link's `x.pe`, then those the fetch met). */
  readonly peers: readonly string[];
  /** True when the metadata came from the saved .torrent, not from peers. */
  readonly saved: boolean;
}

/**
 * Tells a magnet link (parsed) from other sources of a torrent.
 *
 * @example
 * ```ts
 * import { isMagnetLink } from "./magnet_source.ts";
 * import { parseMagnet } from "./magnet.ts";
 * console.log(isMagnetLink(parseMagnet("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a"))); // true
 * ```
 *
 * @param value A torrent source.
 * @returns True for a {@linkcode MagnetLink}.
 */
export function isMagnetLink(value: unknown): value is MagnetLink {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) &&
    !("infoBytes" in value) && "infoHash" in value && "trackers" in value && "peers" in value;
}

/**
 * Parses a magnet URI, or returns a parsed link as it is.
 *
 * @example
 * ```ts
 * import { toMagnetLink } from "./magnet_source.ts";
 * console.log(toMagnetLink("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a").infoHashHex);
 * ```
 *
 * @param source A magnet URI or link.
 * @returns The link.
 * @throws {MagnetError} when the URI is not a usable magnet link.
 */
export function toMagnetLink(source: string | MagnetLink): MagnetLink {
  return typeof source === "string" ? parseMagnet(source) : source;
}

/**
 * Where the metadata of a magnet link is saved.
 *
 * @example
 * ```ts
 * import { savedTorrentPath } from "./magnet_source.ts";
 * console.log(savedTorrentPath("/dl/.shoal", "ab".repeat(20))); // "/dl/.shoal/abab….torrent"
 * ```
 *
 * @param resumeDir The resume folder.
 * @param infoHashHex The info-hash, 40 hex characters.
 * @returns The path.
 */
export function savedTorrentPath(resumeDir: string, infoHashHex: string): string {
  return join(resumeDir, `${infoHashHex.toLowerCase()}.torrent`);
}

/**
 * Gets a magnet link's metadata: from the saved .torrent if there is a valid one for this
 * info-hash, else from peers (then saved).
 *
 * @example
 * ```ts ignore
 * const { metainfo, peers } = await resolveMagnet(parseMagnet(uri), { resumeDir, peerId, logger });
 * ```
 *
 * @param link The magnet link.
 * @param options Fetch options and the resume folder.
 * @returns The torrent and the peers to dial.
 * @throws {ShoalError} when the fetch is aborted or times out.
 */
export async function resolveMagnet(
  link: MagnetLink,
  options: ResolveMagnetOptions,
): Promise<ResolvedMagnet> {
  const log = options.logger.child({ torrent: link.infoHashHex.slice(0, 12) });
  const path = resolve(savedTorrentPath(options.resumeDir, link.infoHashHex));
  const root = resolve(options.resumeRoot ?? options.resumeDir);
  const saved = await readSaved(root, path, link, log);
  if (saved !== null) {
    log.info("metadata", "Using metadata saved by an earlier fetch", { path });
    noteWebSeeds(saved, log);
    return { metainfo: saved, peers: [...link.peers], saved: true };
  }
  const fetched = await fetchMetadata(link, options);
  const bytes = encodeTorrent(fetched.infoBytes, {
    announceList: link.trackers.map((t) => [t]),
    urlList: link.webSeeds,
  });
  const metainfo = parseMetainfo(bytes);
  try {
    await ensureFolderInside(root, options.resumeDir);
    await writeFileAtomic(root, path, bytes);
    log.info("metadata", "Saved the metadata", { path });
  } catch (error) {
    // The download can go on without it; the next start fetches the metadata again.
    const failure = toStorageError(error, { action: "write", target: path, root });
    log.warn("metadata", `Cannot save the metadata: ${failure.message}`, { path });
  }
  noteWebSeeds(metainfo, log);
  const peers = [...new Set([...link.peers, ...fetched.peers.map((p) => p.address)])];
  return { metainfo, peers, saved: false };
}

function noteWebSeeds(meta: Metainfo, log: Logger): void {
  if (meta.urlList.length > 0) {
    log.info("metadata", "Web seeds are recorded but not used: shoal downloads from peers only", {
      webSeeds: meta.urlList.join(" "),
    });
  }
}

async function readSaved(
  root: string,
  path: string,
  link: MagnetLink,
  log: Logger,
): Promise<Metainfo | null> {
  let bytes: Uint8Array | null;
  try {
    bytes = await readFileInside(root, path, MAX_SAVED_TORRENT_BYTES);
  } catch (error) {
    const failure = toStorageError(error, { action: "read", target: path, root });
    log.warn("metadata", `Cannot read saved metadata, fetching it again: ${failure.message}`, { path });
    return null;
  }
  if (bytes === null) return null;
  try {
    const meta = parseMetainfo(bytes);
    if (meta.infoHashHex !== link.infoHashHex) {
      log.warn("metadata", "Saved metadata is for another torrent, fetching it again", { path });
      return null;
    }
    return meta;
  } catch (error) {
    if (!(error instanceof ShoalError)) throw error;
    log.warn("metadata", `Saved metadata is not a valid torrent, fetching it again: ${error.message}`, {
      path,
    });
    return null;
  }
}
