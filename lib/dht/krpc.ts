/**
 * KRPC (BEP 5): the bencoded query, response and error messages DHT nodes exchange over UDP,
 * with strict validation of everything that comes from the network.
 *
 * A message is a dictionary with a transaction id `t` (a short byte string the querying node
 * chooses and the answer echoes), a type `y` (`q` query, `r` response, `e` error) and the
 * body: `q` (method) and `a` (arguments) for queries, `r` for responses, `e` (`[code, text]`)
 * for errors.
 *
 * Only IPv4 is spoken (no BEP 32): node lists are whole 26-byte entries (20-byte id, 4-byte
 * address, 2-byte port) and peer values are 6-byte compact peers. {@linkcode decodeKrpc}
 * returns a typed message or throws a {@linkcode KrpcDecodeError} that says whether the input
 * looked like a query and which transaction id it carried, so a node can answer error 203 or
 * drop it; it throws nothing else.
 *
 * @module
 */

import { type BDict, type BEncodable, type BValue, decode, encode } from "../bencode.ts";
import { ShoalError } from "../errors.ts";
import {
  decodeCompactPeer,
  decodeCompactPeers,
  encodeCompactPeer,
  parseIp,
  tryParseAddress,
} from "../net/address.ts";
import { concatBytes, latin1 } from "../net/bytes.ts";

/** Length of node ids and info-hashes. */
export const ID_LENGTH = 20;
/** Length of one compact IPv4 node entry: id, address, port. */
export const COMPACT_NODE_LENGTH = 26;
/** Longest transaction id accepted. */
export const MAX_TRANSACTION_ID_LENGTH = 16;
/** Longest announce token accepted. */
export const MAX_TOKEN_LENGTH = 64;
/** Largest datagram decoded; bigger ones are refused before parsing. */
export const MAX_MESSAGE_BYTES = 8192;
/** Most node entries accepted in one `nodes` string. */
export const MAX_NODES_PER_MESSAGE = 64;
/** Most peer values accepted in one response. */
export const MAX_VALUES_PER_MESSAGE = 512;

/** KRPC error codes (BEP 5). */
export const KRPC_ERRORS = {
  /** Generic error. */
  generic: 201,
  /** Server error. */
  server: 202,
  /** Protocol error: malformed packet, invalid arguments or bad token. */
  protocol: 203,
  /** Method unknown. */
  methodUnknown: 204,
} as const;

/** A DHT node as found in compact node lists: its id and its IPv4 `"a.b.c.d:port"`. */
export interface CompactNode {
  /** The 20-byte node id. */
  id: Uint8Array;
  /** `"a.b.c.d:port"`. */
  address: string;
}

/** Fields every query carries. */
export interface KrpcQueryBase {
  /** Message type. */
  y: "q";
  /** Transaction id. */
  t: Uint8Array;
  /** The querying node's id. */
  id: Uint8Array;
  /** BEP 43 read-only flag: the querying node does not answer queries. */
  readOnly?: boolean;
}

/** `ping`: are you there? */
export interface PingQuery extends KrpcQueryBase {
  /** Method. */
  q: "ping";
}

/** `find_node`: the nodes you know closest to `target`. */
export interface FindNodeQuery extends KrpcQueryBase {
  /** Method. */
  q: "find_node";
  /** The id looked for. */
  target: Uint8Array;
}

/** `get_peers`: peers of `infoHash`, or the closest nodes you know, and a token. */
export interface GetPeersQuery extends KrpcQueryBase {
  /** Method. */
  q: "get_peers";
  /** The torrent. */
  infoHash: Uint8Array;
}

/** `announce_peer`: the querying node has `infoHash` on `port` (or its source port). */
export interface AnnouncePeerQuery extends KrpcQueryBase {
  /** Method. */
  q: "announce_peer";
  /** The torrent. */
  infoHash: Uint8Array;
  /** The announced port (0 to 65535; meaningless when `impliedPort` is set). */
  port: number;
  /** The token from an earlier `get_peers` answer. */
  token: Uint8Array;
  /** Use the UDP source port instead of `port` (BEP 5 `implied_port`). */
  impliedPort: boolean;
}

