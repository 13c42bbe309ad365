/**
 * shoal: a Deno-native BitTorrent client.
 *
 * This module is the preset: it re-exports the protocol core (`lib/`) and the shipped
 * plugins (`plugins/`), and its {@linkcode Session} fills in the default plugins
 * (rarest-first piece selection).
 *
 * @example Download a torrent from a known peer
 * ```ts ignore
 * import { Session } from "./mod.ts";
 * await using session = new Session({ downloadDir: "./downloads" });
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * torrent.addEventListener("progress", (e) => console.log((e as CustomEvent).detail.percent));
 * await torrent.completed;
 * ```
 *
 * @module
 */

import { BaseSession, type BaseSessionOptions } from "./lib/session.ts";
import { rarestFirst } from "./plugins/selection/rarest_first.ts";
import { mse } from "./plugins/encryption/mse.ts";
import { fileStorage } from "./lib/storage/file_storage_factory.ts";

export * from "./lib/errors.ts";
export * from "./lib/types.ts";
export * from "./lib/bencode.ts";
export * from "./lib/bitfield.ts";
export * from "./lib/metainfo.ts";
export * from "./lib/limits.ts";
export * from "./lib/torrent_file.ts";
export * from "./lib/safe_path.ts";
export * from "./lib/magnet.ts";
export { parsePeerAddress, type PeerAddress } from "./lib/net/address.ts";
export * from "./lib/magnet_source.ts";
export * from "./lib/metadata_fetch.ts";
export * from "./lib/file_priority.ts";
export * from "./lib/peer/ut_metadata.ts";
export * from "./lib/create.ts";
export * from "./lib/log.ts";
export * from "./lib/torrent.ts";
export { clientCode, clientName } from "./lib/peer/client_id.ts";
export * from "./lib/session.ts";
export * from "./lib/dht/mod.ts";
export * from "./lib/peer/rate_limiter.ts";
export * from "./lib/tracker/server.ts";
export * from "./lib/http/limits.ts";
export * from "./lib/http/server.ts";
export * from "./lib/net/descriptor_budget.ts";
export * from "./lib/peer/listener_limits.ts";
export * from "./lib/peer/ut_pex.ts";
export * from "./lib/discovery/lsd.ts";
export * from "./lib/tracker/announcer.ts";
export * from "./lib/tracker/udp_tracker.ts";
export { httpAnnounce, httpScrape, type HttpTrackerOptions, scrapeUrl } from "./lib/tracker/http_tracker.ts";
export {
  type AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  type TrackerClientOptions,
  TrackerError,
  type TrackerErrorOptions,
} from "./lib/tracker/types.ts";
export type { HandshakenPeer } from "./lib/peer/handshake_read.ts";
export { tcpTransport, type TcpTransportOptions } from "./lib/net/tcp_transport.ts";
export * from "./lib/net/memory_transport.ts";
export type { Handshake } from "./lib/wire/handshake.ts";
export * from "./plugins/selection/rarest_first.ts";
export * from "./plugins/selection/sequential.ts";
export * from "./plugins/encryption/mse.ts";
export * from "./plugins/logging/pretty.ts";
export * from "./plugins/logging/jsonl.ts";
export { fileStorage, type FileStorageFactoryOptions } from "./lib/storage/file_storage_factory.ts";
export * from "./plugins/storage/memory.ts";

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
