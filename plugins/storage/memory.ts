/**
 * {@linkcode memoryStorage}: a storage backend that keeps a torrent's pieces in memory, for
 * tests, previews and pipelines that consume the data without writing files.
 *
 * @module
 */

import type { Metainfo, StorageBackend, StorageFactory } from "../../lib/types.ts";

/** Options of {@linkcode memoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Refuse a torrent larger than this many bytes (its whole size, skipped files included),
   * so that a large torrent fails at start instead of exhausting memory. @default {Infinity}
   */
  maxBytes?: number;
  /** Called with each store when it is opened (a torrent starts), to read its data later. */
  onOpen?: (backend: MemoryStorage, metainfo: Metainfo) => void;
}

/**
 * Keeps each torrent's pieces in memory. Memory bound: a piece is allocated when it is first
 * written, so a complete torrent holds its whole size (`metainfo.totalLength`, pad files
 * included) for as long as it runs; `maxBytes` refuses larger torrents at start with a clear
 * error. Nothing persists: each start opens a new, empty store (the start-up check finds
 * nothing and the download begins from zero), and closing the torrent frees everything.
 * Read the data back while the torrent runs, through {@linkcode MemoryStorage.read} of the
 * backend the factory made (see `onOpen`) or by serving it to peers.
 *
 * @example Download into memory and read the first piece
 * ```ts ignore
 * import { memoryStorage, Session } from "./mod.ts";
 * const opened: Array<{ read(piece: number, begin: number, length: number): Promise<Uint8Array> }> = [];
 * await using session = new Session({
 *   downloadDir: "./downloads",
 *   storage: memoryStorage({ maxBytes: 256 * 1024 * 1024, onOpen: (backend) => opened.push(backend) }),
 * });
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * await torrent.completed;
 * const first = await opened[0]!.read(0, 0, torrent.metainfo.pieceLength);
 * ```
 *
 * @param options The size cap, and who hears of each store opened.
 * @returns The factory.
 */
export function memoryStorage(options: MemoryStorageOptions = {}): StorageFactory {
  const maxBytes = options.maxBytes ?? Infinity;
  if (!(maxBytes >= 0)) throw new RangeError(`Invalid maxBytes ${maxBytes}: must be 0 or more`);
  return (meta) => {
    if (meta.totalLength > maxBytes) {
      throw new RangeError(
        `${meta.name} is ${meta.totalLength} bytes, more than memory storage's maxBytes of ${maxBytes}`,
      );
    }
    const backend = new MemoryStorage(meta);
    options.onOpen?.(backend, meta);
    return backend;
  };
}

/**
 * One torrent's pieces in memory (made by {@linkcode memoryStorage}). Reads of pieces never
 * written reject with `code: "ENOENT"` (missing data); every call after `close` rejects.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "./memory.ts";
 * import type { Metainfo } from "../../lib/types.ts";
 * declare const meta: Metainfo;
 * const store = new MemoryStorage(meta);
 * await store.write(0, 0, new Uint8Array(4));
 * console.log(store.storedBytes); // meta.pieceLength (or less, for a one-piece torrent)
 * ```
 */
export class MemoryStorage implements StorageBackend {
  /** Shown in error messages: `… in memory storage`. */
  readonly name = "memory";
  readonly #meta: Metainfo;
  readonly #pieces = new Map<number, Uint8Array>();
  #bytes = 0;
  #closed = false;

  /**
   * Creates an empty store.
   *
   * @param meta The torrent whose pieces it holds.
   */
  constructor(meta: Metainfo) {
    this.#meta = meta;
  }

  /** Bytes allocated for the pieces written so far. */
  get storedBytes(): number {
    return this.#bytes;
  }

  /**
   * Copies bytes of a piece out.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param length Number of bytes.
   * @returns A new array.
   */
  read(piece: number, begin: number, length: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error("Memory storage is closed"));
    const data = this.#pieces.get(piece);
    if (data === undefined) {
      return Promise.reject(Object.assign(new Error(`Piece ${piece} was never written`), { code: "ENOENT" }));
    }
    return Promise.resolve(data.slice(begin, begin + length));
  }

  /**
   * Copies bytes into a piece, allocating the piece on its first write.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param data The bytes.
   */
  write(piece: number, begin: number, data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Memory storage is closed"));
    let buf = this.#pieces.get(piece);
    if (buf === undefined) {
      const size = Math.min(this.#meta.pieceLength, this.#meta.totalLength - piece * this.#meta.pieceLength);
      buf = new Uint8Array(size);
      this.#pieces.set(piece, buf);
      this.#bytes += size;
    }
    buf.set(data, begin);
    return Promise.resolve();
  }

  /** Nothing to make durable. */
  flush(): Promise<void> {
    return this.#closed ? Promise.reject(new Error("Memory storage is closed")) : Promise.resolve();
  }

  /** Frees every piece. */
  close(): Promise<void> {
    this.#closed = true;
    this.#pieces.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }
}
