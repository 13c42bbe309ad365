/**
 * Making `.torrent` files: walk a file or folder, hash its bytes piece by piece with
 * bounded memory, and encode a v1 metainfo whose info dictionary matches what libtorrent
 * 2.0 (`create_torrent` with `v1_only`) writes for the same files in the same order.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename, join, relative, resolve, sep } from "node:path";
import { type BEncodable, encode } from "./bencode.ts";
import { MetainfoError, StorageError } from "./errors.ts";
import { TORRENT_LIMITS } from "./limits.ts";

/** Progress of {@linkcode createTorrent}'s hashing. */
export interface CreateProgress {
  /** Bytes hashed so far. Never decreases; the last report equals `totalBytes`. */
  readonly bytesHashed: number;
  /** Total payload size in bytes. */
  readonly totalBytes: number;
}

/** Options of {@linkcode createTorrent}. */
export interface CreateOptions {
  /**
   * Bytes per piece: a power of two from 16 KiB to 128 MiB. When absent it is chosen from
   * the payload size by {@linkcode automaticPieceLength} (the rule libtorrent 2.0 uses).
   *
   * @default {automaticPieceLength(totalLength)}
   */
  pieceLength?: number;
  /**
   * Torrent name. Defaults to the last component of `path` (the file name for a single
   * file, the folder name for a folder).
   *
   * @default {basename(path)}
   */
  name?: string;
  /**
   * Tracker URLs grouped in tiers (BEP 12). The first URL becomes `announce`; an
   * `announce-list` is written only when there is more than one URL.
   *
   * @default {[]}
   */
  trackers?: readonly (readonly string[])[];
  /** Web seed URLs (BEP 19 `url-list`). @default {[]} */
  webSeeds?: readonly string[];
  /** Sets the BEP 27 private flag in the info dictionary. @default {false} */
  private?: boolean;
  /** Free-text comment. @default {undefined} */
  comment?: string;
  /** The `created by` field. @default {"shoal/0.1.0"} */
  createdBy?: string;
  /**
   * The `creation date` in seconds since the Unix epoch; `null` leaves it out, so the same
   * files always give the same bytes.
   *
   * @default {the current time}
   */
  creationDate?: number | null;
  /** Called as hashing progresses (after every chunk read, and once at the end). */
  onProgress?: (progress: CreateProgress) => void;
  /** Aborts the walk or the hashing; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What {@linkcode createTorrent} made. */
export interface CreatedTorrent {
  /** The bencoded `.torrent` file. */
  readonly torrent: Uint8Array;
  /** The v1 info-hash as 40 lower-case hex characters. */
  readonly infoHash: string;
  /** The torrent name. */
  readonly name: string;
  /** Bytes per piece. */
  readonly pieceLength: number;
  /** Number of pieces. */
  readonly pieceCount: number;
  /** Total payload size in bytes. */
  readonly totalLength: number;
}

/** The `created by` value written when {@linkcode CreateOptions.createdBy} is not given. */
export const DEFAULT_CREATED_BY = "shoal/0.1.0";

const MIN_PIECE_LENGTH = 16 * 1024;
const MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024;
const MAX_PIECE_LENGTH = 128 * 1024 * 1024;
/** Bytes read from disk at a time; two such buffers are used (one read ahead while hashing). */
const CHUNK_SIZE = 4 * 1024 * 1024;

/**
 * Chooses a piece length for a payload of `totalLength` bytes, like libtorrent 2.0 does.
 *
 * The rule: keep the piece list (20 bytes per piece) at about twice the square root of the
 * payload size, which means a piece length of about `10 * sqrt(totalLength)`. The result is
 * the smallest power of two from 16 KiB to 8 MiB whose threshold `round((p / 10) ** 2)` is at
 * least `totalLength`, or 16 MiB for anything bigger (about 700 GB and up). A 1 GiB
 * payload gets 512 KiB pieces (2048 of them); 10 MiB gets 32 KiB pieces.
 *
 * @example
 * ```ts
 * import { automaticPieceLength } from "./create.ts";
 * console.log(automaticPieceLength(1024 ** 3)); // 524288
 * ```
 *
 * @param totalLength Payload size in bytes.
 * @returns The piece length in bytes.
 */
export function automaticPieceLength(totalLength: number): number {
  for (let p = MIN_PIECE_LENGTH; p < MAX_AUTO_PIECE_LENGTH; p *= 2) {
    if (totalLength <= Math.round((p / 10) ** 2)) return p;
  }
  return MAX_AUTO_PIECE_LENGTH;
}

/** One payload file found by the walk. */
interface PayloadFile {
  /** Absolute path to read from. */
  readonly absolute: string;
  /** Path components below the torrent root (empty for a single-file torrent). */
  readonly components: readonly string[];
  /** Size at walk time. */
  readonly length: number;
}

/**
 * Makes a v1 `.torrent` for a file or a folder.
 *
 * A file gives a single-file torrent; a folder gives a multi-file torrent named after the
 * folder, with every file below it (hidden and zero-byte files included, empty folders
 * have nothing to list) in a deterministic order: sorted by path components compared as
 * UTF-8 bytes. Symbolic links are followed when their target stays inside the folder and
 * refused otherwise. Files are hashed as one stream across file boundaries, reading a few
 * MiB at a time into two reused buffers, so memory stays flat whatever the payload size.
 *
 * With no extra fields the info dictionary holds `files` (or `length`), `name`,
 * `piece length` and `pieces` (plus `private` when set), as libtorrent writes it for
 * `v1_only` torrents, so both give the same info-hash for the same files in the same order.
 * Unlike libtorrent, shoal writes no `attr` for executable files.
 *
 * @example Make a reproducible torrent for a folder
 * ```ts
 * import { createTorrent } from "./create.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.txt`, "hello\n");
 * const made = await createTorrent(dir, {
 *   trackers: [["udp://tracker.example:6969/announce"]],
 *   creationDate: null,
 * });
 * console.log(made.infoHash, made.pieceCount); // "…" 1
 * await Deno.writeFile(`${dir}.torrent`, made.torrent);
 * await Deno.remove(`${dir}.torrent`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path A file or folder.
 * @param options Piece length, name, trackers, web seeds, flags, progress and cancellation.
 * @returns The torrent bytes, its info-hash and its piece layout.
 * @throws {StorageError} when the path cannot be read, a file shrinks while being
 * hashed, a symbolic link leaves the folder, or an entry is neither a file nor a folder.
 * @throws {MetainfoError} for an empty payload or invalid options (piece length, name,
 * tracker or web seed URLs).
 */
export async function createTorrent(path: string, options: CreateOptions = {}): Promise<CreatedTorrent> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const root = resolve(path);
  const name = options.name ?? basename(root);
  checkName(name);
  if (options.pieceLength !== undefined) checkPieceLength(options.pieceLength);
  const trackers = (options.trackers ?? []).map((tier) => tier.map((url) => checkUrl(url, "tracker")))
    .filter((tier) => tier.length > 0);
  const webSeeds = (options.webSeeds ?? []).map((url) => checkUrl(url, "web seed"));
  const creationDate = options.creationDate === undefined
    ? Math.floor(Date.now() / 1000)
    : options.creationDate;
  if (creationDate !== null && !Number.isSafeInteger(creationDate)) {
    throw new MetainfoError(`Cannot create torrent: creation date must be an integer: ${creationDate}`);
  }

