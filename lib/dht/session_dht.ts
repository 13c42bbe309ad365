/**
 * A session's DHT: one {@linkcode DhtNode} shared by the session's torrents, and a
 * {@linkcode DhtPeerSource} per (non-private) torrent feeding `torrent.addPeers(peers, "dht")`.
 * The session owns one of these when its `dht` option is on.
 *
 * The node binds UDP on the session's IPv4 address (all IPv4 addresses when the session
 * listens on `::` or `0.0.0.0`), on `port` if given, else on the session's TCP port number
 * when that is free (the usual convention), else on any port. Its state is kept in
 * `<downloadDir>/.shoal/dht.dat` unless `statePath` says otherwise.
 *
 * @module
 */

import { join } from "node:path";
import { ShoalError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseIp } from "../net/address.ts";
import { DhtNode, type DhtNodeOptions, type DhtRateLimits } from "./node.ts";
import { toHex } from "../net/bytes.ts";
import { DhtPeerSource, type DhtPeerSourceStatus, findPeers } from "./peer_source.ts";

/** DHT settings of a session (`dht: true` takes every default). */
export interface DhtSessionOptions {
  /** UDP port; 0 picks one. @default the session's TCP port number if free, else any */
  port?: number;
  /** Nodes to join the DHT through, `"host:port"`. @default {[]} */
  bootstrap?: readonly string[];
  /** Where the node id and routing table are saved. @default {`<downloadDir>/.shoal/dht.dat`} */
  statePath?: string;
  /** Limits per source and on outgoing traffic. */
  rateLimits?: DhtRateLimits;
}

/**
 * What a session shows of its DHT (`session.dht`): the node's size and port, and what it did
 * for each torrent. The node itself is `@shoal/shoal/dht`'s {@linkcode DhtNode}.
 *
 * @example
 * ```ts ignore
 * const dht = session.dht;
 * if (dht) console.log(`${dht.nodeCount} nodes on UDP port ${dht.port}`, dht.status(torrent.infoHash));
 * ```
 */
export interface DhtInfo {
  /** The node's UDP port (null until it is bound). */
  readonly port: number | null;
  /** Nodes in the routing table. */
  readonly nodeCount: number;
  /**
   * What the DHT did for a torrent.
   *
   * @param infoHashHex The torrent's info-hash, hex.
   * @returns Its lookup status, if the DHT runs for it.
   */
  status(infoHashHex: string): DhtPeerSourceStatus | undefined;
}

/** What a torrent needs from the session's DHT (the `dht` option of a torrent). */
export interface TorrentDhtHooks {
  /** Our DHT's UDP port, sent to peers in BEP 5 `port` messages. */
  port: number;
  /** Takes a node heard of from a peer's `port` message. */
  addNode: (address: string) => void;
}

/** The torrent side a {@linkcode SessionDht} drives. */
export interface DhtTorrent {
  /** Adds peers from a source; returns how many were new. */
  addPeers(addresses: Iterable<string>, source: string): number;
  /** Its state (`downloading`, `seeding`, ...). */
  readonly state: string;
  /** Its connected peer count. */
  stats(): { peers: number };
}

/** Options for {@linkcode SessionDht}. */
export interface SessionDhtOptions {
  /** The session's `dht` option. */
  config: true | DhtSessionOptions;
  /** The session's download folder (for the default state path). */
  downloadDir: string;
  /** The session's listening address. */
  hostname?: string;
  /** The session's TCP listening port (announced to the DHT). */
  tcpPort: () => number;
  /** Logger. */
  logger: Logger;
}

/** Fewer connected peers than this and a downloading torrent looks up every minute. */
const SHORT_OF_PEERS = 5;

/**
 * The DHT of a session.
 *
 * @example
 * ```ts ignore
 * const dht = new SessionDht({ config: true, downloadDir, tcpPort: () => session.port, logger });
 * const hooks = await dht.start();
 * dht.add(metainfo.infoHash, torrent);
 * await dht.close();
 * ```
 */
export class SessionDht implements DhtInfo {
  readonly #options: SessionDhtOptions;
  readonly #sources = new Map<string, DhtPeerSource>();
  #node: DhtNode | null = null;
  #starting: Promise<TorrentDhtHooks | null> | null = null;

  /**
   * Creates the instance; the node starts with {@linkcode SessionDht.start}.
   *
   * @param options Settings and the session's side.
   */
  constructor(options: SessionDhtOptions) {
    this.#options = options;
  }

  /** The node, once started. */
  get node(): DhtNode | null {
    return this.#node;
  }

  /** The node's UDP port (null until it is bound). */
  get port(): number | null {
    return this.#node?.port ?? null;
  }

