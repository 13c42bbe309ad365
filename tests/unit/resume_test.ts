import assert from "node:assert/strict";
import { StorageError } from "../../lib/errors.ts";
import { FileStorage } from "../../lib/storage/file_storage.ts";
import {
  captureResume,
  decodeResume,
  encodeResume,
  readResume,
  restoreProgress,
  type ResumeData,
  writeResumeAtomic,
} from "../../lib/storage/resume.ts";
import type { FileStat, StorageWithStat } from "../../lib/storage/storage.ts";
import { type FileSpec, makeTorrent, pieceData, type TestTorrent } from "../_test_torrent.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function sorted(set: Iterable<number>): number[] {
  return [...set].sort((a, b) => a - b);
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_resume_test_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Counts reads per piece, passing everything else through. */
class CountingStorage implements StorageWithStat {
  #inner: StorageWithStat;
  readonly reads: number[] = [];

  constructor(inner: StorageWithStat) {
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

  fileStat(fileIndex: number): Promise<FileStat | null> {
    return this.#inner.fileStat(fileIndex);
  }
}

// Three files of 3, 2 and 3 pieces (pieceLength 16), then a pad file, a zero-byte file and a
// short tail file: pieces 0-2 in a, 3-4 in b, 5-7 in c; piece 8 = pad (6 bytes) + d's first 10
// bytes; piece 9 = d's last 3 bytes (short last piece).
const SPECS: FileSpec[] = [
  { path: "r/a.bin", length: 48 },
  { path: "r/b.bin", length: 32 },
  { path: "r/sub/c.bin", length: 48 },
  { path: "r/.pad/6", length: 6, pad: true },
  { path: "r/empty", length: 0 },
  { path: "r/d.bin", length: 13 },
];
const ALL = Array.from({ length: 10 }, (_, i) => i);

/** Opens storage, writes the given pieces, and returns both. */
async function prepare(dir: string, pieces: number[]): Promise<{ t: TestTorrent; storage: FileStorage }> {
  const t = makeTorrent(SPECS, 16);
  assert.equal(t.meta.pieceCount, 10);
  const storage = await FileStorage.open(dir, t.meta);
  for (const piece of pieces) await storage.write(piece, 0, pieceData(t, piece));
  return { t, storage };
}

/** Moves a file's mtime a few seconds away, so the change is seen whatever the clock's granularity. */
async function touchLater(path: string): Promise<void> {
  const info = await Deno.stat(path);
  const later = new Date((info.mtime?.getTime() ?? 0) + 5_000);
  await Deno.utime(path, later, later);
}

// ---------------------------------------------------------------------------------------------
// Encoding

Deno.test("encodeResume() and decodeResume() round-trip", () => {
  const { meta } = makeTorrent(SPECS, 16);
  const data: ResumeData = {
    version: 1,
    infoHash: meta.infoHashHex,
    pieceCount: 10,
    have: new Uint8Array([0b1010_0001, 0b0100_0000]),
    files: [
      { size: 48, mtimeMs: 1_700_000_000_123 },
      { size: -1, mtimeMs: 0 },
      { size: 20, mtimeMs: 1_700_000_000_000.5 },
      { size: -1, mtimeMs: 0 },
      { size: 0, mtimeMs: 1 },
      { size: 13, mtimeMs: 2 },
    ],
    savedAt: 1_700_000_001_000,
  };
  const bytes = encodeResume(data);
  assert.deepEqual(decodeResume(bytes, meta), data);
  assert.deepEqual(encodeResume(decodeResume(bytes, meta)), bytes);
});

Deno.test("decodeResume() rejects damaged data with StorageError", () => {
  const { meta } = makeTorrent(SPECS, 16);
  const data: ResumeData = {
    version: 1,
    infoHash: meta.infoHashHex,
    pieceCount: 10,
    have: new Uint8Array([0xff, 0xc0]),
    files: meta.files.map(() => ({ size: -1, mtimeMs: 0 })),
    savedAt: 1,
  };
  const bytes = encodeResume(data);
  // Every single-byte flip is caught: by the bencode parser or by the checksum.
  for (let i = 0; i < bytes.length; i++) {
    const damaged = bytes.slice();
    damaged[i]! ^= 0x01;
    assert.throws(() => decodeResume(damaged, meta), StorageError, `flip at byte ${i}`);
  }
  for (const end of [0, 1, bytes.length >> 1, bytes.length - 1]) {
    assert.throws(() => decodeResume(bytes.subarray(0, end), meta), StorageError);
  }
  assert.throws(() => decodeResume(new TextEncoder().encode("not bencode at all"), meta), StorageError);
  assert.throws(() => decodeResume(new TextEncoder().encode("le"), meta), StorageError);
  // Well-formed and checksummed, but inconsistent with the torrent.
  assert.throws(
    () => decodeResume(encodeResume({ ...data, have: new Uint8Array([0xff, 0xe0]) }), meta),
    StorageError,
  );
  assert.throws(() => decodeResume(encodeResume({ ...data, have: new Uint8Array(1) }), meta), StorageError);
  assert.throws(() => decodeResume(encodeResume({ ...data, pieceCount: 9 }), meta), StorageError);
  assert.throws(
    () => decodeResume(encodeResume({ ...data, files: data.files.slice(1) }), meta),
    StorageError,
  );
});

Deno.test("decodeResume() refuses another torrent's resume data", () => {
  const { meta } = makeTorrent(SPECS, 16);
  const other = makeTorrent(SPECS, 16, 2).meta;
  const data: ResumeData = {
    version: 1,
    infoHash: other.infoHashHex,
    pieceCount: 10,
    have: new Uint8Array(2),
    files: meta.files.map(() => ({ size: -1, mtimeMs: 0 })),
    savedAt: 1,
  };
  assert.throws(() => decodeResume(encodeResume(data), meta), (e) => {
    assert.ok(e instanceof StorageError);
    assert.match(e.message, /^Resume data belongs to another torrent/);
    return true;
  });
  assert.doesNotThrow(() => decodeResume(encodeResume(data), other));
});

// ---------------------------------------------------------------------------------------------
// Files

Deno.test("writeResumeAtomic() replaces the file and leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent(SPECS, 16);
    const path = `${dir}/x.resume`;
    const first: ResumeData = {
      version: 1,
      infoHash: meta.infoHashHex,
      pieceCount: 10,
      have: new Uint8Array([0x80, 0]),
      files: meta.files.map(() => ({ size: -1, mtimeMs: 0 })),
      savedAt: 1,
    };
    const result = await writeResumeAtomic(path, first);
    assert.equal(result.folderSynced, true);
    assert.deepEqual(await listDir(dir), ["x.resume"]);
    const second = { ...first, have: new Uint8Array([0xff, 0xc0]), savedAt: 2 };
    await writeResumeAtomic(path, second);
    assert.deepEqual(await listDir(dir), ["x.resume"]);
    assert.deepEqual(await readResume(path, meta), second);
  });
});

