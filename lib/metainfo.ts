/**
 * `.torrent` files → {@linkcode Metainfo}: strict validation with clear errors, the
 * info-hash computed from the raw bytes of the info dictionary (never a re-encoding), and
 * safe file paths for every file.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type BDict, type BValue, decode, encode, spanOf } from "./bencode.ts";
import { BencodeError, MetainfoError } from "./errors.ts";
import { TORRENT_LIMITS } from "./limits.ts";
import { dedupePaths, safeRelativePath } from "./safe_path.ts";
import type { Metainfo, TorrentFile } from "./types.ts";
import { toHex } from "./net/bytes.ts";

/** Limits applied while parsing an untrusted `.torrent` file (defaults: `TORRENT_LIMITS`). */
export interface MetainfoOptions {
  /** Maximum number of files. @default {1_000_000} */
  maxFiles?: number;
  /** Maximum number of pieces. @default {0x200000} */
  maxPieces?: number;
  /** Maximum piece length in bytes. @default {128 * 1024 * 1024} */
  maxPieceLength?: number;
  /** Maximum size of the `.torrent` file in bytes. @default {64 * 1024 * 1024} */
  maxBytes?: number;
  /** Maximum number of bencode tokens (values, keys and ends). @default {3_000_000} */
  maxTokens?: number;
  /** Maximum number of components in a file's relative path, the torrent's folder included. @default {64} */
  maxPathDepth?: number;
  /** Maximum UTF-8 size of a file's relative path, the torrent's folder included. @default {4095} */
  maxPathBytes?: number;
}

const HASH_SIZE = 20;
const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Parses and validates a `.torrent` file (BEP 3 v1 layout, plus BEP 12 tiers, BEP 19 web
 * seeds, BEP 27 private flag, BEP 47 pad files, and the v1 part of a BEP 52 hybrid torrent).
 * The input is copied first; the result does not share memory with it.
 *
 * @example
 * ```ts
 * import { encode } from "./bencode.ts";
 * import { parseMetainfo } from "./metainfo.ts";
 * const torrent = encode({
 *   announce: "http://tracker.example/announce",
 *   info: { length: 5, name: "hello.txt", "piece length": 16384, pieces: new Uint8Array(20) },
 * });
 * const meta = parseMetainfo(torrent);
 * console.log(meta.name, meta.pieceCount, meta.files[0]!.safePath); // "hello.txt" 1 "hello.txt"
 * ```
 *
 * @param bytes The contents of the `.torrent` file.
 * @param options Limits.
 * @returns The parsed torrent.
 * @throws {BencodeError} when the bytes are not valid bencode (or exceed a decoding limit).
 * @throws {MetainfoError} when they are valid bencode but not a valid torrent.
 */
