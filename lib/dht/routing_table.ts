/**
 * The Kademlia routing table of BEP 5: k-buckets (k = 8) of nodes, split around our own id.
 *
 * Buckets are kept as a list indexed by the length of the prefix a node's id shares with ours:
 * bucket `i` holds the nodes sharing exactly `i` leading bits, and the last bucket holds every
 * node sharing at least as many as its index, our own id's neighbourhood. Only that last
 * bucket is split when full, which is the same table as BEP 5's "split the bucket whose range
 * contains our id", without storing ranges.
 *
 * Node states follow BEP 5: *good* when it answered one of our queries in the last 15 minutes,
 * or answered once and queried us in the last 15 minutes; *bad* after failing to answer
 * `badAfterFailures` queries in a row; *questionable* otherwise (nodes loaded from a saved
 * table start questionable). When a full bucket is offered a new good node, a bad node is
 * replaced at once; otherwise the newcomer waits in the bucket's replacement cache and the
 * caller is asked to ping the bucket's questionable nodes: each one that then fails enough
 * turns bad and is replaced by the freshest replacement.
 *
 * The table holds at most `maxNodesPerIp` nodes of one IPv4 address (loopback addresses are
 * exempt: test swarms run many nodes on 127.0.0.1), so one host cannot fill it.
 *
 * @module
 */

import { commonPrefixBits, compareDistance, randomIdWithPrefix } from "./node_id.ts";
import { hostOf } from "../net/address.ts";
import { equalBytes, latin1 } from "../net/bytes.ts";

/** A node's standing (BEP 5). */
export type NodeState = "good" | "questionable" | "bad";

/** A node in the table. */
export interface RoutingNode {
  /** The 20-byte node id. */
  readonly id: Uint8Array;
  /** `"a.b.c.d:port"`. */
  readonly address: string;
  /** When it last answered one of our queries (ms), 0 if never. */
  lastResponse: number;
  /** When it last sent us a query (ms), 0 if never. */
  lastQuery: number;
  /** Queries in a row it failed to answer. */
  failures: number;
}

/** Options for {@linkcode RoutingTable}. */
export interface RoutingTableOptions {
  /** Nodes per bucket. @default {8} */
  k?: number;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
  /** Inactivity after which a node turns questionable and a bucket needs a refresh, in ms. @default {15 * 60_000} */
  staleMs?: number;
  /** Failed queries in a row that make a node bad. @default {2} */
  badAfterFailures?: number;
  /** Most nodes from one IP address (loopback exempt). @default {1} */
  maxNodesPerIp?: number;
}

/** What {@linkcode RoutingTable.seen} did. */
export interface SeenResult {
  /** The node is in the table now (added or refreshed). */
  inTable: boolean;
  /** Questionable nodes of the node's full bucket: ping them so that bad ones can be replaced. */
  ping: RoutingNode[];
}

interface Bucket {
  nodes: RoutingNode[];
  replacements: RoutingNode[];
  lastChanged: number;
}

/**
 * A BEP 5 routing table.
 *
 * @example
 * ```ts
 * import { RoutingTable } from "./routing_table.ts";
 * const table = new RoutingTable(new Uint8Array(20));
 * const id = new Uint8Array(20).fill(0xff);
 * table.seen(id, "127.0.0.1:6881", "response");
 * console.log(table.size, table.closest(id, 8)[0]?.address); // 1 "127.0.0.1:6881"
 * ```
 */
export class RoutingTable {
  /** Our own node id. */
  readonly id: Uint8Array;
  readonly #k: number;
  readonly #now: () => number;
  readonly #staleMs: number;
  readonly #badAfter: number;
  readonly #maxPerIp: number;
  readonly #buckets: Bucket[];
  /** address → node, for every node in a bucket (not replacements). */
  readonly #byAddress = new Map<string, RoutingNode>();
  /** hex id → node. */
  readonly #byId = new Map<string, RoutingNode>();
  readonly #perIp = new Map<string, number>();

  /**
   * Creates an empty table.
   *
   * @param id Our 20-byte node id.
   * @param options Bucket size, clock, thresholds.
   */
  constructor(id: Uint8Array, options: RoutingTableOptions = {}) {
    if (id.length !== 20) throw new TypeError("Node id must be 20 bytes");
    this.id = id.slice();
    this.#k = options.k ?? 8;
    this.#now = options.now ?? Date.now;
    this.#staleMs = options.staleMs ?? 15 * 60_000;
    this.#badAfter = options.badAfterFailures ?? 2;
    this.#maxPerIp = options.maxNodesPerIp ?? 1;
    this.#buckets = [{ nodes: [], replacements: [], lastChanged: this.#now() }];
  }

  /** Nodes in the table (not counting replacements), bad ones included. */
  get size(): number {
    return this.#byAddress.size;
  }