Deno.test("writeResumeAtomic() removes its temporary file when the rename fails", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent(SPECS, 16);
    // A folder sits where the file should go: the rename fails after the temp file was written.
    await Deno.mkdir(`${dir}/x.resume/inside`, { recursive: true });
    const data: ResumeData = {
      version: 1,
      infoHash: meta.infoHashHex,
      pieceCount: 10,
      have: new Uint8Array(2),
      files: meta.files.map(() => ({ size: -1, mtimeMs: 0 })),
      savedAt: 1,
    };
    await assert.rejects(writeResumeAtomic(`${dir}/x.resume`, data), StorageError);
    assert.deepEqual(await listDir(dir), ["x.resume"]);
    await assert.rejects(writeResumeAtomic(`${dir}/missing/x.resume`, data), StorageError);
  });
});

Deno.test("readResume() returns null for a missing file and reports a corrupt one", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent(SPECS, 16);
    const problems: StorageError[] = [];
    const onProblem = (problem: StorageError) => problems.push(problem);
    assert.equal(await readResume(`${dir}/none.resume`, meta, { onProblem }), null);
    assert.equal(problems.length, 0);
    await Deno.writeTextFile(`${dir}/bad.resume`, "d7:versioni1e");
    assert.equal(await readResume(`${dir}/bad.resume`, meta, { onProblem }), null);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /^Invalid resume data/);
    await Deno.writeFile(`${dir}/huge.resume`, new Uint8Array(1 << 20));
    assert.equal(await readResume(`${dir}/huge.resume`, meta, { onProblem }), null);
    assert.equal(problems.length, 2);
    assert.equal(await readResume(`${dir}/bad.resume`, meta), null, "no callback: still no throw");
  });
});

// ---------------------------------------------------------------------------------------------
// restoreProgress

Deno.test("restoreProgress() without resume data verifies every piece whose files exist", async () => {
  await withTempDir(async (dir) => {
    // Nothing of b.bin (pieces 3-4) on disk; piece 6 corrupted.
    const { t, storage } = await prepare(dir, [0, 1, 2, 5, 6, 7, 8, 9]);
    const bad = pieceData(t, 6).slice();
    bad[3]! ^= 0x40;
    await storage.write(6, 0, bad);
    const counting = new CountingStorage(storage);
    const result = await restoreProgress(counting, t.meta, null);
    assert.deepEqual(sorted(result.have), [0, 1, 2, 5, 7, 8, 9]);
    assert.equal(result.usedResume, false);
    assert.equal(result.trusted, 0);
    assert.equal(result.skipped, 2, "pieces of the absent file are known missing without reading");
    assert.equal(result.rechecked, 8);
    assert.deepEqual(sorted(counting.reads), [0, 1, 2, 5, 6, 7, 8, 9]);
    await storage.close();
  });
});

