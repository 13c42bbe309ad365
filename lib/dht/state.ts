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

import { dirname, resolve } from "node:path";
import { decode, encode } from "../bencode.ts";
import { ShoalError } from "../errors.ts";
import {
  ensureFolderInside,
  FileTooLargeError,
  readFileInside,
  writeFileAtomic,
} from "../storage/safe_open.ts";
import { formatIp, parseIp } from "../net/address.ts";
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
/** Largest state file read. */
const MAX_STATE_BYTES = 64 * 1024;

/** Options of {@linkcode saveDhtState} and {@linkcode loadDhtState}. */
export interface DhtStateFileOptions {
  /**
   * The folder below which no symbolic link is followed or replaced (the download folder, when
   * the state is in its `.shoal`); the file must lie inside it. @default {the file's folder}
   */
  root?: string;
}

/**
 * Writes the state atomically, creating its folder; never through a symbolic link below
 * `options.root` (a link at the file itself is refused, not replaced).
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
 * @param options The folder below which no link is followed.
 * @returns A promise that settles once the file is in place.
 * @throws {ShoalError} (code `DHT_STATE`) when it cannot be written.
 */
export async function saveDhtState(
  path: string,
  state: DhtState,
  options: DhtStateFileOptions = {},
): Promise<void> {
  const ip = state.externalIp === undefined ? null : parseIp(state.externalIp);
  const bytes = encode({
    id: state.id,
    nodes: encodeCompactNodes(state.nodes.slice(0, MAX_SAVED_NODES)),
    ...(ip !== null && ip.length === 4 ? { ip } : {}),
    v: 1,
  });
  const target = resolve(path);
  const root = resolve(options.root ?? dirname(target));
  try {
    await ensureFolderInside(root, dirname(target));
    await writeFileAtomic(root, target, bytes);
  } catch (error) {
    throw new ShoalError("DHT_STATE", `Cannot save DHT state to ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads saved state. A missing file gives `null`; a damaged one, or one reached through a
 * symbolic link below `options.root`, throws.
 *
 * @example
 * ```ts
 * import { loadDhtState } from "./state.ts";
 * console.log(await loadDhtState("/nonexistent/dht.dat")); // null
 * ```
 *
 * @param path The file.
 * @param options The folder below which no link is followed.
 * @returns The state, or `null` when there is no file.
 * @throws {ShoalError} (code `DHT_STATE`) when the file exists but is not valid state.
 */
export async function loadDhtState(
  path: string,
  options: DhtStateFileOptions = {},
): Promise<DhtState | null> {
  const target = resolve(path);
  let bytes: Uint8Array | null;
  try {
    bytes = await readFileInside(resolve(options.root ?? dirname(target)), target, MAX_STATE_BYTES);
  } catch (error) {
    if (error instanceof FileTooLargeError) {
      throw new ShoalError("DHT_STATE", `Invalid DHT state in ${path}: ${error.message}`, { cause: error });
    }
    throw new ShoalError("DHT_STATE", `Cannot read DHT state from ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (bytes === null) return null;
  const bad = (why: string) => new ShoalError("DHT_STATE", `Invalid DHT state in ${path}: ${why}`);
  let root;
  try {
    root = decode(bytes, { maxBytes: MAX_STATE_BYTES, maxDepth: 2, maxTokens: 64 });
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
