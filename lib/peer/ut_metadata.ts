/**
 * BEP 9, the metadata exchange (`ut_metadata`): the message codec shared by both sides, and
 * {@linkcode utMetadataServer}, the {@linkcode PeerExtension} that serves a torrent's info
 * dictionary to peers that came with a magnet link. The fetching side is
 * `lib/metadata_fetch.ts`.
 *
 * A message is a bencoded dictionary (`msg_type`: 0 request, 1 data, 2 reject; `piece`; and
 * `total_size` on data), followed on data messages by the raw bytes of one 16 KiB piece of the
 * info dictionary (the last piece may be shorter). Unknown `msg_type`s are ignored, as the
 * BEP asks.
 *
 * Private torrents (BEP 27) do not serve their metadata: like libtorrent, shoal does not
 * register the extension for them, so it is not in our extended handshake.
 *
 * @module
 */

import { type BDict, decodePrefix, encode } from "../bencode.ts";
import { ProtocolError } from "../errors.ts";
import type { ExtensionPeer, PeerExtension } from "../types.ts";

/** The extension's name in the `m` dictionary. */
export const UT_METADATA = "ut_metadata";
/** Size of a metadata piece: 16 KiB. */
export const METADATA_PIECE_SIZE = 16 * 1024;
/** Largest bencoded header accepted in front of a piece's bytes. */
const MAX_HEADER = 1024;

/** One decoded `ut_metadata` message. */
export type MetadataMessage =
  | { readonly type: "request"; readonly piece: number }
  | {
    readonly type: "data";
    readonly piece: number;
    /** `total_size`: the size of the whole info dictionary, as the sender claims. */
    readonly totalSize: number;
    /** The piece's bytes: a view into the payload, valid during the handler only. */
    readonly data: Uint8Array;
  }
  | { readonly type: "reject"; readonly piece: number }
  | { readonly type: "unknown"; readonly msgType: number };

/**
 * Number of 16 KiB pieces of an info dictionary of `size` bytes.
 *
 * @example
 * ```ts
 * import { metadataPieceCount } from "./ut_metadata.ts";
 * console.log(metadataPieceCount(16384), metadataPieceCount(16385)); // 1 2
 * ```
 *
 * @param size The info dictionary's size in bytes.
 * @returns The piece count.
 */
export function metadataPieceCount(size: number): number {
  return Math.ceil(size / METADATA_PIECE_SIZE);
}

/**
 * Length of metadata piece `piece` of an info dictionary of `size` bytes.
 *
 * @example
 * ```ts
 * import { metadataPieceLength } from "./ut_metadata.ts";
 * console.log(metadataPieceLength(20000, 1)); // 3616
 * ```
 *
 * @param size The info dictionary's size in bytes.
 * @param piece Piece index.
 * @returns Its length in bytes.
 */
export function metadataPieceLength(size: number, piece: number): number {
  return Math.min(METADATA_PIECE_SIZE, size - piece * METADATA_PIECE_SIZE);
}

/**
 * Encodes a `ut_metadata` message (the payload of an extended message).
 *
 * @example
 * ```ts
 * import { encodeMetadataMessage } from "./ut_metadata.ts";
 * const bytes = encodeMetadataMessage({ type: "request", piece: 0 });
 * console.log(new TextDecoder().decode(bytes)); // "d8:msg_typei0e5:piecei0ee"
 * ```
 *
 * @param message The message (`unknown` messages cannot be encoded).
 * @returns The payload.
 * @throws {TypeError} for an `unknown` message.
 */
export function encodeMetadataMessage(message: MetadataMessage): Uint8Array {
  switch (message.type) {
    case "request":
      return encode({ msg_type: 0, piece: message.piece });
    case "reject":
      return encode({ msg_type: 2, piece: message.piece });
    case "data": {
      const head = encode({ msg_type: 1, piece: message.piece, total_size: message.totalSize });
      const out = new Uint8Array(head.length + message.data.length);
      out.set(head);
      out.set(message.data, head.length);
      return out;
    }
    case "unknown":
      throw new TypeError(`Cannot encode a ut_metadata message of unknown type ${message.msgType}`);
  }
}

/**
 * Decodes a `ut_metadata` message, strictly: a dictionary with integer `msg_type` and a
 * non-negative integer `piece`; on data messages a non-negative `total_size` and at most
 * 16 KiB of bytes after the dictionary; on the others nothing after it.
 *
 * @example
 * ```ts
 * import { decodeMetadataMessage, encodeMetadataMessage } from "./ut_metadata.ts";
 * const m = decodeMetadataMessage(encodeMetadataMessage({ type: "reject", piece: 3 }));
 * console.log(m); // { type: "reject", piece: 3 }
 * ```
 *
 * @param payload The extended message's payload.
 * @returns The message; `data` is a view into `payload`.
 * @throws {ProtocolError} when the message is malformed or a piece is over 16 KiB.
 */
