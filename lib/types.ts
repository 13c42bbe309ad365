/**
 * Public value types and plugin contracts. This is the only module plugins import:
 * it has no runtime dependencies on the rest of shoal.
 *
 * @module
 */

/** One file of a torrent, as laid out in the torrent's concatenated byte stream. */
export interface TorrentFile {
  /** Path components as the torrent gives them (UTF-8 decoded, `path.utf-8` preferred), without the torrent name. */
  readonly path: readonly string[];
  /**
   * Safe relative path under the download folder, `/`-separated, starting with the sanitised
   * torrent name for multi-file torrents. Never absolute, never contains `..`.
   */
  readonly safePath: string;
  /** File size in bytes. */
  readonly length: number;
  /** Offset of the file's first byte in the torrent's concatenated data. */
  readonly offset: number;
  /** True for BEP 47 pad files, which are never written to disk. */
  readonly pad: boolean;
}

/** A parsed v1 torrent (`.torrent` file, or the info dictionary fetched for a magnet link). */
export interface Metainfo {
  /** SHA-1 of the raw bytes of the info dictionary (20 bytes). */
  readonly infoHash: Uint8Array;
  /** The info-hash as 40 lower-case hex characters. */
  readonly infoHashHex: string;
  /** The raw bencoded info dictionary, exactly as in the file. */
  readonly infoBytes: Uint8Array;
  /** Display name (UTF-8 decoded, `name.utf-8` preferred). */
  readonly name: string;
  /** Bytes per piece (the last piece may be shorter). */
  readonly pieceLength: number;
  /** Number of pieces. */
  readonly pieceCount: number;
  /** Concatenated 20-byte SHA-1 hashes of every piece. */
  readonly pieceHashes: Uint8Array;
  /** Total payload size in bytes (pad files included). */
  readonly totalLength: number;
  /** Files in torrent order, with offsets. */
  readonly files: readonly TorrentFile[];
  /** True when the info dictionary has a `files` list (multi-file layout). */
  readonly multiFile: boolean;
  /** Tracker tiers (BEP 12); `announce` alone becomes one tier of one. */
  readonly announceList: readonly (readonly string[])[];
  /** Web seed URLs (BEP 19 `url-list`). */
  readonly urlList: readonly string[];
  /** BEP 27 private flag. */
  readonly private: boolean;
  /** Free-text comment. */
  readonly comment?: string;
  /** Program that created the torrent. */
  readonly createdBy?: string;
  /** Creation time in seconds since the Unix epoch. */
  readonly creationDate?: number;
  /** True when the torrent also carries a v2 part (BEP 52 hybrid); shoal uses its v1 part. */
  readonly hybrid: boolean;
}

/**
 * What a {@linkcode PieceSelector} may see of the torrent: read-only, no protocol state.
 * Piece indices run from 0 to `pieceCount - 1`.
 */
export interface SelectionView {
  /** Number of pieces in the torrent. */
  readonly pieceCount: number;
  /** Number of pieces we have verified. */
  readonly completedCount: number;
  /** True when we lack the piece, want it, and it still has blocks nobody is fetching. */
  wants(piece: number): boolean;
  /** How many connected peers have the piece. */
  availability(piece: number): number;
  /** True when some blocks of the piece have arrived or are in flight (prefer finishing these). */
  isPartial(piece: number): boolean;
  /** A random number in [0, 1): use it instead of `Math.random` so tests can be seeded. */
  random(): number;
}

/**
 * What a {@linkcode PieceSelector} may see of one peer. The core hands selectors a frozen
 * object that reads the live peer, never the connection itself.
 */
export interface PeerView {
  /** A stable identifier for the peer during this session (e.g. "127.0.0.1:6881"). */
  readonly id: string;
  /** True when the peer has announced the piece. */
  has(piece: number): boolean;
  /** Bytes per second received from this peer recently. */
  readonly downloadRate: number;
}

/**
 * Chooses which pieces to ask a peer for. A pure decision: no I/O, no protocol state.
 * Endgame, in-flight bookkeeping and hash failures are handled by the core for every selector.
 *
 * @example A selector that always takes the lowest wanted piece the peer has
 * ```ts
 * import type { PieceSelector } from "./types.ts";
 * export const lowestFirst: PieceSelector = {
 *   name: "lowest-first",
 *   *select(view, peer, max) {
 *     let n = 0;
 *     for (let i = 0; i < view.pieceCount && n < max; i++) {
 *       if (view.wants(i) && peer.has(i)) {
 *         yield i;
 *         n++;
 *       }
 *     }
 *   },
 * };
 * ```
 */
export interface PieceSelector {
  /** A short name, used in logs and error messages. */
  readonly name: string;
  /**
   * Returns up to `max` pieces to request from `peer`, best first. Each must satisfy
   * `view.wants(i) && peer.has(i)`; others are ignored (and logged as a plugin fault).
   */
  select(view: SelectionView, peer: PeerView, max: number): Iterable<number>;
}

