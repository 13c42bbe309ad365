import assert from "node:assert/strict";
import { StorageError } from "../../lib/errors.ts";
import { FileStorage } from "../../lib/storage/file_storage.ts";
import {
  checkLayout,
  filePieceRange,
  type FileSpan,
  pieceFileRange,
  pieceLengthOf,
  spansFor,
} from "../../lib/storage/piece_map.ts";
import {
  CheckedStorage,
  type FileStat,
  MissingDataError,
  type StorageBackend,
  type StorageWithStat,
  toStorageError,
} from "../../lib/storage/storage.ts";
import { pieceHashMatches, sha1, verifyPieces } from "../../lib/storage/verify.ts";
import type { Metainfo } from "../../lib/types.ts";
import { type FileSpec, makeTorrent, pieceData } from "../_test_torrent.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_storage_test_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Counts this process's file descriptors that point inside `dir` (Linux /proc). */
async function openFdsUnder(dir: string): Promise<number> {
  let n = 0;
  for await (const entry of Deno.readDir("/proc/self/fd")) {
    try {
      const target = await Deno.readLink(`/proc/self/fd/${entry.name}`);
      if (target.startsWith(dir + "/")) n++;
    } catch (error) {
      // The descriptor used to list the folder is gone by the time we look at it.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return n;
}

/** Asserts that a promise rejects with an instance of `type` whose message matches `pattern`. */
async function rejectsWith(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** A small seeded PRNG, so property tests are reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    return x / 2 ** 32;
  };
}

/** The straightforward O(files) mapping, to check the binary-search one against. */
function naiveSpans(meta: Metainfo, piece: number, begin: number, length: number): FileSpan[] {
  const start = piece * meta.pieceLength + begin;
  const end = start + length;
  const out: FileSpan[] = [];
  meta.files.forEach((file, fileIndex) => {
    const a = Math.max(start, file.offset);
    const b = Math.min(end, file.offset + file.length);
    if (b > a) out.push({ fileIndex, fileOffset: a - file.offset, length: b - a });
  });
  return out;
}

/** Wraps a backend and injects faults: raw errno-style errors, as a buggy or failing backend would throw. */
class FaultyStorage implements StorageWithStat {
  #inner: StorageWithStat;
  /** Bytes that may still be written before every write fails with ENOSPC. */
  spaceLeft = Infinity;
  /** Pieces whose reads fail with EIO. */
  readonly badPieces = new Set<number>();

  constructor(inner: StorageWithStat) {
    this.#inner = inner;
  }

  read(piece: number, begin: number, length: number): Promise<Uint8Array> {
    if (this.badPieces.has(piece)) {
      return Promise.reject(Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" }));
    }
    return this.#inner.read(piece, begin, length);
  }

  write(piece: number, begin: number, data: Uint8Array): Promise<void> {
    if (data.length > this.spaceLeft) {
      return Promise.reject(
        Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" }),
      );
    }
    this.spaceLeft -= data.length;
    return this.#inner.write(piece, begin, data);
  }

  flush(): Promise<void> {
    return this.#inner.flush();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  fileStat(fileIndex: number): Promise<FileStat | null> {
    return this.#inner.fileStat(fileIndex);
  }
}

/** Counts reads per piece. */
class CountingStorage implements StorageBackend {
  #inner: StorageBackend;
  readonly reads: number[] = [];

  constructor(inner: StorageBackend) {
    this.#inner = inner;
  }

  read(piece: number, begin: number, length: number): Promise<Uint8Array> {
    this.reads.push(piece);
    return this.#inner.read(piece, begin, length);
  }

  write(piece: number, begin: number, data: Uint8Array): Promise<void> {
    return this.#inner.write(piece, begin, data);
  }

  flush(): Promise<void> {
    return this.#inner.flush();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

// A layout with everything awkward: a piece over three files, a pad file, zero-byte files in
// the middle and at the end, nested folders, and a short last piece.
const LAYOUT: FileSpec[] = [
  { path: "t/a.bin", length: 5 },
  { path: "t/sub/b.bin", length: 3 },
  { path: "t/sub/deep/c.bin", length: 20 },
  { path: "t/.pad/4", length: 4, pad: true },
  { path: "t/empty1", length: 0 },
  { path: "t/sub/d.bin", length: 16 },
  { path: "t/deep/er/empty2", length: 0 },
  { path: "t/e.bin", length: 7 },
  { path: "t/empty3", length: 0 },
];
// pieceLength 16, total 55: pieces 0..3, the last one 7 bytes.

// ---------------------------------------------------------------------------------------------
// piece_map

Deno.test("spansFor() maps a piece spanning three files", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  assert.deepEqual(spansFor(meta, 0, 0, 16), [
    { fileIndex: 0, fileOffset: 0, length: 5 },
    { fileIndex: 1, fileOffset: 0, length: 3 },
    { fileIndex: 2, fileOffset: 0, length: 8 },
  ]);
});

Deno.test("spansFor() includes pad files and skips zero-byte files in the middle", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  // Piece 1 = bytes 16..32: c.bin 8..20, the pad file, then d.bin starts at byte 32.
  assert.deepEqual(spansFor(meta, 1, 0, 16), [
    { fileIndex: 2, fileOffset: 8, length: 12 },
    { fileIndex: 3, fileOffset: 0, length: 4 },
  ]);
  assert.equal(meta.files[3]!.pad, true);
  // Piece 2 = d.bin entirely; empty1 (index 4) lies at its start and is skipped.
  assert.deepEqual(spansFor(meta, 2, 0, 16), [{ fileIndex: 5, fileOffset: 0, length: 16 }]);
  // A block inside a piece that starts in c.bin and ends inside the pad file.
  assert.deepEqual(spansFor(meta, 1, 10, 4), [
    { fileIndex: 2, fileOffset: 18, length: 2 },
    { fileIndex: 3, fileOffset: 0, length: 2 },
  ]);
  assert.deepEqual(spansFor(meta, 1, 3, 0), []);
});

Deno.test("spansFor() and pieceLengthOf() handle a short last piece", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  assert.equal(meta.pieceCount, 4);
  assert.equal(pieceLengthOf(meta, 0), 16);
  assert.equal(pieceLengthOf(meta, 3), 7);
  assert.deepEqual(spansFor(meta, 3, 0, 7), [{ fileIndex: 7, fileOffset: 0, length: 7 }]);
  assert.throws(() => spansFor(meta, 3, 0, 8), RangeError);
  assert.throws(() => spansFor(meta, 3, 6, 2), RangeError);
});

Deno.test("spansFor() rejects pieces and ranges out of bounds", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  assert.throws(() => spansFor(meta, -1, 0, 1), RangeError);
  assert.throws(() => spansFor(meta, 4, 0, 1), RangeError);
  assert.throws(() => spansFor(meta, 0.5, 0, 1), RangeError);
  assert.throws(() => spansFor(meta, 0, -1, 1), RangeError);
  assert.throws(() => spansFor(meta, 0, 0, 17), RangeError);
  assert.throws(() => pieceLengthOf(meta, 4), RangeError);
});

