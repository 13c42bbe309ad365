import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { MAX_BAD_REQUESTS, MAX_INCOMING_REQUESTS, MAX_REQUEST_LENGTH } from "../../lib/peer/connection.ts";
import type { Torrent, TorrentEventMap } from "../../lib/torrent.ts";
import type { Metainfo } from "../../lib/types.ts";
import { reservedBits } from "../../lib/wire/handshake.ts";
import type { Message } from "../../lib/wire/messages.ts";
import { Session } from "../../mod.ts";
import { FakeConnection, FakePeerTimeout, sleep, withDeadline } from "../_fake_peer.ts";

// A shoal Session seeds a small torrent; a scripted fake peer dials its listening port, does a
// correct handshake (Fast advertised), says it is interested, is unchoked, and then asks for
// what it must not have: blocks above 128 KiB, past a piece's end, of pieces shoal lacks,
// thousands of requests at once, or 64 MiB it never reads. Shoal must refuse each bad request
// with reject_request, drop the peer once it passes 100 of them, keep its memory flat, and go
// on serving a good leecher afterwards.

const KIB = 1024;
const MIB = 1024 * 1024;
const BLOCK = 16 * KIB;
/** What the tests allow Deno's resident memory to grow by while a hostile peer works. */
const RSS_SLACK = 64 * MIB;

type Request = { piece: number; begin: number; length: number };

/** A temp folder with a payload, its torrent, and a Session seeding it (maybe partly). */
class SeedFixture implements AsyncDisposable {
  readonly dir: string;
  readonly meta: Metainfo;
  readonly payload: Uint8Array;
  readonly session: Session;
  readonly torrent: Torrent;
  readonly #gone: TorrentEventMap["peer-disconnected"][] = [];

  private constructor(dir: string, meta: Metainfo, payload: Uint8Array, session: Session, torrent: Torrent) {
    this.dir = dir;
    this.meta = meta;
    this.payload = payload;
    this.session = session;
    this.torrent = torrent;
    torrent.addEventListener("peer-disconnected", (e) => {
      this.#gone.push(e.detail);
    });
  }

