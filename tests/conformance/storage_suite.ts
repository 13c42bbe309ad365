/**
 * The conformance suite every storage backend must pass: file storage, `memoryStorage()`,
 * the user-style backend in `fixtures/plugins/`, and a faulty (slow) one. Each backend is
 * driven through the core's checked layer (`openStorage`), as a torrent drives it: whole
 * pieces and sub-ranges of an awkward layout round-trip, data never written reads as missing,
 * the backend keeps its own copy of what it is given, calls after `close` are refused, a
 * session downloads into it with every piece verified, and a restart over the same backend
 * either finds the verified pieces again (a backend that persists) or starts empty.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageError } from "../../lib/errors.ts";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { BaseSession } from "../../lib/session.ts";
import { openStorage } from "../../lib/storage/open_storage.ts";
import { MissingDataError } from "../../lib/storage/storage.ts";
import { verifyPieces } from "../../lib/storage/verify.ts";
import type { Torrent } from "../../lib/torrent.ts";
import type { Metainfo, StorageBackend, StorageContext, StorageFactory } from "../../lib/types.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { withDeadline } from "../_fake_peer.ts";
import { type FileSpec, makeTorrent, pieceData } from "../_test_torrent.ts";

/** What a backend promises beyond the contract. */
export interface StorageSuiteOptions {
  /**
   * A torrent started again over the same factory (and download folder) finds the pieces it
   * verified before, without downloading them again. False for storage that keeps nothing
   * (a restart starts empty). @default {false}
   */
  persists?: boolean;
}

// Everything awkward: a piece over three files, a pad file, zero-byte files in the middle and
// at the end, nested folders, and a short last piece (16-byte pieces, 55 bytes).
const LAYOUT: FileSpec[] = [
  { path: "t/a.bin", length: 5 },
  { path: "t/sub/b.bin", length: 3 },
  { path: "t/sub/deep/c.bin", length: 20 },
  { path: "t/.pad/4", length: 4, pad: true },
  { path: "t/empty1", length: 0 },
  { path: "t/sub/d.bin", length: 16 },
  { path: "t/e.bin", length: 7 },
  { path: "t/empty2", length: 0 },
];

/** Payload of the swarm tests: 3 files (one empty), 13 pieces of 16 KiB, the last one short. */
const SWARM_FILES = [
  { path: "a.bin", size: 50_000 },
  { path: "empty.txt", size: 0 },
  { path: "b/c.bin", size: 150_000 },
];
const SWARM_PIECE = 16384;

/**
 * A temporary folder, removed after `run`.
 *
 * @example
 * ```ts
 * import { withTempDir } from "./storage_suite.ts";
 * await withTempDir((dir) => Deno.writeTextFile(`${dir}/x`, "x"));
 * ```
 *
 * @param run What to do in it.
 * @returns What `run` returns.
 */