/** Severity of a log record, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One structured log event. */
export interface LogRecord {
  /** Milliseconds since the Unix epoch. */
  readonly time: number;
  /** Severity. */
  readonly level: LogLevel;
  /** Which part of shoal emitted it: `peer`, `swarm`, `storage`, `torrent`, `session`, `tracker`... */
  readonly category: string;
  /** Human-readable message. */
  readonly message: string;
  /** Structured details: `torrent` (info-hash hex), `peer` (address), `piece`, ... */
  readonly fields: Readonly<Record<string, string | number | boolean | null>>;
}

/**
 * Receives log records. Must not throw; a sink that throws is removed and the failure is
 * reported to the remaining sinks.
 */
export type LogSink = (record: LogRecord) => void;

/**
 * A bidirectional byte stream: a TCP connection, or the same after an encryption layer.
 * The core speaks BitTorrent over it and never knows whether it is encrypted.
 */
export interface Duplex {
  /** Bytes from the remote side. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the remote side. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes the underlying connection at once (both directions). Must not throw. */
  close(): void;
  /**
   * True when a write's promise resolves only once the chunk has left (a TCP connection),
   * so the writer may reuse its buffer afterwards. Leave unset for streams that queue
   * chunks (an encryption layer that passes chunks on, for instance).
   */
  readonly reusableWrites?: boolean;
  /**
   * Set by an encryption layer, for peer listings: the payload cipher it agreed on (`"rc4"`),
   * or `"plaintext"` when only its handshake was obfuscated. Unset on a bare connection.
   */
  readonly encryption?: string;
}

/**
 * A connection a {@linkcode Transport} made or accepted: a {@linkcode Duplex} that knows the
 * address of the other end.
 */
export interface TransportConnection extends Duplex {
  /** The other end as "host:port" ("[v6]:port"), IPv4-mapped IPv6 given as plain IPv4. */
  readonly remoteAddress: string;
}

/** Where a {@linkcode Transport} listens. */
export interface TransportListenOptions {
  /** Address to bind ("::" and "0.0.0.0" mean every address the transport has). */
  readonly hostname: string;
  /** Port to bind; 0 picks a free one. */
  readonly port: number;
}

/**
 * An open listener: iterate it for accepted connections. The iteration ends once the
 * listener is closed; a transport that can fail to accept (TCP at the descriptor limit)
 * retries with back-off inside the iteration rather than ending it.
 */
export interface TransportListener extends AsyncIterable<TransportConnection> {
  /** The bound address as the transport reports it ("::" for a TCP wildcard listener). */
  readonly hostname: string;
  /** The bound port (the one picked, when 0 was asked for). */
  readonly port: number;
  /** Stops listening; connections accepted already stay open. Must not throw. */
  close(): void;
}

/**
 * How peer connections are made and accepted: TCP by default (`tcpTransport()`), or an
 * in-memory network for simulations (`MemoryNetwork`), later uTP. The core speaks BitTorrent
 * over the duplexes a transport gives it and never knows which one it is; encryption wraps
 * them as it wraps TCP connections.
 *
 * @example A transport that logs each dial, around another one
 * ```ts
 * import type { Transport } from "./types.ts";
 * export function logged(inner: Transport): Transport {
 *   return {
 *     name: inner.name,
 *     connect(address, signal) {
 *       console.log(`dialling ${address}`);
 *       return inner.connect(address, signal);
 *     },
 *     listen: (options) => inner.listen(options),
 *   };
 * }
 * ```
 */
export interface Transport {
  /** What `PeerInfo.transport` reports for its connections: `"tcp"`, later `"utp"`. */
  readonly name: string;
  /**
   * Opens a connection.
   *
   * @param address "host:port" or "[v6]:port".
   * @param signal Aborts the attempt; a connection that opens after it is closed at once.
   * @returns The connection.
   */
  connect(address: string, signal: AbortSignal): Promise<TransportConnection>;
  /**
   * Starts listening.
   *
   * @param options Address and port.
   * @returns The listener.
   * @throws the transport's own error when the address cannot be bound (for TCP, Deno's
   * `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`...).
   */
  listen(options: TransportListenOptions): TransportListener;
}

/**
 * Finds a torrent's info-hash from the obfuscated form an encrypted handshake carries
 * (MSE sends SHA-1("req2" + info-hash)); undefined when no torrent matches.
 */
export type InfoHashLookup = (obfuscated: Uint8Array) => Uint8Array | undefined;

