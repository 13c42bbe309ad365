/**
 * The core's side of the storage contract: the {@linkcode StorageBackend} interface a backend
 * implements lives in `lib/types.ts` (re-exported here); this module has the
 * {@linkcode MissingDataError} the core uses for data that is not stored, the checked layer the
 * core wraps around any backend ({@linkcode CheckedStorage}), and the mapping of operating
 * system and Deno permission errors to clear {@linkcode StorageError} messages.
 *
 * @module
 */

import { StorageError } from "../errors.ts";
import type { FileStat, Metainfo, StorageBackend } from "../types.ts";
import { pieceLengthOf } from "./piece_map.ts";

export type { FileStat, StorageBackend } from "../types.ts";

/**
 * A backend that can also report each file's size and modification time, which resume data
 * needs to tell whether a file changed since it was saved. {@linkcode FileStorage} is one.
 *
 * @example
 * ```ts
 * import type { StorageWithStat } from "./storage.ts";
 * declare const storage: StorageWithStat;
 * const stat = await storage.fileStat(0);
 * console.log(stat === null ? "absent" : `${stat.size} bytes`);
 * ```
 */
export interface StorageWithStat extends StorageBackend {
  /**
   * Returns a file's size and mtime, or `null` when it is absent or a pad file.
   *
   * @param fileIndex Index in `meta.files`.
   * @returns The size and mtime, or `null`.
   */
  fileStat(fileIndex: number): Promise<FileStat | null>;
}

/**
 * The requested data is not stored: thrown by file storage when a file is absent or shorter
 * than the range, and by {@linkcode CheckedStorage} for a backend's rejection whose `code` is
 * `"ENOENT"`. Callers treat the piece as missing rather than failing.
 *
 * @example
 * ```ts
 * import { MissingDataError } from "./storage.ts";
 * const e = new MissingDataError("Cannot read movie.mkv: not on disk", { fileIndex: 0, absent: true });
 * console.log(e.absent); // true
 * ```
 */
export class MissingDataError extends StorageError {
  /** Index of the file that is missing or short, when known. */
  readonly fileIndex: number | undefined;
  /** True when the file does not exist at all (false when it exists but is too short). */
  readonly absent: boolean;