  const rootInfo = await statOrThrow(root, path);
  let files: PayloadFile[];
  if (rootInfo.isFile) {
    files = [{ absolute: root, components: [], length: rootInfo.size }];
  } else if (rootInfo.isDirectory) {
    const rootReal = await realPathOrThrow(root, path);
    files = [];
    await walk(root, rootReal, [], new Set([rootReal]), files, signal);
  } else {
    throw new StorageError(`Cannot create torrent: not a regular file or folder: ${path}`);
  }
  const multiFile = rootInfo.isDirectory;
  const totalLength = files.reduce((sum, f) => sum + f.length, 0);
  if (totalLength === 0) {
    throw new MetainfoError(`Cannot create torrent: the payload has no data: ${path}`);
  }
  const pieceLength = options.pieceLength ?? automaticPieceLength(totalLength);
  // Checked before hashing: a torrent with more pieces would be refused by shoal and libtorrent.
  const pieceCount = Math.ceil(totalLength / pieceLength);
  if (pieceCount > TORRENT_LIMITS.maxPieces) {
    let enough = MIN_PIECE_LENGTH;
    while (enough * TORRENT_LIMITS.maxPieces < totalLength) enough *= 2;
    throw new MetainfoError(
      `Cannot create torrent: ${pieceCount} pieces of ${pieceLength} bytes exceed the ${TORRENT_LIMITS.maxPieces} ` +
        `clients accept; use pieces of ${enough} bytes or more`,
    );
  }

  const pieces = await hashFiles(files, pieceLength, totalLength, options.onProgress, signal);

