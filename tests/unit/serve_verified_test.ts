import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../../lib/create.ts";
import { PieceUnavailableError } from "../../lib/errors.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { MAX_BAD_REQUESTS } from "../../lib/peer/connection.ts";
import { FileStorage } from "../../lib/storage/file_storage.ts";
import { type PieceLoss, piecesPastFileEnd, VerifiedPieceReader } from "../../lib/storage/verified_reader.ts";
import type { Torrent, TorrentEventMap } from "../../lib/torrent.ts";
import type { LogRecord, Metainfo } from "../../lib/types.ts";
import { reservedBits } from "../../lib/wire/handshake.ts";
import type { Message } from "../../lib/wire/messages.ts";
import { Session } from "../../mod.ts";
import { FakeConnection, sleep, withDeadline } from "../_fake_peer.ts";
import { makeTorrent } from "../_test_torrent.ts";

// A seed must never send bytes that changed on disk after its start-up check: every piece read
// from disk is hashed before a block of it is served. A changed, shrunk or vanished piece is
// refused (reject_request with Fast, silently skipped without), logged with its file and piece,
// marked missing and downloaded again; the peer that asked for it keeps its connection.

const KIB = 1024;
const BLOCK = 16 * KIB;

// ---------------------------------------------------------------------------------------------
// The reader on its own

