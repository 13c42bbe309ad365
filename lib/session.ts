/**
 * A session: one listening port and many torrents, with global connection limits, a
 * logger and the plugins its torrents use. `mod.ts` exports `Session`, this class with
 * shoal's default plugins filled in.
 *
 * @module
 */

import { createHash, randomBytes } from "node:crypto";
import { ShoalError } from "./errors.ts";
import { Logger } from "./log.ts";
import { parseMetainfo } from "./metainfo.ts";
import { hostOf, parsePeerAddress } from "./net/address.ts";
import { type RateLimits, Torrent } from "./torrent.ts";
import { incomingTarget } from "./torrent/internal.ts";
import { TokenBucket } from "./peer/rate_limiter.ts";
import { UdpTrackerClient } from "./tracker/udp_tracker.ts";
import type {
  Encryption,
  LogLevel,
  LogSink,
  Metainfo,
  PeerExtension,
  PieceSelector,
  StorageFactory,
  Transport,
  TransportListener,
} from "./types.ts";
import { type FilePriority, selectOnly } from "./file_priority.ts";
import type { MagnetLink } from "./magnet.ts";
import { DownloadLock, downloadLockPath } from "./storage/folder_lock.ts";
import { isMagnetLink, resolveMagnet, savedTorrentPath, toMagnetLink } from "./magnet_source.ts";
import { type MetadataFetchStatus, metadataTimeoutError, NO_METADATA_STATUS } from "./metadata_fetch.ts";
import { servedAddresses } from "./net/listen_addresses.ts";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { LocalDiscovery } from "./discovery/lsd.ts";
import { type DhtInfo, type DhtSessionOptions, SessionDht } from "./dht/session_dht.ts";
import { type DescriptorBudget, processDescriptors } from "./net/descriptor_budget.ts";
import { bindListener } from "./net/bind_listener.ts";
import { tcpTransport } from "./net/tcp_transport.ts";
import { servePeers } from "./peer/peer_listener.ts";
import { MAX_DIALS_IN_PROGRESS } from "./peer/listener_limits.ts";
import { toHex } from "./net/bytes.ts";

