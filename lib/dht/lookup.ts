/**
 * The iterative Kademlia lookup of BEP 5, independent of sockets: it asks `query` for
 * each node it visits, so it is driven by a real node or by a test's fake network.
 *
 * Starting from the closest nodes we know, it keeps `alpha` (3) queries in flight, always to
 * the closest node not asked yet among the `k` (8) closest live candidates, and merges the
 * nodes each answer names into the candidate list. It ends when the `k` closest candidates
 * that did not fail have all answered, or after `maxQueries`. A query that has not answered
 * after `slowMs` (1 s) stops counting against `alpha` and no longer holds the lookup open (an
 * answer that comes later still counts if the lookup is still running), so dead nodes cost a
 * second, not a full time-out.
 *
 * @module
 */

import type { CompactNode } from "./krpc.ts";
import { compareDistance } from "./node_id.ts";
import { latin1 } from "../net/bytes.ts";

/** What one visited node answered. */
export interface LookupReply {
  /** The node's id as it gave it. */
  id: Uint8Array;
  /** Nodes it named as closer. */
  nodes: readonly CompactNode[];
  /** Peers it had (`get_peers`). */
  values: readonly string[];
  /** Its announce token (`get_peers`). */
  token?: Uint8Array;
}

/** A node that answered, with its token if it gave one. */
export interface LookupNode {
  /** Its id. */
  id: Uint8Array;
  /** `"a.b.c.d:port"`. */
  address: string;
  /** Its announce token. */
  token?: Uint8Array;
}

/** Options of {@linkcode iterativeLookup}. */
export interface LookupOptions {
  /** Queries in flight. @default {3} */
  alpha?: number;
  /** Size of the result set. @default {8} */
  k?: number;
  /** Most queries sent in all. @default {200} */
  maxQueries?: number;
  /** Most candidates remembered (the closest are kept). @default {100} */
  maxCandidates?: number;
  /** After this long an unanswered query frees its slot, in ms. @default {1000} */
  slowMs?: number;
  /** Candidates never to query (ourselves). */
  skip?: (node: CompactNode) => boolean;
  /** Aborts the lookup: it then ends with what it has. */
  signal?: AbortSignal;
}

/** What {@linkcode iterativeLookup} found. */
export interface LookupResult {
  /** Peers from every answer, deduplicated, in the order found. */
  peers: string[];
  /** The `k` closest nodes that answered, closest first. */
  closest: LookupNode[];
  /** Queries sent. */
  queried: number;
  /** Queries answered. */
  responded: number;
}

interface Candidate {
  id: Uint8Array;
  address: string;
  state: "new" | "pending" | "slow" | "done" | "failed";
  token?: Uint8Array;
}

/**
 * Runs an iterative lookup toward `target`.
 *
 * @example
 * ```ts
 * import { iterativeLookup } from "./lookup.ts";
 * const target = new Uint8Array(20);
 * const result = await iterativeLookup(target, [{ id: new Uint8Array(20).fill(1), address: "10.0.0.1:1" }], (node) =>
 *   Promise.resolve({ id: node.id, nodes: [], values: ["10.0.0.9:6881"] }));
 * console.log(result.peers); // ["10.0.0.9:6881"]
 * ```
 *
 * @param target The id looked for (an info-hash or node id).
 * @param seeds Nodes to start from.
 * @param query Asks one node; resolves `null` when it did not answer (time-out, error).
 * @param options Parallelism, sizes, cancellation.
 * @returns The peers found and the closest nodes that answered.
 */
export function iterativeLookup(
  target: Uint8Array,
  seeds: readonly CompactNode[],
  query: (node: CompactNode) => Promise<LookupReply | null>,
  options: LookupOptions = {},
): Promise<LookupResult> {
  const alpha = options.alpha ?? 3;
  const k = options.k ?? 8;
  const maxQueries = options.maxQueries ?? 200;
  const maxCandidates = options.maxCandidates ?? 100;
  const slowMs = options.slowMs ?? 1000;
  const signal = options.signal;
  const candidates: Candidate[] = [];
  const seenAddresses = new Set<string>();
  const seenIds = new Set<string>();
  const peers = new Set<string>();
  let queried = 0;
  let responded = 0;
  let active = 0;

  const offer = (node: CompactNode) => {
    if (seenAddresses.has(node.address) || options.skip?.(node)) return;
    const idKey = latin1(node.id);
    if (seenIds.has(idKey)) return;
    seenAddresses.add(node.address);
    seenIds.add(idKey);
    const entry: Candidate = { id: node.id, address: node.address, state: "new" };
    let at = candidates.length;
    while (at > 0 && compareDistance(target, node.id, candidates[at - 1]!.id) < 0) at--;
    candidates.splice(at, 0, entry);
    // Forget the farthest candidates not asked yet.
    for (let i = candidates.length - 1; candidates.length > maxCandidates && i >= 0; i--) {
      if (candidates[i]!.state === "new") candidates.splice(i, 1);
    }
  };
  for (const seed of seeds) offer(seed);

  return new Promise<LookupResult>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener("abort", finish);
      const closest = candidates.filter((c) => c.state === "done").slice(0, k).map((c) => ({
        id: c.id,
        address: c.address,
        ...(c.token ? { token: c.token } : {}),
      }));
      resolve({ peers: [...peers], closest, queried, responded });
    };
    signal?.addEventListener("abort", finish, { once: true });

    const next = (): Candidate | undefined => {
      let live = 0;
      for (const c of candidates) {
        if (c.state === "failed") continue;
        if (c.state === "new") return c;
        if (++live >= k) return undefined;
      }
      return undefined;
    };

    const pump = () => {
      if (finished) return;
      if (signal?.aborted) return finish();
      while (active < alpha && queried < maxQueries) {
        const c = next();
        if (c === undefined) break;
        c.state = "pending";
        queried++;
        active++;
        let counted = true;
        const release = () => {
          if (counted) {
            counted = false;
            active--;
          }
        };
        const timer = setTimeout(() => {
          if (c.state === "pending") c.state = "slow";
          release();
          pump();
        }, slowMs);
        query({ id: c.id, address: c.address }).then(
          (reply) => settle(c, reply),
          () => settle(c, null),
        ).finally(() => {
          clearTimeout(timer);
          release();
          pump();
        });
      }
      // Queries past `slowMs` do not hold the lookup open: a dead node costs `slowMs`, not a time-out.
      if (active === 0) finish();
    };

    const settle = (c: Candidate, reply: LookupReply | null) => {
      if (reply === null) {
        c.state = "failed";
        return;
      }
      c.state = "done";
      responded++;
      if (reply.token) c.token = reply.token;
      for (const peer of reply.values) peers.add(peer);
      for (const node of reply.nodes) offer(node);
    };

    pump();
  });
}