Deno.test("spansFor() agrees with a linear scan on random layouts and ranges", () => {
  const random = prng(42);
  for (let round = 0; round < 40; round++) {
    const specs: FileSpec[] = [];
    const count = 1 + Math.floor(random() * 30);
    for (let i = 0; i < count; i++) {
      const r = random();
      const length = r < 0.2 ? 0 : Math.floor(random() * (r < 0.5 ? 5 : 70));
      specs.push({ path: `r/f${i}`, length, pad: random() < 0.1 });
    }
    if (specs.every((s) => s.length === 0)) specs.push({ path: "r/last", length: 1 });
    const pieceLength = 1 + Math.floor(random() * 40);
    const { meta } = makeTorrent(specs, pieceLength, round);
    checkLayout(meta);
    for (let piece = 0; piece < meta.pieceCount; piece++) {
      const size = pieceLengthOf(meta, piece);
      assert.deepEqual(spansFor(meta, piece, 0, size), naiveSpans(meta, piece, 0, size));
      for (let k = 0; k < 5; k++) {
        const begin = Math.floor(random() * size);
        const length = Math.floor(random() * (size - begin + 1));
        const spans = spansFor(meta, piece, begin, length);
        assert.deepEqual(spans, naiveSpans(meta, piece, begin, length));
        assert.equal(spans.reduce((sum, s) => sum + s.length, 0), length);
      }
    }
  }
});

