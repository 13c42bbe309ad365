/**
 * The options, lookup arguments and results, and statistics of a {@linkcode DhtNode}.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { PeerStoreOptions } from "./peer_store.ts";
import type { DhtRateLimits, KrpcSocketStats } from "./rpc.ts";

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