/** A query with a method this node does not know (answered with error 204). */
export interface UnknownQuery {
  /** Message type. */
  y: "q";
  /** Transaction id. */
  t: Uint8Array;
  /** Marker for unknown methods. */
  q: "unknown";
  /** The method name as received (printable). */
  method: string;
}

/** Any query. */
export type KrpcQuery = PingQuery | FindNodeQuery | GetPeersQuery | AnnouncePeerQuery | UnknownQuery;

/** A response. Which fields are present depends on the query it answers. */
export interface KrpcResponse {
  /** Message type. */
  y: "r";
  /** Transaction id. */
  t: Uint8Array;
  /** The responding node's id. */
  id: Uint8Array;
  /** Closest nodes (`find_node`, `get_peers`). */
  nodes?: CompactNode[];
  /** Peers, `"a.b.c.d:port"` (`get_peers`). */
  values?: string[];
  /** Token for a later `announce_peer` (`get_peers`). */
  token?: Uint8Array;
  /** Our address as the responder saw it (BEP 42 `ip`), `"a.b.c.d:port"`. */
  ip?: string;
}

/** An error message. */
export interface KrpcErrorMessage {
  /** Message type. */
  y: "e";
  /** Transaction id. */
  t: Uint8Array;
  /** Error code (201-204 are defined). */
  code: number;
  /** Error text (printable). */
  message: string;
}

/** Any KRPC message. */
export type KrpcMessage = KrpcQuery | KrpcResponse | KrpcErrorMessage;

/**
 * Thrown by {@linkcode decodeKrpc} for input that is not a valid KRPC message. It tells the
 * caller how to react: answer a query that carried a transaction id with error 203, and
 * drop everything else.
 *
 * @example
 * ```ts
 * import { decodeKrpc, KrpcDecodeError } from "./krpc.ts";
 * try {
 *   decodeKrpc(new TextEncoder().encode("d1:t2:aa1:y1:qe"));
 * } catch (error) {
 *   if (error instanceof KrpcDecodeError) console.log(error.kind, error.transactionId); // "query" Uint8Array(2)
 * }
 * ```
 */
export class KrpcDecodeError extends ShoalError {
  /** What the message claimed to be (`unknown` when `y` was missing or invalid). */
  readonly kind: "query" | "response" | "error" | "unknown";
  /** The transaction id, when the message had a valid one. */
  readonly transactionId: Uint8Array | null;

  /**
   * Creates the instance.
   *
   * @param message What is wrong.
   * @param kind What the message claimed to be.
   * @param transactionId Its transaction id, if valid.
   * @param options Standard error options (`cause`).
   */
  constructor(
    message: string,
    kind: "query" | "response" | "error" | "unknown",
    transactionId: Uint8Array | null,
    options?: ErrorOptions,
  ) {
    super("KRPC", message, options);
    this.kind = kind;
    this.transactionId = transactionId;
  }
}

const DECODE_LIMITS = { maxBytes: MAX_MESSAGE_BYTES, maxDepth: 4, maxTokens: 1200 };

/**
 * Decodes and validates one KRPC datagram.
 *
 * Checked: the input is one bencoded dictionary of at most {@linkcode MAX_MESSAGE_BYTES};
 * `t` is a byte string of 1 to 16 bytes; `y` is `q`, `r` or `e`; ids, targets and
 * info-hashes are 20 bytes; `nodes` is whole 26-byte entries (at most 64); `values` is a list
 * of 6-byte compact peers (18-byte IPv6 entries are skipped, other sizes refused); tokens are
 * 1 to 64 bytes; ports are integers in range; errors are `[int, string]`. Unknown keys are
 * ignored, as BEP 5 asks.
 *
 * @example
 * ```ts
 * import { decodeKrpc } from "./krpc.ts";
 * const m = decodeKrpc(new TextEncoder().encode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"));
 * console.log(m.y, m.y === "q" ? m.q : ""); // "q" "ping"
 * ```
 *
 * @param datagram The bytes received.
 * @returns The message (byte fields are copies).
 * @throws {KrpcDecodeError} when the datagram is not a valid message.
 */