Deno.test("filePieceRange() gives the pieces of a file and an empty range for zero-byte files", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  assert.deepEqual(filePieceRange(meta, 0), { first: 0, last: 0 });
  assert.deepEqual(filePieceRange(meta, 2), { first: 0, last: 1 });
  assert.deepEqual(filePieceRange(meta, 5), { first: 2, last: 2 });
  assert.deepEqual(filePieceRange(meta, 7), { first: 3, last: 3 });
  const empty = filePieceRange(meta, 4);
  assert.equal(empty.last, empty.first - 1);
  assert.throws(() => filePieceRange(meta, 9), RangeError);
  assert.deepEqual(pieceFileRange(meta, 0), { first: 0, last: 2 });
  assert.deepEqual(pieceFileRange(meta, 1), { first: 2, last: 3 });
});

Deno.test("checkLayout() rejects gaps, wrong totals and wrong hash counts", () => {
  const { meta } = makeTorrent(LAYOUT, 16);
  checkLayout(meta);
  const files = meta.files.map((f) => ({ ...f }));
  files[1] = { ...files[1]!, offset: 6 };
  assert.throws(() => checkLayout({ ...meta, files }), StorageError);
  assert.throws(() => checkLayout({ ...meta, totalLength: 54 }), StorageError);
  assert.throws(() => checkLayout({ ...meta, pieceCount: 5 }), StorageError);
  assert.throws(() => checkLayout({ ...meta, pieceHashes: meta.pieceHashes.subarray(20) }), StorageError);
});

// ---------------------------------------------------------------------------------------------
// FileStorage

Deno.test("FileStorage round-trips every piece of a multi-file layout with nested folders", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent(LAYOUT, 16);
    const storage = await FileStorage.open(`${dir}/dl`, t.meta);
    try {
      for (const piece of [2, 0, 3, 1]) await storage.write(piece, 0, pieceData(t, piece));
      await storage.flush();
      for (let piece = 0; piece < t.meta.pieceCount; piece++) {
        assert.deepEqual(await storage.read(piece, 0, pieceLengthOf(t.meta, piece)), pieceData(t, piece));
      }
      // A block read across a file boundary and into the pad file (which reads as zeros).
      assert.deepEqual(await storage.read(1, 10, 6), t.payload.subarray(26, 32));
    } finally {
      await storage.close();
    }
    for (const file of t.meta.files) {
      const path = `${dir}/dl/${file.safePath}`;
      if (file.pad) {
        assert.equal(await exists(path), false, `pad file ${file.safePath} must not be created`);
        continue;
      }
      assert.deepEqual(await Deno.readFile(path), t.payload.subarray(file.offset, file.offset + file.length));
    }
    assert.equal(await exists(`${dir}/dl/t/.pad`), false);
  });
});

Deno.test("FileStorage writes blocks smaller than a piece at any offset", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent(LAYOUT, 16);
    await using storage = await FileStorage.open(dir, t.meta);
    const piece = pieceData(t, 0);
    await storage.write(0, 7, piece.subarray(7, 16));
    await storage.write(0, 0, piece.subarray(0, 7));
    assert.deepEqual(await storage.read(0, 0, 16), piece);
  });
});