export function parseMetainfo(bytes: Uint8Array, options: MetainfoOptions = {}): Metainfo {
  const maxFiles = options.maxFiles ?? TORRENT_LIMITS.maxFiles;
  const maxPieces = options.maxPieces ?? TORRENT_LIMITS.maxPieces;
  const maxPieceLength = options.maxPieceLength ?? TORRENT_LIMITS.maxPieceLength;
  const maxBytes = options.maxBytes ?? TORRENT_LIMITS.maxBytes;
  const maxTokens = options.maxTokens ?? TORRENT_LIMITS.maxTokens;
  const pathLimits = {
    depth: options.maxPathDepth ?? TORRENT_LIMITS.maxPathDepth,
    bytes: options.maxPathBytes ?? TORRENT_LIMITS.maxPathBytes,
  };

  // Refused before the copy below, so an oversized input costs no memory.
  if (bytes.length > maxBytes) {
    throw new BencodeError(`Torrent file of ${bytes.length} bytes exceeds the limit of ${maxBytes} bytes`, 0);
  }
  const input = bytes.slice();
  // Each decoded value costs hundreds of bytes of memory: the token cap, not the byte cap, bounds it.
  const root = decode(input, { maxBytes, maxTokens, maxDepth: TORRENT_LIMITS.maxDepth });
  if (!(root instanceof Map)) throw invalid("the top-level value is not a dictionary");
  const info = root.get("info");
  if (info === undefined) throw invalid("missing 'info' dictionary");
  if (!(info instanceof Map)) throw invalid("'info' is not a dictionary");
  const span = spanOf(info);
  if (span === undefined) throw new MetainfoError("Cannot locate the raw bytes of the 'info' dictionary");
  // Keep only the info dictionary: the rest of the file (hybrid piece layers, say) can be freed.
  const infoBytes = input.slice(span.start, span.end);
  const infoHash = new Uint8Array(createHash("sha1").update(infoBytes).digest());

  const hybrid = checkMetaVersion(info);
  const name = readName(info);
  const pieceLength = readPieceLength(info, maxPieceLength);
  const pieces = info.get("pieces");
  if (pieces === undefined) throw invalid("missing 'pieces'");
  if (!(pieces instanceof Uint8Array)) throw invalid("'pieces' is not a byte string");
  if (pieces.length % HASH_SIZE !== 0) {
    throw invalid(`'pieces' is ${pieces.length} bytes long, which is not a multiple of 20`);
  }

  const hasLength = info.has("length");
  const hasFiles = info.has("files");
  if (hasLength && hasFiles) throw invalid("'info' has both 'length' and 'files'");
  if (!hasLength && !hasFiles) throw invalid("'info' has neither 'length' nor 'files'");
  const safeName = safeRelativePath([name]);
  checkPathLimits(safeName, "the torrent's name", pathLimits);
  const layout = hasFiles
    ? readFiles(info.get("files"), safeName, maxFiles, pathLimits)
    : singleFile(info.get("length"), name, safeName);
  const { files, totalLength } = layout;
  if (totalLength === 0) throw invalid("the total length is 0 bytes (nothing to download)");

  const pieceCount = pieces.length / HASH_SIZE;
  if (pieceCount > maxPieces) throw invalid(`${pieceCount} pieces exceed the maximum of ${maxPieces}`);
  const expectedCount = Math.ceil(totalLength / pieceLength);
  if (pieceCount !== expectedCount) {
    throw invalid(
      `'pieces' has ${pieceCount} hashes but ${totalLength} bytes in pieces of ${pieceLength} need ${expectedCount}`,
    );
  }

  const meta: {
    -readonly [K in keyof Metainfo]: Metainfo[K];
  } = {
    infoHash,
    infoHashHex: toHex(infoHash),
    infoBytes,
    name,
    pieceLength,
    pieceCount,
    pieceHashes: viewInInfo(pieces, infoBytes, span.start),
    totalLength,
    files,
    multiFile: hasFiles,
    announceList: readAnnounceList(root),
    urlList: readUrlList(root.get("url-list")),
    private: info.get("private") === 1,
    hybrid,
  };
  const comment = readText(root, "comment");
  if (comment !== undefined) meta.comment = comment;
  const createdBy = readText(root, "created by");
  if (createdBy !== undefined) meta.createdBy = createdBy;
  const creationDate = root.get("creation date");
  if (typeof creationDate === "number") meta.creationDate = creationDate;
  return meta;
}

/**
 * The size of one piece: `pieceLength` for every piece but the last, which holds the rest.
 *
 * @example
 * ```ts
 * import { encode } from "./bencode.ts";
 * import { parseMetainfo, pieceSize } from "./metainfo.ts";
 * const meta = parseMetainfo(encode({
 *   info: { length: 20000, name: "a", "piece length": 16384, pieces: new Uint8Array(40) },
 * }));
 * console.log(pieceSize(meta, 0), pieceSize(meta, 1)); // 16384 3616
 * ```
 *
 * @param meta The torrent.
 * @param index Piece index, from 0 to `meta.pieceCount - 1`.
 * @returns The piece's size in bytes.
 * @throws {RangeError} when the index is not a piece of the torrent.
 */
export function pieceSize(meta: Metainfo, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= meta.pieceCount) {
    throw new RangeError(`Cannot size piece ${index}: the torrent has pieces 0 to ${meta.pieceCount - 1}`);
  }
  return Math.min(meta.pieceLength, meta.totalLength - index * meta.pieceLength);
}

/** Extra top-level fields for {@linkcode encodeTorrent}. */
export interface TorrentExtras {
  /** Tracker tiers (BEP 12); the first URL is also written as `announce`. */
  announceList?: readonly (readonly string[])[];
  /** Web seed URLs (BEP 19). */
  urlList?: readonly string[];
  /** Free-text comment. */
  comment?: string;
  /** Program that created the torrent. */
  createdBy?: string;
  /** Creation time in seconds since the Unix epoch. */
  creationDate?: number;
}

/**
 * Builds a `.torrent` file around raw info-dictionary bytes, which are copied verbatim so
 * the info-hash is kept (for instance the metadata fetched for a magnet link).
 *
 * @example
 * ```ts
 * import { encode } from "./bencode.ts";
 * import { encodeTorrent, parseMetainfo } from "./metainfo.ts";
 * const info = encode({ length: 5, name: "a", "piece length": 16384, pieces: new Uint8Array(20) });
 * const torrent = encodeTorrent(info, { announceList: [["udp://127.0.0.1:6969"]] });
 * console.log(parseMetainfo(torrent).announceList); // [["udp://127.0.0.1:6969"]]
 * ```
 *
 * @param info The bencoded info dictionary.
 * @param extras Trackers, web seeds, comment and so on.
 * @returns The bencoded torrent.
 * @throws {MetainfoError} when `info` is not one bencoded dictionary.
 */
