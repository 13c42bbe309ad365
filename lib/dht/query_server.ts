/**
 * Answers the queries other DHT nodes send us (BEP 5): `ping`, `find_node`, `get_peers`
 * (with a token bound to the requester's IP) and `announce_peer` (token checked,
 * `implied_port` honoured); unknown methods get error 204.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { formatAddress, hostOf, tryParseAddress } from "../net/address.ts";
import { toHex } from "../net/bytes.ts";
import { KRPC_ERRORS, type KrpcQuery } from "./krpc.ts";
import type { PeerStore } from "./peer_store.ts";
import type { RoutingTable } from "./routing_table.ts";
import type { KrpcAnswer } from "./rpc.ts";
import type { TokenSecrets } from "./tokens.ts";

/** What {@linkcode serveQuery} reads and updates: one node's table, store and tokens. */
export interface QueryServerContext {
  /** The routing table (a querying node is refreshed, or pinged before it may enter). */
  readonly table: RoutingTable;
  /** Our node id. */
  readonly id: Uint8Array;
  /** Announced peers. */
  readonly store: PeerStore;
  /** Tokens for `get_peers` / `announce_peer`. */
  readonly tokens: TokenSecrets;
  /** Nodes per answer (k). */
  readonly k: number;
  /** Most peers in one `get_peers` answer. */
  readonly maxPeersPerReply: number;
  /** Where refusals are logged. */
  readonly log: Logger | undefined;
  /** Pings a node that queried us and is not in the table yet. */
  addNode(address: string): void;
}

/**
 * Answers one incoming query.
 *
 * @example
 * ```ts ignore
 * import { serveQuery } from "./query_server.ts";
 * const answer = serveQuery(context, { q: "ping", id, t }, "192.0.2.7:6881"); // { y: "r", id }
 * ```
 *
 * @param ctx The node's state.
 * @param query The decoded query.
 * @param from "a.b.c.d:port" of the sender.
 * @returns The answer (a response or an error).
 */
export function serveQuery(ctx: QueryServerContext, query: KrpcQuery, from: string): KrpcAnswer {
  if (query.q === "unknown") {
    return { y: "e", code: KRPC_ERRORS.methodUnknown, message: "Method Unknown" };
  }
  const ip = hostOf(from);
  // A querying node is only refreshed if known; an unknown one is pinged before it may enter.
  const table = ctx.table;
  const { inTable } = table.seen(query.id, from, "query");
  if (!inTable && !query.readOnly && table.wants(query.id, from)) ctx.addNode(from);
  const id = ctx.id;
  switch (query.q) {
    case "ping":
      return { y: "r", id };
    case "find_node":
      return { y: "r", id, nodes: table.closest(query.target, ctx.k).filter((n) => n.address !== from) };
    case "get_peers": {
      const values = ctx.store.get(toHex(query.infoHash), ctx.maxPeersPerReply);
      const nodes = table.closest(query.infoHash, ctx.k).filter((n) => n.address !== from);
      return { y: "r", id, token: ctx.tokens.make(ip), nodes, ...(values.length > 0 ? { values } : {}) };
    }
    case "announce_peer": {
      if (!ctx.tokens.check(query.token, ip)) {
        ctx.log?.debug("dht", "Refused an announce with a bad token", { from });
        return { y: "e", code: KRPC_ERRORS.protocol, message: "Bad token" };
      }
      const port = query.impliedPort ? (tryParseAddress(from)?.port ?? 0) : query.port;
      if (port < 1 || port > 65535) return { y: "e", code: KRPC_ERRORS.protocol, message: "Invalid port" };
      const outcome = ctx.store.add(toHex(query.infoHash), formatAddress(ip, port));
      if (outcome !== "stored") {
        ctx.log?.debug("dht", `Refused an announce: ${outcome}`, { from });
        return { y: "e", code: KRPC_ERRORS.server, message: "Storage full" };
      }
      return { y: "r", id };
    }
  }
}
