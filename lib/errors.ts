/**
 * Typed errors thrown by shoal. Every error a user can act on is a subclass of
 * {@linkcode ShoalError} carrying a stable `code`, so callers can branch on it
 * without parsing messages.
 *
 * @module
 */

/**
 * Base class of every error shoal throws on purpose.
 *
 * @example Branching on the error code
 * ```ts
 * import { ShoalError } from "./errors.ts";
 * try {
 *   throw new ShoalError("EXAMPLE", "Something went wrong");
 * } catch (e) {
 *   if (e instanceof ShoalError) console.log(e.code);
 * }
 * ```
 */
export class ShoalError extends Error {
  /** A stable machine-readable code such as `"BENCODE"` or `"METAINFO"`. */
  readonly code: string;

  /**
   * Creates an error with a code and a message.
   *
   * @param code Stable machine-readable code.
   * @param message Human-readable message, starting with a capital, no final period.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Thrown when bencoded input is malformed or exceeds a limit. `offset` is the
 * byte offset in the input where the problem was found; the message says it in words.
 *
 * @example
 * ```ts
 * import { BencodeError } from "./errors.ts";
 * const e = new BencodeError("Cut short: the data ends after 3 bytes, inside an integer", 3);
 * console.log(e.offset); // 3
 * ```
 */
export class BencodeError extends ShoalError {
  /** Byte offset in the input at which decoding failed. */
  readonly offset: number;

  /**
   * Creates the instance.
   *
   * @param message What is wrong, in plain words, naming the byte offset where it helps.
   * @param offset Byte offset at which it was found.
   */
  constructor(message: string, offset: number) {
    super("BENCODE", message);
    this.offset = offset;
  }
}

/**
 * Thrown when a .torrent file is valid bencode but not a valid torrent.
 *
 * @example
 * ```ts
 * import { MetainfoError } from "./errors.ts";
 * throw new MetainfoError("Invalid torrent: missing 'info' dictionary");
 * ```
 */
export class MetainfoError extends ShoalError {
  /**
   * Creates the instance.
   *
   * @param message What is wrong with the torrent.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super("METAINFO", message, options);
  }
}

/**
 * Thrown when a magnet URI cannot be used.
 *
 * @example
 * ```ts
 * import { MagnetError } from "./errors.ts";
 * throw new MagnetError("Invalid magnet link: no xt=urn:btih: parameter");
 * ```
 */
export class MagnetError extends ShoalError {
  /**
   * Creates the instance.
   *
   * @param message What is wrong with the magnet link.
   */
  constructor(message: string) {
    super("MAGNET", message);
  }
}

/**
 * Thrown when a peer violates the wire protocol. The connection to that peer is
 * closed; the rest of the session is unaffected.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * throw new ProtocolError("Cannot decode message: length 5242880 exceeds maximum 131081");
 * ```
 */
export class ProtocolError extends ShoalError {
  /**
   * Creates the instance.
   *
   * @param message What the peer did wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super("PROTOCOL", message, options);
  }
}

/**
 * Thrown by storage when data cannot be read or written, or a path would leave
 * the download folder.
 *
 * @example
 * ```ts
 * import { StorageError } from "./errors.ts";
 * throw new StorageError("Cannot write piece 3: no space left on device");
 * ```
 */
export class StorageError extends ShoalError {
  /**
   * Creates the instance.
   *
   * @param message What failed.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super("STORAGE", message, options);
  }
}

/**
 * Thrown when a piece we had can no longer be served: its bytes on disk no longer match the
 * torrent's hash (changed under us), or its file shrank or vanished. The piece is marked
 * missing (downloaded again if the torrent downloads); a request for it is refused, and the
 * peer that asked is not blamed.
 *
 * @example
 * ```ts
 * import { PieceUnavailableError } from "./errors.ts";
 * const e = new PieceUnavailableError(7, "Piece 7 changed on disk (in movie.mkv)");
 * console.log(e.code, e.piece); // "PIECE_UNAVAILABLE" 7
 * ```
 */
export class PieceUnavailableError extends ShoalError {
  /** The piece that cannot be served. */
  readonly piece: number;

  /**
   * Creates the instance.
   *
   * @param piece Piece index.
   * @param message Why, naming the file(s).
   * @param options Standard error options (`cause`).
   */
  constructor(piece: number, message: string, options?: ErrorOptions) {
    super("PIECE_UNAVAILABLE", message, options);
    this.piece = piece;
  }
}

/**
 * Thrown when a plugin (selector, encryption, log sink) misbehaves. The message
 * names the plugin.
 *
 * @example
 * ```ts
 * import { PluginError } from "./errors.ts";
 * throw new PluginError("my-selector", "select() returned piece 99 which does not exist");
 * ```
 */
export class PluginError extends ShoalError {
  /** The name of the plugin at fault. */
  readonly plugin: string;

  /**
   * Creates the instance.
   *
   * @param plugin Name of the plugin at fault.
   * @param message What it did.
   * @param options Standard error options (`cause`).
   */
  constructor(plugin: string, message: string, options?: ErrorOptions) {
    super("PLUGIN", `Plugin '${plugin}' failed: ${message}`, options);
    this.plugin = plugin;
  }
}

/**
 * Thrown when a peer address given by a person (`--peer`, `AddTorrentOptions.peers`) is not
 * `HOST:PORT` or `[IPv6]:PORT` with a port from 1 to 65535.
 *
 * @example
 * ```ts
 * import { PeerAddressError } from "./errors.ts";
 * const e = new PeerAddressError("garbage", "no port");
 * console.log(e.message); // "Invalid peer address 'garbage': no port"
 * ```
 */
export class PeerAddressError extends ShoalError {
  /** The address as given. */
  readonly address: string;
  /** What is wrong with it, in words (the message without the address). */
  readonly reason: string;

  /**
   * Creates the instance.
   *
   * @param address The address as given.
   * @param reason What is wrong with it, such as "no port".
   */
  constructor(address: string, reason: string) {
    super("PEER_ADDRESS", `Invalid peer address '${address}': ${reason}`);
    this.address = address;
    this.reason = reason;
  }
}

/**
 * Thrown when the download folder has too little free space: before any data is written (the
 * free-space check of a torrent's start), or when a write fails with "no space left on device".
 * `needed` is what the download still has to write, `free` what the file system said it had.
 * Its `code` is `"STORAGE"`, as for every storage error.
 *
 * @example
 * ```ts
 * import { DiskFullError, StorageError } from "./errors.ts";
 * const e = new DiskFullError("Disk full writing /d/a.bin", { path: "/d/a.bin", needed: 10, free: 2 });
 * console.log(e instanceof StorageError, e.needed - e.free); // true 8
 * ```
 */
export class DiskFullError extends StorageError {
  /** The file (or folder, for the check before starting) concerned. */
  readonly path: string;
  /** Bytes the download still has to write. */
  readonly needed: number;
  /** Bytes free on its file system, as reported. */
  readonly free: number;

  /**
   * Creates the instance.
   *
   * @param message What happened, naming the file and the sizes.
   * @param details The file, the bytes needed and the bytes free.
   * @param options Standard error options (`cause`).
   */
  constructor(
    message: string,
    details: { path: string; needed: number; free: number },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.path = details.path;
    this.needed = details.needed;
    this.free = details.free;
  }
}
