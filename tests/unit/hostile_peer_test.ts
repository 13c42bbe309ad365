import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import type { Torrent, TorrentEventMap } from "../../lib/torrent.ts";
import type { LogRecord, Metainfo } from "../../lib/types.ts";
import { mse, Session } from "../../mod.ts";
import { FakeConnection, FakePeer, sleep, withDeadline } from "../_fake_peer.ts";

// A shoal Session downloads a small torrent while a scripted fake peer misbehaves. For each
// misbehaviour: shoal closes the fake peer's connection, keeps running, and then completes the
// download from a good source (a second shoal Session seeding the data) with identical bytes.

const PIECE_LENGTH = 32768;
/** Bytes in the last, short piece. */
const LAST_PIECE_LENGTH = 3392;
const COMPLETE_TIMEOUT_MS = 30_000;

type EventName = keyof TorrentEventMap;

/** Records a torrent's events as they happen, and waits for one with a deadline. */
class EventLog {
  readonly #events: { type: EventName; detail: unknown }[] = [];
  readonly #listeners = new Set<() => void>();

  constructor(torrent: Torrent) {
    const types: EventName[] = [
      "peer-connected",
      "peer-disconnected",
      "peer-banned",
      "piece-failed",
      "error",
    ];
    for (const type of types) {
      torrent.addEventListener(type, (event) => {
        this.#events.push({ type, detail: event.detail });
        for (const wake of [...this.#listeners]) wake();
      });
    }
  }

  all<K extends EventName>(type: K): TorrentEventMap[K][] {
    return this.#events.filter((e) => e.type === type).map((e) => e.detail as TorrentEventMap[K]);
  }

  wait<K extends EventName>(
    type: K,
    match: (detail: TorrentEventMap[K]) => boolean,
    timeoutMs = 5000,
  ): Promise<TorrentEventMap[K]> {
    const found = () => this.all(type).find(match);
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    let wake!: () => void;
    const waiting = new Promise<TorrentEventMap[K]>((resolve) => {
      wake = () => {
        const hit = found();
        if (hit !== undefined) resolve(hit);
      };
      this.#listeners.add(wake);
    });
    return withDeadline(waiting, timeoutMs, `a "${type}" event`).finally(() => this.#listeners.delete(wake));
  }
}

/** A temp folder with a payload, its torrent, a leeching Session, and a seeder on demand. */
class Swarm implements AsyncDisposable {
  readonly dir: string;
  readonly meta: Metainfo;
  readonly payload: Uint8Array;
  readonly leecher: Session;
  readonly logs: LogRecord[] = [];
  #seeder: Session | null = null;
  torrent!: Torrent;
  events!: EventLog;

  private constructor(dir: string, meta: Metainfo, payload: Uint8Array) {
    this.dir = dir;
    this.meta = meta;
    this.payload = payload;
    this.leecher = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      encryption: mse({ policy: "disable" }), // the fake peers speak plaintext
      logLevel: "debug",
      logSinks: [(record) => this.logs.push(record)],
    });
  }

  /**
   * @param pieces Number of pieces.
   * @param lastPieceLength Bytes in the last piece.
   */
  static async create(pieces = 7, lastPieceLength = LAST_PIECE_LENGTH): Promise<Swarm> {
    const dir = await Deno.makeTempDir({ prefix: "shoal_hostile_" });
    try {
      await Deno.mkdir(join(dir, "seed"));
      const payload = new Uint8Array((pieces - 1) * PIECE_LENGTH + lastPieceLength);
      let x = 0x1234567;
      for (let i = 0; i < payload.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        payload[i] = x >>> 24;
      }
      await Deno.writeFile(join(dir, "seed", "payload.bin"), payload);
      const created = await createTorrent(join(dir, "seed", "payload.bin"), {
        pieceLength: PIECE_LENGTH,
        creationDate: null,
      });
      const meta = parseMetainfo(created.torrent);
      assert.equal(meta.pieceCount, pieces);
      return new Swarm(dir, meta, payload);
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
  }

  /** Adds the torrent to the leecher with these peers. */
  async add(peers: string[]): Promise<Torrent> {
    this.torrent = await this.leecher.add(this.meta, { peers });
    this.events = new EventLog(this.torrent);
    return this.torrent;
  }

  /** Starts a good seeder (once) and returns its address. */
  async seederAddress(): Promise<string> {
    if (this.#seeder === null) {
      this.#seeder = new Session({ downloadDir: join(this.dir, "seed"), bind: "127.0.0.1" });
      const seeding = await this.#seeder.add(this.meta);
      assert.equal(seeding.state, "seeding");
    }
    return `127.0.0.1:${this.#seeder.port}`;
  }

  /** Adds the good seeder, waits for completion, and checks the bytes on disk. */
  async completeFromSeeder(timeoutMs = COMPLETE_TIMEOUT_MS): Promise<void> {
    const seeder = await this.seederAddress();
    this.torrent.addPeers([seeder]);
    await this.assertCompletes(timeoutMs);
    assert.deepEqual(this.events.all("peer-banned").filter((b) => b.address === seeder), []);
  }

  async assertCompletes(timeoutMs = COMPLETE_TIMEOUT_MS): Promise<void> {
    try {
      await withDeadline(this.torrent.completed, timeoutMs, "the download to complete");
    } catch (error) {
      // Show what shoal logged, to tell a stall from a ban from a crash.
      for (const r of this.logs.filter((r) => r.level !== "debug").slice(-40)) {
        console.error(r.level, r.category, r.message, JSON.stringify(r.fields));
      }
      console.error(JSON.stringify(this.torrent.stats()));
      throw error;
    }
    assert.equal(this.torrent.state, "seeding");
    const got = await Deno.readFile(join(this.dir, "leech", "payload.bin"));
    assert.equal(got.length, this.payload.length);
    assert.ok(got.every((b, i) => b === this.payload[i]), "the downloaded bytes differ from the payload");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.leecher.close();
    await this.#seeder?.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Reads shoal's handshake, checks it, and answers with a correct one for the torrent. */
async function handshake(conn: FakeConnection, meta: Metainfo): Promise<void> {
  const theirs = await conn.readHandshake();
  assert.deepEqual(theirs.infoHash, meta.infoHash);
  await conn.sendHandshake(meta.infoHash);
}

/**
 * Runs one misbehaviour: the fake peer is the torrent's only peer, does the handshake, then
 * `misbehave`s. Shoal must close the connection and say why; then the download completes from
 * a good seeder.
 */
async function expectDisconnect(
  misbehave: (conn: FakeConnection, swarm: Swarm) => Promise<void>,
  reason: RegExp,
): Promise<void> {
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  await misbehave(conn, swarm);
  await conn.waitForClose();
  const gone = await swarm.events.wait("peer-disconnected", (d) => d.address === fake.address);
  assert.match(gone.reason ?? "(no reason)", reason);
  await swarm.completeFromSeeder();
}

Deno.test("shoal closes a peer that sends an oversized length prefix", async () => {
  await expectDisconnect(async (conn) => {
    await conn.write(new Uint8Array([0xff, 0xff, 0xff, 0xf0]));
  }, /length 4294967280 exceeds maximum/);
});

Deno.test("shoal closes a peer that sends a bitfield of the wrong length", async () => {
  await expectDisconnect(async (conn) => {
    await conn.send({ type: "bitfield", bits: new Uint8Array([0xfe, 0x00]) }); // 7 pieces need 1 byte
  }, /Invalid bitfield message: length 2, expected 1/);
});

Deno.test("shoal closes a peer that sends a bitfield with spare bits set", async () => {
  await expectDisconnect(async (conn) => {
    await conn.send({ type: "bitfield", bits: new Uint8Array([0xff]) }); // bit 7 is past piece 6
  }, /spare bits/);
});

Deno.test("shoal closes a peer that sends have for a piece out of range", async () => {
  await expectDisconnect(async (conn) => {
    await conn.send({ type: "have", piece: 7 });
  }, /have for piece 7, but the torrent has 7/);
});

Deno.test("shoal closes a peer that sends a block it never requested", async () => {
  await expectDisconnect(async (conn) => {
    // No have_all, no unchoke: shoal has no reason to request anything.
    await conn.send({ type: "piece", piece: 0, begin: 0, data: new Uint8Array(16384).fill(7) });
  }, /did not request/);
  // The unrequested bytes must not have been written: completeFromSeeder compared every byte.
});

Deno.test("shoal refuses requests beyond the end of a piece and closes a peer that keeps sending them", async () => {
  await expectDisconnect(async (conn) => {
    // piece 6 is 3392 bytes; shoal tolerates 100 such requests (a confused peer), not 101
    for (let i = 0; i <= 100; i++) await conn.send({ type: "request", piece: 6, begin: 0, length: 16384 });
  }, /101 invalid requests; the last: offset 0 \+ 16384 is past the piece's end/);
});

Deno.test("shoal closes a peer that sends garbage right after the handshake", async () => {
  await expectDisconnect(async (conn) => {
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  }, /Cannot decode message/);
});

Deno.test("shoal closes a peer that sends a malformed message body", async () => {
  await expectDisconnect(async (conn) => {
    await conn.write(new Uint8Array([0, 0, 0, 3, 4, 0, 1])); // a have with 2 bytes of payload
  }, /have/);
});

Deno.test("shoal drops a peer whose handshake names another torrent", async () => {
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await conn.readHandshake();
  const wrong = swarm.meta.infoHash.slice();
  wrong[0]! ^= 0xff;
  await conn.sendHandshake(wrong);
  await conn.send({ type: "have_all" });
  await conn.waitForClose();
  assert.deepEqual(swarm.events.all("peer-connected"), [], "a peer for another torrent was connected");
  assert.ok(
    swarm.logs.some((r) => r.fields.peer === fake.address && /different info-hash/.test(r.message)),
    "no log record says why the peer was dropped",
  );
  await swarm.completeFromSeeder();
});

Deno.test("shoal gives up on a peer whose handshake never comes", async () => {
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await conn.readHandshake();
  // Say nothing. Shoal's dial deadline is 10 s by default (not configurable through Session).
  await conn.waitForClose(15_000);
  assert.deepEqual(swarm.events.all("peer-connected"), []);
  assert.ok(
    swarm.logs.some((r) => r.fields.peer === fake.address && /timed out/.test(r.message)),
    "no log record says the handshake timed out",
  );
  await swarm.completeFromSeeder();
});

Deno.test("a peer that sends data at 1 byte/s does not hold up completion when a good peer exists", async () => {
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  await conn.send({ type: "have_all" });
  await conn.send({ type: "unchoke" });
  // Shoal asks the slow peer for blocks; it answers the first one a byte at a time.
  const first = await conn.waitForMessage((m) => m.type === "request");
  assert.equal(first.type, "request");
  const stop = new AbortController();
  const trickle = (async () => {
    if (first.type !== "request") return;
    const frame = new Uint8Array(13 + first.length);
    new DataView(frame.buffer).setUint32(0, 9 + first.length);
    frame[4] = 7;
    new DataView(frame.buffer).setUint32(5, first.piece);
    new DataView(frame.buffer).setUint32(9, first.begin);
    for (let i = 0; i < frame.length && !stop.signal.aborted; i++) {
      if (!await conn.write(frame.subarray(i, i + 1))) return;
      await sleep(1000, stop.signal);
    }
  })();
  try {
    // Every block is in flight from the slow peer: only endgame lets the seeder fetch them
    // before shoal's 20 s snub time-out gives them back, hence the 10 s deadline.
    await swarm.completeFromSeeder(10_000);
    // Once complete, shoal has nothing to get from the slow peer and closes it.
    await conn.waitForClose();
    assert.ok(swarm.torrent.stats().failedPieces === 0);
  } finally {
    stop.abort();
    await trickle;
  }
});

/** Answers every request with random bytes of the right length, until the connection ends. */
async function serveGarbage(
  conn: FakeConnection,
  delayMs: number,
  signal: AbortSignal,
  answers: (request: { piece: number; begin: number }) => boolean = () => true,
): Promise<number> {
  let served = 0;
  while (!signal.aborted) {
    let m;
    try {
      m = await conn.readMessage(60_000);
    } catch (error) {
      if (signal.aborted) break;
      throw error;
    }
    if (m === null) break;
    if (m.type !== "request" || !answers(m)) continue;
    if (delayMs > 0) await sleep(delayMs, signal);
    const data = new Uint8Array(m.length);
    crypto.getRandomValues(data);
    if (!await conn.send({ type: "piece", piece: m.piece, begin: m.begin, data })) break;
    served++;
  }
  return served;
}

Deno.test("shoal bans a peer that sends corrupt data, then completes from a good peer", async () => {
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  await conn.send({ type: "have_all" });
  await conn.send({ type: "unchoke" });
  const stop = new AbortController();
  const serving = serveGarbage(conn, 0, stop.signal);
  try {
    const failed = await swarm.events.wait("piece-failed", (d) => d.peers.includes(fake.address));
    assert.deepEqual(failed.peers, [fake.address]);
    const banned = await swarm.events.wait("peer-banned", (d) => d.address === fake.address);
    assert.match(banned.reason, /failed its hash check/);
    await conn.waitForClose();
    const gone = await swarm.events.wait("peer-disconnected", (d) => d.address === fake.address);
    assert.match(gone.reason ?? "", /Banned/);
    assert.ok(await serving > 0);
    await swarm.completeFromSeeder();
    assert.ok(swarm.torrent.stats().failedPieces >= 1);
  } finally {
    stop.abort();
    conn.close();
    await serving.catch(() => 0);
  }
});

Deno.test("shoal completes correctly when a corrupt peer and a good seeder serve at the same time", async () => {
  // Every piece has two blocks, so the liar is never the only sender of a piece.
  await using swarm = await Swarm.create(64, PIECE_LENGTH);
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  await conn.send({ type: "have_all" });
  await conn.send({ type: "unchoke" });
  const stop = new AbortController();
  // The liar answers only the first block of each piece and sits on the other requests, so
  // every piece it touches also has blocks from the seeder: only smart ban can tell who lied.
  const serving = serveGarbage(conn, 0, stop.signal, (r) => r.begin === 0);
  try {
    const seeder = await swarm.seederAddress();
    swarm.torrent.addPeers([seeder]);
    await swarm.assertCompletes();
    assert.deepEqual(swarm.events.all("peer-banned").filter((b) => b.address === seeder), []);
    // Every failed piece had the liar among its senders, and once such a piece passed, the
    // liar's blocks were found out.
    const failures = swarm.events.all("piece-failed");
    for (const f of failures) {
      assert.ok(f.peers.includes(fake.address), `piece ${f.piece} failed without the liar`);
    }
    if (failures.length > 0) {
      assert.ok(
        swarm.events.all("peer-banned").some((b) => b.address === fake.address),
        "the liar was not banned",
      );
    }
  } finally {
    stop.abort();
    conn.close();
    await serving.catch(() => 0);
  }
});

Deno.test("shoal still accepts new peers after dropping a hostile one", async () => {
  // A protocol error closes only that connection (it is not a ban), and the listener lives on.
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  await conn.send({ type: "have", piece: 1_000_000 });
  await conn.waitForClose();
  assert.equal(swarm.events.all("peer-banned").length, 0, "a protocol error is not a ban");
  // A second, well-behaved connection to the leecher's listening port is accepted.
  const incoming = await Deno.connect({ hostname: "127.0.0.1", port: swarm.leecher.port });
  try {
    const other = new FakeConnection(incoming);
    await other.sendHandshake(swarm.meta.infoHash, {
      peerId: new TextEncoder().encode("-FK0001-secondpeer01"),
    });
    const reply = await other.readHandshake();
    assert.deepEqual(reply.infoHash, swarm.meta.infoHash);
    const first = await other.readMessage();
    assert.equal(first?.type, "have_none");
  } finally {
    incoming.close();
  }
  await swarm.completeFromSeeder();
});

Deno.test("a later bitfield, have_none or have_all replaces what a peer announced, without a disconnect", async () => {
  // aria2 sends a fresh bitfield instead of a burst of haves, in the middle of a connection.
  await using swarm = await Swarm.create();
  await using fake = FakePeer.listen();
  await swarm.add([fake.address]);
  const conn = await fake.accept();
  await handshake(conn, swarm.meta);
  const interest = async (want: "interested" | "not_interested") => {
    await conn.waitForMessage((m) => m.type === want);
  };
  await conn.send({ type: "have", piece: 1 });
  await interest("interested");
  await conn.send({ type: "have_none" }); // forgets piece 1
  await interest("not_interested");
  await conn.send({ type: "have_all" });
  await interest("interested");
  await conn.send({ type: "bitfield", bits: new Uint8Array([0]) }); // nothing after all
  await interest("not_interested");
  await conn.send({ type: "bitfield", bits: new Uint8Array([0b0001_0000]) }); // piece 3 only
  await interest("interested");
  await conn.send({ type: "unchoke" });
  // Both requests (piece 3 is two blocks) are for piece 3, the only one the latest bitfield names.
  for (let i = 0; i < 2; i++) {
    const m = await conn.waitForMessage((m) => m.type === "request");
    assert.equal(m.type === "request" ? m.piece : -1, 3);
  }
  assert.deepEqual(swarm.events.all("peer-disconnected").filter((d) => d.address === fake.address), []);
  assert.equal(conn.eof, false);
  await swarm.completeFromSeeder();
});