/**
 * Wraps raw connections before the BitTorrent handshake, e.g. Message Stream Encryption.
 * The core never knows whether a connection is encrypted: it speaks BitTorrent over the
 * duplex the plugin returns. Implementations must hand on fresh buffers (never reuse a
 * chunk after enqueueing it) and must not keep the core waiting without a deadline: the
 * `signal` aborts when the core gives up.
 *
 * @example A do-nothing wrapper (what the core uses when no encryption plugin is given)
 * ```ts
 * import type { Encryption } from "./types.ts";
 * export const plaintextOnly: Encryption = {
 *   name: "plaintext",
 *   outgoingAttempts: ["plaintext"],
 *   acceptsPlaintext: true,
 *   outgoing: (raw) => Promise.resolve(raw),
 *   incoming: () => Promise.reject(new Error("Encrypted connections are not accepted")),
 * };
 * ```
 */
export interface Encryption {
  /** A short name, used in logs and error messages. */
  readonly name: string;
  /**
   * How to dial a peer, in order: each entry is one fresh connection attempt, "encrypted"
   * through {@linkcode Encryption.outgoing} or "plaintext" without it. `["encrypted",
   * "plaintext"]` is "prefer encryption, fall back to plaintext".
   */
  readonly outgoingAttempts: readonly ("encrypted" | "plaintext")[];
  /** Whether incoming connections that start with a plaintext BitTorrent handshake are accepted. */
  readonly acceptsPlaintext: boolean;
  /**
   * Runs the encryption handshake on a connection we opened and returns the duplex to speak
   * BitTorrent over (its first bytes out will be our BitTorrent handshake).
   *
   * @param raw The TCP connection.
   * @param infoHash The torrent we are connecting for.
   * @param signal Aborts the handshake.
   */
  outgoing(raw: Duplex, infoHash: Uint8Array, signal: AbortSignal): Promise<Duplex>;
  /**
   * Runs the encryption handshake on an accepted connection that did not start with a
   * plaintext handshake. `raw.readable` still yields every byte the peer sent.
   *
   * @param raw The accepted connection.
   * @param lookup Finds the torrent from its obfuscated info-hash.
   * @param signal Aborts the handshake.
   * @returns The duplex to speak BitTorrent over, and the torrent's info-hash.
   */
  incoming(
    raw: Duplex,
    lookup: InfoHashLookup,
    signal: AbortSignal,
  ): Promise<{ duplex: Duplex; infoHash: Uint8Array }>;
}

/** One connected peer as a {@linkcode PeerExtension} sees it. */
export interface ExtensionPeer {
  /** "host:port" of the peer. */
  readonly id: string;
  /**
   * The peer's BEP 10 extended handshake, decoded: keys are binary strings, byte strings are
   * `Uint8Array`, integers `number`. Empty until it arrives.
   */
  readonly handshake: ReadonlyMap<string, unknown>;
  /** Whether the peer announced this extension in its handshake. */
  readonly supported: boolean;
  /**
   * Sends one message of this extension.
   *
   * @returns False (and sends nothing) when the peer does not support the extension.
   */
  send(payload: Uint8Array): boolean;
  /** Drops the peer, with a reason for the log. */
  close(reason: string): void;
}

/**
 * A BEP 10 extension message handler, such as ut_metadata (BEP 9) or ut_pex (BEP 11). The
 * core's own extensions are written against this interface, as a user's would be. Handlers
 * run synchronously inside the connection's read loop: a handler that throws drops that
 * peer (and is logged as a plugin fault), nothing else.
 *
 * @example An extension that counts the messages it receives
 * ```ts
 * import type { PeerExtension } from "./types.ts";
 * let count = 0;
 * export const counter: PeerExtension = {
 *   name: "x_counter",
 *   onMessage() {
 *     count++;
 *   },
 * };
 * ```
 */
export interface PeerExtension {
  /** The extension's name in the `m` dictionary, e.g. "ut_metadata". */
  readonly name: string;
  /** Extra entries for our extended handshake (e.g. `metadata_size`). */
  handshakeFields?(): Record<string, number | string | Uint8Array>;
  /** The peer's extended handshake arrived (also when it does not support this extension). */
  onHandshake?(peer: ExtensionPeer): void;
  /** A message of this extension arrived. The payload is only valid during the call: copy what you keep. */
  onMessage(peer: ExtensionPeer, payload: Uint8Array): void;
  /** The peer went away. */
  onClose?(peer: ExtensionPeer): void;
}

// ---------------------------------------------------------------------------------------------
// Storage

/** Size and modification time of one of a torrent's files, as a backend reports it. */
export interface FileStat {
  /** Size in bytes. */
  size: number;
  /** Last modification time, milliseconds since the Unix epoch. */
  mtimeMs: number;
}

