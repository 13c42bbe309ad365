/**
 * The DHT node's saved state: its id, the nodes of its routing table and the external address
 * other nodes reported, as one bencoded dictionary written atomically (a temporary file in the
 * same folder, then a rename), so a restart does not start cold and a crash never leaves a
 * half-written file.
 *
 * Format: `d2:id20:<id>5:nodes<26*n bytes>2:ip4:<IPv4, optional>1:vi1ee`.
 *
 * @module
 */

import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { decode, encode } from "../bencode.ts";
import { ShoalError } from "../errors.ts";
import { formatIp, parseIp } from "../tracker/compact.ts";
import { COMPACT_NODE_LENGTH, type CompactNode, decodeCompactNodes, encodeCompactNodes } from "./krpc.ts";

/** What is saved. */
export interface DhtState {
  /** Our node id. */
  id: Uint8Array;
  /** Nodes of the routing table. */
  nodes: CompactNode[];
  /** Our external IPv4 address as other nodes reported it. */
  externalIp?: string;
}

/** Most nodes saved (160 buckets of 8). */
const MAX_SAVED_NODES = 1280;

/**
 * Writes the state atomically.
 *
 * @example
 * ```ts
 * import { loadDhtState, saveDhtState } from "./state.ts";
 * const dir = await Deno.makeTempDir();
 * await saveDhtState(`${dir}/dht.dat`, { id: new Uint8Array(20), nodes: [] });
 * console.log((await loadDhtState(`${dir}/dht.dat`))?.nodes.length); // 0
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The file.
 * @param state What to save.
 * @returns A promise that settles once the file is in place.
 * @throws {ShoalError} (code `DHT_STATE`) when it cannot be written.
 */
export async function saveDhtState(path: string, state: DhtState): Promise<void> {
  const ip = state.externalIp === undefined ? null : parseIp(state.externalIp);
  const bytes = encode({
    id: state.id,
    nodes: encodeCompactNodes(state.nodes.slice(0, MAX_SAVED_NODES)),
    ...(ip !== null && ip.length === 4 ? { ip } : {}),
    v: 1,
  });
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, bytes);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => {/* the write error below is what matters */});
    throw new ShoalError("DHT_STATE", `Cannot save DHT state to ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads saved state. A missing file gives `null`; a damaged one throws.
 *
 * @example
 * ```ts
 * import { loadDhtState } from "./state.ts";
 * console.log(await loadDhtState("/nonexistent/dht.dat")); // null
 * ```
 *
 * @param path The file.
 * @returns The state, or `null` when there is no file.
 * @throws {ShoalError} (code `DHT_STATE`) when the file exists but is not valid state.
 */
export async function loadDhtState(path: string): Promise<DhtState | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new ShoalError("DHT_STATE", `Cannot read DHT state from ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const bad = (why: string) => new ShoalError("DHT_STATE", `Invalid DHT state in ${path}: ${why}`);
  let root;
  try {
    root = decode(bytes, { maxBytes: 64 * 1024, maxDepth: 2, maxTokens: 64 });
  } catch (error) {
    throw bad((error as Error).message);
  }
  if (!(root instanceof Map)) throw bad("not a dictionary");
  const id = root.get("id");
  if (!(id instanceof Uint8Array) || id.length !== 20) throw bad("'id' is not 20 bytes");
  const nodes = root.get("nodes");
  if (!(nodes instanceof Uint8Array) || nodes.length % COMPACT_NODE_LENGTH !== 0) {
    throw bad("'nodes' is not whole 26-byte entries");
  }
  const ip = root.get("ip");
  return {
    id: id.slice(),
    nodes: decodeCompactNodes(nodes),
    ...(ip instanceof Uint8Array && ip.length === 4 ? { externalIp: formatIp(ip) } : {}),
  };
}
