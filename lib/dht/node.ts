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

import { lookup as dnsLookup } from "node:dns/promises";
import { randomBytes } from "node:crypto";
import type { Logger } from "../log.ts";
import { formatAddress, hostOf, parseIp, tryParseAddress } from "../net/address.ts";
import { toHex } from "../net/bytes.ts";
import { type CompactNode, KRPC_ERRORS, type KrpcQuery, parseIpv4Address } from "./krpc.ts";
import { iterativeLookup, type LookupNode, type LookupReply } from "./lookup.ts";
import { bep42NodeId, commonPrefixBits, compareDistance, isBep42Exempt, isValidBep42 } from "./node_id.ts";
import { PeerStore, type PeerStoreOptions } from "./peer_store.ts";
import { RoutingTable } from "./routing_table.ts";
import {
  type DhtRateLimits,
  type KrpcAnswer,
  KrpcSocket,
  type KrpcSocketStats,
  type OutgoingQuery,
} from "./rpc.ts";
import { loadDhtState, saveDhtState } from "./state.ts";
import { TokenSecrets } from "./tokens.ts";

export type { DhtRateLimits } from "./rpc.ts";

/** Options for {@linkcode DhtNode}. */
export interface DhtNodeOptions {
  /** UDP port; 0 picks a free one. @default {0} */
  port?: number;
  /** IPv4 address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /** Nodes to join the DHT through, `"host:port"` (host names are resolved). @default {[]} */
  bootstrap?: readonly string[];
  /** Our node id (20 bytes); overrides a saved one. @default the saved id, else a new one */
  nodeId?: Uint8Array;
  /** File the id and routing table are loaded from and saved to (bencode, written atomically). */
  statePath?: string;
  /**
   * The folder below which the state file is never reached through a symbolic link (the
   * download folder, when the file is in its `.shoal`). @default {the state file's folder}
   */
  stateRoot?: string;
  /** Logger (category `dht`). */
  logger?: Logger;
  /** Clock in ms (routing table, tokens, storage, rate limits). @default {Date.now} */
  now?: () => number;
  /** Limits per source and on outgoing traffic. */
  rateLimits?: DhtRateLimits;
  /** Caps on stored announces. */
  storage?: PeerStoreOptions;
  /** Time to wait for an answer, in ms. @default {4000} */
  queryTimeoutMs?: number;
  /** Most peers put in one `get_peers` answer. @default {50} */
  maxPeersPerReply?: number;
  /** Most routing-table nodes from one IP address (loopback exempt). @default {1} */
  maxNodesPerIp?: number;
}

/** Options of {@linkcode DhtNode.lookup}. */
export interface DhtLookupOptions {
  /** Announce this TCP port to the closest nodes that gave a token. */
  announcePort?: number;
  /** Ask them to use the UDP source port instead (BEP 5 `implied_port`). @default {false} */
  impliedPort?: boolean;
  /** Aborts the lookup (it then ends with what it found). */
  signal?: AbortSignal;
}

/** What {@linkcode DhtNode.lookup} found. */
export interface DhtLookupResult {
  /** Peers (`"a.b.c.d:port"`), deduplicated. */
  peers: string[];
  /** Nodes queried. */
  queried: number;
  /** Nodes that answered. */
  responded: number;
  /** Nodes that took our announce. */
  announced: number;
  /** Duration in ms. */
  ms: number;
}

