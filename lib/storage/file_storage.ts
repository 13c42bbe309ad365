/**
 * {@linkcode FileStorage}: a torrent's files on the local file system, written and read with
 * positional I/O through one reused `node:fs/promises` handle per file (an LRU keeps at most
 * `maxOpenFiles` open).
 *
 * @module
 */

import { type FileHandle, mkdir, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { StorageError } from "../errors.ts";
import type { Metainfo } from "../types.ts";
import { filePaths, kindOf } from "./file_paths.ts";
import { checkLayout, type FileSpan, spansFor } from "./piece_map.ts";
import { diskFullError } from "./free_space.ts";
import { readFully, writeFully } from "./positional_io.ts";
import { checkLinksStayInside, openInside } from "./safe_open.ts";
import {
  errorCode,
  type FileStat,
  MissingDataError,
  type StorageWithStat,
  toStorageError,
} from "./storage.ts";

/** Options of {@linkcode FileStorage.open}. */
export interface FileStorageOptions {
  /** Most file handles kept open at once (least recently used are closed first). @default {64} */
  maxOpenFiles?: number;
  /** Files not to create at open, even zero-byte ones (skipped by file priorities). @default {none} */
  skipFiles?: ReadonlySet<number>;
}

interface Slot {
  readonly fileIndex: number;
  readonly handle: FileHandle;
  readonly writable: boolean;
  /** Operations currently using the handle; it is never closed while this is above zero. */
  users: number;
  /** Written since the last `datasync`. */
  dirty: boolean;
  /** Replaced or evicted: close once `users` drops to zero. */
  retired: boolean;
}

/**
 * Stores a torrent's files under a download folder. The folder and every zero-byte file are
 * created by {@linkcode FileStorage.open}; other files are created (with their parent folders)
 * on their first write, never truncated. Pad files are never created: their ranges read as
 * zeros and writes to them are dropped. Every path is checked to stay inside the folder, and
 * symbolic links below the folder are never written through: a link leading outside it is
 * refused at open, and files are read through links only when they stay inside (the rules of
 * `safe_open.ts`).
 *
 * Errors are {@linkcode StorageError}s naming the file, such as
 * `Disk full writing /downloads/x/a.bin: the download needs 12.00 MiB more, 1.20 MiB free on /`
 * (a `DiskFullError`) or
 * `Permission denied: run with --allow-write=/downloads (needed for writing …)`; a read of data
 * that is not on disk throws {@linkcode MissingDataError}.
 *
 * @example
 * ```ts
 * import { FileStorage } from "./file_storage.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * await using storage = await FileStorage.open("./downloads", meta, { maxOpenFiles: 16 });
 * await storage.write(0, 0, new Uint8Array(meta.pieceLength));
 * await storage.flush();
 * console.log(await storage.fileStat(0));
 * ```
 */
export class FileStorage implements StorageWithStat, AsyncDisposable {
  #root: string;
  #meta: Metainfo;
  #paths: readonly (string | null)[];
  #maxOpenFiles: number;
  /** Files not downloaded, left out of the space a full disk message says is needed. */
  #skip: ReadonlySet<number>;
  /** Open handles by file index, least recently used first. */
  #slots = new Map<number, Slot>();
  #opening = new Map<number, Promise<Slot>>();
  #closing = new Set<Promise<void>>();
  #deferred: StorageError[] = [];
  #inflight = new Set<Promise<unknown>>();
  #closed = false;
  /** The one run of close(): a second call waits for it instead of returning early. */
  #closeRun: Promise<void> | undefined;

  private constructor(
    root: string,
    meta: Metainfo,
    paths: (string | null)[],
    maxOpenFiles: number,
    skip: ReadonlySet<number>,
  ) {
    this.#root = root;
    this.#meta = meta;
    this.#paths = paths;
    this.#maxOpenFiles = maxOpenFiles;
    this.#skip = skip;
  }

  /**
   * Prepares storage for a torrent: checks the layout and every path, creates the download
   * folder and the zero-byte files.
   *
   * @example
   * ```ts
   * import { FileStorage } from "./file_storage.ts";
   * import type { Metainfo } from "../types.ts";
   * declare const meta: Metainfo;
   * const storage = await FileStorage.open("./downloads", meta);
   * await storage.close();
   * ```
   *
   * @param root The download folder (created if missing).
   * @param meta The torrent.
   * @param options Handle cache size.
   * @returns The storage.
   * @throws {StorageError} when the layout is inconsistent, a path would leave `root` (also
   * through a symbolic link below it), two files share a path, or the folder or a zero-byte file
   * cannot be created.
   */
  static async open(root: string, meta: Metainfo, options: FileStorageOptions = {}): Promise<FileStorage> {
    const maxOpenFiles = options.maxOpenFiles ?? 64;
    if (!Number.isSafeInteger(maxOpenFiles) || maxOpenFiles < 1) {
      throw new RangeError(`Invalid maxOpenFiles ${maxOpenFiles}: must be a positive integer`);
    }
    checkLayout(meta);
    const absRoot = resolve(root);
    const paths = filePaths(absRoot, meta);
    // Before anything is created: a link planted below the folder must not lead a write outside.
    try {
      await checkLinksStayInside(absRoot, paths.filter((path) => path !== null));
    } catch (error) {
      throw toStorageError(error, { action: "stat", target: absRoot, root: absRoot });
    }
    // What already exists is left alone, so complete data can be seeded without write permission.
    if ((await kindOf(absRoot, absRoot)) !== "directory") {
      try {
        await mkdir(absRoot, { recursive: true });
      } catch (error) {
        throw toStorageError(error, { action: "create", target: absRoot, root: absRoot });
      }
    }
    for (let i = 0; i < meta.files.length; i++) {
      const path = paths[i];
      if (path === null || path === undefined || meta.files[i]!.length !== 0) continue;
      if (options.skipFiles?.has(i)) continue;
      if ((await kindOf(path, absRoot)) === "file") continue;
      try {
        // Created (with its folders) without truncating one that exists, never through a link.
        const handle = await openInside(absRoot, path, { mode: "write" });
        await handle.close();
      } catch (error) {
        throw toStorageError(error, { action: "create", target: path, root: absRoot });
      }
    }
    return new FileStorage(absRoot, meta, paths, maxOpenFiles, options.skipFiles ?? new Set());
  }

  /** The absolute path of the download folder. */
  get root(): string {
    return this.#root;
  }

  /** How many file handles are open right now (at most `maxOpenFiles` while idle). */
  get openHandleCount(): number {
    return this.#slots.size;
  }

  /**
   * Returns the absolute path of a file, or `null` for a pad file (never on disk).
   *
   * @param fileIndex Index in `meta.files`.
   * @returns The path.
   * @throws {RangeError} when the index is out of range.
   */
  pathOf(fileIndex: number): string | null {
    const path = this.#paths[fileIndex];
    if (path === undefined) throw new RangeError(`File index ${fileIndex} is out of range`);
    return path;
  }

  /**
   * Reads bytes of a piece from the files it spans; pad-file ranges read as zeros.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param length Number of bytes.
   * @returns A new array of `length` bytes.
   * @throws {MissingDataError} when a file is absent or too short.
   * @throws {StorageError} on any other failure.
   */
  read(piece: number, begin: number, length: number): Promise<Uint8Array> {
    return this.#track("read", async () => {
      const spans = this.#spans("read", piece, begin, length);
      const out = new Uint8Array(length);
      let pos = 0;
      for (const span of spans) {
        const at = pos;
        pos += span.length;
        if (this.#meta.files[span.fileIndex]!.pad) continue;
        const path = this.#paths[span.fileIndex]!;
        const slot = await this.#acquire(span.fileIndex, false);
        let n: number;
        try {
          n = await readFully(slot.handle, out.subarray(at, at + span.length), span.fileOffset);
        } catch (error) {
          throw toStorageError(error, { action: "read", target: path, root: this.#root });
        } finally {
          this.#release(slot);
        }
        if (n < span.length) {
          throw new MissingDataError(
            `Cannot read ${path}: not on disk (file ends before byte ${span.fileOffset + span.length})`,
            { fileIndex: span.fileIndex, absent: false },
          );
        }
      }
      return out;
    });
  }

  /**
   * Writes bytes of a piece into the files it spans, creating files and folders as needed.
   * Pad-file ranges are skipped.
   *
   * @param piece Piece index.
   * @param begin Offset within the piece.
   * @param data The bytes.
   * @throws {StorageError} when a file cannot be created or written.
   */
  write(piece: number, begin: number, data: Uint8Array): Promise<void> {
    return this.#track("write", async () => {
      const spans = this.#spans("write", piece, begin, data.length);
      let pos = 0;
      for (const span of spans) {
        const chunk = data.subarray(pos, pos + span.length);
        pos += span.length;
        if (this.#meta.files[span.fileIndex]!.pad) continue;
        const slot = await this.#acquire(span.fileIndex, true);
        try {
          await writeFully(slot.handle, chunk, span.fileOffset, () => (slot.dirty = true));
        } catch (error) {
          const path = this.#paths[span.fileIndex]!;
          const full = await diskFullError(error, {
            root: this.#root,
            meta: this.#meta,
            path,
            skipFiles: this.#skip,
          });
          if (full !== undefined) throw full;
          throw toStorageError(error, {
            action: "write",
            target: this.#paths[span.fileIndex]!,
            root: this.#root,
          });
        } finally {
          this.#release(slot);
        }
      }
    });
  }

  /**
   * Runs `fdatasync` on every handle written since the last flush, and reports any failure to
   * sync a handle that was closed in the meantime (evicted from the LRU).
   *
   * @throws {StorageError} when some data could not be made durable.
   */
  flush(): Promise<void> {
    return this.#track("flush", () => this.#flushAll());
  }

  /**
   * Waits for running operations, flushes, and closes every handle. Closing twice is allowed:
   * every call waits for the same close (and sees its failure).
   *
   * @throws {StorageError} when some data could not be made durable.
   */
  close(): Promise<void> {
    this.#closeRun ??= this.#close();
    return this.#closeRun;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    let failure: unknown;
    try {
      await this.#flushAll();
    } catch (error) {
      failure = error;
    }
    for (const slot of [...this.#slots.values()]) {
      this.#slots.delete(slot.fileIndex);
      this.#retire(slot);
    }
    await Promise.allSettled([...this.#closing]);
    const late = this.#deferred.shift();
    if (failure !== undefined) throw failure;
    if (late !== undefined) throw late;
  }

  /** Same as {@linkcode FileStorage.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Returns a file's size and modification time, or `null` when it does not exist or is a pad
   * file. Call {@linkcode FileStorage.flush} first so the values cover every write.
   *
   * @param fileIndex Index in `meta.files`.
   * @returns The size and mtime, or `null`.
   * @throws {StorageError} when the file cannot be examined (other than being absent).
   */
  async fileStat(fileIndex: number): Promise<FileStat | null> {
    const path = this.pathOf(fileIndex);
    if (path === null) return null;
    try {
      const info = await stat(path);
      return { size: info.size, mtimeMs: info.mtimeMs };
    } catch (error) {
      if (errorCode(error) === "ENOENT") return null;
      throw toStorageError(error, { action: "stat", target: path, root: this.#root });
    }
  }

  /**
   * Cuts a file that is longer than the torrent says down to the torrent's length (it never
   * grows or creates a file). The caller decides that the bytes past the end are not the user's:
   * see `oversized.ts`.
   *
   * @param fileIndex Index in `meta.files`.
   * @returns How many bytes were cut (0 when the file was not longer, absent or a pad file).
   * @throws {StorageError} when the file cannot be opened for writing or truncated.
   */
  trimExcess(fileIndex: number): Promise<number> {
    return this.#track("truncate", async () => {
      const path = this.pathOf(fileIndex);
      const length = this.#meta.files[fileIndex]!.length;
      if (path === null || ((await this.fileStat(fileIndex))?.size ?? 0) <= length) return 0;
      const slot = await this.#acquire(fileIndex, true);
      try {
        const before = (await slot.handle.stat()).size;
        if (before <= length) return 0;
        await slot.handle.truncate(length);
        slot.dirty = true;
        return before - length;
      } catch (error) {
        throw toStorageError(error, { action: "write", target: path, root: this.#root });
      } finally {
        this.#release(slot);
      }
    });
  }

  #track<T>(action: string, run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageError(`Cannot ${action}: storage is closed`));
    const promise = run();
    this.#inflight.add(promise);
    const forget = () => this.#inflight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #spans(action: "read" | "write", piece: number, begin: number, length: number): FileSpan[] {
    try {
      return spansFor(this.#meta, piece, begin, length);
    } catch (error) {
      throw new StorageError(
        `Cannot ${action} piece ${piece}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }

  /** Returns an open handle for the file with its user count raised; pair with `#release`. */
  async #acquire(fileIndex: number, write: boolean): Promise<Slot> {
    for (;;) {
      const slot = this.#slots.get(fileIndex);
      if (slot !== undefined && (slot.writable || !write)) {
        this.#slots.delete(fileIndex);
        this.#slots.set(fileIndex, slot);
        slot.users++;
        return slot;
      }
      const pending = this.#opening.get(fileIndex);
      if (pending !== undefined) {
        // Whoever started that open reports its failure; here we only wait for it and look again.
        await pending.then(() => undefined, () => undefined);
        continue;
      }
      // Bound the descriptors held by handles still being synced and closed after eviction.
      if (this.#closing.size >= this.#maxOpenFiles) {
        await Promise.race(this.#closing);
        continue;
      }
      const opening = this.#openSlot(fileIndex, write);
      this.#opening.set(fileIndex, opening);
      try {
        return await opening;
      } finally {
        this.#opening.delete(fileIndex);
      }
    }
  }

  async #openSlot(fileIndex: number, write: boolean): Promise<Slot> {
    const path = this.#paths[fileIndex]!;
    let handle: FileHandle;
    if (write) {
      try {
        handle = await openInside(this.#root, path, { mode: "write" });
      } catch (error) {
        throw toStorageError(error, { action: "write", target: path, root: this.#root });
      }
    } else {
      try {
        handle = await openInside(this.#root, path, { mode: "read", followInside: true });
      } catch (error) {
        if (errorCode(error) === "ENOENT") {
          throw new MissingDataError(`Cannot read ${path}: not on disk`, { fileIndex, absent: true }, {
            cause: error,
          });
        }
        throw toStorageError(error, { action: "read", target: path, root: this.#root });
      }
    }
    const old = this.#slots.get(fileIndex);
    if (old !== undefined) {
      this.#slots.delete(fileIndex);
      this.#retire(old);
    }
    const slot: Slot = { fileIndex, handle, writable: write, users: 1, dirty: false, retired: false };
    this.#slots.set(fileIndex, slot);
    this.#evict();
    return slot;
  }

  #release(slot: Slot): void {
    slot.users--;
    if (slot.retired) {
      if (slot.users === 0) this.#closeSlot(slot);
    } else {
      this.#evict();
    }
  }

  /** Closes least recently used idle handles until at most `maxOpenFiles` are open. */
  #evict(): void {
    if (this.#slots.size <= this.#maxOpenFiles) return;
    for (const slot of [...this.#slots.values()]) {
      if (this.#slots.size <= this.#maxOpenFiles) return;
      if (slot.users > 0) continue;
      this.#slots.delete(slot.fileIndex);
      this.#retire(slot);
    }
  }

  #retire(slot: Slot): void {
    slot.retired = true;
    if (slot.users === 0) this.#closeSlot(slot);
  }

  /** Syncs (if written) and closes a handle in the background; `flush`/`close` report failures. */
  #closeSlot(slot: Slot): void {
    const path = this.#paths[slot.fileIndex]!;
    const done = (async () => {
      try {
        if (slot.dirty) {
          slot.dirty = false;
          await slot.handle.datasync();
        }
      } catch (error) {
        this.#deferred.push(toStorageError(error, { action: "sync", target: path, root: this.#root }));
      }
      try {
        await slot.handle.close();
      } catch (error) {
        this.#deferred.push(toStorageError(error, { action: "sync", target: path, root: this.#root }));
      }
    })();
    this.#closing.add(done);
    done.then(() => this.#closing.delete(done));
  }

  async #flushAll(): Promise<void> {
    await Promise.allSettled([...this.#closing]);
    const dirty = [...this.#slots.values()].filter((slot) => slot.dirty);
    const results = await Promise.allSettled(dirty.map(async (slot) => {
      slot.users++;
      slot.dirty = false;
      try {
        await slot.handle.datasync();
      } catch (error) {
        slot.dirty = true;
        throw toStorageError(error, {
          action: "sync",
          target: this.#paths[slot.fileIndex]!,
          root: this.#root,
        });
      } finally {
        this.#release(slot);
      }
    }));
    for (const result of results) if (result.status === "rejected") throw result.reason;
    const late = this.#deferred.shift();
    if (late !== undefined) {
      this.#deferred.length = 0;
      throw late;
    }
  }
}