Deno.test("restoreProgress() trusts unchanged files without reading anything", async () => {
  await withTempDir(async (dir) => {
    const { t, storage } = await prepare(dir, [0, 1, 3, 4, 5, 6, 7, 8, 9]);
    const resume = await captureResume(storage, t.meta, [0, 1, 3, 4, 5, 6, 7, 8, 9]);
    await storage.close();
    await writeResumeAtomic(`${dir}/t.resume`, resume);

    const reopened = await FileStorage.open(dir, t.meta);
    const counting = new CountingStorage(reopened);
    const saved = await readResume(`${dir}/t.resume`, t.meta);
    assert.ok(saved !== null);
    const result = await restoreProgress(counting, t.meta, saved);
    assert.deepEqual(counting.reads, [], "no piece is read");
    assert.deepEqual(sorted(result.have), [0, 1, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(result.usedResume, true);
    assert.equal(result.trusted, 9);
    assert.equal(result.skipped, 1, "piece 2 lies past the end of a.bin");
    assert.equal(result.rechecked, 0);
    await reopened.close();
  });
});

Deno.test("restoreProgress() re-verifies every piece of a file modified after the save", async () => {
  await withTempDir(async (dir) => {
    // Piece 2 is on disk but was not recorded as had; c.bin (pieces 5-7) is complete.
    const { t, storage } = await prepare(dir, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const resume = await captureResume(storage, t.meta, [0, 1, 3, 4, 5, 6, 7, 8, 9]);
    await storage.close();

    // Corrupt piece 6 (inside c.bin) behind our back, and touch a.bin without changing it.
    const c = `${dir}/r/sub/c.bin`;
    const bytes = await Deno.readFile(c);
    bytes[20]! ^= 0xff;
    await Deno.writeFile(c, bytes);
    await touchLater(c);
    await touchLater(`${dir}/r/a.bin`);

    const reopened = await FileStorage.open(dir, t.meta);
    const counting = new CountingStorage(reopened);
    const result = await restoreProgress(counting, t.meta, resume);
    assert.deepEqual(sorted(counting.reads), [0, 1, 2, 5, 6, 7], "only pieces of a.bin and c.bin are read");
    assert.deepEqual(sorted(result.have), [0, 1, 2, 3, 4, 5, 7, 8, 9], "piece 6 is lost, piece 2 is found");
    assert.equal(result.rechecked, 6);
    assert.equal(result.trusted, 4);
    await reopened.close();
  });
});

Deno.test("restoreProgress() treats pieces beyond a truncated file as missing", async () => {
  await withTempDir(async (dir) => {
    const { t, storage } = await prepare(dir, ALL);
    const resume = await captureResume(storage, t.meta, ALL);
    await storage.close();
    // c.bin (48 bytes, pieces 5-7) cut to 20 bytes: piece 5 is intact, 6 is short, 7 is gone.
    await Deno.truncate(`${dir}/r/sub/c.bin`, 20);
    await touchLater(`${dir}/r/sub/c.bin`);
    // d.bin removed entirely: pieces 8 and 9 are missing.
    await Deno.remove(`${dir}/r/d.bin`);

    const reopened = await FileStorage.open(dir, t.meta);
    const counting = new CountingStorage(reopened);
    const result = await restoreProgress(counting, t.meta, resume);
    assert.deepEqual(sorted(result.have), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(counting.reads, [5], "pieces that cannot fit are not even read");
    assert.equal(result.skipped, 4);
    assert.equal(result.rechecked, 1);
    assert.equal(result.trusted, 5);
    await reopened.close();
  });
});

Deno.test("restoreProgress() ignores resume data that does not fit the torrent", async () => {
  await withTempDir(async (dir) => {
    const { t, storage } = await prepare(dir, [0, 1]);
    const resume = await captureResume(storage, t.meta, [0, 1]);
    const counting = new CountingStorage(storage);
    const result = await restoreProgress(counting, t.meta, { ...resume, infoHash: "00".repeat(20) });
    assert.equal(result.usedResume, false);
    assert.deepEqual(sorted(result.have), [0, 1]);
    assert.ok(counting.reads.length > 0);
    await storage.close();
  });
});

Deno.test("captureResume() records file sizes, absent files and the have bitfield", async () => {
  await withTempDir(async (dir) => {
    const { t, storage } = await prepare(dir, [0, 9]);
    const resume = await captureResume(storage, t.meta, [0, 9]);
    assert.equal(resume.infoHash, t.meta.infoHashHex);
    assert.deepEqual(resume.have, new Uint8Array([0x80, 0x40]));
    assert.deepEqual(resume.files.map((f) => f.size), [16, -1, -1, -1, 0, 13]);
    assert.ok(resume.files[0]!.mtimeMs > 0);
    await assert.rejects(captureResume(storage, t.meta, [10]), RangeError);
    await storage.close();
  });
});