  /**
   * @param options Piece length, piece count, bytes in the last piece, and pieces to corrupt
   *   on disk before shoal checks the data (so it lacks them).
   */
  static async create(options: {
    pieceLength: number;
    pieces: number;
    lastPieceLength?: number;
    missing?: readonly number[];
  }): Promise<SeedFixture> {
    const { pieceLength, pieces } = options;
    const dir = await Deno.makeTempDir({ prefix: "shoal_hostile_req_" });
    try {
      await Deno.mkdir(join(dir, "seed"));
      const payload = new Uint8Array((pieces - 1) * pieceLength + (options.lastPieceLength ?? pieceLength));
      let x = 0x2545f491;
      for (let i = 0; i < payload.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        payload[i] = x & 0xff;
      }
      const file = join(dir, "seed", "payload.bin");
      await Deno.writeFile(file, payload);
      const created = await createTorrent(file, { pieceLength, creationDate: null });
      const meta = parseMetainfo(created.torrent);
      assert.equal(meta.pieceCount, pieces);
      if (options.missing !== undefined && options.missing.length > 0) {
        const damaged = payload.slice();
        for (const piece of options.missing) damaged.fill(0, piece * pieceLength, piece * pieceLength + 100);
        await Deno.writeFile(file, damaged);
      }
      const session = new Session({ downloadDir: join(dir, "seed"), bind: "127.0.0.1", logSinks: [] });
      try {
        const torrent = await session.add(meta);
        return new SeedFixture(dir, meta, payload, session, torrent);
      } catch (error) {
        await session.close();
        throw error;
      }
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
  }

  /** The bytes of a block, from the original payload. */
  block(r: Request): Uint8Array {
    const at = r.piece * this.meta.pieceLength + r.begin;
    return this.payload.subarray(at, at + r.length);
  }

  /** Waits for shoal to report the disconnection of a peer whose address has this local port. */
  disconnected(port: number, timeoutMs = 5000): Promise<TorrentEventMap["peer-disconnected"]> {
    const find = () => this.#gone.find((d) => d.address.endsWith(`:${port}`));
    return withDeadline(
      (async () => {
        for (;;) {
          const hit = find();
          if (hit !== undefined) return hit;
          await sleep(20);
        }
      })(),
      timeoutMs,
      `shoal to report the disconnection of port ${port}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/**
 * Dials the fixture's session, exchanges handshakes, reads shoal's availability message, says
 * interested and waits to be unchoked.
 */
async function connect(fixture: SeedFixture, options: { fast?: boolean } = {}): Promise<FakeConnection> {
  const fast = options.fast ?? true;
  const conn = new FakeConnection(await Deno.connect({ hostname: "127.0.0.1", port: fixture.session.port }));
  try {
    const peerId = new TextEncoder().encode(`-FK0001-${crypto.randomUUID().slice(0, 12)}`);
    await conn.sendHandshake(fixture.meta.infoHash, { peerId, reserved: reservedBits({ fast }) });
    const theirs = await conn.readHandshake();
    assert.deepEqual(theirs.infoHash, fixture.meta.infoHash);
    assert.equal((theirs.reserved[7]! & 0x04) !== 0, true, "shoal advertises the Fast extension");
    const first = await conn.readMessage();
    const complete = fixture.torrent.have.isComplete();
    assert.equal(first?.type, fast && complete ? "have_all" : "bitfield");
    await conn.send({ type: "interested" });
    await conn.waitForMessage((m) => m.type === "unchoke");
    return conn;
  } catch (error) {
    await conn.dispose();
    throw error;
  }
}

/** The local port of the fake side: shoal knows the peer as 127.0.0.1:<this>. */
function localPort(conn: FakeConnection): number {
  return (conn.conn.localAddr as Deno.NetAddr).port;
}

const same = (a: Request, b: Request) => a.piece === b.piece && a.begin === b.begin && a.length === b.length;

/** Encodes many requests into one buffer, to send them in one write. */
function requestBytes(requests: readonly Request[]): Uint8Array {
  const out = new Uint8Array(requests.length * 17);
  const view = new DataView(out.buffer);
  requests.forEach((r, i) => {
    view.setUint32(i * 17, 13);
    out[i * 17 + 4] = 6;
    view.setUint32(i * 17 + 5, r.piece);
    view.setUint32(i * 17 + 9, r.begin);
    view.setUint32(i * 17 + 13, r.length);
  });
  return out;
}

/** Reads the next piece or reject (skipping keep-alives, haves and the like). */
async function nextAnswer(conn: FakeConnection, timeoutMs = 5000): Promise<Message | null> {
  for (;;) {
    const m = await conn.readMessage(timeoutMs);
    if (m === null || m.type === "piece" || m.type === "reject" || m.type === "choke") return m;
  }
}

/**
 * Sends 100 copies of bad requests (all at once): each is answered by a reject for exactly that
 * request and the connection stays up; a good request in between is still served; the 101st
 * bad request gets the peer dropped, with a reason shoal logs and reports.
 */
async function refusesThenDrops(
  fixture: SeedFixture,
  bad: (i: number) => Request,
  good: Request,
  reason: RegExp,
): Promise<void> {
  const before = Deno.memoryUsage().rss;
  const conn = await connect(fixture);
  try {
    const port = localPort(conn);
    const sent = Array.from({ length: MAX_BAD_REQUESTS }, (_, i) => bad(i));
    assert(await conn.write(requestBytes(sent)));
    for (const r of sent) {
      const m = await nextAnswer(conn);
      assert.equal(m?.type, "reject", `expected a reject for ${JSON.stringify(r)}, got ${m?.type}`);
      assert(
        m?.type === "reject" && same(m, r),
        `reject ${JSON.stringify(m)} does not match ${JSON.stringify(r)}`,
      );
    }
    // 100 refusals are tolerated (a confused peer): a good request is still served.
    assert(await conn.send({ type: "request", ...good }));
    const served = await nextAnswer(conn);
    assert(served?.type === "piece", `expected the good block, got ${served?.type}`);
    assert.equal(served.piece, good.piece);
    assert.equal(served.begin, good.begin);
    assert.deepEqual(served.data, fixture.block(good));
    // The 101st bad request: dropped.
    assert(await conn.send({ type: "request", ...bad(MAX_BAD_REQUESTS) }));
    await conn.waitForClose();
    const gone = await fixture.disconnected(port);
    assert.match(
      gone.reason ?? "(no reason)",
      new RegExp(`${MAX_BAD_REQUESTS + 1} invalid requests; the last: `),
    );
    assert.match(gone.reason ?? "(no reason)", reason);
  } finally {
    await conn.dispose();
  }
  assert.equal(fixture.torrent.state, fixture.torrent.have.isComplete() ? "seeding" : "downloading");
  const grown = Deno.memoryUsage().rss - before;
  assert(grown < RSS_SLACK, `resident memory grew by ${(grown / MIB).toFixed(1)} MiB`);
}

/** A shoal leecher in its own Session downloads the whole torrent from the fixture and checks every byte. */
async function goodShoalLeecher(fixture: SeedFixture): Promise<void> {
  const out = join(fixture.dir, `leech-${crypto.randomUUID().slice(0, 8)}`);
  const session = new Session({ downloadDir: out, bind: "127.0.0.1", logSinks: [] });
  try {
    const torrent = await session.add(fixture.meta, { peers: [`127.0.0.1:${fixture.session.port}`] });
    await withDeadline(torrent.completed, 30_000, "the good leecher to complete");
    const got = await Deno.readFile(join(out, "payload.bin"));
    assert.equal(got.length, fixture.payload.length);
    assert(got.every((b, i) => b === fixture.payload[i]), "the good leecher's bytes differ from the payload");
  } finally {
    await session.close();
  }
}

/**
 * A well-behaved fake leecher fetches every block of `pieces` (at most 200 requests in flight)
 * and checks the bytes: for a seed that lacks pieces, where a shoal leecher could not complete.
 */
async function goodFakeLeecher(fixture: SeedFixture, pieces: readonly number[]): Promise<void> {
  const conn = await connect(fixture);
  try {
    const wanted: Request[] = [];
    for (const piece of pieces) {
      const size = piece === fixture.meta.pieceCount - 1
        ? fixture.meta.totalLength - piece * fixture.meta.pieceLength
        : fixture.meta.pieceLength;
      for (let begin = 0; begin < size; begin += BLOCK) {
        wanted.push({ piece, begin, length: Math.min(BLOCK, size - begin) });
      }
    }
    let next = 0;
    let inFlight = 0;
    let received = 0;
    while (received < wanted.length) {
      const batch = wanted.slice(next, next + Math.max(0, 200 - inFlight));
      if (batch.length > 0) {
        assert(await conn.write(requestBytes(batch)));
        next += batch.length;
        inFlight += batch.length;
      }
      const m = await nextAnswer(conn);
      assert(m?.type === "piece", `the good leecher got ${m?.type ?? "end of stream"} instead of a block`);
      assert.deepEqual(m.data, fixture.block({ piece: m.piece, begin: m.begin, length: m.data.length }));
      inFlight--;
      received++;
    }
  } finally {
    await conn.dispose();
  }
}

Deno.test("shoal rejects requests above 128 KiB and of length 0, then drops a peer that keeps sending them", async () => {
  await using fixture = await SeedFixture.create({ pieceLength: 256 * KIB, pieces: 4 });
  await refusesThenDrops(
    fixture,
    (i) => ({ piece: i % 4, begin: 0, length: i % 10 === 9 ? 0 : MAX_REQUEST_LENGTH + 1 + i }),
    { piece: 1, begin: 0, length: MAX_REQUEST_LENGTH }, // exactly 128 KiB is allowed
    /length \d+ is not in 1\.\.131072/,
  );
  await goodShoalLeecher(fixture);
});

Deno.test("shoal rejects requests past a piece's end, then drops a peer that keeps sending them", async () => {
  // 5 pieces of 32 KiB; the last has 3392 bytes.
  await using fixture = await SeedFixture.create({ pieceLength: 32 * KIB, pieces: 5, lastPieceLength: 3392 });
  await refusesThenDrops(
    fixture,
    (i) =>
      i % 2 === 0
        ? { piece: 4, begin: 0, length: BLOCK } // longer than the short last piece
        : { piece: i % 4, begin: 32 * KIB - 8, length: BLOCK }, // straddles the next piece
    { piece: 4, begin: 0, length: 3392 },
    /offset \d+ \+ \d+ is past the piece's end/,
  );
  await goodShoalLeecher(fixture);
});

Deno.test("shoal rejects requests for pieces it does not have or that do not exist, then drops the peer", async () => {
  // Pieces 2 and 5 are damaged on disk: the check finds them missing, so shoal seeds the other 6.
  const missing = [2, 5];
  await using fixture = await SeedFixture.create({ pieceLength: 32 * KIB, pieces: 8, missing });
  assert.equal(fixture.torrent.state, "downloading");
  assert.equal(fixture.torrent.have.count(), 6);
  for (const piece of missing) assert.equal(fixture.torrent.have.get(piece), false);
  await refusesThenDrops(
    fixture,
    (i) => ({ piece: missing[i % 2]!, begin: (i % 2) * BLOCK, length: BLOCK }),
    { piece: 0, begin: BLOCK, length: BLOCK },
    /we do not have piece [25]/,
  );
  await refusesThenDrops(
    fixture,
    (i) => ({ piece: 8 + i, begin: 0, length: BLOCK }),
    { piece: 7, begin: 0, length: BLOCK },
    /piece \d+ does not exist/,
  );
  // Still serving: a good peer fetches every piece shoal has.
  await goodFakeLeecher(fixture, [0, 1, 3, 4, 6, 7]);
});

Deno.test("shoal neither rejects nor answers bad requests of a peer without Fast, and drops it", async () => {
  await using fixture = await SeedFixture.create({ pieceLength: 32 * KIB, pieces: 4 });
  const conn = await connect(fixture, { fast: false });
  try {
    const port = localPort(conn);
    const bad = Array.from({ length: MAX_BAD_REQUESTS + 1 }, () => ({ piece: 9, begin: 0, length: BLOCK }));
    // A good request first, so the stream shows whether anything else was sent before the close.
    const good = { piece: 3, begin: BLOCK, length: BLOCK };
    assert(await conn.send({ type: "request", ...good }));
    const served = await nextAnswer(conn);
    assert(served?.type === "piece" && same({ ...served, length: served.data.length }, good));
    assert(await conn.write(requestBytes(bad)));
    const after: Message[] = [];
    for (;;) {
      const m = await conn.readMessage();
      if (m === null) break;
      after.push(m);
    }
    assert.deepEqual(
      after.filter((m) => m.type === "reject"),
      [],
      "a reject was sent to a peer without Fast",
    );
    assert.match((await fixture.disconnected(port)).reason ?? "", /101 invalid requests/);
  } finally {
    await conn.dispose();
  }
  await goodShoalLeecher(fixture);
});

Deno.test("shoal queues at most 1000 requests of a peer, rejects the rest, and drops a peer that sends 5 000 at once", async () => {
  // 15 full pieces of 32 KiB: every request below is valid and different from the others.
  const PIECES = 15;
  await using fixture = await SeedFixture.create({ pieceLength: 32 * KIB, pieces: PIECES });
  const unique = (i: number): Request => ({
    piece: i % PIECES,
    begin: Math.floor(i / PIECES),
    length: BLOCK,
  });
  const index = (r: { piece: number; begin: number }) => r.begin * PIECES + r.piece;

  // 1. 1050 requests in one write, read only afterwards: every one is answered exactly once,
  //    those beyond the queue cap with a reject. Request 0 is being served when the others
  //    arrive, so requests 0..1000 always fit; a few more may if shoal served some meanwhile.
  {
    const conn = await connect(fixture);
    try {
      const count = MAX_INCOMING_REQUESTS + 50;
      assert(await conn.write(requestBytes(Array.from({ length: count }, (_, i) => unique(i)))));
      const served = new Set<number>();
      const rejected = new Set<number>();
      for (let n = 0; n < count; n++) {
        const m = await nextAnswer(conn);
        if (m?.type === "piece") {
          const i = index(m);
          assert(!served.has(i) && !rejected.has(i), `request ${i} answered twice`);
          assert.deepEqual(m.data, fixture.block(unique(i)));
          served.add(i);
        } else if (m?.type === "reject") {
          const i = index(m);
          assert(same(m, unique(i)), `reject ${JSON.stringify(m)} matches no request`);
          assert(!served.has(i) && !rejected.has(i), `request ${i} answered twice`);
          rejected.add(i);
        } else {
          assert.fail(`expected a block or a reject, got ${m?.type ?? "end of stream"}`);
        }
      }
      assert(rejected.size > 0, "shoal queued all 1050 requests");
      assert(Math.min(...rejected) > MAX_INCOMING_REQUESTS, `request ${Math.min(...rejected)} was rejected`);
      assert.equal(served.size + rejected.size, count);
      // 49 when all 1050 arrived in one read, as on loopback they do.
      console.log(`1050 requests at once: ${served.size} served, ${rejected.size} rejected`);
    } finally {
      await conn.dispose();
    }
  }

  // 2. 5 000 requests in one write, and the peer does not read: shoal queues 1000, refuses 1001
  //    more and drops the peer.
  const before = Deno.memoryUsage().rss;
  const conn = await connect(fixture);
  try {
    const port = localPort(conn);
    assert(await conn.write(requestBytes(Array.from({ length: 5000 }, (_, i) => unique(i)))));
    const gone = await fixture.disconnected(port);
    assert.match(
      gone.reason ?? "",
      new RegExp(
        `more than ${MAX_INCOMING_REQUESTS} requests queued \\(${MAX_INCOMING_REQUESTS + 1} refused\\)`,
      ),
    );
    const grown = Deno.memoryUsage().rss - before;
    let pieces = 0;
    let rejects = 0;
    for (;;) {
      const m = await conn.readMessage();
      if (m === null) break;
      if (m.type === "piece") {
        pieces++;
        assert.deepEqual(m.data, fixture.block(unique(index(m))));
      } else if (m.type === "reject") {
        rejects++;
        assert(index(m) > MAX_INCOMING_REQUESTS, `request ${index(m)} was rejected`);
      }
    }
    console.log(`5000 requests at once: ${pieces} blocks and ${rejects} rejects sent before the close`);
    assert(pieces + rejects <= 2 * (MAX_INCOMING_REQUESTS + 1));
    assert(grown < RSS_SLACK, `resident memory grew by ${(grown / MIB).toFixed(1)} MiB`);
  } finally {
    await conn.dispose();
  }
  assert.equal(fixture.torrent.state, "seeding");
  await goodShoalLeecher(fixture);
});

Deno.test("a peer that requests 64 MiB and never reads does not grow shoal's memory: its sends wait", async () => {
  // 32 MiB in 256 KiB pieces; 512 valid requests of 128 KiB (each block twice) ask for 64 MiB.
  const PIECES = 128;
  await using fixture = await SeedFixture.create({ pieceLength: 256 * KIB, pieces: PIECES });
  const requests = Array.from({ length: 512 }, (_, i) => ({
    piece: (i * 7) % PIECES,
    begin: (i % 2) * MAX_REQUEST_LENGTH,
    length: MAX_REQUEST_LENGTH,
  }));
  const before = Deno.memoryUsage().rss;
  const conn = await connect(fixture);
  const port = localPort(conn);
  let queued = 0;
  try {
    assert(await conn.write(requestBytes(requests)));
    // Watch how many bytes shoal has read and queued for the peer, until that stops growing
    // (20 samples, 1 s, unchanged). Without back-pressure it would reach 64 MiB.
    const address = `127.0.0.1:${port}`;
    const uploaded = () => fixture.torrent.peers().find((p) => p.address === address)?.uploaded ?? -1;
    let peakRss = before;
    await withDeadline(
      (async () => {
        let last = -1;
        let still = 0;
        while (still < 20) {
          await sleep(50);
          peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
          const now = uploaded();
          assert(now >= 0, "shoal dropped a peer that asked only for valid blocks");
          still = now === last ? still + 1 : 0;
          last = now;
        }
        queued = last;
      })(),
      20_000,
      "shoal's sending to stall",
    );
    console.log(
      `peer not reading: shoal queued ${(queued / MIB).toFixed(1)} MiB of 64 MiB requested, then waited; ` +
        `RSS grew by at most ${((peakRss - before) / MIB).toFixed(1)} MiB`,
    );
    assert(queued > 0, "shoal served nothing");
    assert(queued < 32 * MIB, `shoal queued ${queued} bytes for a peer that reads nothing`);
    assert(
      peakRss - before < RSS_SLACK,
      `resident memory grew by ${((peakRss - before) / MIB).toFixed(1)} MiB`,
    );
  } finally {
    await conn.dispose();
  }
  // The peer is gone; the session is fine and serves a good leecher the whole torrent.
  const gone = await fixture.disconnected(port).catch((e: unknown) => {
    if (e instanceof FakePeerTimeout) return undefined;
    throw e;
  });
  assert(gone !== undefined, "shoal did not notice the closed connection");
  assert.equal(fixture.torrent.state, "seeding");
  await goodShoalLeecher(fixture);
});