async function withStorage(
  specs: { path: string; length: number }[],
  pieceLength: number,
  run: (ctx: { dir: string; meta: Metainfo; payload: Uint8Array; storage: FileStorage }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_verified_read_" });
  try {
    const { meta, payload } = makeTorrent(specs, pieceLength, 7);
    for (const file of meta.files) {
      await Deno.mkdir(join(dir, file.safePath, ".."), { recursive: true });
      await Deno.writeFile(
        join(dir, file.safePath),
        payload.subarray(file.offset, file.offset + file.length),
      );
    }
    const storage = await FileStorage.open(dir, meta);
    try {
      await run({ dir, meta, payload, storage });
    } finally {
      await storage.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Overwrites bytes of a file in place. */
async function patchFile(path: string, at: number, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true });
  try {
    await file.seek(at, Deno.SeekMode.Start);
    let done = 0;
    while (done < bytes.length) done += await file.write(bytes.subarray(done));
  } finally {
    file.close();
  }
}

Deno.test("an unchanged piece is served, hashed once, then served from the cache", async () => {
  await withStorage([{ path: "a.bin", length: 100 * KIB }], 32 * KIB, async ({ meta, payload, storage }) => {
    const lost: PieceLoss[] = [];
    const reader = new VerifiedPieceReader(storage, meta, { onLost: (l) => lost.push(l) });
    const first = await reader.read(1);
    assert.deepEqual(first, payload.subarray(32 * KIB, 64 * KIB));
    const again = await reader.read(1);
    assert.equal(again, first, "the cached piece is returned");
    assert.equal(reader.hashed, 1, "a piece held in the cache is not hashed again");
    assert.deepEqual(lost, []);
  });
});

Deno.test("a piece whose bytes changed on disk is refused and reported with its file and piece", async () => {
  await withStorage(
    [{ path: "t/a.bin", length: 40 * KIB }, { path: "t/b.bin", length: 60 * KIB }],
    32 * KIB,
    async ({ dir, meta, payload, storage }) => {
      const lost: PieceLoss[] = [];
      const reader = new VerifiedPieceReader(storage, meta, { onLost: (l) => lost.push(l) });
      // Piece 1 covers a.bin's last 8 KiB and b.bin's first 24 KiB; change one byte of b.bin.
      const b = meta.files[1]!;
      await patchFile(join(dir, "t/b.bin"), 5, new Uint8Array([payload[b.offset + 5]! ^ 0xff]));
      const error = await reader.read(1).then(() => null, (e: unknown) => e);
      assert(error instanceof PieceUnavailableError, `expected PieceUnavailableError, got ${error}`);
      assert.equal(error.code, "PIECE_UNAVAILABLE");
      assert.equal(error.piece, 1);
      assert.equal(lost.length, 1);
      assert.deepEqual(lost[0]!.pieces, [1]);
      assert.equal(lost[0]!.kind, "changed");
      assert.deepEqual(lost[0]!.files, [0, 1]);
      assert.match(lost[0]!.message, /Piece 1 changed on disk \(in t\/a\.bin, t\/b\.bin\)/);
      // Not cached as good: asking again reads and hashes again, and refuses again.
      await assert.rejects(reader.read(1), PieceUnavailableError);
      assert.equal(reader.hashed, 2);
      // The other pieces are still served.
      assert.deepEqual(await reader.read(0), payload.subarray(0, 32 * KIB));
      assert.deepEqual(await reader.read(3), payload.subarray(96 * KIB));
    },
  );
});

Deno.test("a file that shrank: the pieces past its new end are reported at once, the others still served", async () => {
  await withStorage(
    [{ path: "t/a.bin", length: 64 * KIB }, { path: "t/b.bin", length: 100 * KIB }],
    16 * KIB,
    async ({ dir, meta, payload, storage }) => {
      const lost: PieceLoss[] = [];
      const reader = new VerifiedPieceReader(storage, meta, { onLost: (l) => lost.push(l) });
      // b.bin (pieces 4..10) keeps its first 40 KiB: pieces 4 and 5 stay whole, 6 (up to 48 KiB) is cut.
      await Deno.truncate(join(dir, "t/b.bin"), 40 * KIB);
      await assert.rejects(reader.read(8), PieceUnavailableError);
      await withDeadline(
        (async () => {
          while (lost.length < 2) await sleep(5);
        })(),
        2000,
        "the size check of the shrunk file",
      );
      assert.deepEqual(lost[0]!.pieces, [8]);
      assert.equal(lost[0]!.kind, "missing");
      assert.match(lost[0]!.message, /Piece 8 is no longer on disk: .*b\.bin/);
      assert.deepEqual(lost[1]!.pieces, [6, 7, 8, 9, 10]);
      assert.deepEqual(lost[1]!.files, [1]);
      assert.match(lost[1]!.message, /t\/b\.bin shrank to 40960 bytes .*pieces 6-10/);
      assert.deepEqual(await reader.read(5), payload.subarray(80 * KIB, 96 * KIB));
      assert.deepEqual(await reader.read(0), payload.subarray(0, 16 * KIB));
    },
  );
});

Deno.test("piecesPastFileEnd lists the pieces a shrunk or vanished file no longer holds", () => {
  const { meta } = makeTorrent([{ path: "t/a", length: 100 }, { path: "t/b", length: 50 }], 32);
  assert.deepEqual(piecesPastFileEnd(meta, 0, 40), [1, 2, 3]);
  assert.deepEqual(piecesPastFileEnd(meta, 0, 100), []);
  assert.deepEqual(piecesPastFileEnd(meta, 0, 96), [3]); // piece 3 needs a's bytes 96..99
  assert.deepEqual(piecesPastFileEnd(meta, 1, null), [3, 4]);
  assert.deepEqual(piecesPastFileEnd(meta, 1, 28), [4]); // piece 3 needs b's first 28 bytes
});

// ---------------------------------------------------------------------------------------------
// A seeding session and a scripted peer

/** A temp folder with a two-file payload, its torrent, and a Session seeding it. */
class Seed implements AsyncDisposable {
  readonly logs: LogRecord[] = [];
  readonly gone: TorrentEventMap["peer-disconnected"][] = [];
  readonly lostEvents: TorrentEventMap["piece-lost"][] = [];
  session!: Session;
  torrent!: Torrent;

  private constructor(
    readonly dir: string,
    readonly meta: Metainfo,
    readonly payload: Uint8Array,
    readonly torrentBytes: Uint8Array,
  ) {}

  /** Two files, a.bin (`aLength`) and b.bin (`bLength`), in folder "t" under `<dir>/seed`. */
  static async create(options: { pieceLength: number; aLength: number; bLength: number }): Promise<Seed> {
    const dir = await Deno.makeTempDir({ prefix: "shoal_serve_verified_" });
    try {
      const total = options.aLength + options.bLength;
      const payload = new Uint8Array(total);
      let x = 0x1234567;
      for (let i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        payload[i] = x & 0xff;
      }
      await writePayload(join(dir, "seed"), payload, options.aLength);
      const created = await createTorrent(join(dir, "seed", "t"), {
        pieceLength: options.pieceLength,
        creationDate: null,
      });
      const seed = new Seed(dir, parseMetainfo(created.torrent), payload, created.torrent);
      await seed.start(join(dir, "seed"));
      return seed;
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
  }

  async start(downloadDir: string): Promise<void> {
    this.session = new Session({
      downloadDir,
      bind: "127.0.0.1",
      lsd: false,
      logSinks: [(r) => void this.logs.push(r)],
    });
    this.torrent = await this.session.add(this.meta);
    this.torrent.addEventListener("peer-disconnected", (e) => {
      this.gone.push(e.detail);
    });
    this.torrent.addEventListener("piece-lost", (e) => {
      this.lostEvents.push(e.detail);
    });
  }

  path(name: "a.bin" | "b.bin"): string {
    return join(this.dir, "seed", "t", name);
  }

  /** Changes one byte of the payload on disk, at a byte offset of the torrent's stream. */
  async corrupt(at: number): Promise<void> {
    const a = this.meta.files[0]!;
    const [name, offset] = at < a.length ? ["a.bin", at] as const : ["b.bin", at - a.length] as const;
    await patchFile(this.path(name), offset, new Uint8Array([this.payload[at]! ^ 0x5a]));
  }

  block(piece: number, begin: number, length: number): Uint8Array {
    const at = piece * this.meta.pieceLength + begin;
    return this.payload.subarray(at, at + length);
  }

  warnings(pattern: RegExp): LogRecord[] {
    return this.logs.filter((r) => r.level === "warn" && pattern.test(r.message));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

async function writePayload(root: string, payload: Uint8Array, aLength: number): Promise<void> {
  await Deno.mkdir(join(root, "t"), { recursive: true });
  await Deno.writeFile(join(root, "t", "a.bin"), payload.subarray(0, aLength));
  await Deno.writeFile(join(root, "t", "b.bin"), payload.subarray(aLength));
}

/** Dials the seed, handshakes, reads its availability, says interested, waits for the unchoke. */
async function connect(seed: Seed, fast: boolean): Promise<FakeConnection> {
  const conn = new FakeConnection(await Deno.connect({ hostname: "127.0.0.1", port: seed.session.port }));
  try {
    const peerId = new TextEncoder().encode(`-FK0001-${crypto.randomUUID().slice(0, 12)}`);
    await conn.sendHandshake(seed.meta.infoHash, { peerId, reserved: reservedBits({ fast }) });
    await conn.readHandshake();
    const first = await conn.readMessage();
    assert.equal(first?.type, fast ? "have_all" : "bitfield");
    await conn.send({ type: "interested" });
    await conn.waitForMessage((m) => m.type === "unchoke");
    return conn;
  } catch (error) {
    await conn.dispose();
    throw error;
  }
}

/** The next piece or reject (skipping keep-alives, haves and the like); null on close. */
async function nextAnswer(conn: FakeConnection, timeoutMs = 5000): Promise<Message | null> {
  for (;;) {
    const m = await conn.readMessage(timeoutMs);
    if (m === null || m.type === "piece" || m.type === "reject" || m.type === "choke") return m;
  }
}

const PIECE = 64 * KIB;

Deno.test("a seed refuses a piece changed on disk with reject_request, logs it, keeps the peer and serves the rest", async () => {
  await using seed = await Seed.create({ pieceLength: PIECE, aLength: 200 * KIB, bLength: 312 * KIB });
  const conn = await connect(seed, true);
  try {
    // Piece 2 (128..192 KiB) lies in a.bin; piece 5 (320..384 KiB) in b.bin.
    await seed.corrupt(2 * PIECE + 1000);
    await conn.send({ type: "request", piece: 2, begin: 0, length: BLOCK });
    const m = await nextAnswer(conn);
    assert.equal(m?.type, "reject", `expected a reject for the changed piece, got ${m?.type}`);
    assert(m?.type === "reject" && m.piece === 2 && m.begin === 0 && m.length === BLOCK);
    const warned = seed.warnings(/Piece 2 changed on disk \(in t\/a\.bin\)/);
    assert.equal(
      warned.length,
      1,
      `one warning naming the file and piece: ${seed.logs.map((r) => r.message)}`,
    );
    assert.match(warned[0]!.message, /not serving it, downloading again/);
    assert.deepEqual(seed.lostEvents, [{ pieces: [2], reason: "changed", files: ["t/a.bin"] }]);
    assert.equal(seed.torrent.have.get(2), false, "the piece is marked missing");
    assert.equal(seed.torrent.state, "downloading", "the seed wants the piece back");

    // Asking again, many times over the bad-request limit, is refused each time and not held against it.
    const again = Array.from({ length: MAX_BAD_REQUESTS + 20 }, (_, i) => ({
      piece: 2,
      begin: (i % 4) * BLOCK,
      length: BLOCK,
    }));
    for (const r of again) await conn.send({ type: "request", ...r });
    for (const r of again) {
      const answer = await nextAnswer(conn);
      assert(answer?.type === "reject" && answer.piece === 2 && answer.begin === r.begin);
    }
    // An unchanged piece is served, byte for byte.
    await conn.send({ type: "request", piece: 5, begin: BLOCK, length: BLOCK });
    const good = await nextAnswer(conn);
    assert(good?.type === "piece", `expected the good block, got ${good?.type}`);
    assert.deepEqual(good.data, seed.block(5, BLOCK, BLOCK));
    assert.equal(conn.eof, false);
    assert.deepEqual(seed.gone, [], "the peer was not disconnected");
    assert.equal(seed.warnings(/changed on disk/).length, 1, "the loss is logged once");
  } finally {
    await conn.dispose();
  }
});

Deno.test("a seed skips, without disconnecting, a non-Fast peer's requests for a changed piece", async () => {
  await using seed = await Seed.create({ pieceLength: PIECE, aLength: 200 * KIB, bLength: 312 * KIB });
  const conn = await connect(seed, false);
  try {
    await seed.corrupt(6 * PIECE + 7);
    await conn.send({ type: "request", piece: 6, begin: 0, length: BLOCK });
    await conn.send({ type: "request", piece: 6, begin: BLOCK, length: BLOCK });
    await conn.send({ type: "request", piece: 1, begin: 0, length: BLOCK });
    const m = await nextAnswer(conn);
    assert(m?.type === "piece", `expected the good block, got ${m?.type}`);
    assert.equal(m.piece, 1, "the changed piece's blocks were skipped");
    assert.deepEqual(m.data, seed.block(1, 0, BLOCK));
    assert.equal(seed.warnings(/Piece 6 changed on disk \(in t\/b\.bin\)/).length, 1);
    assert.deepEqual(seed.gone, []);
    assert.equal(seed.torrent.have.get(6), false);
  } finally {
    await conn.dispose();
  }
});

Deno.test("a seed whose file was truncated stops serving the pieces past its end and keeps the peer", async () => {
  await using seed = await Seed.create({ pieceLength: PIECE, aLength: 200 * KIB, bLength: 312 * KIB });
  const conn = await connect(seed, true);
  try {
    // b.bin starts at 200 KiB; keep its first 100 KiB: bytes up to 300 KiB, so pieces 4..7 are gone.
    await Deno.truncate(seed.path("b.bin"), 100 * KIB);
    await conn.send({ type: "request", piece: 6, begin: 0, length: BLOCK });
    const m = await nextAnswer(conn);
    assert(m?.type === "reject" && m.piece === 6, `expected a reject, got ${m?.type}`);
    await withDeadline(
      (async () => {
        while (seed.torrent.have.get(7)) await sleep(10);
      })(),
      3000,
      "the seed to recheck the shrunk file",
    );
    assert.deepEqual([4, 5, 6, 7].map((p) => seed.torrent.have.get(p)), [false, false, false, false]);
    assert.deepEqual([0, 1, 2, 3].map((p) => seed.torrent.have.get(p)), [true, true, true, true]);
    assert.equal(seed.warnings(/t\/b\.bin shrank to 102400 bytes .*pieces 4-7/).length, 1);
    // A piece past the end that nobody asked for yet is refused too, without a disk read.
    await conn.send({ type: "request", piece: 7, begin: 0, length: BLOCK });
    const r = await nextAnswer(conn);
    assert(r?.type === "reject" && r.piece === 7);
    await conn.send({ type: "request", piece: 3, begin: 0, length: BLOCK });
    const good = await nextAnswer(conn);
    assert(good?.type === "piece" && good.piece === 3);
    assert.deepEqual(good.data, seed.block(3, 0, BLOCK));
    assert.deepEqual(seed.gone, []);
  } finally {
    await conn.dispose();
  }
});

Deno.test("a seed that lost a piece downloads it again from another peer and seeds it again", async () => {
  await using seed = await Seed.create({ pieceLength: PIECE, aLength: 200 * KIB, bLength: 312 * KIB });
  // A second, pristine copy seeded by another session.
  const otherDir = join(seed.dir, "other");
  await writePayload(otherDir, seed.payload, 200 * KIB);
  await using other = new Session({ downloadDir: otherDir, bind: "127.0.0.1", lsd: false, logSinks: [] });
  await other.add(seed.meta);
  const conn = await connect(seed, true);
  try {
    await seed.corrupt(3 * PIECE + 5);
    await conn.send({ type: "request", piece: 3, begin: 0, length: BLOCK });
    assert.equal((await nextAnswer(conn))?.type, "reject");
    assert.equal(seed.torrent.state, "downloading");
    const verified = new Promise<void>((resolve) => {
      seed.torrent.addEventListener("piece-verified", (e) => {
        if (e.detail.piece === 3) resolve();
      });
    });
    seed.torrent.addPeers([`127.0.0.1:${other.port}`]);
    await withDeadline(verified, 10_000, "piece 3 to be downloaded again");
    await withDeadline(
      (async () => {
        while (seed.torrent.state !== "seeding") await sleep(10);
      })(),
      5000,
      "the torrent to seed again",
    );
    assert.equal(seed.torrent.have.isComplete(), true);
    const a = await Deno.readFile(seed.path("a.bin"));
    assert.deepEqual(a, seed.payload.subarray(0, 200 * KIB), "the changed bytes were rewritten");
    // The peer that was refused gets the piece now.
    await conn.send({ type: "request", piece: 3, begin: 0, length: BLOCK });
    const m = await nextAnswer(conn);
    assert(m?.type === "piece" && m.piece === 3);
    assert.deepEqual(m.data, seed.block(3, 0, BLOCK));
  } finally {
    await conn.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Files longer than the torrent's

Deno.test("a pre-existing file longer than the torrent's, with a valid payload, is cut to the torrent's size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_oversized_" });
  try {
    const { seed: logs, meta, payload } = await oversizedFixture(dir);
    // a.bin gets 5000 stale bytes after its payload.
    const stale = new Uint8Array(5000).fill(0xee);
    await Deno.writeFile(join(dir, "t", "a.bin"), concat(payload.subarray(0, 200 * KIB), stale));
    await using session = new Session({
      downloadDir: dir,
      bind: "127.0.0.1",
      lsd: false,
      logSinks: [(r) => void logs.push(r)],
    });
    const torrent = await session.add(meta);
    await withDeadline(torrent.completed, 5000, "the torrent to be complete");
    assert.equal((await Deno.stat(join(dir, "t", "a.bin"))).size, 200 * KIB);
    assert.deepEqual(await Deno.readFile(join(dir, "t", "a.bin")), payload.subarray(0, 200 * KIB));
    assert(
      logs.some((r) => /Truncated t\/a\.bin to the torrent's 204800 bytes: 5000 stale bytes/.test(r.message)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a longer file none of whose pieces match the torrent is left as it is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_oversized_" });
  try {
    const { seed: logs, meta } = await oversizedFixture(dir);
    // b.bin is someone else's file: other bytes, longer than the torrent's.
    const foreign = new Uint8Array(400 * KIB).fill(0x42);
    await Deno.writeFile(join(dir, "t", "b.bin"), foreign);
    await using session = new Session({
      downloadDir: dir,
      bind: "127.0.0.1",
      lsd: false,
      logSinks: [(r) => void logs.push(r)],
    });
    const torrent = await session.add(meta);
    assert.equal(torrent.state, "downloading");
    assert.deepEqual(await Deno.readFile(join(dir, "t", "b.bin")), foreign, "not cut, not changed");
    assert(logs.some((r) => r.level === "warn" && /t\/b\.bin is longer .*left as it is/.test(r.message)));
    assert(!logs.some((r) => /Truncated/.test(r.message)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a longer file with part of its payload valid is cut once the download completes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_oversized_" });
  try {
    const { seed: logs, meta, payload } = await oversizedFixture(join(dir, "leech"));
    // b.bin: its payload with one piece damaged, then stale bytes.
    const b = payload.slice(200 * KIB);
    b[3 * PIECE - 200 * KIB + 10]! ^= 0xff; // piece 3
    await Deno.writeFile(join(dir, "leech", "t", "b.bin"), concat(b, new Uint8Array(3000).fill(1)));
    await writePayload(join(dir, "source"), payload, 200 * KIB);
    await using source = new Session({
      downloadDir: join(dir, "source"),
      bind: "127.0.0.1",
      lsd: false,
      logSinks: [],
    });
    await source.add(meta);
    await using session = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      lsd: false,
      logSinks: [(r) => void logs.push(r)],
    });
    const torrent = await session.add(meta, { peers: [`127.0.0.1:${source.port}`] });
    const bPath = join(dir, "leech", "t", "b.bin");
    await withDeadline(torrent.completed, 10_000, "the download to complete");
    assert.equal((await Deno.stat(bPath)).size, 312 * KIB);
    assert.deepEqual(await Deno.readFile(bPath), payload.subarray(200 * KIB));
    assert(logs.some((r) => /Truncated t\/b\.bin .*3000 stale bytes/.test(r.message)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** a.bin (200 KiB) and b.bin (312 KiB) under `<dir>/t`, and the torrent made from them. */
async function oversizedFixture(
  dir: string,
): Promise<{ seed: LogRecord[]; meta: Metainfo; payload: Uint8Array }> {
  const payload = new Uint8Array(512 * KIB);
  let x = 99;
  for (let i = 0; i < payload.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    payload[i] = x >>> 24;
  }
  await writePayload(dir, payload, 200 * KIB);
  const created = await createTorrent(join(dir, "t"), { pieceLength: PIECE, creationDate: null });
  return { seed: [], meta: parseMetainfo(created.torrent), payload };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