Deno.test("FileStorage creates the folder and zero-byte files at open, and no other file", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent(LAYOUT, 16);
    await using storage = await FileStorage.open(`${dir}/new/folder`, t.meta);
    for (const path of ["t/empty1", "t/deep/er/empty2", "t/empty3"]) {
      const info = await Deno.stat(`${dir}/new/folder/${path}`);
      assert.equal(info.isFile && info.size, 0);
    }
    for (const path of ["t/a.bin", "t/sub/b.bin", "t/.pad/4", "t/.pad", "t/sub/d.bin"]) {
      assert.equal(await exists(`${dir}/new/folder/${path}`), false, path);
    }
    assert.equal(storage.root, `${dir}/new/folder`);
    assert.equal(storage.pathOf(3), null);
    assert.equal(await storage.fileStat(3), null);
    assert.equal(await storage.fileStat(0), null);
    assert.equal((await storage.fileStat(4))?.size, 0);
  });
});

Deno.test("FileStorage does not truncate existing files at open or on write", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent([{ path: "one.bin", length: 32 }], 16);
    await Deno.writeFile(`${dir}/one.bin`, t.payload);
    await using storage = await FileStorage.open(dir, t.meta);
    await storage.write(1, 0, pieceData(t, 1));
    assert.deepEqual(await storage.read(0, 0, 16), pieceData(t, 0));
    assert.deepEqual(await Deno.readFile(`${dir}/one.bin`), t.payload);
  });
});

Deno.test("FileStorage refuses hostile paths with StorageError and creates nothing outside the folder", async () => {
  await withTempDir(async (dir) => {
    for (const safePath of ["../x", "a/../../x", "/etc/x", "a//b", "./x", "..", "a\\..\\..\\x", ""]) {
      const t = makeTorrent([{ path: "ok.bin", length: 4 }, { path: "placeholder", length: 0 }], 16);
      const files = [t.meta.files[0]!, { ...t.meta.files[1]!, safePath }];
      await assert.rejects(FileStorage.open(`${dir}/root`, { ...t.meta, files }), StorageError, safePath);
    }
    assert.equal(await exists(`${dir}/x`), false);
    assert.equal(await exists(`${dir}/root`), false, "nothing is created before the paths are checked");
  });
});

Deno.test("FileStorage refuses two files with the same path or a file used as a folder", async () => {
  await withTempDir(async (dir) => {
    const same = makeTorrent([{ path: "t/a", length: 4 }, { path: "t/a", length: 4 }], 16);
    await rejectsWith(FileStorage.open(dir, same.meta), StorageError, /same path/);
    const nested = makeTorrent([{ path: "t/a", length: 4 }, { path: "t/a/b", length: 4 }], 16);
    await rejectsWith(FileStorage.open(dir, nested.meta), StorageError, /as a file/);
    const reversed = makeTorrent([{ path: "t/a/b", length: 4 }, { path: "t/a", length: 4 }], 16);
    await rejectsWith(FileStorage.open(dir, reversed.meta), StorageError, /same path/);
  });
});