export function decodeKrpc(datagram: Uint8Array): KrpcMessage {
  let root: BValue;
  try {
    root = decode(datagram, DECODE_LIMITS);
  } catch (error) {
    throw new KrpcDecodeError(`Invalid KRPC message: ${(error as Error).message}`, "unknown", null, {
      cause: error,
    });
  }
  if (!(root instanceof Map)) {
    throw new KrpcDecodeError("Invalid KRPC message: not a dictionary", "unknown", null);
  }
  const rawT = root.get("t");
  const t = rawT instanceof Uint8Array && rawT.length >= 1 && rawT.length <= MAX_TRANSACTION_ID_LENGTH
    ? rawT.slice()
    : null;
  const y = root.get("y");
  const kind = y instanceof Uint8Array && y.length === 1
    ? y[0] === 0x71 ? "query" : y[0] === 0x72 ? "response" : y[0] === 0x65 ? "error" : "unknown"
    : "unknown";
  const fail = (what: string): never => {
    throw new KrpcDecodeError(`Invalid KRPC message: ${what}`, kind, t);
  };
  if (t === null) {
    fail(
      rawT === undefined ? "no transaction id 't'" : "transaction id 't' is not a string of 1 to 16 bytes",
    );
  }
  if (kind === "unknown") fail(y === undefined ? "no message type 'y'" : "message type 'y' is not q, r or e");
  const tid = t!;
  if (kind === "query") return decodeQuery(root, tid, fail);
  if (kind === "response") return decodeResponse(root, tid, fail);
  const e = root.get("e");
  if (!Array.isArray(e) || e.length < 2) return fail("error 'e' is not a list [code, message]");
  const [code, text] = e;
  if (typeof code !== "number" || !Number.isSafeInteger(code)) return fail("error code is not an integer");
  if (!(text instanceof Uint8Array)) return fail("error message is not a string");
  return { y: "e", t: tid, code, message: printable(text, 200) };
}

function decodeQuery(root: BDict, t: Uint8Array, fail: (what: string) => never): KrpcQuery {
  const q = root.get("q");
  if (!(q instanceof Uint8Array) || q.length === 0 || q.length > 64) {
    return fail("method 'q' is not a short string");
  }
  const method = latin1(q);
  const known = method === "ping" || method === "find_node" || method === "get_peers" ||
    method === "announce_peer";
  if (!known) return { y: "q", t, q: "unknown", method: printable(q, 64) };
  const a = root.get("a");
  if (!(a instanceof Map)) return fail(`${method}: arguments 'a' are not a dictionary`);
  const id = bytesOf(a, "id", ID_LENGTH, fail, method);
  const ro = root.get("ro");
  const base = { y: "q" as const, t, id, ...(ro === 1 ? { readOnly: true } : {}) };
  switch (method) {
    case "ping":
      return { ...base, q: "ping" };
    case "find_node":
      return { ...base, q: "find_node", target: bytesOf(a, "target", ID_LENGTH, fail, method) };
    case "get_peers":
      return { ...base, q: "get_peers", infoHash: bytesOf(a, "info_hash", ID_LENGTH, fail, method) };
    default: {
      const infoHash = bytesOf(a, "info_hash", ID_LENGTH, fail, method);
      const token = a.get("token");
      if (!(token instanceof Uint8Array) || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return fail("announce_peer: 'token' is not a string of 1 to 64 bytes");
      }
      const implied = a.get("implied_port");
      if (implied !== undefined && implied !== 0 && implied !== 1) {
        return fail("announce_peer: 'implied_port' is not 0 or 1");
      }
      const port = a.get("port");
      if (implied !== 1 && port === undefined) return fail("announce_peer: no 'port'");
      if (
        port !== undefined &&
        (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535)
      ) {
        return fail("announce_peer: 'port' is not an integer from 0 to 65535");
      }
      return {
        ...base,
        q: "announce_peer",
        infoHash,
        port: typeof port === "number" ? port : 0,
        token: token.slice(),
        impliedPort: implied === 1,
      };
    }
  }
}

