/**
 * A BEP 5 DHT node: finds peers for an info-hash with no tracker, and serves the queries of
 * other nodes.
 *
 * - **Identity**: a persistent node id, saved with the routing table. On a public IPv4
 *   address the id follows BEP 42 (derived from the bound address, or from the external
 *   address other nodes reported at the previous run); on loopback and private addresses BEP
 *   42 exempts the node and the id is random.
 * - **Routing**: a {@linkcode RoutingTable} of k-buckets (k = 8). A node enters it by
 *   answering one of our queries; nodes that query us, peers' BEP 5 `port` messages
 *   ({@linkcode DhtNode.addNode}) and bootstrap nodes are pinged first. Stale buckets are
 *   refreshed with a `find_node` lookup of a random id in their range every 15 minutes.
 * - **Serving**: `ping`, `find_node`, `get_peers` (a token bound to the requester's IP, see
 *   {@linkcode TokenSecrets}) and `announce_peer` (token checked, `implied_port` honoured;
 *   peers kept in a capped, expiring {@linkcode PeerStore}). Unknown methods get error 204,
 *   malformed queries error 203; limits per source and on all outgoing traffic are applied by
 *   {@linkcode KrpcSocket}.
 * - **Lookups**: {@linkcode DhtNode.lookup} runs an iterative `get_peers` ({@linkcode iterativeLookup},
 *   alpha = 3) and, given a port, announces it to the closest nodes that gave a token.
 * - **State**: with `statePath`, the id and the table are loaded at start and saved at close
 *   (and every 10 minutes) atomically.
 *
 * IPv4 only (no BEP 32).
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import type { Logger } from "../log.ts";
import { parseIp } from "../net/address.ts";
import { toHex } from "../net/bytes.ts";
import { type CompactNode, type KrpcQuery, parseIpv4Address } from "./krpc.ts";
import { iterativeLookup, type LookupNode, type LookupReply } from "./lookup.ts";
import { bep42NodeId, commonPrefixBits, compareDistance, isBep42Exempt, isValidBep42 } from "./node_id.ts";
import { PeerStore } from "./peer_store.ts";
import { RoutingTable } from "./routing_table.ts";
import { type KrpcAnswer, KrpcSocket, type OutgoingQuery } from "./rpc.ts";
import { loadDhtState, saveDhtState } from "./state.ts";
import { TokenSecrets } from "./tokens.ts";
import { serveQuery } from "./query_server.ts";
import { emptyKrpcStats } from "./krpc_stats.ts";
import { BootstrapResolver } from "./bootstrap_resolver.ts";
import { ExternalIpVotes } from "./external_ip_votes.ts";
import type { DhtLookupOptions, DhtLookupResult, DhtNodeOptions, DhtNodeStats } from "./node_options.ts";

export type { DhtRateLimits } from "./rpc.ts";
export type { DhtLookupOptions, DhtLookupResult, DhtNodeOptions, DhtNodeStats } from "./node_options.ts";

const K = 8;
const MAINTENANCE_MS = 5_000;
const SAVE_EVERY_MS = 10 * 60_000;
const MAX_LEARNING = 16;

/**
 * A DHT node on one UDP socket.
 *
 * @example
 * ```ts
 * import { DhtNode } from "./node.ts";
 * const a = new DhtNode({ hostname: "127.0.0.1" });
 * const portA = await a.start();
 * const b = new DhtNode({ hostname: "127.0.0.1", bootstrap: [`127.0.0.1:${portA}`] });
 * await b.start();
 * await b.ready;
 * console.log(b.nodeCount); // 1
 * await b.close();
 * await a.close();
 * ```
 */
