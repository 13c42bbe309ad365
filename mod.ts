/**
 * shoal: a Deno-native BitTorrent client.
 *
 * This module is the preset and the public API: {@linkcode Session} (with the default plugins:
 * rarest-first piece selection, Message Stream Encryption, files on disk, TCP), {@linkcode Torrent}
 * and its events, the plugin contracts, errors, torrent files, magnet links and bencode, and
 * the shipped plugins. The parts below it are subpath exports, for code that builds on them:
 *
 * - `@shoal/shoal/dht`: the DHT node (BEP 5) and its KRPC codec;
 * - `@shoal/shoal/tracker`: the tracker server and the HTTP/UDP tracker clients;
 * - `@shoal/shoal/peer`: metadata exchange, peer exchange, rate limiting, client names;
 * - `@shoal/shoal/net`: peer addresses, the TCP transport, an in-memory network for simulations;
 * - `@shoal/shoal/http`: the bounded HTTP/1.1 server the tracker and the daemon use;
 * - `@shoal/shoal/discovery`: Local Service Discovery (BEP 14).
 *
 * @example Download a torrent from a known peer
 * ```ts ignore
 * import { Session } from "./mod.ts";
 * await using session = new Session({ downloadDir: "./downloads" });
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * torrent.addEventListener("progress", (e) => console.log(e.detail.percent.toFixed(1)));
 * await torrent.completed;
 * ```
 *
 * @module
 */

import { BaseSession, type BaseSessionOptions } from "./lib/session.ts";
import { rarestFirst } from "./plugins/selection/rarest_first.ts";
import { mse } from "./plugins/encryption/mse.ts";
import { fileStorage } from "./lib/storage/file_storage_factory.ts";

// Sessions and torrents.
export { BaseSession, type BaseSessionOptions, makePeerId } from "./lib/session.ts";
export type { AddTorrentOptions } from "./lib/session.ts";
export * from "./lib/torrent.ts";
export { TypedEventTarget } from "./lib/typed_event_target.ts";
export type { TrackerStatus } from "./lib/tracker/announcer.ts";
export { type FilePriority, parseFileSelection, selectOnly } from "./lib/file_priority.ts";
export { Bitfield } from "./lib/bitfield.ts";
// Types that session and torrent options and getters name (their modules are subpath exports).
export { DescriptorBudget, type DescriptorBudgetOptions } from "./lib/net/descriptor_budget.ts";
export type { DhtInfo, DhtSessionOptions } from "./lib/dht/session_dht.ts";
export type { DhtPeerSourceStatus } from "./lib/dht/peer_source.ts";
export type { DhtRateLimits } from "./lib/dht/rpc.ts";
export type { UdpCallOptions, UdpTrackerClient, UdpTrackerClientOptions } from "./lib/tracker/udp_tracker.ts";
export type { AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeEntry } from "./lib/tracker/types.ts";
export type { TokenBucket, TokenBucketOptions } from "./lib/peer/rate_limiter.ts";

// The plugin contracts (piece selection, encryption, storage, transport, logging, extensions).
export * from "./lib/types.ts";

// Errors.
export * from "./lib/errors.ts";
export { TrackerError, type TrackerErrorOptions } from "./lib/tracker/types.ts";

// Torrent files, magnet links, bencode.
export * from "./lib/bencode.ts";
export * from "./lib/metainfo.ts";
export * from "./lib/limits.ts";
export * from "./lib/torrent_file.ts";
export * from "./lib/create.ts";
export * from "./lib/magnet.ts";
export * from "./lib/magnet_source.ts";
export {
  type FetchedMetadata,
  fetchMetadata,
  type FetchMetadataOptions,
  type MetadataFetchStatus,
  type MetadataSource,
  NO_METADATA_STATUS,
} from "./lib/metadata_fetch.ts";
export { parsePeerAddress, type PeerAddress } from "./lib/net/address.ts";

// Logging.
export * from "./lib/log.ts";

// The default plugins (and the other shipped ones).
export * from "./plugins/selection/rarest_first.ts";
export * from "./plugins/selection/sequential.ts";
export * from "./plugins/encryption/mse.ts";
export * from "./plugins/logging/pretty.ts";
export * from "./plugins/logging/jsonl.ts";
export { fileStorage, type FileStorageFactoryOptions } from "./lib/storage/file_storage_factory.ts";
export * from "./plugins/storage/memory.ts";
export { tcpTransport, type TcpTransportOptions } from "./lib/net/tcp_transport.ts";

/** Options for {@linkcode Session}: those of {@linkcode BaseSession}, with the selector optional. */
export type SessionOptions = Omit<BaseSessionOptions, "selector"> & {
  /** Piece selection plugin. @default {rarestFirst()} */
  selector?: BaseSessionOptions["selector"];
};

/**
 * A shoal session with the default plugins: rarest-first piece selection, Message Stream
 * Encryption in "prefer" mode (encrypted when the peer can, plaintext otherwise) and files on
 * disk for storage (`fileStorage()`).
 *
 * @example
 * ```ts ignore
 * import { Session } from "./mod.ts";
 * await using session = new Session({ downloadDir: "./downloads", port: 6881 });
 * ```
 */
export class Session extends BaseSession {
  /**
   * Creates a session; unset plugins get shoal's defaults.
   *
   * @param options Download folder, port, limits, plugins.
   */
  constructor(options: SessionOptions) {
    super({
      ...options,
      selector: options.selector ?? rarestFirst(),
      encryption: options.encryption ?? mse(),
      storage: options.storage ?? fileStorage(),
    });
  }
}