function decodeResponse(root: BDict, t: Uint8Array, fail: (what: string) => never): KrpcResponse {
  const r = root.get("r");
  if (!(r instanceof Map)) return fail("response 'r' is not a dictionary");
  const response: KrpcResponse = { y: "r", t, id: bytesOf(r, "id", ID_LENGTH, fail, "response") };
  const nodes = r.get("nodes");
  if (nodes !== undefined) {
    if (!(nodes instanceof Uint8Array)) return fail("'nodes' is not a string");
    if (nodes.length % COMPACT_NODE_LENGTH !== 0) {
      return fail(`'nodes' is ${nodes.length} bytes, not a multiple of ${COMPACT_NODE_LENGTH}`);
    }
    if (nodes.length > MAX_NODES_PER_MESSAGE * COMPACT_NODE_LENGTH) {
      return fail("'nodes' has too many entries");
    }
    response.nodes = decodeCompactNodes(nodes);
  }
  const values = r.get("values");
  if (values !== undefined) {
    if (!Array.isArray(values)) return fail("'values' is not a list");
    if (values.length > MAX_VALUES_PER_MESSAGE) return fail("'values' has too many entries");
    const peers: string[] = [];
    for (const value of values) {
      if (!(value instanceof Uint8Array)) return fail("a 'values' entry is not a string");
      if (value.length === 18) continue; // an IPv6 peer (BEP 32): not spoken here
      if (value.length !== 6) return fail(`a 'values' entry is ${value.length} bytes, not 6`);
      peers.push(...decodeCompactPeers(value, 4));
    }
    response.values = peers;
  }
  const token = r.get("token");
  if (token !== undefined) {
    if (!(token instanceof Uint8Array) || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      return fail("'token' is not a string of 1 to 64 bytes");
    }
    response.token = token.slice();
  }
  const ip = root.get("ip");
  if (ip instanceof Uint8Array && ip.length === 6) {
    const [peer] = decodeCompactPeers(ip, 4);
    if (peer !== undefined) response.ip = peer;
  }
  return response;
}

function bytesOf(
  dict: BDict,
  key: string,
  length: number,
  fail: (what: string) => never,
  where: string,
): Uint8Array {
  const value = dict.get(key);
  if (!(value instanceof Uint8Array) || value.length !== length) {
    return fail(`${where}: '${key}' is not a ${length}-byte string`);
  }
  return value.slice();
}

/**
 * Decodes whole 26-byte compact node entries; entries with port 0 are skipped. Trailing
 * bytes that do not make a whole entry are ignored (callers that must refuse them check the
 * length first, as {@linkcode decodeKrpc} does).
 *
 * @example
 * ```ts
 * import { decodeCompactNodes } from "./krpc.ts";
 * const entry = new Uint8Array(26);
 * entry.set([127, 0, 0, 1, 0x1a, 0xe1], 20);
 * console.log(decodeCompactNodes(entry)[0]?.address); // "127.0.0.1:6881"
 * ```
 *
 * @param bytes The compact list.
 * @returns The nodes, ids copied.
 */
export function decodeCompactNodes(bytes: Uint8Array): CompactNode[] {
  const out: CompactNode[] = [];
  for (let at = 0; at + COMPACT_NODE_LENGTH <= bytes.length; at += COMPACT_NODE_LENGTH) {
    const address = decodeCompactPeer(bytes.subarray(at + 20, at + COMPACT_NODE_LENGTH));
    if (address !== null) out.push({ id: bytes.slice(at, at + 20), address });
  }
  return out;
}

/**
 * Encodes nodes as whole 26-byte compact entries; nodes whose address is not IPv4 are left
 * out.
 *
 * @example
 * ```ts
 * import { encodeCompactNodes } from "./krpc.ts";
 * console.log(encodeCompactNodes([{ id: new Uint8Array(20), address: "127.0.0.1:6881" }]).length); // 26
 * ```
 *
 * @param nodes The nodes.
 * @returns The compact list.
 */