  /** Nodes in the routing table. */
  get nodeCount(): number {
    return this.#node?.nodeCount ?? 0;
  }

  /**
   * What the DHT did for a torrent.
   *
   * @param infoHashHex The torrent's info-hash, hex.
   * @returns Its lookup status, if the DHT runs for it.
   */
  status(infoHashHex: string): DhtPeerSourceStatus | undefined {
    return this.#sources.get(infoHashHex.toLowerCase())?.status();
  }

  /**
   * Starts the node (once) and returns what torrents need. Where Deno runs without
   * `--unstable-net` (no UDP), the DHT stays off with a warning and this returns `null`.
   *
   * @returns The port and the `port`-message hook, or `null` when the DHT cannot run.
   * @throws {ShoalError} (code `LISTEN`) when the configured UDP port is taken.
   */
  start(): Promise<TorrentDhtHooks | null> {
    this.#starting ??= this.#start().catch((error) => {
      if (!(error instanceof ShoalError) || error.code !== "UNSTABLE_NET") throw error;
      this.#options.logger.warn("dht", `DHT off: ${error.message}`);
      return null;
    });
    return this.#starting;
  }

  async #start(): Promise<TorrentDhtHooks> {
    const config = this.#options.config === true ? {} : this.#options.config;
    const bound = parseIp(this.#options.hostname ?? "");
    const hostname = bound !== null && bound.length === 4 ? this.#options.hostname! : "0.0.0.0";
    const base: DhtNodeOptions = {
      hostname,
      bootstrap: config.bootstrap ?? [],
      // The default file is below the download folder: no link planted there is followed.
      ...(config.statePath !== undefined ? { statePath: config.statePath } : {
        statePath: join(this.#options.downloadDir, ".shoal", "dht.dat"),
        stateRoot: this.#options.downloadDir,
      }),
      logger: this.#options.logger,
      ...(config.rateLimits ? { rateLimits: config.rateLimits } : {}),
    };
    const tcpPort = this.#options.tcpPort();
    const ports = config.port !== undefined ? [config.port] : tcpPort > 0 ? [tcpPort, 0] : [0];
    for (const port of ports) {
      const node = new DhtNode({ ...base, port });
      try {
        await node.start();
        this.#node = node;
        break;
      } catch (error) {
        await node.close();
        if (!(error instanceof Deno.errors.AddrInUse)) throw error;
        if (port === ports[ports.length - 1]) {
          throw new ShoalError("LISTEN", `Cannot start the DHT on UDP port ${port}: it is already in use`);
        }
      }
    }
    const node = this.#node!;
    return { port: node.port, addNode: (address) => node.addNode(address) };
  }

  /**
   * Starts periodic lookups (and announces) for a torrent. Call after {@linkcode SessionDht.start}.
   *
   * @param infoHash The torrent's info-hash.
   * @param torrent The torrent.
   */
  add(infoHash: Uint8Array, torrent: DhtTorrent): void {
    const node = this.#node;
    const key = toHex(infoHash);
    if (node === null || this.#sources.has(key)) return;
    const source = new DhtPeerSource({
      node,
      infoHash,
      port: this.#options.tcpPort,
      onPeers: (peers) => torrent.addPeers(peers, "dht"),
      wantsPeers: () => torrent.state === "downloading" && torrent.stats().peers < SHORT_OF_PEERS,
      logger: this.#options.logger,
    });
    this.#sources.set(key, source);
    source.start();
  }

  /**
   * Finds peers for a magnet link that names none: looks up until some are found.
   *
   * @param infoHash The info-hash.
   * @param signal Ends the search.
   * @returns The peers found (empty when aborted first).
   */
  async findPeers(infoHash: Uint8Array, signal: AbortSignal): Promise<string[]> {
    if (await this.start() === null) return [];
    return await findPeers(this.#node!, infoHash, { signal, logger: this.#options.logger });
  }

  /**
   * Stops the lookups of a torrent.
   *
   * @param infoHashHex The torrent's info-hash, hex.
   */
  async remove(infoHashHex: string): Promise<void> {
    const source = this.#sources.get(infoHashHex.toLowerCase());
    this.#sources.delete(infoHashHex.toLowerCase());
    await source?.stop();
  }

  /** Stops every lookup and the node (saving its state). */
  async close(): Promise<void> {
    await Promise.all([...this.#sources.values()].map((s) => s.stop()));
    this.#sources.clear();
    await this.#starting?.catch((error) =>
      this.#options.logger.debug("dht", `The DHT had not started: ${(error as Error).message}`)
    );
    await this.#node?.close();
  }
}