export function encodeTorrent(info: Uint8Array, extras: TorrentExtras = {}): Uint8Array {
  let decoded: BValue;
  try {
    decoded = decode(info);
  } catch (e) {
    throw new MetainfoError("Cannot build a torrent: 'info' is not valid bencode", { cause: e });
  }
  if (!(decoded instanceof Map)) {
    throw new MetainfoError("Cannot build a torrent: 'info' is not a dictionary");
  }
  // Keys in sorted order; the info dictionary goes in as raw bytes.
  const parts: Uint8Array[] = [];
  const add = (key: string, value: Uint8Array): void => {
    parts.push(encode(key), value);
  };
  const tiers = (extras.announceList ?? []).map((tier) => [...tier]).filter((tier) => tier.length > 0);
  const first = tiers[0]?.[0];
  if (first !== undefined) add("announce", encode(first));
  if (tiers.length > 0) add("announce-list", encode(tiers));
  if (extras.comment !== undefined) add("comment", encode(extras.comment));
  if (extras.createdBy !== undefined) add("created by", encode(extras.createdBy));
  if (extras.creationDate !== undefined) add("creation date", encode(extras.creationDate));
  add("info", info);
  if (extras.urlList !== undefined && extras.urlList.length > 0) add("url-list", encode([...extras.urlList]));
  let size = 2;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  out[0] = 0x64; // 'd'
  let at = 1;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out[at] = 0x65; // 'e'
  return out;
}

/** The same bytes as `value` (a byte string inside the info dictionary), as a view of `infoBytes`. */
function viewInInfo(value: Uint8Array, infoBytes: Uint8Array, infoStart: number): Uint8Array {
  const start = value.byteOffset - infoStart;
  return infoBytes.subarray(start, start + value.length);
}

function invalid(detail: string): MetainfoError {
  return new MetainfoError(`Invalid torrent: ${detail}`);
}

/** Checks `meta version`; returns true for a hybrid v1+v2 torrent. */
function checkMetaVersion(info: BDict): boolean {
  const version = info.get("meta version");
  if (version === undefined || version === 1) return false;
  if (version === 2) {
    if (!info.has("pieces")) throw invalid("v2-only torrents are not supported yet");
    return true;
  }
  if (typeof version === "number" || typeof version === "bigint") {
    throw invalid(`unsupported 'meta version' ${version}`);
  }
  throw invalid("'meta version' is not an integer");
}

/** Reads `key.utf-8` when it is a non-empty byte string, else `key`. */
function pickUtf8(dict: BDict, key: string): BValue | undefined {
  const preferred = dict.get(`${key}.utf-8`);
  if (preferred instanceof Uint8Array && preferred.length > 0) return preferred;
  return dict.get(key);
}

function readName(info: BDict): string {
  const raw = pickUtf8(info, "name");
  if (raw === undefined) throw invalid("missing 'name'");
  if (!(raw instanceof Uint8Array)) throw invalid("'name' is not a byte string");
  if (raw.length === 0) throw invalid("'name' is empty");
  return utf8.decode(raw);
}

function readPieceLength(info: BDict, max: number): number {
  const value = info.get("piece length");
  if (value === undefined) throw invalid("missing 'piece length'");
  if (typeof value === "bigint") throw invalid(`'piece length' ${value} exceeds the maximum of ${max}`);
  if (typeof value !== "number") throw invalid("'piece length' is not an integer");
  if (value <= 0) throw invalid(`'piece length' must be positive, got ${value}`);
  if (value > max) throw invalid(`'piece length' ${value} exceeds the maximum of ${max}`);
  return value;
}

function readLength(value: BValue | undefined, what: string): number {
  if (value === undefined) throw invalid(`${what} has no 'length'`);
  if (typeof value === "bigint") {
    throw invalid(
      value < 0n ? `${what} has a negative length ${value}` : `${what} length ${value} is too large`,
    );
  }
  if (typeof value !== "number") throw invalid(`${what} length is not an integer`);
  if (value < 0) throw invalid(`${what} has a negative length ${value}`);
  return value;
}

function singleFile(
  lengthValue: BValue | undefined,
  name: string,
  safeName: string,
): { files: TorrentFile[]; totalLength: number } {
  const length = readLength(lengthValue, "the file");
  return {
    files: [{ path: [name], safePath: safeName, length, offset: 0, pad: false }],
    totalLength: length,
  };
}

