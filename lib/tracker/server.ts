/**
 * The built-in tracker: HTTP and UDP announce and scrape for private distribution swarms.
 *
 * One {@linkcode TrackerServer} serves an HTTP endpoint (`/announce`, `/scrape`) and a BEP 15
 * UDP endpoint over one shared registry of swarms. Peers expire, torrents and peers are
 * capped, answers are bounded, and an optional allow-list restricts it to known torrents.
 *
 * @module
 */

import { ShoalError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HttpServerLimits } from "../http/limits.ts";
import { HttpServer } from "../http/server.ts";
import { receiveLoop } from "../net/receive_loop.ts";
import { DEFAULT_HTTP_LIMITS, handleHttpRequest } from "./server_http.ts";
import { UdpTrackerHandler } from "./server_udp.ts";
import { LOG_CATEGORY, SwarmRegistry, type TrackerContext, type TrackerCounters } from "./swarm_registry.ts";

/** Options of {@linkcode TrackerServer}. */
export interface TrackerServerOptions {
  /**
   * Address to listen on, both endpoints (the CLI's `tracker --bind`). `"::"` listens on IPv6
   * and, on most systems, IPv4 too.
   *
   * @default {"0.0.0.0"}
   */
  bind?: string;
  /**
   * HTTP port; 0 picks a free one.
   *
   * @default {0}
   */
  httpPort?: number;
  /**
   * UDP port; 0 picks a free one.
   *
   * @default {0}
   */
  udpPort?: number;
  /**
   * Serve HTTP announce and scrape.
   *
   * @default {true}
   */
  http?: boolean;
  /**
   * Serve UDP (BEP 15) announce and scrape.
   *
   * @default {true}
   */
  udp?: boolean;
  /**
   * Info-hashes (40 hex characters, any case) the tracker serves; others are refused.
   * `undefined` makes an open tracker.
   *
   * @default {undefined}
   */
  allowList?: ReadonlySet<string>;
  /**
   * Seconds between announces that the tracker asks for.
   *
   * @default {1800}
   */
  interval?: number;
  /**
   * Minimum seconds between announces (`min interval`).
   *
   * @default {60}
   */
  minInterval?: number;
  /**
   * Seconds after its last announce at which a peer is forgotten.
   *
   * @default {interval * 2 + 60}
   */
  peerTtlSeconds?: number;
  /**
   * Most torrents tracked; a new one evicts the least recently announced.
   *
   * @default {100_000}
   */
  maxTorrents?: number;
  /**
   * Most peers per torrent; a new one evicts the one seen least recently.
   *
   * @default {5_000}
   */
  maxPeersPerTorrent?: number;
  /**
   * Most peers over all torrents.
   *
   * @default {1_000_000}
   */
  maxPeers?: number;
  /**
   * Most peers in one answer (`numwant` is capped to it; UDP answers also fit in 1200 bytes).
   *
   * @default {200}
   */
  maxNumwant?: number;
  /**
   * Peers in an answer when the client does not say how many it wants.
   *
   * @default {50}
   */
  defaultNumwant?: number;
  /**
   * Unverified UDP replies (connect answers, connection-id errors) per source address and
   * second; see also the burst.
   *
   * @default {50}
   */
  udpRepliesPerSecond?: number;
  /**
   * Burst of unverified UDP replies per source address.
   *
   * @default {200}
   */
  udpReplyBurst?: number;
  /**
   * Limits of the HTTP endpoint (connections in all and per address, header and body sizes
   * and deadlines, keep-alive); absent ones take the defaults of `lib/http/limits.ts`.
   */
  httpLimits?: Partial<HttpServerLimits>;
  /** Where to log (category `"tracker-server"`). */
  logger?: Logger;
  /**
   * Milliseconds clock (expiry, connection ids, rate limits).
   *
   * @default {Date.now}
   */
  now?: () => number;
}

/** What {@linkcode TrackerServer.stats} reports. */
export interface TrackerServerStats {
  /** Torrents with a swarm. */
  readonly torrents: number;
  /** Peers over all swarms. */
  readonly peers: number;
  /** Announces answered (HTTP and UDP). */
  readonly announces: number;
  /** Scrapes answered. */
  readonly scrapes: number;
  /** Requests refused (failure reasons, UDP error packets, HTTP error statuses). */
  readonly errors: number;
  /** UDP packets dropped without a reply (malformed, or over the rate limit). */
  readonly dropped: number;
}