export class DhtNode {
  readonly #options: DhtNodeOptions;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  readonly #tokens: TokenSecrets;
  readonly #store: PeerStore;
  #id: Uint8Array = new Uint8Array(20);
  #table: RoutingTable | null = null;
  #socket: KrpcSocket | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #starting: Promise<number> | null = null;
  #ready: Promise<void> = Promise.resolve();
  #bootstrapping: Promise<void> | null = null;
  #lastBootstrap = 0;
  #lastSave = 0;
  #refreshing = false;
  readonly #learning = new Set<string>();
  readonly #bootstrapHosts: BootstrapResolver;
  readonly #ipVotes = new ExternalIpVotes();
  readonly #abort = new AbortController();
  #closed = false;
  /** The one run of close(). */
  #closeRun: Promise<void> | undefined;

  /**
   * Creates the node (call {@linkcode DhtNode.start}).
   *
   * @param options Address, bootstrap nodes, state file, limits.
   */
  constructor(options: DhtNodeOptions = {}) {
    if (options.nodeId !== undefined && options.nodeId.length !== 20) {
      throw new TypeError("DHT node id must be 20 bytes");
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger;
    this.#bootstrapHosts = new BootstrapResolver(this.#log);
    this.#tokens = new TokenSecrets({ now: this.#now });
    this.#store = new PeerStore({ now: this.#now, ...options.storage });
  }

  /** Our node id (a copy). */
  get id(): Uint8Array {
    return this.#id.slice();
  }

  /** The UDP port (0 before start). */
  get port(): number {
    return this.#socket?.port ?? 0;
  }

  /** Nodes in the routing table that are not bad. */
  get nodeCount(): number {
    const counts = this.#table?.counts();
    return counts ? counts.good + counts.questionable : 0;
  }

  /** Settles when the first bootstrap after start has finished (successful or not). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** A snapshot of counters. */
  stats(): DhtNodeStats {
    const counts = this.#table?.counts() ?? { good: 0, questionable: 0, bad: 0 };
    const socket = this.#socket?.stats ?? emptyKrpcStats();
    return {
      ...socket,
      nodes: counts.good + counts.questionable,
      good: counts.good,
      infoHashes: this.#store.infoHashes,
      storedPeers: this.#store.peers,
    };
  }

  /**
   * Loads saved state, binds the socket and starts joining the DHT (in the background: await
   * {@linkcode DhtNode.ready} to wait for it).
   *
   * @returns The UDP port.
   */
  start(): Promise<number> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<number> {
    // Bind first: a port in use fails before anything is loaded or logged.
    this.#socket = new KrpcSocket({
      hostname: this.#options.hostname ?? "0.0.0.0",
      port: this.#options.port ?? 0,
      handler: (query, from) => this.#serve(query, from),
      ...(this.#options.rateLimits ? { rateLimits: this.#options.rateLimits } : {}),
      ...(this.#options.queryTimeoutMs ? { timeoutMs: this.#options.queryTimeoutMs } : {}),
      ...(this.#log ? { logger: this.#log } : {}),
      now: this.#now,
    });
    const port = this.#socket.open();
    const path = this.#options.statePath;
    let saved: Awaited<ReturnType<typeof loadDhtState>> = null;
    if (path !== undefined) {
      try {
        saved = await loadDhtState(path, this.#stateFileOptions());
      } catch (error) {
        this.#log?.warn("dht", `Ignoring saved DHT state: ${(error as Error).message}`);
      }
    }
    this.#id = this.#chooseId(saved?.id, saved?.externalIp);
    this.#table = new RoutingTable(this.#id, {
      now: this.#now,
      k: K,
      ...(this.#options.maxNodesPerIp ? { maxNodesPerIp: this.#options.maxNodesPerIp } : {}),
    });
    if (saved !== null) {
      for (const node of saved.nodes) this.#table.seen(node.id, node.address, "loaded");
      this.#log?.info("dht", `Loaded ${this.#table.size} DHT nodes from ${path}`, {
        nodes: this.#table.size,
        path: path!,
      });
    }
    this.#lastSave = this.#now();
    this.#log?.info("dht", "DHT node listening", { port, id: toHex(this.#id).slice(0, 12) });
    if (this.#closed) return port;
    this.#timer = setInterval(() => this.#maintain(), MAINTENANCE_MS);
    this.#ready = this.bootstrap().catch((error) =>
      this.#log?.warn("dht", `DHT bootstrap failed: ${(error as Error).message}`)
    );
    return port;
  }