function readFiles(
  value: BValue | undefined,
  safeName: string,
  maxFiles: number,
  pathLimits: PathLimits,
): { files: TorrentFile[]; totalLength: number } {
  if (!Array.isArray(value)) throw invalid("'files' is not a list");
  if (value.length === 0) throw invalid("'files' is empty");
  if (value.length > maxFiles) throw invalid(`${value.length} files exceed the maximum of ${maxFiles}`);
  const entries: { path: string[]; safePath: string; length: number; offset: number; pad: boolean }[] = [];
  let offset = 0;
  for (let i = 0; i < value.length; i++) {
    const entry = value[i]!;
    const what = `file ${i}`;
    if (!(entry instanceof Map)) throw invalid(`${what} is not a dictionary`);
    const length = readLength(entry.get("length"), what);
    const path = readPath(entry, what);
    if (path.length > pathLimits.depth) {
      throw invalid(`${what} path has ${path.length} components, more than the ${pathLimits.depth} allowed`);
    }
    const attr = entry.get("attr");
    const pad = (attr instanceof Uint8Array && attr.includes(0x70)) || // 'p'
      (path.length === 2 && path[0] === ".pad") ||
      (path.length === 1 && path[0]!.startsWith("_____padding_file_"));
    entries.push({ path, safePath: `${safeName}/${safeRelativePath(path)}`, length, offset, pad });
    offset += length;
    if (offset > Number.MAX_SAFE_INTEGER) throw invalid("the total length exceeds 2^53 - 1 bytes");
  }
  // Pad files are never written, so they do not take names from real files.
  const real = entries.filter((e) => !e.pad);
  const unique = dedupePaths(real.map((e) => e.safePath));
  real.forEach((e, i) => e.safePath = unique[i]!);
  entries.forEach((e, i) => checkPathLimits(e.safePath, `file ${i} path`, pathLimits));
  return { files: entries, totalLength: offset };
}

function readPath(entry: BDict, what: string): string[] {
  const preferred = entry.get("path.utf-8");
  if (isPath(preferred)) return preferred.map((c) => utf8.decode(c));
  const path = entry.get("path");
  if (path === undefined) throw invalid(`${what} has no 'path'`);
  if (!Array.isArray(path)) throw invalid(`${what} 'path' is not a list`);
  if (path.length === 0) throw invalid(`${what} 'path' is empty`);
  return path.map((c, j) => {
    if (!(c instanceof Uint8Array)) throw invalid(`${what} path component ${j} is not a byte string`);
    return utf8.decode(c);
  });
}

const utf8Encoder = new TextEncoder();

/** Most levels and UTF-8 bytes of a file's relative path, the torrent's folder included. */
interface PathLimits {
  depth: number;
  bytes: number;
}

/** Refuses a relative path (torrent folder included) that is too deep or that Linux could not create. */
function checkPathLimits(safePath: string, what: string, limits: PathLimits): void {
  // Backslashes in a component, and in the torrent's name, add levels: count the final path.
  const depth = safePath.split("/").length;
  if (depth > limits.depth) {
    throw invalid(`${what} is ${depth} levels deep, more than the ${limits.depth} allowed`);
  }
  const bytes = utf8Encoder.encode(safePath).length;
  if (bytes > limits.bytes) {
    throw invalid(`${what} is ${bytes} bytes long, more than the ${limits.bytes} a path may have`);
  }
}

function isPath(value: BValue | undefined): value is Uint8Array[] {
  return Array.isArray(value) && value.length > 0 && value.every((c) => c instanceof Uint8Array);
}

function readText(root: BDict, key: string): string | undefined {
  const raw = pickUtf8(root, key);
  return raw instanceof Uint8Array ? utf8.decode(raw) : undefined;
}

function readAnnounceList(root: BDict): string[][] {
  const seen = new Set<string>();
  const tiers: string[][] = [];
  const list = root.get("announce-list");
  if (Array.isArray(list)) {
    for (const tier of list) {
      if (!Array.isArray(tier)) continue;
      const urls: string[] = [];
      for (const item of tier) {
        const url = item instanceof Uint8Array ? utf8.decode(item).trim() : "";
        if (url === "" || seen.has(url)) continue;
        seen.add(url);
        urls.push(url);
      }
      if (urls.length > 0) tiers.push(urls);
    }
  }
  if (tiers.length > 0) return tiers;
  const announce = root.get("announce");
  const url = announce instanceof Uint8Array ? utf8.decode(announce).trim() : "";
  return url === "" ? [] : [[url]];
}

function readUrlList(value: BValue | undefined): string[] {
  const items = value instanceof Uint8Array ? [value] : Array.isArray(value) ? value : [];
  const urls = new Set<string>();
  for (const item of items) {
    if (!(item instanceof Uint8Array)) continue;
    const url = utf8.decode(item).trim();
    if (url !== "") urls.add(url);
  }
  return [...urls];
}