  const info: Record<string, BEncodable> = {
    "name": name,
    "piece length": pieceLength,
    "pieces": pieces,
  };
  if (multiFile) {
    info["files"] = files.map((f) => ({ length: f.length, path: [...f.components] }));
  } else {
    info["length"] = totalLength;
  }
  if (options.private === true) info["private"] = 1;
  // The encoder is canonical, so these are exactly the bytes the info dictionary gets in the file.
  const infoBytes = encode(info);

  const top: Record<string, BEncodable> = {
    "created by": options.createdBy ?? DEFAULT_CREATED_BY,
    "info": info,
  };
  const firstTracker = trackers[0]?.[0];
  if (firstTracker !== undefined) top["announce"] = firstTracker;
  if (trackers.reduce((n, tier) => n + tier.length, 0) > 1) top["announce-list"] = trackers;
  if (webSeeds.length > 0) top["url-list"] = webSeeds;
  if (options.comment !== undefined) top["comment"] = options.comment;
  if (creationDate !== null) top["creation date"] = creationDate;
  const torrent = encode(top);
  const infoHash = createHash("sha1").update(infoBytes).digest("hex");
  return { torrent, infoHash, name, pieceLength, pieceCount: pieces.length / 20, totalLength };
}

function checkName(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new MetainfoError(`Cannot create torrent: invalid name: ${JSON.stringify(name)}`);
  }
}

function checkPieceLength(pieceLength: number): void {
  const ok = Number.isSafeInteger(pieceLength) && pieceLength >= MIN_PIECE_LENGTH &&
    pieceLength <= MAX_PIECE_LENGTH && (pieceLength & (pieceLength - 1)) === 0;
  if (!ok) {
    throw new MetainfoError(
      `Cannot create torrent: piece length must be a power of two from ${MIN_PIECE_LENGTH} to ${MAX_PIECE_LENGTH}: ${pieceLength}`,
    );
  }
}

function checkUrl(url: string, what: string): string {
  if (!URL.canParse(url)) throw new MetainfoError(`Cannot create torrent: invalid ${what} URL: ${url}`);
  return url;
}

async function statOrThrow(absolute: string, shown: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(absolute);
  } catch (e) {
    throw new StorageError(`Cannot read ${shown}: ${describe(e)}`, { cause: e });
  }
}

async function realPathOrThrow(absolute: string, shown: string): Promise<string> {
  try {
    return await Deno.realPath(absolute);
  } catch (e) {
    throw new StorageError(`Cannot read ${shown}: ${describe(e)}`, { cause: e });
  }
}

function describe(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or folder";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotCapable) return "missing --allow-read permission";
  return e instanceof Error ? e.message : String(e);
}

const utf8 = new TextEncoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/**
 * Collects the files below `dir` depth-first with siblings sorted as UTF-8 bytes, which
 * orders the whole list by path components. `ancestors` holds the real paths of the
 * folders being walked, to refuse symbolic-link loops.
 */
async function walk(
  dir: string,
  rootReal: string,
  components: readonly string[],
  ancestors: Set<string>,
  out: PayloadFile[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const shownDir = components.length === 0 ? dir : join(...components);
  const entries: { name: string; key: Uint8Array; symlink: boolean; file: boolean; dir: boolean }[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      entries.push({
        name: e.name,
        key: utf8.encode(e.name),
        symlink: e.isSymlink,
        file: e.isFile,
        dir: e.isDirectory,
      });
    }
  } catch (e) {
    throw new StorageError(`Cannot read folder ${shownDir}: ${describe(e)}`, { cause: e });
  }
  entries.sort((a, b) => compareBytes(a.key, b.key));
  for (const entry of entries) {
    signal?.throwIfAborted();
    const absolute = join(dir, entry.name);
    const parts = [...components, entry.name];
    const shown = parts.join("/");
    let isFile = entry.file;
    let isDir = entry.dir;
    let real = absolute;
    if (entry.symlink) {
      real = await realPathOrThrow(absolute, shown);
      const rel = relative(rootReal, real);
      if (rel === ".." || rel.startsWith(".." + sep) || resolve(rootReal, rel) !== real) {
        throw new StorageError(`Cannot create torrent: symbolic link leads outside the folder: ${shown}`);
      }
      const target = await statOrThrow(absolute, shown);
      isFile = target.isFile;
      isDir = target.isDirectory;
    }
    if (isDir) {
      if (entry.symlink) {
        if (ancestors.has(real)) {
          throw new StorageError(`Cannot create torrent: symbolic link loop: ${shown}`);
        }
      } else {
        real = await realPathOrThrow(absolute, shown);
      }
      ancestors.add(real);
      await walk(absolute, rootReal, parts, ancestors, out, signal);
      ancestors.delete(real);
    } else if (isFile) {
      const info = await statOrThrow(absolute, shown);
      out.push({ absolute, components: parts, length: info.size });
    } else {
      throw new StorageError(`Cannot create torrent: not a regular file or folder: ${shown}`);
    }
  }
}