/**
 * Where a torrent's pieces live: files on disk (`fileStorage()`, the default), memory
 * (`memoryStorage()`), or a backend of your own. Offsets are relative to a piece. The core
 * wraps every backend in its checked layer, which checks each piece index and range before
 * the backend sees it, turns whatever it throws into a `StorageError` naming the backend,
 * and refuses calls after `close`. The core only writes whole pieces whose SHA-1 matched,
 * and hashes every piece it reads back before serving a byte of it, so a backend never
 * needs to check data itself.
 *
 * Data that was never written: `read` rejects with an error whose `code` is `"ENOENT"` (the
 * core treats the piece as missing, not as a failure). Any other rejection is a failure: at
 * the start-up check it fails the start, on a write it stops the torrent with that error;
 * pieces verified before it stay recorded.
 *
 * What survives a restart: a backend with {@linkcode StorageBackend.fileStat} gets resume
 * data (`<downloadDir>/.shoal/<info-hash>.resume`), and pieces in unchanged files are
 * trusted without reading. Without it the core reads and hashes every piece at start-up and
 * keeps those that match (a backend that persists nothing starts empty, at once).
 *
 * @example A backend that keeps whole pieces in a Map
 * ```ts
 * import type { StorageBackend, StorageFactory } from "./types.ts";
 * export const mapStorage: StorageFactory = (meta) => {
 *   const pieces = new Map<number, Uint8Array>();
 *   const backend: StorageBackend = {
 *     name: "map",
 *     read(piece, begin, length) {
 *       const data = pieces.get(piece);
 *       if (data === undefined) {
 *         return Promise.reject(Object.assign(new Error(`Piece ${piece} is not stored`), { code: "ENOENT" }));
 *       }
 *       return Promise.resolve(data.slice(begin, begin + length));
 *     },
 *     write(piece, begin, data) {
 *       const size = Math.min(meta.pieceLength, meta.totalLength - piece * meta.pieceLength);
 *       const buf = pieces.get(piece) ?? new Uint8Array(size);
 *       buf.set(data, begin); // a copy: the caller may reuse `data` afterwards
 *       pieces.set(piece, buf);
 *       return Promise.resolve();
 *     },
 *     flush: () => Promise.resolve(),
 *     close: () => Promise.resolve(pieces.clear()),
 *   };
 *   return backend;
 * };
 * ```
 */
export interface StorageBackend {
  /** A short name for error messages (`Failed writing piece 3 in map storage: …`). @default {none} */
  readonly name?: string;
  /**
   * Reads bytes of a piece. Pad-file ranges read as zeros (whatever was written there).
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param length Number of bytes.
   * @returns A new array of exactly `length` bytes (the core may keep it).
   */
  read(piece: number, begin: number, length: number): Promise<Uint8Array>;
  /**
   * Writes bytes of a piece. The data is not kept after the promise settles: copy it.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param data The bytes.
   */
  write(piece: number, begin: number, data: Uint8Array): Promise<void>;
  /** Makes everything written so far durable (a no-op for memory). */
  flush(): Promise<void>;
  /** Flushes and releases every resource; the core makes no call after it. */
  close(): Promise<void>;
  /**
   * Optional: a file's size and modification time, or `null` when it is absent or a pad
   * file. With it, resume data records each file and a restart trusts the pieces of
   * unchanged files without reading them.
   *
   * @param fileIndex Index in `meta.files`.
   * @returns The size and mtime, or `null`.
   */
  fileStat?(fileIndex: number): Promise<FileStat | null>;
}

/** What a {@linkcode StorageFactory} is told about the torrent it opens storage for. */
export interface StorageContext {
  /** The torrent's download folder (absolute), where files go and resume data is kept. */
  readonly downloadDir: string;
  /** Files skipped by file priorities (indices in `meta.files`): nothing need be made for them. */
  readonly skipFiles: ReadonlySet<number>;
  /**
   * Whether to refuse a download that cannot fit (the session's `checkFreeSpace` option):
   * file storage checks the folder's free space before it creates anything.
   */
  readonly checkFreeSpace: boolean;
  /** Aborts when the torrent is stopped while its storage is being opened. */
  readonly signal: AbortSignal;
}

/**
 * Opens storage for one torrent, when it starts: the `storage` option of a session (the
 * default for every torrent) and of `session.add` (one torrent). A factory that throws
 * fails the start with a `StorageError` carrying its message.
 *
 * @example Keep small torrents in memory, larger ones on disk
 * ```ts ignore
 * import { fileStorage, memoryStorage, Session, type StorageFactory } from "./mod.ts";
 * const files = fileStorage();
 * const memory = memoryStorage();
 * const storage: StorageFactory = (meta, context) =>
 *   meta.totalLength < 64 * 1024 * 1024 ? memory(meta, context) : files(meta, context);
 * await using session = new Session({ downloadDir: "./downloads", storage });
 * ```
 */
export type StorageFactory = (
  metainfo: Metainfo,
  context: StorageContext,
) => StorageBackend | Promise<StorageBackend>;