  #chooseId(savedId: Uint8Array | undefined, savedIp: string | undefined): Uint8Array {
    if (this.#options.nodeId) return this.#options.nodeId.slice();
    const bound = parseIp(this.#options.hostname ?? "0.0.0.0");
    const publicIp = bound !== null && bound.length === 4 && !isBep42Exempt(bound) &&
        !isLoopbackOrAny(bound)
      ? bound
      : savedIp !== undefined
      ? parseIp(savedIp)
      : null;
    if (savedId !== undefined && (publicIp === null || isValidBep42(savedId, publicIp))) return savedId;
    if (publicIp !== null && publicIp.length === 4 && !isBep42Exempt(publicIp)) return bep42NodeId(publicIp);
    return new Uint8Array(randomBytes(20));
  }

  /**
   * Joins the DHT: pings the bootstrap nodes, then looks up our own id so the nodes around it
   * learn about us and fill our table. Run at start, and again when the table runs low.
   *
   * @returns A promise that settles when done.
   */
  bootstrap(): Promise<void> {
    this.#bootstrapping ??= this.#bootstrap().finally(() => {
      this.#bootstrapping = null;
      this.#lastBootstrap = this.#now();
    });
    return this.#bootstrapping;
  }

  async #bootstrap(): Promise<void> {
    const addresses = await this.#bootstrapHosts.resolve(this.#options.bootstrap ?? []);
    await Promise.all(addresses.map((address) => this.#ping(address)));
    await this.#findNode(this.#id);
    this.#log?.info("dht", "DHT bootstrap done", { nodes: this.nodeCount });
  }

  /**
   * Adds a node we heard of (a peer's BEP 5 `port` message): it is pinged and enters the
   * routing table if it answers and the table wants it.
   *
   * @param address `"a.b.c.d:port"` (IPv4).
   * @returns True when a ping was sent.
   */
  addNode(address: string): boolean {
    const parsed = parseIpv4Address(address);
    if (parsed === null || this.#socket === null || this.#closed) return false;
    const normal = `${parsed.host}:${parsed.port}`;
    if (this.#table?.get(normal) !== undefined || this.#learning.has(normal)) return false;
    if (this.#learning.size >= MAX_LEARNING) return false;
    this.#learning.add(normal);
    this.#ping(normal).finally(() => this.#learning.delete(normal));
    return true;
  }

  /**
   * Finds peers of a torrent: an iterative `get_peers` lookup toward the info-hash, plus the
   * peers announced to this node itself. With `announcePort`, announces it to the closest
   * nodes (up to 8) that gave a token.
   *
   * @param infoHash The 20-byte info-hash.
   * @param options Port to announce, cancellation.
   * @returns The peers and counts.
   */
  async lookup(infoHash: Uint8Array, options: DhtLookupOptions = {}): Promise<DhtLookupResult> {
    if (infoHash.length !== 20) throw new TypeError("Info-hash must be 20 bytes");
    const started = this.#now();
    await this.start();
    await this.#ready;
    const table = this.#table!;
    if (table.closest(infoHash, 1).length === 0 && !this.#closed) await this.bootstrap();
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    const result = await iterativeLookup(
      infoHash,
      table.closest(infoHash, 2 * K),
      (node) => this.#getPeers(node, infoHash),
      { k: K, skip: (node) => this.#isSelf(node), signal },
    );
    const hash = toHex(infoHash);
    const peers = new Set(result.peers);
    for (const peer of this.#store.get(hash, this.#options.maxPeersPerReply ?? 50)) peers.add(peer);
    let announced = 0;
    const port = options.announcePort;
    // Our own announce comes back from the nodes we gave it to: it is not a peer for us.
    const self = this.#selfHost();
    if (self !== null && port !== undefined) {
      peers.delete(`${self}:${options.impliedPort ? this.port : port}`);
    }
    if (port !== undefined && port > 0 && port <= 65535 && !signal.aborted) {
      const withToken = result.closest.filter((n): n is LookupNode & { token: Uint8Array } => !!n.token);
      const outcomes = await Promise.all(
        withToken.slice(0, K).map((node) =>
          this.#query(node.address, {
            y: "q",
            q: "announce_peer",
            id: this.#id,
            infoHash,
            port,
            token: node.token,
            impliedPort: options.impliedPort ?? false,
          })
        ),
      );
      announced = outcomes.filter((o) => o !== null).length;
      this.#storeOwn(hash, infoHash, options.impliedPort ? this.port : port, result.closest);
    }
    return {
      peers: [...peers],
      queried: result.queried,
      responded: result.responded,
      announced,
      ms: this.#now() - started,
    };
  }

  /** We are among the closest nodes to the info-hash: keep our own announce, as they do. */
  #storeOwn(hash: string, infoHash: Uint8Array, port: number, closest: readonly LookupNode[]): void {
    const host = this.#selfHost();
    if (host === null) return;
    const kth = closest[K - 1];
    if (kth !== undefined && compareDistance(infoHash, this.#id, kth.id) > 0) return;
    this.#store.add(hash, `${host}:${port}`);
  }

  #selfHost(): string | null {
    const bound = this.#socket?.hostname;
    if (bound !== undefined && bound !== "0.0.0.0" && parseIp(bound)?.length === 4) return bound;
    return this.#ipVotes.best ?? null;
  }

  #isSelf(node: CompactNode): boolean {
    if (commonPrefixBits(node.id, this.#id) === 160) return true;
    const host = this.#selfHost();
    return host !== null && node.address === `${host}:${this.port}`;
  }

  async #getPeers(node: CompactNode, infoHash: Uint8Array): Promise<LookupReply | null> {
    const r = await this.#query(node.address, { y: "q", q: "get_peers", id: this.#id, infoHash });
    if (r === null) return null;
    return {
      id: r.id,
      nodes: this.#usable(r.nodes ?? [], node.address),
      values: r.values ?? [],
      ...(r.token ? { token: r.token } : {}),
    };
  }

  async #findNode(target: Uint8Array): Promise<void> {
    const table = this.#table;
    if (table === null) return;
    await iterativeLookup(target, table.closest(target, 2 * K), async (node) => {
      const r = await this.#query(node.address, { y: "q", q: "find_node", id: this.#id, target });
      return r === null ? null : { id: r.id, nodes: this.#usable(r.nodes ?? [], node.address), values: [] };
    }, { k: K, skip: (node) => this.#isSelf(node), signal: this.#abort.signal });
  }

  /**
   * Drops node entries nobody should be sent to: unspecified, multicast or broadcast
   * addresses, and loopback nodes named by a node that is not on loopback itself.
   */
  #usable(nodes: readonly CompactNode[], from: string): CompactNode[] {
    const fromLoopback = from.startsWith("127.");
    return nodes.filter((node) => {
      const first = Number(node.address.slice(0, node.address.indexOf(".")));
      if (first === 0 || first >= 224) return false;
      return first !== 127 || fromLoopback;
    });
  }

  async #ping(address: string): Promise<boolean> {
    return (await this.#query(address, { y: "q", q: "ping", id: this.#id })) !== null;
  }

  /** Sends a query; on an answer the node is offered to the table, on a time-out it is marked failed. */
  async #query(
    address: string,
    query: OutgoingQuery,
  ): Promise<{ id: Uint8Array; nodes?: CompactNode[]; values?: string[]; token?: Uint8Array } | null> {
    const socket = this.#socket;
    const table = this.#table;
    if (socket === null || table === null || this.#closed) return null;
    const outcome = await socket.query(address, query);
    if (outcome.type === "timeout") {
      table.failed(address);
      return null;
    }
    if (outcome.type !== "response") {
      if (outcome.type === "error") {
        this.#log?.debug(
          "dht",
          `DHT node answered with an error: ${outcome.error.code} ${outcome.error.message}`,
          {
            node: address,
            query: query.q,
          },
        );
      }
      return null;
    }
    const response = outcome.response;
    if (response.ip !== undefined) this.#ipVotes.vote(response.ip, address);
    const { ping } = table.seen(response.id, address, "response");
    for (const node of ping.slice(0, 2)) {
      if (!this.#learning.has(node.address)) {
        this.#learning.add(node.address);
        this.#ping(node.address).finally(() => this.#learning.delete(node.address));
      }
    }
    return response;
  }

  /** Answers an incoming query. */
  #serve(query: KrpcQuery, from: string): KrpcAnswer | null {
    const table = this.#table;
    if (table === null) return null;
    return serveQuery(
      {
        table,
        id: this.#id,
        store: this.#store,
        tokens: this.#tokens,
        k: K,
        maxPeersPerReply: this.#options.maxPeersPerReply ?? 50,
        log: this.#log,
        addNode: (address) => this.addNode(address),
      },
      query,
      from,
    );
  }

  #maintain(): void {
    if (this.#closed || this.#table === null) return;
    const now = this.#now();
    this.#store.purge();
    if (this.nodeCount < K && this.#bootstrapping === null && now - this.#lastBootstrap >= 60_000) {
      this.bootstrap().catch((error) =>
        this.#log?.warn("dht", `DHT bootstrap failed: ${(error as Error).message}`)
      );
    }
    if (!this.#refreshing) {
      const targets = this.#table.refreshTargets();
      if (targets.length > 0) {
        this.#refreshing = true;
        (async () => {
          for (const target of targets) if (!this.#closed) await this.#findNode(target);
        })().catch((error) => this.#log?.warn("dht", `DHT refresh failed: ${(error as Error).message}`))
          .finally(() => this.#refreshing = false);
      }
    }
    if (this.#options.statePath !== undefined && now - this.#lastSave >= SAVE_EVERY_MS) {
      this.#lastSave = now;
      this.#save().catch((error) => this.#log?.warn("dht", (error as Error).message));
    }
  }

  #stateFileOptions(): { root?: string } {
    return this.#options.stateRoot === undefined ? {} : { root: this.#options.stateRoot };
  }

  async #save(): Promise<void> {
    const path = this.#options.statePath;
    if (path === undefined || this.#table === null) return;
    const nodes = this.#table.nodes().filter((n) => this.#table!.state(n) !== "bad");
    await saveDhtState(path, {
      id: this.#id,
      nodes,
      ...(this.#ipVotes.best !== undefined ? { externalIp: this.#ipVotes.best } : {}),
    }, this.#stateFileOptions());
    this.#log?.debug("dht", `Saved ${nodes.length} DHT nodes to ${path}`, { nodes: nodes.length });
  }

  /** Stops the node: closes the socket, ends running lookups, saves state. A second call waits for the first. */
  close(): Promise<void> {
    this.#closeRun ??= this.#close();
    return this.#closeRun;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#abort.abort();
    try {
      await this.#starting;
    } catch (error) {
      this.#log?.debug("dht", `DHT node had not started: ${(error as Error).message}`);
    }
    await this.#socket?.close();
    await this.#bootstrapping?.catch((error) =>
      this.#log?.debug("dht", `DHT bootstrap ended with an error: ${(error as Error).message}`)
    );
    if (this.#table !== null) {
      await this.#save().catch((error) => this.#log?.warn("dht", (error as Error).message));
    }
  }

  /** Same as {@linkcode DhtNode.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function isLoopbackOrAny(ip: Uint8Array): boolean {
  return ip[0] === 127 || ip.every((b) => b === 0);
}