  /**
   * Creates the error.
   *
   * @param message What is missing.
   * @param details Which file, and whether it is absent or only short.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, details: MissingDataDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.fileIndex = details.fileIndex;
    this.absent = details.absent ?? false;
  }
}

/** Details of a {@linkcode MissingDataError}. */
export interface MissingDataDetails {
  /** Index of the file that is missing or short. */
  fileIndex?: number;
  /** True when the file does not exist. @default {false} */
  absent?: boolean;
}

/** The kind of operation that failed, for {@linkcode toStorageError}. */
export type StorageAction = "read" | "write" | "create" | "sync" | "stat" | "rename" | "remove";

/** Context for {@linkcode toStorageError}. */
export interface StorageErrorContext {
  /** What failed. */
  action: StorageAction;
  /** What it failed on: a file path, or a description such as `"piece 3"`. */
  target: string;
  /** The download folder, named in the advice for a missing Deno permission. @default {target} */
  root?: string;
}

const VERB: Record<StorageAction, string> = {
  read: "reading",
  write: "writing",
  create: "creating",
  sync: "syncing",
  stat: "checking",
  rename: "renaming",
  remove: "removing",
};

/**
 * Converts any error thrown by a file operation into a {@linkcode StorageError} with a clear
 * message naming the target (the original error becomes its `cause`). A `StorageError` is
 * returned unchanged. Recognises a missing Deno permission (`Deno.errors.NotCapable`) and names
 * the flag to add, and the usual `errno` codes (`ENOSPC`, `EDQUOT`, `EACCES`, `EPERM`, `EROFS`,
 * `EMFILE`, `ENOTDIR`, `EISDIR`, `EIO`).
 *
 * @example
 * ```ts
 * import { toStorageError } from "./storage.ts";
 * const raw = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * const e = toStorageError(raw, { action: "write", target: "/downloads/movie.mkv" });
 * console.log(e.message); // "No space left on device while writing /downloads/movie.mkv"
 * ```
 *
 * @param error What was thrown.
 * @param context The operation and its target.
 * @returns A `StorageError` carrying `error` as its cause.
 */
export function toStorageError(error: unknown, context: StorageErrorContext): StorageError {
  if (error instanceof StorageError) return error;
  const { action, target } = context;
  const verb = VERB[action];
  const message = error instanceof Error ? error.message : String(error);
  if (isDenoPermissionError(error)) {
    const flag = /read access/.test(message)
      ? "--allow-read"
      : /write access/.test(message)
      ? "--allow-write"
      : action === "read" || action === "stat"
      ? "--allow-read"
      : "--allow-write";
    return new StorageError(
      `Permission denied: run with ${flag}=${context.root ?? target} (needed for ${verb} ${target})`,
      { cause: error },
    );
  }
  const code = errorCode(error);
  const text = (() => {
    switch (code) {
      case "ENOSPC":
        return `No space left on device while ${verb} ${target}`;
      case "EDQUOT":
        return `Disk quota exceeded while ${verb} ${target}`;
      case "EACCES":
      case "EPERM":
        return `Access denied while ${verb} ${target}: check the permissions of the file and its folder`;
      case "EROFS":
        return `Read-only file system while ${verb} ${target}`;
      case "EMFILE":
      case "ENFILE":
        return `Too many open files while ${verb} ${target}: lower maxOpenFiles or raise the limit`;
      case "ENOTDIR":
      case "EISDIR":
      case "EEXIST":
        return `Cannot ${action} ${target}: a file or folder of that name is in the way`;
      case "EIO":
        return `Input/output error while ${verb} ${target}: the disk may be failing`;
      default:
        return `Failed ${verb} ${target}: ${message}`;
    }
  })();
  return new StorageError(text, { cause: error });
}

/**
 * Returns the `errno` code (`"ENOENT"`, `"ENOSPC"`, …) of an error from `node:fs`, or the
 * matching code for a `Deno.errors` class, or `undefined`.
 *
 * @example
 * ```ts
 * import { errorCode } from "./storage.ts";
 * console.log(errorCode(new Deno.errors.NotFound("gone"))); // "ENOENT"
 * ```
 *
 * @param error What was thrown.
 * @returns The code, if any.
 */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  if (error instanceof Deno.errors.NotFound) return "ENOENT";
  if (error instanceof Deno.errors.AlreadyExists) return "EEXIST";
  if (error instanceof Deno.errors.IsADirectory) return "EISDIR";
  if (error instanceof Deno.errors.NotADirectory) return "ENOTDIR";
  if (error instanceof Deno.errors.PermissionDenied) return "EACCES";
  return undefined;
}

function isDenoPermissionError(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable ||
    (error instanceof Deno.errors.PermissionDenied && /--allow-/.test(error.message));
}

/**
 * Wraps a {@linkcode StorageBackend} for the core: checks every piece index and range against
 * the torrent before it reaches the backend, turns whatever a backend throws into a
 * {@linkcode StorageError} naming the backend (a {@linkcode MissingDataError} passes through
 * unchanged, and a rejection whose `code` is `"ENOENT"` becomes one), and refuses calls after
 * {@linkcode CheckedStorage.close}. A backend without `fileStat` reports every file as
 * unknown (`null`) and {@linkcode CheckedStorage.canStat} is false: the core then keeps no
 * resume data for it and verifies every piece at start-up.
 *
 * @example
 * ```ts
 * import { CheckedStorage, type StorageBackend } from "./storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * declare const backend: StorageBackend;
 * await using storage = new CheckedStorage(backend, meta);
 * await storage.write(0, 0, new Uint8Array(meta.pieceLength));
 * ```
 */
export class CheckedStorage implements StorageWithStat, AsyncDisposable {
  #backend: StorageBackend;
  #meta: Metainfo;
  /** " in NAME storage" for messages, or "" for a backend without a name. */
  #in: string;
  #closed = false;