/**
 * Fills buffers with the concatenated bytes of `files`, one file handle open at a time.
 * Each file must still have the size it had during the walk.
 */
class PayloadReader {
  #files: readonly PayloadFile[];
  #index = 0;
  #handle: Deno.FsFile | undefined;
  #leftInFile = 0;

  constructor(files: readonly PayloadFile[]) {
    this.#files = files;
  }

  /** Fills `buffer` as far as the payload allows; returns the number of bytes filled (0 at the end). */
  async fill(buffer: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < buffer.length) {
      if (this.#handle === undefined) {
        const file = this.#files[this.#index];
        if (file === undefined) break;
        if (file.length === 0) {
          this.#index++;
          continue;
        }
        try {
          this.#handle = await Deno.open(file.absolute, { read: true });
        } catch (e) {
          throw new StorageError(`Cannot read ${this.#shown(file)}: ${describe(e)}`, { cause: e });
        }
        this.#leftInFile = file.length;
      }
      const file = this.#files[this.#index]!;
      const want = Math.min(buffer.length - filled, this.#leftInFile);
      let n: number | null;
      try {
        n = await this.#handle.read(buffer.subarray(filled, filled + want));
      } catch (e) {
        throw new StorageError(`Cannot read ${this.#shown(file)}: ${describe(e)}`, { cause: e });
      }
      if (n === null || n === 0) {
        throw new StorageError(
          `Cannot create torrent: file shrank while being hashed: ${
            this.#shown(file)
          } (expected ${file.length} bytes)`,
        );
      }
      filled += n;
      this.#leftInFile -= n;
      if (this.#leftInFile === 0) {
        this.#handle.close();
        this.#handle = undefined;
        this.#index++;
      }
    }
    return filled;
  }

  /** Closes the open file, if any. */
  close(): void {
    this.#handle?.close();
    this.#handle = undefined;
  }

  #shown(file: PayloadFile): string {
    return file.components.length === 0 ? file.absolute : file.components.join("/");
  }
}

/**
 * Hashes the payload piece by piece. While one buffer is hashed (synchronously), the next
 * one is being read, so disk reads and hashing overlap.
 */
async function hashFiles(
  files: readonly PayloadFile[],
  pieceLength: number,
  totalLength: number,
  onProgress: ((progress: CreateProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const pieceCount = Math.ceil(totalLength / pieceLength);
  const pieces = new Uint8Array(pieceCount * 20);
  const chunkSize = Math.min(CHUNK_SIZE, totalLength);
  let current = new Uint8Array(chunkSize);
  let next = new Uint8Array(chunkSize);
  const reader = new PayloadReader(files);
  let hasher: Hash | undefined;
  let inPiece = 0;
  let piece = 0;
  let hashed = 0;
  let pending: Promise<number> | undefined;
  try {
    pending = reader.fill(current);
    while (true) {
      const n = await pending;
      pending = undefined;
      if (n === 0) break;
      signal?.throwIfAborted();
      if (n === current.length) pending = reader.fill(next);
      let at = 0;
      while (at < n) {
        hasher ??= createHash("sha1");
        const take = Math.min(pieceLength - inPiece, n - at);
        hasher.update(current.subarray(at, at + take));
        at += take;
        inPiece += take;
        if (inPiece === pieceLength) {
          pieces.set(hasher.digest(), piece * 20);
          hasher = undefined;
          inPiece = 0;
          piece++;
        }
      }
      hashed += n;
      onProgress?.({ bytesHashed: hashed, totalBytes: totalLength });
      if (pending === undefined) break;
      [current, next] = [next, current];
    }
    if (hasher !== undefined) {
      pieces.set(hasher.digest(), piece * 20);
      piece++;
    }
  } finally {
    if (pending !== undefined) {
      // A read is still in flight and we are leaving on an error that matters more than
      // anything this read could report: let it settle before closing the file.
      await pending.catch((e: unknown) => void e);
    }
    reader.close();
  }
  if (hashed !== totalLength || piece !== pieceCount) {
    throw new StorageError(`Cannot create torrent: read ${hashed} bytes, expected ${totalLength}`);
  }
  return pieces;
}