  /** Number of buckets. */
  get bucketCount(): number {
    return this.#buckets.length;
  }

  /**
   * The state of a node (BEP 5).
   *
   * @param node A node of this table.
   * @returns Good, questionable or bad.
   */
  state(node: RoutingNode): NodeState {
    if (node.failures >= this.#badAfter) return "bad";
    const now = this.#now();
    if (
      node.lastResponse > 0 &&
      (now - node.lastResponse < this.#staleMs || now - node.lastQuery < this.#staleMs)
    ) {
      return "good";
    }
    return "questionable";
  }

  /**
   * Counts nodes by state.
   *
   * @returns The counts.
   */
  counts(): Record<NodeState, number> {
    const counts = { good: 0, questionable: 0, bad: 0 };
    for (const node of this.#byAddress.values()) counts[this.state(node)]++;
    return counts;
  }

  /**
   * The node at an address, if it is in a bucket.
   *
   * @param address `"a.b.c.d:port"`.
   * @returns The node.
   */
  get(address: string): RoutingNode | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * Records that a node answered our query (`response`), sent us a query (`query`), or was
   * read from a saved table (`loaded`). A response adds the node when there is room (splitting
   * our own bucket, or replacing a bad node); a query only refreshes a node already in the
   * table (a query's source can be forged); a loaded node is added, questionable, when there
   * is room.
   *
   * @param id The node's id.
   * @param address Its `"a.b.c.d:port"`.
   * @param how What happened.
   * @returns Whether it is in the table, and nodes to ping.
   */
  seen(id: Uint8Array, address: string, how: "response" | "query" | "loaded"): SeenResult {
    const none: SeenResult = { inTable: false, ping: [] };
    if (id.length !== 20 || commonPrefixBits(id, this.id) === 160) return none;
    const now = this.#now();
    const key = latin1(id);
    const sameId = this.#byId.get(key);
    if (sameId !== undefined) {
      if (sameId.address === address) {
        if (how === "response") {
          sameId.lastResponse = now;
          sameId.failures = 0;
          this.#bucketOf(id).lastChanged = now;
        } else if (how === "query") sameId.lastQuery = now;
        return { inTable: true, ping: [] };
      }
      // The same id at another address: keep the one we know, unless it stopped answering.
      if (how !== "response" || this.state(sameId) !== "bad") return none;
      this.#remove(sameId);
    }
    if (how === "query") return none;
    const sameAddress = this.#byAddress.get(address);
    if (sameAddress !== undefined) {
      // A node that restarted with a new id: only a response proves the new one.
      if (how !== "response") return none;
      this.#remove(sameAddress);
    }
    const ip = hostOf(address);
    if (!isLoopback(ip) && (this.#perIp.get(ip) ?? 0) >= this.#maxPerIp) return none;
    const node: RoutingNode = {
      id: id.slice(),
      address,
      lastResponse: how === "response" ? now : 0,
      lastQuery: 0,
      failures: 0,
    };
    for (;;) {
      const index = this.#indexOf(id);
      const bucket = this.#buckets[index]!;
      if (bucket.nodes.length < this.#k) {
        this.#insert(bucket, node);
        return { inTable: true, ping: [] };
      }
      if (index === this.#buckets.length - 1 && this.#buckets.length < 160) {
        this.#split();
        continue;
      }
      if (how !== "response") return none;
      const bad = bucket.nodes.find((n) => this.state(n) === "bad");
      if (bad !== undefined) {
        this.#remove(bad);
        this.#insert(bucket, node);
        return { inTable: true, ping: [] };
      }
      // Full of live nodes: wait as a replacement; the questionable ones get pinged.
      const at = bucket.replacements.findIndex((n) => n.address === address || equalBytes(n.id, id));
      if (at >= 0) bucket.replacements.splice(at, 1);
      bucket.replacements.push(node);
      if (bucket.replacements.length > this.#k) bucket.replacements.shift();
      const questionable = bucket.nodes.filter((n) => this.state(n) === "questionable");
      questionable.sort((a, b) =>
        Math.max(a.lastResponse, a.lastQuery) - Math.max(b.lastResponse, b.lastQuery)
      );
      return { inTable: false, ping: questionable };
    }
  }

  /**
   * Records that a node did not answer a query. A node that turns bad is replaced by the
   * freshest node of its bucket's replacement cache, if any.
   *
   * @param address `"a.b.c.d:port"`.
   */
  failed(address: string): void {
    const node = this.#byAddress.get(address);
    if (node === undefined) return;
    node.failures++;
    if (this.state(node) !== "bad") return;
    const bucket = this.#bucketOf(node.id);
    const replacement = bucket.replacements.pop();
    if (replacement === undefined) return;
    this.#remove(node);
    const ip = hostOf(replacement.address);
    if (
      this.#byAddress.has(replacement.address) || this.#byId.has(latin1(replacement.id)) ||
      (!isLoopback(ip) && (this.#perIp.get(ip) ?? 0) >= this.#maxPerIp)
    ) return;
    this.#insert(this.#bucketOf(replacement.id), replacement);
  }

  /**
   * Whether a node that is not in the table would be taken if it answered a query: its
   * bucket has room, can split, or holds nodes that are not good.
   *
   * @param id The node's id.
   * @param address Its address.
   * @returns True when pinging it is worth it.
   */
  wants(id: Uint8Array, address: string): boolean {
    if (id.length !== 20 || commonPrefixBits(id, this.id) === 160) return false;
    if (this.#byAddress.has(address) || this.#byId.has(latin1(id))) return false;
    const ip = hostOf(address);
    if (!isLoopback(ip) && (this.#perIp.get(ip) ?? 0) >= this.#maxPerIp) return false;
    const index = this.#indexOf(id);
    const bucket = this.#buckets[index]!;
    if (bucket.nodes.length < this.#k) return true;
    if (index === this.#buckets.length - 1 && this.#buckets.length < 160) {
      // A split helps when the node would move on to the new bucket, or room is left behind.
      const depth = this.#buckets.length;
      if (commonPrefixBits(id, this.id) >= depth) return true;
      const staying = bucket.nodes.filter((n) => commonPrefixBits(n.id, this.id) < depth).length;
      if (staying < this.#k) return true;
    }
    return bucket.nodes.some((n) => this.state(n) !== "good");
  }

  /**
   * Removes a node.
   *
   * @param address `"a.b.c.d:port"`.
   */
  remove(address: string): void {
    const node = this.#byAddress.get(address);
    if (node !== undefined) this.#remove(node);
  }

  /**
   * The `n` nodes closest to `target` by XOR distance, bad nodes left out.
   *
   * @param target A 20-byte id.
   * @param n How many.
   * @returns The nodes, closest first.
   */
  closest(target: Uint8Array, n: number): RoutingNode[] {
    const nodes = [...this.#byAddress.values()].filter((node) => this.state(node) !== "bad");
    nodes.sort((a, b) => compareDistance(target, a.id, b.id));
    return nodes.slice(0, n);
  }

  /**
   * Every node in the table (bad ones included), for saving.
   *
   * @returns The nodes.
   */
  nodes(): RoutingNode[] {
    return [...this.#byAddress.values()];
  }

  /**
   * Targets for refreshing buckets that have not changed for `staleMs`: one random id in
   * each such bucket's range. The buckets count as refreshed from now.
   *
   * @returns The ids to look up with `find_node`.
   */
  refreshTargets(): Uint8Array[] {
    const now = this.#now();
    const targets: Uint8Array[] = [];
    this.#buckets.forEach((bucket, i) => {
      if (now - bucket.lastChanged < this.#staleMs) return;
      bucket.lastChanged = now;
      targets.push(randomIdWithPrefix(this.id, i));
    });
    return targets;
  }

  #indexOf(id: Uint8Array): number {
    return Math.min(commonPrefixBits(id, this.id), this.#buckets.length - 1);
  }

  #bucketOf(id: Uint8Array): Bucket {
    return this.#buckets[this.#indexOf(id)]!;
  }

  #insert(bucket: Bucket, node: RoutingNode): void {
    bucket.nodes.push(node);
    bucket.lastChanged = this.#now();
    this.#byAddress.set(node.address, node);
    this.#byId.set(latin1(node.id), node);
    const ip = hostOf(node.address);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
  }

  #remove(node: RoutingNode): void {
    const bucket = this.#bucketOf(node.id);
    const at = bucket.nodes.indexOf(node);
    if (at >= 0) bucket.nodes.splice(at, 1);
    this.#byAddress.delete(node.address);
    this.#byId.delete(latin1(node.id));
    const ip = hostOf(node.address);
    const left = (this.#perIp.get(ip) ?? 1) - 1;
    if (left <= 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, left);
  }

  /** Splits the last bucket: nodes sharing more bits with us move to a new last bucket. */
  #split(): void {
    const last = this.#buckets[this.#buckets.length - 1]!;
    const depth = this.#buckets.length;
    const next: Bucket = { nodes: [], replacements: [], lastChanged: last.lastChanged };
    const moves = (n: RoutingNode) => commonPrefixBits(n.id, this.id) >= depth;
    next.nodes = last.nodes.filter(moves);
    last.nodes = last.nodes.filter((n) => !moves(n));
    next.replacements = last.replacements.filter(moves);
    last.replacements = last.replacements.filter((n) => !moves(n));
    this.#buckets.push(next);
  }
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.");
}