export function encodeCompactNodes(nodes: readonly CompactNode[]): Uint8Array {
  const entries: Uint8Array[] = [];
  for (const node of nodes) {
    const peer = encodeCompactPeer(node.address);
    if (peer === null || peer.length !== 6 || node.id.length !== ID_LENGTH) continue;
    entries.push(node.id, peer);
  }
  return concatBytes(entries);
}

/** Options of {@linkcode encodeKrpc}. */
export interface EncodeKrpcOptions {
  /** Client version string (`v`), e.g. 4 bytes. @default none */
  version?: Uint8Array;
  /** Put this address (`"a.b.c.d:port"`) as the BEP 42 `ip` field, the requester as we see it. */
  ip?: string;
}

/**
 * Encodes a KRPC message.
 *
 * @example
 * ```ts
 * import { encodeKrpc } from "./krpc.ts";
 * const bytes = encodeKrpc({ y: "q", t: new Uint8Array([97, 97]), q: "ping", id: new Uint8Array(20) });
 * console.log(new TextDecoder().decode(bytes.subarray(0, 12))); // "d1:ad2:id20:"
 * ```
 *
 * @param message The message (an `unknown` query cannot be encoded).
 * @param options Version and `ip` fields.
 * @returns The datagram.
 * @throws {TypeError} for an `unknown` query or an invalid field.
 */
export function encodeKrpc(message: KrpcMessage, options: EncodeKrpcOptions = {}): Uint8Array {
  const top: Record<string, BEncodable> = { t: message.t, y: message.y };
  if (options.version) top.v = options.version;
  if (options.ip !== undefined) {
    const ip = encodeCompactPeer(options.ip);
    if (ip !== null) top.ip = ip;
  }
  if (message.y === "e") {
    top.e = [message.code, message.message];
  } else if (message.y === "r") {
    const r: Record<string, BEncodable> = { id: message.id };
    if (message.nodes) r.nodes = encodeCompactNodes(message.nodes);
    if (message.values) {
      const values: Uint8Array[] = [];
      for (const address of message.values) {
        const peer = encodeCompactPeer(address);
        if (peer !== null && peer.length === 6) values.push(peer);
      }
      r.values = values;
    }
    if (message.token) r.token = message.token;
    top.r = r;
  } else {
    if (message.q === "unknown") throw new TypeError("Cannot encode a query with an unknown method");
    const a: Record<string, BEncodable> = { id: message.id };
    switch (message.q) {
      case "ping":
        break;
      case "find_node":
        a.target = message.target;
        break;
      case "get_peers":
        a.info_hash = message.infoHash;
        break;
      case "announce_peer":
        a.info_hash = message.infoHash;
        a.port = message.port;
        a.token = message.token;
        if (message.impliedPort) a.implied_port = 1;
        break;
    }
    top.q = message.q;
    top.a = a;
    if (message.readOnly) top.ro = 1;
  }
  return encode(top);
}

/**
 * Parses an IPv4 `"a.b.c.d:port"` into its 4 address bytes and port.
 *
 * @example
 * ```ts
 * import { parseIpv4Address } from "./krpc.ts";
 * console.log(parseIpv4Address("127.0.0.1:6881")?.port); // 6881
 * console.log(parseIpv4Address("[::1]:6881")); // null
 * ```
 *
 * @param address The address.
 * @returns The parts, or `null` when it is not an IPv4 literal with a port from 1 to 65535.
 */
export function parseIpv4Address(address: string): { ip: Uint8Array; host: string; port: number } | null {
  const parsed = tryParseAddress(address);
  const ip = parsed === null ? null : parseIp(parsed.hostname);
  if (ip === null || ip.length !== 4) return null;
  return { ip, host: parsed!.hostname, port: parsed!.port };
}

function printable(bytes: Uint8Array, max: number): string {
  let s = "";
  for (const b of bytes.subarray(0, max)) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "?";
  return bytes.length > max ? s + "…" : s;
}