/** Options for {@linkcode BaseSession}. */
export interface BaseSessionOptions {
  /** Default folder for downloads. */
  downloadDir: string;
  /** Piece selection plugin used unless a torrent names its own. */
  selector: PieceSelector;
  /** Listening port; 0 picks a free one. @default {0} */
  port?: number;
  /**
   * Address to listen on (the CLI's `--bind`). @default {"::" (IPv6 and IPv4), or "0.0.0.0"
   * where IPv6 is off}
   */
  bind?: string;
  /** Do not listen for incoming connections at all. @default {false} */
  noListen?: boolean;
  /**
   * Refuse to start a torrent whose wanted files need more bytes than the download folder's
   * file system has free (a `DiskFullError`, before anything is written). Turn it off where
   * free space is reported wrongly (some network and FUSE file systems).
   *
   * @default {true}
   */
  checkFreeSpace?: boolean;
  /** Our peer id (20 bytes). @default a random "-SH0100-" id */
  peerId?: Uint8Array;
  /** Most connections per torrent. @default {50} */
  maxPeersPerTorrent?: number;
  /** Most connections in all. @default {200} */
  maxConnections?: number;
  /** Most connections with one IP address (loopback included). @default {16} */
  maxConnectionsPerAddress?: number;
  /**
   * Most incoming connections waiting for their handshake; a new one past it evicts the
   * oldest. @default {MAX_PENDING_HANDSHAKES}
   */
  maxPendingHandshakes?: number;
  /**
   * Most incoming connections from one address waiting for their handshake; more are refused.
   * @default {MAX_PENDING_HANDSHAKES_PER_ADDRESS}
   */
  maxPendingHandshakesPerAddress?: number;
  /**
   * Sockets are counted against this descriptor budget (open-file limit minus a reserve).
   * @default the process's shared budget
   */
  descriptorBudget?: DescriptorBudget;
  /** Upload slots per torrent. @default {8} */
  uploadSlots?: number;
  /** Log sinks. @default {[]} (nothing is logged) */
  logSinks?: LogSink[];
  /** Least severe level passed to sinks. @default {"info"} */
  logLevel?: LogLevel;
  /** Use this logger instead of building one from `logSinks` and `logLevel`. */
  logger?: Logger;
  /** Cap on bytes held in piece buffers per torrent. @default {64 MiB} */
  maxBufferedBytes?: number;
  /** Deadline for connecting to a peer and exchanging handshakes, in ms. @default {10_000} */
  dialTimeoutMs?: number;
  /** Global upload limit in bytes per second, shared by every torrent (0: none). @default {0} */
  uploadLimit?: number;
  /** Global download limit in bytes per second (0: none). @default {0} */
  downloadLimit?: number;
  /** Announce to trackers. @default {true} */
  trackers?: boolean;
  /** Exchange peers with connected peers (BEP 11 ut_pex); never for private torrents. @default {true} */
  pex?: boolean;
  /**
   * Find peers on the local network by multicast (BEP 14 local service discovery); never for
   * private torrents. It follows `bind`: all interfaces, or one IPv4 address's interface
   * (127.0.0.1 keeps it on loopback); off for one IPv6 address. @default {true}
   */
  lsd?: boolean;
  /**
   * Find peers through the DHT (BEP 5) and serve it; never for private torrents. `true` takes
   * the defaults (UDP on the TCP port number, no bootstrap nodes, state in
   * `<downloadDir>/.shoal/dht.dat`). @default {false}
   */
  dht?: boolean | DhtSessionOptions;
  /**
   * Connection encryption plugin (e.g. MSE). Without one, connections are plaintext and
   * encrypted incoming connections are refused. `mod.ts`'s `Session` fills in MSE.
   */
  encryption?: Encryption;
  /**
   * Opens each torrent's storage, unless `add` names its own: files on disk
   * (`fileStorage()`, which `mod.ts`'s `Session` fills in), `memoryStorage()`, or a backend
   * of your own. @default {fileStorage()}
   */
  storage?: StorageFactory;
  /**
   * How peer connections are made and accepted. `tcpTransport()` is the default; a
   * `MemoryNetwork` host's transport runs a session with no sockets (simulations).
   * @default {tcpTransport()}
   */
  transport?: Transport;
}

/** Options for {@linkcode BaseSession.add}. */
export interface AddTorrentOptions {
  /** Folder for this torrent. @default the session's `downloadDir` */
  downloadDir?: string;
  /** Peers to connect to ("host:port"). */
  peers?: readonly string[];
  /** Selection plugin for this torrent. */
  selector?: PieceSelector;
  /** Storage for this torrent. @default the session's `storage` */
  storage?: StorageFactory;
  /** This torrent's upload limit in bytes per second (0: none). @default {0} */
  uploadLimit?: number;
  /** This torrent's download limit in bytes per second (0: none). @default {0} */
  downloadLimit?: number;
  /** Extra tracker tiers for this torrent, after its own (BEP 12). */
  trackers?: readonly (readonly string[])[];
  /** BEP 10 extensions of your own, offered to this torrent's peers beside shoal's. */
  extensions?: readonly PeerExtension[];
  /** Where resume data is kept. @default {`<downloadDir>/.shoal`} */
  resumeDir?: string;
  /** Priority of each file, in `metainfo.files` order. @default {all "normal"} */
  filePriorities?: readonly FilePriority[];
  /**
   * Download only these files (indices in `metainfo.files`, as `shoal info` numbers them); the
   * others are skipped. Ignored when `filePriorities` is given. @default a magnet link's `so`, else all
   */
  selectFiles?: readonly number[];
  /**
   * Aborts fetching a magnet link's metadata and the start-up data check; `add` then rejects
   * with the signal's reason (no resume data is written by an interrupted check).
   */
  signal?: AbortSignal;
  /**
   * Gives up fetching a magnet link's metadata after this many ms (0: never), the DHT search
   * for its first peers included; `add` then rejects with a `METADATA_TIMEOUT` ShoalError
   * saying how many peers were tried. @default {0}
   */
  metadataTimeoutMs?: number;
  /** Called about once a second while a magnet link's metadata is fetched from peers. */
  onMetadataStatus?: (status: MetadataFetchStatus) => void;
  /**
   * Called with the torrent before its start-up data check, so its `checking` and `checked`
   * events can be listened to (`add` resolves only once the check is over).
   */
  onTorrent?: (torrent: Torrent) => void;
}

