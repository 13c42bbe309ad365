import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageError } from "../../lib/errors.ts";
import { BaseSession } from "../../lib/session.ts";
import { fileStorage } from "../../lib/storage/file_storage_factory.ts";
import { openStorage } from "../../lib/storage/open_storage.ts";
import type { StorageBackend, StorageFactory } from "../../lib/types.ts";
import { chunkMapStorage, type ChunkStore } from "../../fixtures/plugins/chunk_map_storage.ts";
import { memoryStorage } from "../../plugins/storage/memory.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { Session } from "../../mod.ts";
import { withDeadline } from "../_fake_peer.ts";
import { makeTorrent } from "../_test_torrent.ts";
import { faulty } from "./storage_faults.ts";
import { assertHolds, contextFor, download, startSeed, storageSuite, withTempDir } from "./storage_suite.ts";

storageSuite("fileStorage()", () => fileStorage(), { persists: true });
storageSuite("memoryStorage()", () => memoryStorage());
storageSuite("chunkMapStorage (fixtures/plugins/chunk_map_storage.ts)", () => chunkMapStorage(), {
  persists: true,
});
storageSuite("chunkMapStorage({ chunkSize: 5 })", () => chunkMapStorage({ chunkSize: 5 }), {
  persists: true,
});
storageSuite(
  "faulty(memoryStorage(), slow reads and writes)",
  () => faulty(memoryStorage(), { delayMs: 3 }).factory,
);
storageSuite(
  "faulty(fileStorage(), slow reads and writes)",
  () => faulty(fileStorage(), { delayMs: 3 }).factory,
  {
    persists: true,
  },
);

// ---------------------------------------------------------------------------------------------
// A failing backend stops the torrent with a clear error and loses nothing already verified

const WRITES = 4;

Deno.test("a backend whose writes fail stops the torrent with a StorageError naming the failure", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    const broken = faulty(fileStorage(), { writesBeforeFailure: WRITES, message: "the disk is on fire" });
    const run = await download(seed, broken.factory, join(dir, "leech"), { waitForCompletion: false });
    try {
      const error = await withDeadline(
        run.torrent.completed.then(() => null, (e: unknown) => e),
        30_000,
        "failure",
      );
      assert.ok(error instanceof StorageError, `not a StorageError: ${error}`);
      assert.match(error.message, /^Failed writing piece \d+ in faulty storage: the disk is on fire$/);
      assert.equal(run.torrent.state, "error");
      assert.ok(broken.failedWrites >= 1);
      // Once the shutdown has waited for the writes in flight, every piece whose write
      // succeeded is ours, and no other.
      await run.close();
      assert.equal(run.torrent.have.count(), WRITES);
      assert.deepEqual([...run.torrent.have].sort(), [...broken.written].sort());
    } finally {
      await run.close();
    }
  });
});

Deno.test("after a write failure, a restart over the same files keeps the verified pieces (resume data)", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    const leech = join(dir, "leech");
    const broken = faulty(fileStorage(), { writesBeforeFailure: WRITES });
    const first = await download(seed, broken.factory, leech, { waitForCompletion: false });
    await withDeadline(
      first.torrent.completed.catch(() => {/* expected: the write failure */}),
      30_000,
      "failure",
    );
    await first.close();

    const again = await download(seed, fileStorage(), leech);
    try {
      const check = again.torrent.startupCheck!;
      assert.equal(check.usedResume, true);
      assert.equal(check.have, WRITES);
      assert.equal(check.rechecked, 0, "the resume data saved at the failure was trusted");
      assert.equal(
        again.verified.length,
        seed.meta.pieceCount - WRITES,
        "verified pieces were fetched again",
      );
      assert.ok(again.verified.every((p) => !broken.written.includes(p)));
      await assertHolds(again.opened[0]!, seed.meta, seed.payload);
    } finally {
      await again.close();
    }
  });
});

Deno.test("after a write failure, a restart over the same chunk store re-verifies and keeps the pieces", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    const store: ChunkStore = new Map();
    const broken = faulty(chunkMapStorage({ store }), { writesBeforeFailure: WRITES });
    const first = await download(seed, broken.factory, join(dir, "leech"), { waitForCompletion: false });
    await withDeadline(
      first.torrent.completed.catch(() => {/* expected: the write failure */}),
      30_000,
      "failure",
    );
    await first.close();

    const again = await download(seed, chunkMapStorage({ store }), join(dir, "leech"));
    try {
      const check = again.torrent.startupCheck!;
      assert.equal(check.usedResume, false, "a backend without fileStat keeps no resume data");
      assert.equal(check.rechecked, seed.meta.pieceCount, "every piece was read and hashed");
      assert.equal(check.have, WRITES);
      assert.equal(again.verified.length, seed.meta.pieceCount - WRITES);
      await assertHolds(again.opened[0]!, seed.meta, seed.payload);
    } finally {
      await again.close();
    }
  });
});

Deno.test("a backend whose reads fail at the start-up check fails add() with a StorageError", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    const store: ChunkStore = new Map();
    const complete = await download(seed, chunkMapStorage({ store }), join(dir, "leech"));
    await complete.close();
    const broken = faulty(chunkMapStorage({ store }), { failReads: new Set([2]), message: "bad sector" });
    await assert.rejects(download(seed, broken.factory, join(dir, "leech")), (e) => {
      assert.ok(e instanceof StorageError);
      assert.equal(e.message, "Failed reading piece 2 in faulty storage: bad sector");
      return true;
    });
  });
});