export function decodeMetadataMessage(payload: Uint8Array): MetadataMessage {
  let value;
  let end: number;
  try {
    ({ value, end } = decodePrefix(payload.subarray(0, Math.min(payload.length, MAX_HEADER)), {
      maxDepth: 2,
      maxTokens: 64,
    }));
  } catch (error) {
    throw new ProtocolError(`Malformed ut_metadata message: ${(error as Error).message}`, { cause: error });
  }
  if (!(value instanceof Map)) throw new ProtocolError("Malformed ut_metadata message: not a dictionary");
  const dict = value as BDict;
  const msgType = dict.get("msg_type");
  if (typeof msgType !== "number" || !Number.isInteger(msgType)) {
    throw new ProtocolError("Malformed ut_metadata message: 'msg_type' is not an integer");
  }
  if (msgType < 0 || msgType > 2) return { type: "unknown", msgType };
  const piece = dict.get("piece");
  if (typeof piece !== "number" || !Number.isInteger(piece) || piece < 0) {
    throw new ProtocolError("Malformed ut_metadata message: 'piece' is not a non-negative integer");
  }
  const rest = payload.length - end;
  if (msgType !== 1) {
    if (rest !== 0) throw new ProtocolError(`Malformed ut_metadata message: ${rest} bytes after a request`);
    return msgType === 0 ? { type: "request", piece } : { type: "reject", piece };
  }
  const totalSize = dict.get("total_size");
  if (typeof totalSize !== "number" || !Number.isInteger(totalSize) || totalSize < 0) {
    throw new ProtocolError("Malformed ut_metadata data: 'total_size' is not a non-negative integer");
  }
  if (rest > METADATA_PIECE_SIZE) {
    throw new ProtocolError(
      `ut_metadata piece ${piece} of ${rest} bytes exceeds the ${METADATA_PIECE_SIZE}-byte maximum`,
    );
  }
  return { type: "data", piece, totalSize, data: payload.subarray(end) };
}

/** Options for {@linkcode utMetadataServer}. */
export interface UtMetadataServerOptions {
  /**
   * Requests one peer may make per window before it is answered with `reject`; a peer that
   * goes on to send four times as many in one window is dropped.
   *
   * @default {Math.max(16, 2 * pieceCount)} (every piece twice)
   */
  maxRequestsPerWindow?: number;
  /** Length of the rate window in milliseconds. @default {60_000} */
  windowMs?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
}

interface RequestWindow {
  start: number;
  count: number;
}

/**
 * The `ut_metadata` extension of a torrent whose metadata we have: it puts `metadata_size`
 * in our extended handshake and answers each `request` with the piece (`data`), or with
 * `reject` when the piece does not exist or the peer asks too often. Messages of the other
 * types are ignored (we never ask a torrent's peers for metadata we already have).
 *
 * @example
 * ```ts
 * import { utMetadataServer } from "./ut_metadata.ts";
 * const server = utMetadataServer(new TextEncoder().encode("d4:name1:ae"));
 * console.log(server.name, server.handshakeFields?.()); // "ut_metadata" { metadata_size: 11 }
 * ```
 *
 * @param infoBytes The raw info dictionary (kept by reference: do not modify it).
 * @param options Rate limit.
 * @returns The extension.
 */
export function utMetadataServer(
  infoBytes: Uint8Array,
  options: UtMetadataServerOptions = {},
): PeerExtension {
  const size = infoBytes.length;
  const pieces = metadataPieceCount(size);
  const limit = options.maxRequestsPerWindow ?? Math.max(16, 2 * pieces);
  const windowMs = options.windowMs ?? 60_000;
  const now = options.now ?? Date.now;
  const windows = new Map<string, RequestWindow>();
  return {
    name: UT_METADATA,
    handshakeFields: () => ({ metadata_size: size }),
    onMessage(peer: ExtensionPeer, payload: Uint8Array): void {
      const message = decodeMetadataMessage(payload);
      if (message.type !== "request") return;
      const t = now();
      let window = windows.get(peer.id);
      if (window === undefined || t - window.start >= windowMs) {
        window = { start: t, count: 0 };
        windows.set(peer.id, window);
      }
      window.count++;
      if (window.count > 4 * limit) {
        peer.close(`${window.count} metadata requests within ${windowMs} ms`);
        return;
      }
      const piece = message.piece;
      if (window.count > limit || piece >= pieces) {
        peer.send(encodeMetadataMessage({ type: "reject", piece }));
        return;
      }
      const begin = piece * METADATA_PIECE_SIZE;
      const data = infoBytes.subarray(begin, begin + metadataPieceLength(size, piece));
      peer.send(encodeMetadataMessage({ type: "data", piece, totalSize: size, data }));
    },
    onClose(peer: ExtensionPeer): void {
      windows.delete(peer.id);
    },
  };
}