export async function withTempDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_storage_suite_" });
  try {
    return await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A storage context for a folder, as a torrent gives its factory.
 *
 * @example
 * ```ts
 * import { contextFor } from "./storage_suite.ts";
 * console.log(contextFor("/tmp/x").checkFreeSpace); // true
 * ```
 *
 * @param downloadDir The folder.
 * @returns The context.
 */
export function contextFor(downloadDir: string): StorageContext {
  return { downloadDir, skipFiles: new Set(), checkFreeSpace: true, signal: new AbortController().signal };
}

/** A file-storage seed on 127.0.0.1 of the swarm payload, and the torrent. */
export interface Seed extends AsyncDisposable {
  /** The torrent. */
  readonly meta: Metainfo;
  /** The torrent's concatenated bytes. */
  readonly payload: Uint8Array;
  /** "127.0.0.1:port" of the seed. */
  readonly address: string;
}

function fill(size: number, salt: number): Uint8Array {
  let x = salt;
  return new Uint8Array(size).map(() => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
}

/**
 * Starts a seed of the swarm payload (a shoal session on file storage).
 *
 * @example
 * ```ts ignore
 * import { startSeed } from "./storage_suite.ts";
 * await using seed = await startSeed("/tmp/seed");
 * console.log(seed.meta.pieceCount); // 13
 * ```
 *
 * @param dir An empty folder for the seed's data.
 * @returns The running seed.
 */
export async function startSeed(dir: string): Promise<Seed> {
  const root = join(dir, "seed", "s");
  const parts: Uint8Array[] = [];
  for (const [i, file] of SWARM_FILES.entries()) {
    await Deno.mkdir(join(root, file.path, ".."), { recursive: true });
    const bytes = fill(file.size, i + 1);
    await Deno.writeFile(join(root, file.path), bytes);
    parts.push(bytes);
  }
  const created = await createTorrent(root, { pieceLength: SWARM_PIECE, creationDate: null });
  const meta = parseMetainfo(created.torrent);
  // createTorrent orders files by path, as SWARM_FILES lists them.
  assert.deepEqual(meta.files.map((f) => f.path.join("/")), ["a.bin", "b/c.bin", "empty.txt"]);
  const payload = new Uint8Array(meta.totalLength);
  payload.set(parts[0]!, 0);
  payload.set(parts[2]!, parts[0]!.length);
  const session = new BaseSession({
    downloadDir: join(dir, "seed"),
    bind: "127.0.0.1",
    selector: rarestFirst(),
    trackers: false,
    lsd: false,
  });
  await session.add(meta);
  return {
    meta,
    payload,
    address: `127.0.0.1:${session.port}`,
    [Symbol.asyncDispose]: () => session.close(),
  };
}

/** What {@linkcode download} saw. */
export interface Downloaded {
  /** The torrent, still running (its session is closed by disposal). */
  readonly torrent: Torrent;
  /** Pieces verified in this run (downloaded), in order. */
  readonly verified: number[];
  /** Backends the factory opened. */
  readonly opened: StorageBackend[];
  /** Closes the session. */
  close(): Promise<void>;
}

/**
 * Downloads the seed's torrent into storage from `factory`, in a new session, and waits
 * until it completes (or, with `expectFailure`, only until it is added).
 *
 * @example
 * ```ts ignore
 * import { download, startSeed } from "./storage_suite.ts";
 * import { memoryStorage } from "../../plugins/storage/memory.ts";
 * await using seed = await startSeed("/tmp/seed");
 * const run = await download(seed, memoryStorage(), "/tmp/leech");
 * await run.close();
 * ```
 *
 * @param seed The seed.
 * @param factory The storage to download into.
 * @param downloadDir The leecher's folder.
 * @param options Whether to wait for completion.
 * @returns The torrent and what it did.
 */
export async function download(
  seed: Seed,
  factory: StorageFactory,
  downloadDir: string,
  options: { waitForCompletion?: boolean } = {},
): Promise<Downloaded> {
  const opened: StorageBackend[] = [];
  const capture: StorageFactory = async (meta, context) => {
    const backend = await factory(meta, context);
    opened.push(backend);
    return backend;
  };
  const session = new BaseSession({
    downloadDir,
    bind: "127.0.0.1",
    selector: rarestFirst(),
    trackers: false,
    lsd: false,
    storage: capture,
  });
  const verified: number[] = [];
  try {
    const torrent = await withDeadline(
      session.add(seed.meta, {
        peers: [seed.address],
        onTorrent: (t) => t.addEventListener("piece-verified", (e) => verified.push(e.detail.piece)),
      }),
      20_000,
      "the torrent to start",
    );
    if (options.waitForCompletion !== false) await withDeadline(torrent.completed, 30_000, "the download");
    return { torrent, verified, opened, close: () => session.close() };
  } catch (error) {
    await session.close();
    throw error;
  }
}

/**
 * Reads every piece back from a backend and checks it against the payload.
 *
 * @example
 * ```ts ignore
 * import { assertHolds } from "./storage_suite.ts";
 * await assertHolds(backend, meta, payload);
 * ```
 *
 * @param backend The backend.
 * @param meta The torrent.
 * @param payload Its bytes.
 */
export async function assertHolds(
  backend: StorageBackend,
  meta: Metainfo,
  payload: Uint8Array,
): Promise<void> {
  const storage = await openStorage(() => backend, meta, contextFor("/"));
  for (let p = 0; p < meta.pieceCount; p++) {
    const size = Math.min(meta.pieceLength, meta.totalLength - p * meta.pieceLength);
    const got = await storage.read(p, 0, size);
    assert.ok(
      got.every((b, i) => b === payload[p * meta.pieceLength + i]),
      `piece ${p} read back differs from the source`,
    );
  }
}

/**
 * Registers the suite's tests for one backend.
 *
 * @example
 * ```ts ignore
 * import { storageSuite } from "./storage_suite.ts";
 * import { memoryStorage } from "../../plugins/storage/memory.ts";
 * storageSuite("memoryStorage()", () => memoryStorage());
 * ```
 *
 * @param name Shown in test names.
 * @param make Makes a fresh factory (one per test; a test that restarts uses one factory twice).
 * @param options What the backend promises beyond the contract.
 */
export function storageSuite(
  name: string,
  make: () => StorageFactory,
  options: StorageSuiteOptions = {},
): void {
  Deno.test(`${name}: round-trips whole pieces and sub-ranges of an awkward layout`, async () => {
    await withTempDir(async (dir) => {
      const t = makeTorrent(LAYOUT, 16);
      const storage = await openStorage(make(), t.meta, contextFor(dir));
      try {
        // Out of order and all at once, as pieces complete in a swarm.
        const order = [...Array(t.meta.pieceCount).keys()].reverse();
        await Promise.all(order.map((p) => storage.write(p, 0, pieceData(t, p).slice())));
        for (let p = 0; p < t.meta.pieceCount; p++) {
          assert.deepEqual(await storage.read(p, 0, pieceData(t, p).length), pieceData(t, p), `piece ${p}`);
        }
        // Ranges across file boundaries, and one inside the pad file.
        assert.deepEqual(await storage.read(0, 3, 10), t.payload.subarray(3, 13));
        assert.deepEqual(await storage.read(1, 10, 6), t.payload.subarray(26, 32));
        assert.deepEqual(await storage.read(3, 2, 5), t.payload.subarray(50, 55));
        await storage.flush();
      } finally {
        await storage.close();
      }
    });
  });

  Deno.test(`${name}: a piece written in parts reads back whole`, async () => {
    await withTempDir(async (dir) => {
      const t = makeTorrent(LAYOUT, 16);
      const storage = await openStorage(make(), t.meta, contextFor(dir));
      try {
        const piece = pieceData(t, 2);
        await storage.write(2, 8, piece.slice(8));
        await storage.write(2, 0, piece.slice(0, 8));
        assert.deepEqual(await storage.read(2, 0, 16), piece);
      } finally {
        await storage.close();
      }
    });
  });

  Deno.test(`${name}: data never written reads as missing, not as a failure`, async () => {
    await withTempDir(async (dir) => {
      const t = makeTorrent(LAYOUT, 16, 7);
      const storage = await openStorage(make(), t.meta, contextFor(dir));
      try {
        await assert.rejects(storage.read(0, 0, 16), MissingDataError);
        await storage.write(3, 0, pieceData(t, 3).slice());
        // The start-up check: only what was written and matches its hash counts.
        const all = [...Array(t.meta.pieceCount).keys()];
        assert.deepEqual(await verifyPieces(storage, t.meta, all), new Set([3]));
      } finally {
        await storage.close();
      }
    });
  });

  Deno.test(`${name}: keeps its own copy of what it is given`, async () => {
    await withTempDir(async (dir) => {
      const t = makeTorrent(LAYOUT, 16);
      const storage = await openStorage(make(), t.meta, contextFor(dir));
      try {
        const buffer = pieceData(t, 0).slice();
        await storage.write(0, 0, buffer);
        buffer.fill(0xff); // the core reuses piece buffers once a write has settled
        const first = await storage.read(0, 0, 16);
        assert.deepEqual(first, pieceData(t, 0));
        first.fill(0); // and what a read returns is the caller's
        assert.deepEqual(await storage.read(0, 0, 16), pieceData(t, 0));
      } finally {
        await storage.close();
      }
    });
  });

  Deno.test(`${name}: calls after close are refused with a StorageError`, async () => {
    await withTempDir(async (dir) => {
      const t = makeTorrent(LAYOUT, 16);
      const storage = await openStorage(make(), t.meta, contextFor(dir));
      await storage.write(0, 0, pieceData(t, 0).slice());
      await storage.close();
      await storage.close();
      await assert.rejects(storage.read(0, 0, 16), StorageError);
      await assert.rejects(storage.write(0, 0, pieceData(t, 0)), StorageError);
      await assert.rejects(storage.flush(), StorageError);
    });
  });

  Deno.test(`${name}: a session downloads into it, every piece verified and read back equal`, async () => {
    await withTempDir(async (dir) => {
      await using seed = await startSeed(dir);
      const run = await download(seed, make(), join(dir, "leech"));
      try {
        assert.equal(run.torrent.have.count(), seed.meta.pieceCount);
        assert.deepEqual([...run.verified].sort((a, b) => a - b), [...Array(seed.meta.pieceCount).keys()]);
        assert.equal(run.opened.length, 1);
        await assertHolds(run.opened[0]!, seed.meta, seed.payload);
      } finally {
        await run.close();
      }
    });
  });

  const restart = options.persists
    ? "a restart over the same data finds every verified piece and downloads nothing"
    : "a restart starts empty (nothing persists) and downloads everything again";
  Deno.test(`${name}: ${restart}`, async () => {
    await withTempDir(async (dir) => {
      await using seed = await startSeed(dir);
      const factory = make();
      const first = await download(seed, factory, join(dir, "leech"));
      await first.close();
      const second = await download(seed, factory, join(dir, "leech"));
      try {
        const check = second.torrent.startupCheck!;
        if (options.persists) {
          assert.equal(check.have, seed.meta.pieceCount);
          assert.deepEqual(second.verified, []);
        } else {
          assert.equal(check.have, 0);
          assert.equal(second.verified.length, seed.meta.pieceCount);
        }
        await assertHolds(second.opened[0]!, seed.meta, seed.payload);
      } finally {
        await second.close();
      }
    });
  });
}