Deno.test("a memory-style backend that fails keeps its verified pieces readable until the torrent closes", async () => {
  // Nothing of memory storage outlives the torrent, so "not lost" means: the pieces verified
  // before the failure stay recorded and their bytes stay intact until the shutdown closes it.
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    let kept: Uint8Array[] = [];
    const inner = memoryStorage();
    const snapshot: StorageFactory = async (meta, context) => {
      const backend = await inner(meta, context);
      return {
        ...backendMethods(backend),
        close: async () => {
          kept = await Promise.all(
            [...Array(meta.pieceCount).keys()].map((p) =>
              backend.read(p, 0, Math.min(meta.pieceLength, meta.totalLength - p * meta.pieceLength))
                .catch(() => new Uint8Array())
            ),
          );
          await backend.close();
        },
      };
    };
    const broken = faulty(snapshot, { writesBeforeFailure: WRITES });
    const run = await download(seed, broken.factory, join(dir, "leech"), { waitForCompletion: false });
    await withDeadline(
      run.torrent.completed.catch(() => {/* expected: the write failure */}),
      30_000,
      "failure",
    );
    const have = [...run.torrent.have];
    await run.close();
    assert.equal(have.length, WRITES);
    for (const p of have) {
      const start = p * seed.meta.pieceLength;
      assert.deepEqual(kept[p], seed.payload.subarray(start, start + kept[p]!.length));
      assert.ok(kept[p]!.length > 0);
    }
  });
});

function backendMethods(backend: StorageBackend): StorageBackend {
  return {
    read: (p, b, l) => backend.read(p, b, l),
    write: (p, b, d) => backend.write(p, b, d),
    flush: () => backend.flush(),
    close: () => backend.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// Factories, the option, and the caps

Deno.test("memoryStorage({ maxBytes }) refuses a larger torrent with a clear StorageError", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    await assert.rejects(download(seed, memoryStorage({ maxBytes: 100_000 }), join(dir, "leech")), (e) => {
      assert.ok(e instanceof StorageError);
      assert.equal(
        e.message,
        `Cannot open storage for s: s is ${seed.meta.totalLength} bytes, more than memory storage's maxBytes of 100000`,
      );
      return true;
    });
    assert.throws(() => memoryStorage({ maxBytes: -1 }), RangeError);
  });
});

Deno.test("memoryStorage() allocates a piece when it is first written, and frees all at close", async () => {
  const t = makeTorrent([{ path: "x.bin", length: 40 }], 16);
  let store: { storedBytes: number } | undefined;
  const storage = await openStorage(memoryStorage({ onOpen: (b) => (store = b) }), t.meta, contextFor("/"));
  assert.equal(store!.storedBytes, 0);
  await storage.write(2, 0, new Uint8Array(8));
  assert.equal(store!.storedBytes, 8);
  await storage.write(0, 0, new Uint8Array(16));
  assert.equal(store!.storedBytes, 24);
  await storage.close();
  assert.equal(store!.storedBytes, 0);
});

Deno.test("openStorage() refuses a factory that returns no backend, and wraps what a factory throws", async () => {
  const t = makeTorrent([{ path: "x.bin", length: 40 }], 16);
  const incomplete = (() => ({ read: () => Promise.resolve(new Uint8Array()) })) as unknown as StorageFactory;
  await assert.rejects(openStorage(incomplete, t.meta, contextFor("/")), /write\(\) is missing/);
  const throwing: StorageFactory = () => {
    throw new TypeError("no bucket");
  };
  await assert.rejects(openStorage(throwing, t.meta, contextFor("/")), (e) => {
    assert.ok(e instanceof StorageError);
    assert.equal(e.message, "Cannot open storage for x.bin: no bucket");
    assert.ok(e.cause instanceof TypeError);
    return true;
  });
});

Deno.test("the session's storage option is the default, and add() can name another per torrent", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    const used: string[] = [];
    const tag = (name: string, inner: StorageFactory): StorageFactory => (meta, context) => {
      used.push(name);
      return inner(meta, context);
    };
    await using session = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
      storage: tag("session", memoryStorage()),
    });
    const torrent = await session.add(seed.meta, { peers: [seed.address] });
    await withDeadline(torrent.completed, 30_000, "the download");
    await session.remove(torrent);
    const other = await session.add(seed.meta, {
      peers: [seed.address],
      storage: tag("add", memoryStorage()),
    });
    await withDeadline(other.completed, 30_000, "the download");
    assert.deepEqual(used, ["session", "add"]);
  });
});

Deno.test("without a storage option, Session and BaseSession store files on disk", async () => {
  await withTempDir(async (dir) => {
    await using seed = await startSeed(dir);
    for (
      const [i, make] of [
        (d: string) => new Session({ downloadDir: d, bind: "127.0.0.1", trackers: false, lsd: false }),
        (d: string) =>
          new BaseSession({
            downloadDir: d,
            bind: "127.0.0.1",
            trackers: false,
            lsd: false,
            selector: rarestFirst(),
          }),
      ].entries()
    ) {
      const out = join(dir, `leech${i}`);
      await using session = make(out);
      const torrent = await session.add(seed.meta, { peers: [seed.address] });
      await withDeadline(torrent.completed, 30_000, "the download");
      assert.deepEqual(await Deno.readFile(join(out, "s", "a.bin")), seed.payload.subarray(0, 50_000));
    }
  });
});