Deno.test("FileStorage keeps at most maxOpenFiles handles open (LRU of 2 over 5 files)", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  await withTempDir(async (dir) => {
    const specs = [0, 1, 2, 3, 4].map((i) => ({ path: `five/f${i}.bin`, length: 10 }));
    const t = makeTorrent(specs, 8);
    const storage = await FileStorage.open(dir, t.meta, { maxOpenFiles: 2 });
    try {
      for (let piece = t.meta.pieceCount - 1; piece >= 0; piece--) {
        await storage.write(piece, 0, pieceData(t, piece));
        assert.ok(storage.openHandleCount <= 2, `${storage.openHandleCount} handles open`);
        // Evicted handles are synced and closed in the background; flush() waits for them.
        await storage.flush();
        assert.ok(await openFdsUnder(dir) <= 2);
      }
      // Many reads at once over every file: handles in use are never closed under a reader.
      const reads = await Promise.all(
        Array.from(
          { length: 3 },
          () =>
            Array.from({ length: t.meta.pieceCount }, (_, p) => storage.read(p, 0, pieceLengthOf(t.meta, p))),
        ).flat(),
      );
      reads.forEach((data, i) => assert.deepEqual(data, pieceData(t, i % t.meta.pieceCount)));
      assert.ok(
        storage.openHandleCount <= 2,
        `${storage.openHandleCount} handles open after concurrent reads`,
      );
      await storage.flush();
      assert.ok(await openFdsUnder(dir) <= 2);
      // Handles evicted while written were synced and closed; the data is all there.
      for (const file of t.meta.files) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/${file.safePath}`),
          t.payload.subarray(file.offset, file.offset + file.length),
        );
      }
    } finally {
      await storage.close();
    }
    assert.equal(await openFdsUnder(dir), 0, "close() releases every handle");
  });
});

Deno.test("FileStorage.read() throws MissingDataError for absent and short files", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent([{ path: "m/a", length: 16 }, { path: "m/b", length: 16 }], 16);
    await using storage = await FileStorage.open(dir, t.meta);
    await assert.rejects(storage.read(0, 0, 16), (e) => {
      assert.ok(e instanceof MissingDataError);
      assert.equal(e.absent, true);
      assert.equal(e.fileIndex, 0);
      assert.match(e.message, /not on disk/);
      return true;
    });
    await Deno.mkdir(`${dir}/m`, { recursive: true });
    await Deno.writeFile(`${dir}/m/b`, pieceData(t, 1).subarray(0, 10));
    await assert.rejects(storage.read(1, 0, 16), (e) => {
      assert.ok(e instanceof MissingDataError);
      assert.equal(e.absent, false);
      assert.equal(e.fileIndex, 1);
      return true;
    });
    assert.deepEqual(await storage.read(1, 0, 10), pieceData(t, 1).subarray(0, 10));
  });
});

Deno.test("FileStorage refuses a file that is a symbolic link to a device outside the folder", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent([{ path: "full.bin", length: 16 }], 16);
    // This once was how the tests got a real ENOSPC (writing to /dev/full always fails so); a
    // link planted in the folder is now never written through (ENOSPC: see toStorageError).
    await Deno.symlink("/dev/full", `${dir}/full.bin`);
    await assert.rejects(FileStorage.open(dir, t.meta), (e) => {
      assert.ok(e instanceof StorageError);
      assert.match(
        e.message,
        new RegExp(`^Refusing to use ${dir}/full\\.bin: it is a symbolic link to /dev/full`),
      );
      return true;
    });
  });
});

Deno.test("FileStorage names the missing Deno permission, and seeds existing data without write permission", async () => {
  await withTempDir(async (dir) => {
    const root = `${dir}/downloads`;
    await Deno.mkdir(root);
    await Deno.writeFile(`${root}/a.bin`, new Uint8Array([1, 2, 3, 4]));
    const script = `${dir}/probe.ts`;
    const module = new URL("../../lib/storage/file_storage.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { FileStorage } from ${JSON.stringify(module)};
const file = { path: ["a.bin"], safePath: "a.bin", length: 4, offset: 0, pad: false };
const meta = { infoHash: new Uint8Array(20), infoHashHex: "00".repeat(20), infoBytes: new Uint8Array(),
  name: "a.bin", pieceLength: 16, pieceCount: 1, pieceHashes: new Uint8Array(20), totalLength: 4,
  files: [file], multiFile: false, announceList: [], urlList: [], private: false, hybrid: false };
const result = {};
try {
  const storage = await FileStorage.open(${JSON.stringify(root)}, meta);
  result.read = Array.from(await storage.read(0, 0, 4));
  await storage.write(0, 0, new Uint8Array(4));
  result.wrote = true;
} catch (e) {
  result.name = e.name;
  result.message = e.message;
}
console.log(JSON.stringify(result));
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-lock", "--allow-read", script],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const result = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      read?: number[];
      wrote?: boolean;
      name?: string;
      message?: string;
    };
    assert.deepEqual(result.read, [1, 2, 3, 4], "existing data is readable with --allow-read alone");
    assert.equal(result.wrote, undefined);
    assert.equal(result.name, "StorageError");
    assert.ok(
      result.message?.startsWith(`Permission denied: run with --allow-write=${root}`),
      result.message,
    );
    assert.deepEqual(await Deno.readFile(`${root}/a.bin`), new Uint8Array([1, 2, 3, 4]));
  });
});

Deno.test("FileStorage rejects out-of-range calls and calls after close", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent(LAYOUT, 16);
    const storage = await FileStorage.open(dir, t.meta);
    await assert.rejects(storage.write(4, 0, new Uint8Array(1)), StorageError);
    await assert.rejects(storage.write(3, 0, new Uint8Array(8)), StorageError);
    await assert.rejects(storage.read(0, 10, 7), StorageError);
    await storage.write(0, 0, pieceData(t, 0));
    await storage.close();
    await storage.close();
    await rejectsWith(storage.read(0, 0, 16), StorageError, /closed/);
    await rejectsWith(storage.write(0, 0, pieceData(t, 0)), StorageError, /closed/);
    assert.deepEqual(await Deno.readFile(`${dir}/t/a.bin`), t.payload.subarray(0, 5));
  });
});

Deno.test("FileStorage.close() waits for writes in flight", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent([{ path: "big.bin", length: 64 * 1024 * 4 }], 64 * 1024);
    const storage = await FileStorage.open(dir, t.meta);
    const writes = [0, 1, 2, 3].map((p) => storage.write(p, 0, pieceData(t, p)));
    await storage.close();
    await Promise.all(writes);
    assert.deepEqual(await Deno.readFile(`${dir}/big.bin`), t.payload);
  });
});

// ---------------------------------------------------------------------------------------------
// Errors, CheckedStorage and fault injection

Deno.test("toStorageError() gives clear messages for common errno codes", () => {
  const raw = (code: string) => Object.assign(new Error(`raw ${code}`), { code });
  const target = "/d/x.bin";
  assert.equal(
    toStorageError(raw("ENOSPC"), { action: "write", target }).message,
    "No space left on device while writing /d/x.bin",
  );
  assert.match(
    toStorageError(raw("EACCES"), { action: "create", target }).message,
    /^Access denied while creating/,
  );
  assert.match(toStorageError(raw("EROFS"), { action: "write", target }).message, /^Read-only file system/);
  assert.match(toStorageError(raw("EMFILE"), { action: "read", target }).message, /maxOpenFiles/);
  assert.match(
    toStorageError(raw("EWHATEVER"), { action: "read", target }).message,
    /^Failed reading \/d\/x.bin: raw/,
  );
  const denied = new Deno.errors.NotCapable(
    'Requires write access to "/d/x.bin", run again with the --allow-write flag',
  );
  assert.equal(
    toStorageError(denied, { action: "write", target, root: "/d" }).message,
    "Permission denied: run with --allow-write=/d (needed for writing /d/x.bin)",
  );
  const already = new StorageError("Already wrapped");
  assert.equal(toStorageError(already, { action: "read", target }), already);
});

Deno.test("FaultyStorage's raw ENOSPC and EIO reach callers as StorageError", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent(LAYOUT, 16);
    const faulty = new FaultyStorage(await FileStorage.open(dir, t.meta));
    await using storage = new CheckedStorage(faulty, t.meta);
    faulty.spaceLeft = 20;
    await storage.write(0, 0, pieceData(t, 0));
    await assert.rejects(storage.write(1, 0, pieceData(t, 1)), (e) => {
      assert.ok(e instanceof StorageError);
      assert.equal(e.message, "No space left on device while writing piece 1");
      assert.equal((e.cause as { code?: string }).code, "ENOSPC");
      return true;
    });
    faulty.badPieces.add(0);
    await assert.rejects(storage.read(0, 0, 16), (e) => {
      assert.ok(e instanceof StorageError);
      assert.match(e.message, /^Input\/output error while reading piece 0/);
      return true;
    });
    // verifyPieces() treats missing data as "not had" but lets real read failures through.
    await assert.rejects(verifyPieces(faulty, t.meta, [0, 1]), StorageError);
    faulty.badPieces.clear();
    assert.deepEqual(await verifyPieces(faulty, t.meta, [0, 1, 2, 3]), new Set([0]));
  });
});

Deno.test("CheckedStorage rejects bad ranges before they reach the backend", async () => {
  const t = makeTorrent(LAYOUT, 16);
  let calls = 0;
  const backend: StorageBackend = {
    read: (_p, _b, length) => (calls++, Promise.resolve(new Uint8Array(length))),
    write: () => (calls++, Promise.resolve()),
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const storage = new CheckedStorage(backend, t.meta);
  await rejectsWith(storage.read(9, 0, 1), StorageError, /no such piece/);
  await rejectsWith(storage.read(3, 0, 8), StorageError, /exceeds/);
  await assert.rejects(storage.write(0, 15, new Uint8Array(2)), StorageError);
  assert.equal(calls, 0);
  assert.equal((await storage.read(3, 0, 7)).length, 7);
  await storage.close();
  await rejectsWith(storage.write(0, 0, new Uint8Array(1)), StorageError, /closed/);
  const short: StorageBackend = { ...backend, read: () => Promise.resolve(new Uint8Array(1)) };
  await rejectsWith(new CheckedStorage(short, t.meta).read(0, 0, 16), StorageError, /returned 1 bytes/);
});

// ---------------------------------------------------------------------------------------------
// verify

Deno.test("sha1() and pieceHashMatches() check data against the torrent", () => {
  const t = makeTorrent(LAYOUT, 16);
  assert.equal(
    Array.from(sha1(new TextEncoder().encode("abc")), (b) => b.toString(16).padStart(2, "0")).join(""),
    "a9993e364706816aba3e25717850c26c9cd0d89d",
  );
  assert.equal(pieceHashMatches(t.meta, 1, pieceData(t, 1)), true);
  assert.equal(pieceHashMatches(t.meta, 2, pieceData(t, 1)), false);
  assert.equal(pieceHashMatches(t.meta, 3, pieceData(t, 3).subarray(1)), false);
  const bad = pieceData(t, 1).slice();
  bad[5]! ^= 1;
  assert.equal(pieceHashMatches(t.meta, 1, bad), false);
});

Deno.test("verifyPieces() finds good pieces, reports progress and skips absent files after one miss", async () => {
  await withTempDir(async (dir) => {
    // 4 files of 3 pieces each; file 1 never written, file 2 has a corrupt piece.
    const specs = [0, 1, 2, 3].map((i) => ({ path: `v/f${i}`, length: 48 }));
    const t = makeTorrent(specs, 16);
    await using storage = await FileStorage.open(dir, t.meta);
    for (const piece of [0, 1, 2, 6, 7, 8, 9, 10, 11]) await storage.write(piece, 0, pieceData(t, piece));
    const bad = pieceData(t, 7).slice();
    bad[0]! ^= 0xff;
    await storage.write(7, 0, bad);
    const counting = new CountingStorage(storage);
    const progress: [number, number][] = [];
    const good = await verifyPieces(counting, t.meta, Array.from({ length: 12 }, (_, i) => i), {
      onProgress: (checked, total) => progress.push([checked, total]),
    });
    assert.deepEqual([...good].sort((a, b) => a - b), [0, 1, 2, 6, 8, 9, 10, 11]);
    assert.deepEqual(counting.reads.filter((p) => p >= 3 && p <= 5), [3], "pieces 4 and 5 are skipped");
    assert.deepEqual(progress[progress.length - 1], [12, 12]);
    assert.ok(progress.every(([c], i) => i === 0 || c > progress[i - 1]![0]));
  });
});

Deno.test("verifyPieces() stops when its signal is aborted", async () => {
  await withTempDir(async (dir) => {
    const t = makeTorrent([{ path: "s.bin", length: 160 }], 16);
    await using storage = await FileStorage.open(dir, t.meta);
    for (let p = 0; p < 10; p++) await storage.write(p, 0, pieceData(t, p));
    const controller = new AbortController();
    const counting = new CountingStorage(storage);
    await assert.rejects(
      verifyPieces(counting, t.meta, Array.from({ length: 10 }, (_, i) => i), {
        signal: controller.signal,
        onProgress: (checked) => checked === 2 && controller.abort(new Error("stop")),
      }),
      /stop/,
    );
    // Piece 2 was already being read ahead when piece 1's progress aborted; nothing after it.
    assert.deepEqual(counting.reads, [0, 1, 2]);
  });
});