/** The ports a started {@linkcode TrackerServer} listens on. */
export interface TrackerServerPorts {
  /** The HTTP port, when HTTP is on. */
  readonly httpPort?: number;
  /** The UDP port, when UDP is on. */
  readonly udpPort?: number;
}

/** Announce URLs of a started {@linkcode TrackerServer}. */
export interface TrackerAnnounceUrls {
  /** `http://HOST:PORT/announce`, when HTTP is on. */
  readonly http?: string;
  /** `udp://HOST:PORT/announce`, when UDP is on. */
  readonly udp?: string;
}

const UDP_RECEIVE_BUFFER = 4096;

/**
 * A small BitTorrent tracker (HTTP and UDP) for private swarms.
 *
 * @example
 * ```ts
 * import { TrackerServer } from "./server.ts";
 * await using tracker = new TrackerServer({ bind: "127.0.0.1" });
 * await tracker.start();
 * console.log(tracker.announceUrls.http); // e.g. "http://127.0.0.1:41234/announce"
 * ```
 */
export class TrackerServer implements AsyncDisposable {
  readonly #options: TrackerServerOptions;
  readonly #context: TrackerContext;
  readonly #udpHandler: UdpTrackerHandler;
  readonly #counters: TrackerCounters = { announces: 0, scrapes: 0, errors: 0, dropped: 0 };
  readonly #abort = new AbortController();
  #http: HttpServer | undefined;
  #udp: Deno.DatagramConn | undefined;
  #udpLoop: Promise<void> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #ports: TrackerServerPorts = {};
  #urls: TrackerAnnounceUrls = {};
  #state: "new" | "starting" | "running" | "closed" = "new";
  #closing: Promise<void> | undefined;