/** A snapshot of a node's state. */
export interface DhtNodeStats extends KrpcSocketStats {
  /** Nodes in the routing table (not bad). */
  nodes: number;
  /** Of which good. */
  good: number;
  /** Info-hashes with stored announces. */
  infoHashes: number;
  /** Stored announces. */
  storedPeers: number;
}

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
  readonly #warnedHosts = new Set<string>();
  readonly #ipVotes = new Map<string, Set<string>>();
  #externalIp: string | undefined;
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
    const socket = this.#socket?.stats ?? {
      queriesIn: 0,
      answersOut: 0,
      queriesOut: 0,
      bytesOut: 0,
      rateLimited: 0,
      overBudget: 0,
      malformed: 0,
      unexpected: 0,
      timeouts: 0,
    };
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
    const addresses = await this.#resolve(this.#options.bootstrap ?? []);
    await Promise.all(addresses.map((address) => this.#ping(address)));
    await this.#findNode(this.#id);
    this.#log?.info("dht", "DHT bootstrap done", { nodes: this.nodeCount });
  }

  async #resolve(hosts: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const host of hosts) {
      const direct = parseIpv4Address(host);
      if (direct !== null) {
        out.push(`${direct.host}:${direct.port}`);
        continue;
      }
      const named = tryParseAddress(host);
      if (named === null) {
        this.#log?.warn("dht", `Invalid DHT bootstrap node: ${host} (expected HOST:PORT)`);
        continue;
      }
      try {
        const found = await dnsLookup(named.hostname, { family: 4, all: true });
        for (const entry of found) out.push(`${entry.address}:${named.port}`);
      } catch (error) {
        // Warn once per node; retries (every minute while the table is small) log at debug level.
        const level = this.#warnedHosts.has(host) ? "debug" : "warn";
        if (this.#warnedHosts.size < 64) this.#warnedHosts.add(host);
        this.#log?.log(
          level,
          "dht",
          `Cannot resolve DHT bootstrap node ${host}: ${(error as Error).message}`,
        );
      }
    }
    return out;
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
    return this.#externalIp ?? null;
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
    if (response.ip !== undefined) this.#vote(response.ip, address);
    const { ping } = table.seen(response.id, address, "response");
    for (const node of ping.slice(0, 2)) {
      if (!this.#learning.has(node.address)) {
        this.#learning.add(node.address);
        this.#ping(node.address).finally(() => this.#learning.delete(node.address));
      }
    }
    return response;
  }

  /** Counts what other nodes say our address is; the most agreed on (by 3 or more) is kept. */
  #vote(ipAndPort: string, voter: string): void {
    const ip = hostOf(ipAndPort);
    let voters = this.#ipVotes.get(ip);
    if (voters === undefined) {
      if (this.#ipVotes.size >= 16) return;
      this.#ipVotes.set(ip, voters = new Set());
    }
    if (voters.size < 64) voters.add(hostOf(voter) || voter);
    let best: string | undefined;
    let bestVotes = 2;
    for (const [candidate, set] of this.#ipVotes) {
      if (set.size > bestVotes) [best, bestVotes] = [candidate, set.size];
    }
    if (best !== undefined) this.#externalIp = best;
  }

  /** Answers an incoming query. */
  #serve(query: KrpcQuery, from: string): KrpcAnswer | null {
    const table = this.#table;
    if (table === null) return null;
    if (query.q === "unknown") {
      return { y: "e", code: KRPC_ERRORS.methodUnknown, message: "Method Unknown" };
    }
    const ip = hostOf(from);
    // A querying node is only refreshed if known; an unknown one is pinged before it may enter.
    const { inTable } = table.seen(query.id, from, "query");
    if (!inTable && !query.readOnly && table.wants(query.id, from)) this.addNode(from);
    const id = this.#id;
    switch (query.q) {
      case "ping":
        return { y: "r", id };
      case "find_node":
        return { y: "r", id, nodes: table.closest(query.target, K).filter((n) => n.address !== from) };
      case "get_peers": {
        const values = this.#store.get(toHex(query.infoHash), this.#options.maxPeersPerReply ?? 50);
        const nodes = table.closest(query.infoHash, K).filter((n) => n.address !== from);
        return { y: "r", id, token: this.#tokens.make(ip), nodes, ...(values.length > 0 ? { values } : {}) };
      }
      case "announce_peer": {
        if (!this.#tokens.check(query.token, ip)) {
          this.#log?.debug("dht", "Refused an announce with a bad token", { from });
          return { y: "e", code: KRPC_ERRORS.protocol, message: "Bad token" };
        }
        const port = query.impliedPort ? (tryParseAddress(from)?.port ?? 0) : query.port;
        if (port < 1 || port > 65535) return { y: "e", code: KRPC_ERRORS.protocol, message: "Invalid port" };
        const outcome = this.#store.add(toHex(query.infoHash), formatAddress(ip, port));
        if (outcome !== "stored") {
          this.#log?.debug("dht", `Refused an announce: ${outcome}`, { from });
          return { y: "e", code: KRPC_ERRORS.server, message: "Storage full" };
        }
        return { y: "r", id };
      }
    }
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
      ...(this.#externalIp !== undefined ? { externalIp: this.#externalIp } : {}),
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