  /**
   * Wraps a backend.
   *
   * @param backend The backend to guard.
   * @param meta The torrent whose pieces it stores.
   */
  constructor(backend: StorageBackend, meta: Metainfo) {
    this.#backend = backend;
    this.#meta = meta;
    this.#in = typeof backend.name === "string" && backend.name !== "" ? ` in ${backend.name} storage` : "";
  }

  /** The wrapped backend (for abilities of one kind of backend, such as trimming files). */
  get backend(): StorageBackend {
    return this.#backend;
  }

  /** True when the backend reports file sizes and times (resume data can be trusted). */
  get canStat(): boolean {
    return typeof this.#backend.fileStat === "function";
  }

  /**
   * Reads bytes of a piece after checking the range.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param length Number of bytes.
   * @returns Exactly `length` bytes.
   * @throws {MissingDataError} when the data is not stored.
   */
  async read(piece: number, begin: number, length: number): Promise<Uint8Array> {
    this.#check("read", piece, begin, length);
    let data: Uint8Array;
    try {
      data = await this.#backend.read(piece, begin, length);
    } catch (error) {
      if (!(error instanceof StorageError) && errorCode(error) === "ENOENT") {
        const why = error instanceof Error ? error.message : String(error);
        throw new MissingDataError(`Piece ${piece} is not stored${this.#in}: ${why}`, {}, { cause: error });
      }
      throw toStorageError(error, { action: "read", target: `piece ${piece}${this.#in}` });
    }
    if (!(data instanceof Uint8Array) || data.length !== length) {
      throw new StorageError(
        `Failed reading piece ${piece}${this.#in}: backend returned ${
          (data as Uint8Array)?.length
        } bytes, expected ${length}`,
      );
    }
    return data;
  }

  /**
   * Writes bytes of a piece after checking the range.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param data The bytes.
   */
  async write(piece: number, begin: number, data: Uint8Array): Promise<void> {
    this.#check("write", piece, begin, data.length);
    try {
      await this.#backend.write(piece, begin, data);
    } catch (error) {
      throw toStorageError(error, { action: "write", target: `piece ${piece}${this.#in}` });
    }
  }

  /**
   * A file's size and mtime from the backend, or `null` when it is absent, a pad file, or the
   * backend cannot tell (see {@linkcode CheckedStorage.canStat}).
   *
   * @param fileIndex Index in `meta.files`.
   * @returns The size and mtime, or `null`.
   */
  async fileStat(fileIndex: number): Promise<FileStat | null> {
    if (this.#closed) throw new StorageError(`Cannot check file ${fileIndex}: storage is closed`);
    if (this.#backend.fileStat === undefined) return null;
    try {
      return await this.#backend.fileStat(fileIndex);
    } catch (error) {
      throw toStorageError(error, { action: "stat", target: `file ${fileIndex}${this.#in}` });
    }
  }

  /** Flushes the backend. */
  async flush(): Promise<void> {
    if (this.#closed) throw new StorageError("Cannot flush: storage is closed");
    try {
      await this.#backend.flush();
    } catch (error) {
      throw toStorageError(error, { action: "sync", target: `storage${this.#in}` });
    }
  }

  /** Closes the backend; later calls fail. Closing twice is allowed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#backend.close();
    } catch (error) {
      throw toStorageError(error, { action: "sync", target: `storage${this.#in}` });
    }
  }

  /** Same as {@linkcode CheckedStorage.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #check(action: "read" | "write", piece: number, begin: number, length: number): void {
    if (this.#closed) throw new StorageError(`Cannot ${action} piece ${piece}: storage is closed`);
    let size: number;
    try {
      size = pieceLengthOf(this.#meta, piece);
    } catch (error) {
      throw new StorageError(`Cannot ${action} piece ${piece}: no such piece`, { cause: error });
    }
    if (
      !Number.isSafeInteger(begin) || !Number.isSafeInteger(length) || begin < 0 || length < 0 ||
      begin + length > size
    ) {
      throw new StorageError(
        `Cannot ${action} piece ${piece}: range ${begin}+${length} exceeds its ${size} bytes`,
      );
    }
  }
}
