/**
 * The DHT (BEP 5): a Kademlia node that finds peers with no tracker and serves other nodes.
 * A session runs one when its `dht` option is on; {@linkcode DhtNode} can also be used alone.
 *
 * @example
 * ```ts
 * import { DhtNode } from "./mod.ts";
 * const a = new DhtNode({ hostname: "127.0.0.1" });
 * const b = new DhtNode({ hostname: "127.0.0.1", bootstrap: [`127.0.0.1:${await a.start()}`] });
 * await b.start();
 * await b.ready;
 * const infoHash = new Uint8Array(20).fill(7);
 * await b.lookup(infoHash, { announcePort: 6881 });
 * console.log((await a.lookup(infoHash)).peers); // ["127.0.0.1:6881"]
 * await b.close();
 * await a.close();
 * ```
 *
 * @module
 */

export * from "./node.ts";
export * from "./session_dht.ts";
export * from "./peer_source.ts";
export * from "./krpc.ts";
export * from "./rpc.ts";
export * from "./routing_table.ts";
export * from "./lookup.ts";
export * from "./peer_store.ts";
export * from "./tokens.ts";
export * from "./rate_gate.ts";
export * from "./state.ts";
export {
  bep42NodeId,
  commonPrefixBits,
  compareDistance,
  compareIds,
  crc32c,
  isBep42Exempt,
  isValidBep42,
  randomIdWithPrefix,
  xorDistance,
} from "./node_id.ts";