/**
 * The protocol core's session, with no default plugins. Most users want `Session` from
 * `mod.ts` instead.
 *
 * @example
 * ```ts ignore
 * import { BaseSession } from "./session.ts";
 * import { sequential } from "../plugins/selection/sequential.ts";
 * await using session = new BaseSession({ downloadDir: "./downloads", selector: sequential() });
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * await torrent.completed;
 * ```
 */
export class BaseSession implements AsyncDisposable {
  /** Our peer id. */
  readonly peerId: Uint8Array;
  /** The session's logger. */
  readonly logger: Logger;
  readonly #options: BaseSessionOptions;
  readonly #torrents = new Map<string, Torrent>();
  readonly #transport: Transport;
  /** Bound to "::", "0.0.0.0" or the `bind` option. */
  #listener: TransportListener | null = null;
  #listening: Promise<number> | null = null;
  #connections = 0;
  readonly #perAddress = new Map<string, number>();
  /** Outgoing dials in progress (half-open), over all torrents. */
  #dialing = 0;
  readonly #budget: DescriptorBudget;
  readonly #buckets: { upload: TokenBucket; download: TokenBucket };
  #udp: UdpTrackerClient | null = null;
  /** SHA-1("req2" + info-hash) → info-hash, for encrypted incoming handshakes. */
  readonly #obfuscated = new Map<string, Uint8Array>();
  /** Magnet links whose metadata is being fetched, by info-hash. */
  readonly #fetching = new Map<string, AbortController>();
  #lsd: LocalDiscovery | null = null;
  readonly #dht: SessionDht | null;
  #closed = false;
  /** The one run of close(), which every call waits for. */
  #closing: Promise<void> | undefined;