  /**
   * Creates the server; nothing listens until {@linkcode TrackerServer.start}.
   *
   * @param options Ports, allow-list, intervals, limits, logger and clock.
   */
  constructor(options: TrackerServerOptions = {}) {
    this.#options = options;
    const interval = positiveInt(options.interval ?? 1800, "interval");
    const minInterval = Math.min(positiveInt(options.minInterval ?? 60, "minInterval"), interval);
    const now = options.now ?? Date.now;
    let allowList: Set<string> | undefined;
    if (options.allowList !== undefined) {
      allowList = new Set();
      for (const hex of options.allowList) {
        if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
          throw new RangeError(`Invalid allow-list entry: ${JSON.stringify(hex)} is not a 40-hex info-hash`);
        }
        allowList.add(hex.toLowerCase());
      }
    }
    const registry = new SwarmRegistry({
      peerTtlSeconds: options.peerTtlSeconds ?? interval * 2 + 60,
      maxTorrents: options.maxTorrents ?? 100_000,
      maxPeersPerTorrent: options.maxPeersPerTorrent ?? 5_000,
      maxPeers: options.maxPeers ?? 1_000_000,
      now,
    });
    this.#context = {
      registry,
      allowList,
      interval,
      minInterval,
      defaultNumwant: options.defaultNumwant ?? 50,
      maxNumwant: options.maxNumwant ?? 200,
      counters: this.#counters,
      logger: options.logger,
      now,
    };
    this.#udpHandler = new UdpTrackerHandler(this.#context, {
      repliesPerSecond: options.udpRepliesPerSecond ?? 50,
      replyBurst: options.udpReplyBurst ?? 200,
    });
  }

  /**
   * Starts listening.
   *
   * @returns The ports in use (useful with port 0).
   * @throws {Deno.errors.AddrInUse} and other socket errors (nothing is left listening then), and
   * {@linkcode ShoalError} when called twice.
   */
  async start(): Promise<TrackerServerPorts> {
    if (this.#state !== "new") {
      throw new ShoalError("TRACKER_SERVER", "Cannot start the tracker: it was already started or closed");
    }
    this.#state = "starting";
    const hostname = this.#options.bind ?? "0.0.0.0";
    const logger = this.#options.logger;
    try {
      if (this.#options.http !== false) {
        // Our own HTTP/1.1 server: Deno.serve has no header timeout and no connection cap.
        const server = new HttpServer(
          (request, info) => handleHttpRequest(request, info.remoteAddr, this.#context, DEFAULT_HTTP_LIMITS),
          {
            hostname,
            port: this.#options.httpPort ?? 0,
            name: "Tracker HTTP endpoint",
            category: LOG_CATEGORY,
            logger,
            ...(this.#options.httpLimits ? { limits: this.#options.httpLimits } : {}),
            onError: () => {
              this.#counters.errors++;
              return new Response("Internal error\n", { status: 500 });
            },
          },
        );
        this.#http = server;
        this.#ports = { ...this.#ports, httpPort: server.listen().port };
      }
      if (this.#options.udp !== false) {
        const conn = Deno.listenDatagram({ transport: "udp", hostname, port: this.#options.udpPort ?? 0 });
        this.#udp = conn;
        this.#ports = { ...this.#ports, udpPort: (conn.addr as Deno.NetAddr).port };
        this.#udpLoop = this.#serveUdp(conn);
      }
    } catch (error) {
      await this.close();
      throw error;
    }
    const sweepMs = Math.min(60_000, Math.max(1000, (this.#options.minInterval ?? 60) * 1000));
    const timer = setInterval(() => this.#context.registry.sweep(), sweepMs);
    Deno.unrefTimer(timer);
    this.#sweepTimer = timer;
    this.#state = "running";
    const host = urlHost(hostname);
    const urls: { http?: string; udp?: string } = {};
    if (this.#ports.httpPort !== undefined) urls.http = `http://${host}:${this.#ports.httpPort}/announce`;
    if (this.#ports.udpPort !== undefined) urls.udp = `udp://${host}:${this.#ports.udpPort}/announce`;
    this.#urls = urls;
    logger?.info(LOG_CATEGORY, "Tracker listening", {
      http: urls.http ?? null,
      udp: urls.udp ?? null,
      allowList: this.#context.allowList?.size ?? null,
    });
    return this.#ports;
  }

  /**
   * Announce URLs for clients on this machine (a wildcard address is shown as loopback;
   * other machines use this machine's address with the same port).
   */
  get announceUrls(): TrackerAnnounceUrls {
    return this.#urls;
  }

  /**
   * Counts of swarms, peers and requests. Peers past their lifetime are dropped first.
   *
   * @returns The current figures.
   */
  stats(): TrackerServerStats {
    const registry = this.#context.registry;
    registry.sweep();
    return { torrents: registry.torrents, peers: registry.peers, ...this.#counters };
  }

  /**
   * Stops both endpoints and waits until they are closed. Safe to call more than once.
   *
   * @returns A promise that settles once nothing listens any more.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasRunning = this.#state === "running";
    this.#state = "closed";
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    this.#abort.abort();
    try {
      this.#udp?.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    await Promise.all([this.#http?.close(), this.#udpLoop]);
    if (wasRunning) this.#options.logger?.info(LOG_CATEGORY, "Tracker stopped", { ...this.#counters });
  }

  /** Same as {@linkcode TrackerServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #serveUdp(conn: Deno.DatagramConn): Promise<void> {
    const logger = this.#options.logger;
    // Ends only when the socket is closed: a failed receive is retried with back-off.
    return receiveLoop(conn, {
      name: "Tracker UDP endpoint",
      category: LOG_CATEGORY,
      logger,
      buffer: new Uint8Array(UDP_RECEIVE_BUFFER),
      signal: this.#abort.signal,
      onPacket: async (packet, from) => {
        let reply: Uint8Array | undefined;
        try {
          reply = this.#udpHandler.handle(packet, from);
        } catch (error) {
          this.#counters.errors++;
          logger?.warn(LOG_CATEGORY, `UDP handler failed: ${String(error)}`, { peer: from.hostname });
          return;
        }
        if (reply === undefined) return;
        try {
          await conn.send(reply, from);
        } catch (error) {
          if (this.#abort.signal.aborted || error instanceof Deno.errors.BadResource) return;
          logger?.debug(LOG_CATEGORY, `UDP send failed: ${String(error)}`, { peer: from.hostname });
        }
      },
    });
  }
}

function positiveInt(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > 0x7fffffff) {
    throw new RangeError(`Invalid ${name}: ${value} (a whole number of seconds, at least 1)`);
  }
  return value;
}

/** The host part of an announce URL for clients on this machine. */
function urlHost(hostname: string): string {
  if (hostname === "0.0.0.0" || hostname === "") return "127.0.0.1";
  if (hostname === "::" || hostname === "[::]") return "[::1]";
  if (hostname.includes(":") && !hostname.startsWith("[")) return `[${hostname}]`;
  return hostname;
}