  /**
   * Creates the instance.
   *
   * @param options Download folder, plugins, limits.
   */
  constructor(options: BaseSessionOptions) {
    this.#options = options;
    this.peerId = options.peerId ?? makePeerId();
    if (this.peerId.length !== 20) throw new TypeError("Peer id must be 20 bytes");
    this.#buckets = {
      upload: new TokenBucket({ rate: options.uploadLimit ?? 0 }),
      download: new TokenBucket({ rate: options.downloadLimit ?? 0 }),
    };
    this.logger = options.logger ??
      new Logger({ sinks: options.logSinks ?? [], level: options.logLevel ?? "info" });
    this.#budget = options.descriptorBudget ?? processDescriptors();
    this.#transport = options.transport ?? tcpTransport({ logger: this.logger });
    this.#dht = options.dht
      ? new SessionDht({
        config: options.dht,
        downloadDir: options.downloadDir,
        tcpPort: () => this.port,
        logger: this.logger,
        ...(options.bind !== undefined ? { hostname: options.bind } : {}),
      })
      : null;
  }

  /** The session's DHT (null when the `dht` option is off): node count, per-torrent lookup status. */
  get dht(): DhtInfo | null {
    return this.#dht;
  }

  /** The listening port (0 until listening). */
  get port(): number {
    return this.#listener?.port ?? 0;
  }

  /**
   * The "host:port" addresses other peers can reach the listener at (empty until listening):
   * the bound address, or for a wildcard listener the machine's interface addresses of the
   * families it accepts (loopback only when there is nothing else). What a magnet link's
   * `x.pe` should list. Without `--allow-sys` the interfaces are unknown and a wildcard
   * listener gives its loopback address.
   */
  get listenAddresses(): string[] {
    if (this.#listener === null) return [];
    let interfaces: Deno.NetworkInterfaceInfo[] = [];
    try {
      interfaces = Deno.networkInterfaces();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)) {
        throw error;
      }
      this.logger.debug("session", `Interface addresses unknown: ${(error as Error).message}`);
    }
    return servedAddresses(this.#listener.hostname, this.port, interfaces);
  }

  /** Open connections across all torrents. */
  get connections(): number {
    return this.#connections;
  }

  /** The torrents in this session. */
  get torrents(): Torrent[] {
    return [...this.#torrents.values()];
  }

  /**
   * Starts listening for incoming peers (done by `add` too). Resolves with the port.
   *
   * @returns The port.
   */
  listen(): Promise<number> {
    if (this.#options.noListen) return Promise.resolve(0);
    this.#listening ??= Promise.resolve().then(() => {
      // A listener opened after close() would never be closed.
      if (this.#closed) throw new ShoalError("CLOSED", "Session is closed");
      this.#listener = bindListener(this.#transport, this.#options.bind, this.#options.port ?? 0);
      this.logger.info("session", "Listening", { port: this.port, hostname: this.#listener.hostname });
      servePeers(this.#listener, {
        logger: this.logger,
        budget: this.#budget,
        maxPendingHandshakes: this.#options.maxPendingHandshakes,
        maxPendingHandshakesPerAddress: this.#options.maxPendingHandshakesPerAddress,
        admits: (address) =>
          this.#connections < (this.#options.maxConnections ?? 200) &&
          (this.#perAddress.get(hostOf(address)) ?? 0) < (this.#options.maxConnectionsPerAddress ?? 16),
        target: (infoHash) => {
          const torrent = this.#torrents.get(toHex(infoHash));
          return torrent === undefined ? undefined : incomingTarget(torrent);
        },
        encryption: this.#options.encryption,
        lookup: (obfuscated) => this.#obfuscated.get(toHex(obfuscated)),
      });
      return this.port;
    });
    return this.#listening;
  }

  /**
   * Adds a torrent: parses it, checks existing data, starts connecting. A magnet link's
   * metadata is fetched from peers first (BEP 9), unless an earlier fetch saved it beside the
   * resume data.
   *
   * @param source .torrent bytes, parsed metadata, or a magnet link (URI or parsed).
   * @param options Folder, peers, selector.
   * @returns The running torrent.
   */
  async add(
    source: Uint8Array | Metainfo | MagnetLink | string,
    options: AddTorrentOptions = {},
  ): Promise<Torrent> {
    if (this.#closed) throw new ShoalError("CLOSED", "Session is closed");
    // A typo in a peer address is refused before anything starts (PeerAddressError).
    for (const peer of options.peers ?? []) parsePeerAddress(peer);
    if (typeof source === "string" || isMagnetLink(source)) return await this.#addMagnet(source, options);
    const metainfo = source instanceof Uint8Array ? parseMetainfo(source) : source;
    if (this.#torrents.has(metainfo.infoHashHex)) {
      throw new ShoalError("DUPLICATE", `Torrent ${metainfo.infoHashHex} is already in this session`);
    }
    await this.listen();
    const downloadDir = options.downloadDir ?? this.#options.downloadDir;
    const storage = options.storage ?? this.#options.storage;
    // Before anything starts that would write (the DHT saves its state): is this data in use?
    const lock = downloadLockPath(downloadDir, options.resumeDir, metainfo.infoHashHex);
    await DownloadLock.check(lock.root, lock.path, { folder: downloadDir, torrent: metainfo.name });
    const dht = metainfo.private ? undefined : (await this.#dht?.start()) ?? undefined;
    // Closed while listening or starting the DHT: a torrent made now would outlive the session.
    if (this.#closed) throw new ShoalError("CLOSED", "Session is closed");
    const torrent = new Torrent(metainfo, {
      downloadDir: options.downloadDir ?? this.#options.downloadDir,
      selector: options.selector ?? this.#options.selector,
      ...(storage ? { storage } : {}),
      ...(options.extensions ? { extensions: options.extensions } : {}),
      peerId: this.peerId,
      logger: this.logger,
      maxPeers: this.#options.maxPeersPerTorrent ?? 50,
      ...(this.#options.checkFreeSpace === false ? { checkFreeSpace: false } : {}),
      uploadSlots: this.#options.uploadSlots ?? 8,
      ...(options.resumeDir ? { resumeDir: options.resumeDir } : {}),
      ...(this.#options.maxBufferedBytes ? { maxBufferedBytes: this.#options.maxBufferedBytes } : {}),
      ...(this.#options.dialTimeoutMs ? { dialTimeoutMs: this.#options.dialTimeoutMs } : {}),
      transport: this.#transport,
      admit: (address) =>
        this.#connections < (this.#options.maxConnections ?? 200) &&
        (this.#perAddress.get(hostOf(address)) ?? 0) < (this.#options.maxConnectionsPerAddress ?? 16) &&
        this.#dialing < MAX_DIALS_IN_PROGRESS && !this.#budget.full,
      countConnection: (delta, address) => this.#count(delta, address),
      countDial: (delta) => {
        this.#dialing += delta;
      },
      globalBuckets: this.#buckets,
      listenPort: this.port,
      ...(this.#options.pex === false ? { pex: false } : {}),
      ...(this.#options.encryption ? { encryption: this.#options.encryption } : {}),
      ...(this.#options.trackers === false ? {} : {
        trackers: {
          udp: this.#udp ??= new UdpTrackerClient({ logger: this.logger }),
          port: this.port,
          ...(options.trackers ? { extraTiers: options.trackers } : {}),
        },
      }),
      ...(options.uploadLimit ? { uploadLimit: options.uploadLimit } : {}),
      ...(options.downloadLimit ? { downloadLimit: options.downloadLimit } : {}),
      ...(dht ? { dht } : {}),
      ...(options.filePriorities ?? options.selectFiles
        ? {
          filePriorities: options.filePriorities ?? selectOnly(metainfo.files.length, options.selectFiles!),
        }
        : {}),
    });
    this.#torrents.set(metainfo.infoHashHex, torrent);
    const req2 = createHash("sha1").update("req2").update(metainfo.infoHash).digest();
    this.#obfuscated.set(toHex(req2), metainfo.infoHash);
    try {
      options.onTorrent?.(torrent);
      await torrent.start(options.signal ? { signal: options.signal } : {});
    } catch (error) {
      this.#torrents.delete(metainfo.infoHashHex);
      // Wait for the failed torrent to close its files, so nothing is left open once add() rejects.
      await torrent.stop().catch((e: unknown) =>
        this.logger.warn("session", `Cannot close a torrent that failed to start: ${(e as Error).message}`)
      );
      throw error;
    }
    // Closed while the torrent started: close() stopped it; discovery must not start now.
    if (this.#closed) throw new ShoalError("CLOSED", "Session is closed");
    if (options.peers) torrent.addPeers(options.peers);
    if (dht) this.#dht!.add(metainfo.infoHash, torrent);
    if (!metainfo.private && this.#options.lsd !== false) {
      this.#lsd ??= new LocalDiscovery({
        port: () => this.port,
        onPeer: (infoHash, address) => this.#torrents.get(infoHash)?.addPeers([address], "lsd"),
        logger: this.logger,
        ...(this.#options.bind !== undefined ? { hostname: this.#options.bind } : {}),
      });
      this.#lsd.add(metainfo.infoHashHex);
    }
    return torrent;
  }

  async #addMagnet(source: string | MagnetLink, options: AddTorrentOptions): Promise<Torrent> {
    const link = toMagnetLink(source);
    if (this.#torrents.has(link.infoHashHex) || this.#fetching.has(link.infoHashHex)) {
      throw new ShoalError("DUPLICATE", `Torrent ${link.infoHashHex} is already in this session`);
    }
    const abort = new AbortController();
    this.#fetching.set(link.infoHashHex, abort);
    // One deadline for the DHT search and the fetch; its error says what the fetch achieved.
    let status = NO_METADATA_STATUS;
    const timeoutMs = options.metadataTimeoutMs ?? 0;
    const deadline = timeoutMs > 0
      ? setTimeout(() => abort.abort(metadataTimeoutError(timeoutMs, status)), timeoutMs)
      : undefined;
    let resolved;
    try {
      const port = await this.listen();
      const downloadDir = options.downloadDir ?? this.#options.downloadDir;
      const signal = options.signal ? AbortSignal.any([abort.signal, options.signal]) : abort.signal;
      // A link naming no peer and no tracker (`xt` only): the DHT finds the first peers.
      const resumeDir = options.resumeDir ?? join(downloadDir, ".shoal");
      const bare = link.peers.length === 0 && link.trackers.length === 0 && !options.peers?.length &&
        !existsSync(savedTorrentPath(resumeDir, link.infoHashHex));
      const found = bare && this.#dht ? await this.#dht.findPeers(link.infoHash, signal) : [];
      const peers = [...(options.peers ?? []), ...found];
      resolved = await resolveMagnet(link, {
        resumeDir,
        resumeRoot: options.resumeDir ?? downloadDir,
        peerId: this.peerId,
        logger: this.logger,
        signal,
        ...(peers.length > 0 ? { peers } : {}),
        onStatus: (now) => {
          status = now;
          options.onMetadataStatus?.(now);
        },
        ...(this.#options.encryption ? { encryption: this.#options.encryption } : {}),
        ...(this.#options.dialTimeoutMs ? { dialTimeoutMs: this.#options.dialTimeoutMs } : {}),
        transport: this.#transport,
        listenPort: port,
        ...(this.#options.trackers === false ? {} : {
          trackers: {
            port,
            udp: this.#udp ??= new UdpTrackerClient({ logger: this.logger }),
            ...(options.trackers ? { extraTiers: options.trackers } : {}),
          },
        }),
      });
    } finally {
      clearTimeout(deadline);
      this.#fetching.delete(link.infoHashHex);
    }
    const selected = options.selectFiles ?? link.selectOnly;
    return await this.add(resolved.metainfo, {
      ...options,
      peers: [...new Set([...(options.peers ?? []), ...resolved.peers])],
      trackers: [...(options.trackers ?? []), ...link.trackers.map((t) => [t])],
      ...(selected ? { selectFiles: selected } : {}),
    });
  }

  /**
   * Changes the global rate limits while running (0 removes a limit).
   *
   * @param limits New limits in bytes per second; absent ones are kept.
   */
  setLimits(limits: RateLimits): void {
    if (limits.upload !== undefined) this.#buckets.upload.setRate(limits.upload);
    if (limits.download !== undefined) this.#buckets.download.setRate(limits.download);
  }

  #count(delta: number, address: string): void {
    this.#connections += delta;
    if (delta > 0) this.#budget.take(delta);
    else this.#budget.give(-delta);
    const host = hostOf(address);
    const n = (this.#perAddress.get(host) ?? 0) + delta;
    if (n <= 0) this.#perAddress.delete(host);
    else this.#perAddress.set(host, n);
  }

  /**
   * Finds a torrent by info-hash.
   *
   * @param infoHashHex 40 hex characters.
   * @returns The torrent, if present.
   */
  get(infoHashHex: string): Torrent | undefined {
    return this.#torrents.get(infoHashHex.toLowerCase());
  }

  /**
   * Stops a torrent and removes it from the session (its files stay).
   *
   * @param torrent The torrent.
   */
  async remove(torrent: Torrent): Promise<void> {
    this.#torrents.delete(torrent.infoHash);
    this.#lsd?.remove(torrent.infoHash);
    await this.#dht?.remove(torrent.infoHash);
    for (const [key, hash] of this.#obfuscated) {
      if (toHex(hash) === torrent.infoHash) this.#obfuscated.delete(key);
    }
    await torrent.stop();
  }

  /** Stops every torrent (saving resume data) and closes the listener; a second call waits for the first. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const fetch of this.#fetching.values()) fetch.abort(new ShoalError("CLOSED", "Session is closed"));
    this.#listener?.close();
    await Promise.allSettled([...this.#torrents.values()].map((t) => t.stop()));
    this.#torrents.clear();
    this.#udp?.close();
    await this.#lsd?.close();
    await this.#dht?.close();
  }

  /** Same as {@linkcode BaseSession.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Makes an Azureus-style peer id: "-SH0100-" and 12 random bytes.
 *
 * @example
 * ```ts
 * import { makePeerId } from "./session.ts";
 * console.log(new TextDecoder().decode(makePeerId().subarray(0, 8))); // "-SH0100-"
 * ```
 *
 * @returns A 20-byte peer id.
 */
export function makePeerId(): Uint8Array {
  const id = new Uint8Array(20);
  id.set(new TextEncoder().encode("-SH0100-"));
  id.set(randomBytes(12), 8);
  return id;
}
