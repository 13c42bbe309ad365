import assert from "node:assert/strict";
import { join } from "node:path";
import { type BEncodable, decode, encode } from "../../lib/bencode.ts";
import { createTorrent } from "../../lib/create.ts";
import { ShoalError } from "../../lib/errors.ts";
import { Logger } from "../../lib/log.ts";
import { formatMagnet, parseMagnet } from "../../lib/magnet.ts";
import { type FetchedMetadata, fetchMetadata, type FetchMetadataOptions } from "../../lib/metadata_fetch.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  METADATA_PIECE_SIZE,
} from "../../lib/peer/ut_metadata.ts";
import { BaseSession } from "../../lib/session.ts";
import { sha1 } from "../../lib/storage/verify.ts";
import type { LogRecord } from "../../lib/types.ts";
import { reservedBits } from "../../lib/wire/handshake.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { type FakeConnection, FakePeer, withDeadline } from "../_fake_peer.ts";

// fetchMetadata() against scripted fake peers: good ones serve the real metadata, hostile
// ones lie in every way BEP 9 allows. Each test checks that the fetch still returns the
// verified metadata from the good peers, and that hostile peers are dropped where due.

/** The id our fake peers give ut_metadata in their `m` (shoal sends its messages with it). */
const FAKE_UT_ID = 3;
const PEER_ID = new TextEncoder().encode("-SH0100-metadatatest");

/** A synthetic info dictionary of `pieces` metadata pieces (the fetcher only needs a dictionary). */
function makeInfo(metadataPieces: number): { info: Uint8Array; infoHash: Uint8Array; pieceCount: number } {
  // Each piece hash is 20 bytes: size the hash list so the dictionary spans the wanted pieces.
  const pieceCount = Math.floor(((metadataPieces - 1) * METADATA_PIECE_SIZE + 1000) / 20);
  const hashes = new Uint8Array(pieceCount * 20).map((_, i) => (i * 7) & 0xff);
  const info = encode({
    length: pieceCount * 16384,
    name: "synthetic",
    "piece length": 16384,
    pieces: hashes,
  });
  return { info, infoHash: sha1(info), pieceCount };
}

/** One connection of a fake peer, driven by the test. */
class Scripted {
  readonly conn: FakeConnection;
  /** The id shoal gave ut_metadata (we send our messages with it). */
  shoalUtId = 0;

  constructor(conn: FakeConnection) {
    this.conn = conn;
  }

  /** Accepts shoal's connection, answers its handshake and reads its extended handshake. */
  static async accept(fake: FakePeer, infoHash: Uint8Array, reserved?: Uint8Array): Promise<Scripted> {
    const conn = await fake.accept();
    const theirs = await conn.readHandshake();
    assert.deepEqual(theirs.infoHash, infoHash);
    assert.ok((theirs.reserved[5]! & 0x10) !== 0, "shoal must set the extension bit");
    await conn.sendHandshake(infoHash, reserved ? { reserved } : {});
    const s = new Scripted(conn);
    if (reserved !== undefined && (reserved[5]! & 0x10) === 0) return s;
    const m = await conn.waitForMessage((m) => m.type === "extended" && m.id === 0);
    if (m.type !== "extended") throw new Error("unreachable");
    const handshake = decode(m.payload) as Map<string, unknown>;
    const ids = handshake.get("m") as Map<string, unknown>;
    s.shoalUtId = ids.get("ut_metadata") as number;
    assert.ok(s.shoalUtId > 0, "shoal must offer ut_metadata");
    assert.equal(handshake.get("metadata_size"), undefined, "shoal has no metadata to offer yet");
    return s;
  }

  /** Sends an extended handshake with these fields (`m` included), or raw bytes. */
  async handshake(fields: Record<string, BEncodable> | Uint8Array): Promise<void> {
    const payload = fields instanceof Uint8Array
      ? fields
      : encode({ m: { ut_metadata: FAKE_UT_ID }, ...fields });
    await this.conn.send({ type: "extended", id: 0, payload });
  }

  /** Waits for shoal's next metadata request. */
  async request(timeoutMs = 5000): Promise<number> {
    const m = await this.conn.waitForMessage((m) => m.type === "extended" && m.id === FAKE_UT_ID, timeoutMs);
    if (m.type !== "extended") throw new Error("unreachable");
    const request = decodeMetadataMessage(m.payload);
    assert.equal(request.type, "request");
    return (request as { piece: number }).piece;
  }

  async data(piece: number, totalSize: number, data: Uint8Array): Promise<void> {
    await this.conn.send({
      type: "extended",
      id: this.shoalUtId,
      payload: encodeMetadataMessage({ type: "data", piece, totalSize, data }),
    });
  }

  async reject(piece: number): Promise<void> {
    await this.conn.send({
      type: "extended",
      id: this.shoalUtId,
      payload: encodeMetadataMessage({ type: "reject", piece }),
    });
  }

  /** Answers every request until shoal closes the connection, with `answer`'s bytes. */
  async serve(info: Uint8Array, answer: (piece: number, real: Uint8Array) => Uint8Array = (_, r) => r) {
    for (;;) {
      let piece: number;
      try {
        piece = await this.request(20_000);
      } catch {
        return; // closed (or the test is over)
      }
      const begin = piece * METADATA_PIECE_SIZE;
      await this.data(piece, info.length, answer(piece, info.subarray(begin, begin + METADATA_PIECE_SIZE)));
    }
  }
}

/** A fetch with a log, over these fake peers (by address). */
function startFetch(
  infoHash: Uint8Array,
  peers: string[],
  extra: Partial<FetchMetadataOptions> = {},
): { result: Promise<FetchedMetadata>; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const logger = new Logger({ level: "debug", sinks: [(r) => logs.push(r)] });
  const link = { infoHash, peers, trackers: [] };
  const result = fetchMetadata(link, { peerId: PEER_ID, logger, timeoutMs: 20_000, ...extra });
  return { result, logs };
}

function dump(logs: LogRecord[]): string {
  return logs.map((r) => `${r.level} ${r.message} ${JSON.stringify(r.fields)}`).join("\n");
}

Deno.test("fetchMetadata() spreads requests over two peers and checks the result against the info-hash", async () => {
  const { info, infoHash } = makeInfo(3);
  await using a = FakePeer.listen();
  await using b = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [a.address, b.address]);
  const first = await Scripted.accept(a, infoHash);
  const second = await Scripted.accept(b, infoHash);
  await first.handshake({ metadata_size: info.length });
  const firstPieces = [await first.request(), await first.request()].sort();
  await second.handshake({ metadata_size: info.length });
  const secondPiece = await second.request();
  assert.deepEqual([...firstPieces, secondPiece].sort(), [0, 1, 2]);
  for (const piece of firstPieces) {
    await first.data(piece, info.length, info.subarray(piece * 16384, (piece + 1) * 16384));
  }
  await second.data(secondPiece, info.length, info.subarray(secondPiece * 16384, (secondPiece + 1) * 16384));
  const fetched = await withDeadline(result, 10_000, "the metadata").catch((e) => {
    throw new Error(`${e}\n${dump(logs)}`);
  });
  assert.deepEqual(fetched.infoBytes, info);
  assert.deepEqual(fetched.peers.map((p) => p.address).sort(), [a.address, b.address].sort());
});

/** Runs a fetch with one hostile fake (given first) and one good fake; returns the outcome. */
async function withGoodPeer(
  metadataPieces: number,
  hostile: (peer: Scripted, info: Uint8Array) => Promise<void>,
  options: { hostileReserved?: Uint8Array; extra?: Partial<FetchMetadataOptions> } = {},
): Promise<{ fetched: FetchedMetadata; bad: string; good: string; logs: LogRecord[] }> {
  const { info, infoHash } = makeInfo(metadataPieces);
  await using bad = FakePeer.listen();
  await using good = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [bad.address, good.address], options.extra);
  const hostilePeer = await Scripted.accept(bad, infoHash, options.hostileReserved);
  const goodPeer = await Scripted.accept(good, infoHash);
  // The hostile peer goes first, so it is asked before the good one says it can help.
  await hostile(hostilePeer, info);
  await goodPeer.handshake({ metadata_size: info.length });
  const serving = goodPeer.serve(info);
  let fetched: FetchedMetadata;
  try {
    fetched = await withDeadline(result, 15_000, "the metadata");
  } catch (error) {
    throw new Error(`${error}\n${dump(logs)}`);
  }
  await Promise.all([...good.connections, ...bad.connections].map((c) => c.dispose()));
  await serving;
  assert.deepEqual(fetched.infoBytes, info, "the verified metadata");
  return { fetched, bad: bad.address, good: good.address, logs };
}

/**
 * An extended handshake the fetch cannot use: the peer must be dropped and the good peer used.
 * A hostile peer is left out of the result; one that merely has no metadata is handed on.
 */
async function expectDroppedForHandshake(
  fields: Record<string, BEncodable> | Uint8Array,
  reason: RegExp,
  handedOn = false,
) {
  const { fetched, bad, good, logs } = await withGoodPeer(2, async (peer) => {
    await peer.handshake(fields);
    await peer.conn.waitForClose();
  });
  const dropped = logs.find((r) => r.fields.peer === bad && /Dropped peer/.test(r.message));
  assert.ok(dropped, `no drop logged for the hostile peer\n${dump(logs)}`);
  assert.match(dropped.message, reason);
  assert.equal(fetched.peers.some((p) => p.address === bad), handedOn, JSON.stringify(fetched.peers));
  assert.ok(fetched.peers.some((p) => p.address === good));
}

Deno.test("fetchMetadata() drops a peer whose metadata_size is 0", async () => {
  await expectDroppedForHandshake({ metadata_size: 0 }, /metadata_size 0 is not in 1\.\.16777216/);
});

Deno.test("fetchMetadata() drops a peer whose metadata_size is negative", async () => {
  await expectDroppedForHandshake({ metadata_size: -5 }, /metadata_size -5 is not in/);
});

Deno.test("fetchMetadata() drops a peer whose metadata_size is 1 GiB", async () => {
  await expectDroppedForHandshake({ metadata_size: 1024 ** 3 }, /metadata_size 1073741824 is not in/);
});

Deno.test("fetchMetadata() drops a peer whose metadata_size is not an integer", async () => {
  await expectDroppedForHandshake({ metadata_size: "big" }, /metadata_size not an integer/);
});

Deno.test("fetchMetadata() drops a peer whose extended handshake is not a dictionary", async () => {
  await expectDroppedForHandshake(new TextEncoder().encode("li1ei2ee"), /not a dictionary/);
  await expectDroppedForHandshake(new TextEncoder().encode("i5e"), /not a dictionary/);
  await expectDroppedForHandshake(new TextEncoder().encode("d3:abc"), /Malformed extended handshake/);
});

Deno.test("fetchMetadata() drops a peer that does not offer ut_metadata", async () => {
  await expectDroppedForHandshake(
    encode({ m: { ut_pex: 1 }, metadata_size: 100 }),
    /does not offer ut_metadata/,
    true,
  );
});

Deno.test("fetchMetadata() drops a peer that offers ut_metadata without metadata_size", async () => {
  await expectDroppedForHandshake({}, /sent no metadata_size/, true);
});

Deno.test("fetchMetadata() drops a peer without the extension protocol, but hands it on for the download", async () => {
  const noExtensions = reservedBits({ fast: true });
  const { fetched, bad } = await withGoodPeer(2, async (peer) => {
    await peer.conn.waitForClose();
  }, { hostileReserved: noExtensions });
  assert.ok(fetched.peers.some((p) => p.address === bad));
});

Deno.test("fetchMetadata() drops a peer that sends a metadata piece over 17 KiB", async () => {
  const { fetched, bad, logs } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    const piece = await peer.request();
    await peer.data(piece, info.length, new Uint8Array(17 * 1024 + 1));
    await peer.conn.waitForClose();
  });
  assert.ok(
    logs.some((r) => r.fields.peer === bad && /exceeds the 16384-byte maximum/.test(r.message)),
    dump(logs),
  );
  assert.ok(!fetched.peers.some((p) => p.address === bad));
});

Deno.test("fetchMetadata() drops a peer whose data has a total_size other than its metadata_size", async () => {
  const { bad, logs } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    const piece = await peer.request();
    await peer.data(piece, info.length + 1, info.subarray(piece * 16384, (piece + 1) * 16384));
    await peer.conn.waitForClose();
  });
  assert.ok(logs.some((r) => r.fields.peer === bad && /total_size .* differs/.test(r.message)), dump(logs));
});

Deno.test("fetchMetadata() drops a peer that sends a short piece", async () => {
  const { bad, logs } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    const piece = await peer.request();
    await peer.data(piece, info.length, new Uint8Array(10));
    await peer.conn.waitForClose();
  });
  assert.ok(
    logs.some((r) => r.fields.peer === bad && /bytes for metadata piece/.test(r.message)),
    dump(logs),
  );
});

Deno.test("fetchMetadata() asks another peer for pieces a peer rejects", async () => {
  const { fetched, bad } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    await peer.reject(await peer.request());
    await peer.reject(await peer.request());
  });
  // Refusing is not lying: the peer is not banned and may be handed on.
  assert.ok(fetched.peers.some((p) => p.address === bad));
});

Deno.test("fetchMetadata() asks again for a piece every peer refused, once nobody is fetching anything", async () => {
  const { info, infoHash } = makeInfo(1);
  await using fake = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [fake.address], { requestTimeoutMs: 400 });
  const only = await Scripted.accept(fake, infoHash);
  await only.handshake({ metadata_size: info.length });
  await only.reject(await only.request()); // busy: refused once
  const serving = only.serve(info);
  const fetched = await withDeadline(result, 10_000, "the metadata").catch((e) => {
    throw new Error(`${e}\n${dump(logs)}`);
  });
  assert.deepEqual(fetched.infoBytes, info);
  await Promise.all(fake.connections.map((c) => c.dispose()));
  await serving;
});

Deno.test("fetchMetadata() gives a slow peer's pieces to another peer after the request timeout", async () => {
  const { logs } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    await peer.request();
    await peer.request(); // and never answer
  }, { extra: { requestTimeoutMs: 300 } });
  assert.ok(logs.some((r) => /Metadata request timed out/.test(r.message)), dump(logs));
});

Deno.test("fetchMetadata() bans the only sender of metadata that does not match the info-hash", async () => {
  const { fetched, bad, logs } = await withGoodPeer(2, async (peer, info) => {
    await peer.handshake({ metadata_size: info.length });
    const pieces = [await peer.request(), await peer.request()];
    for (const piece of pieces) {
      await peer.data(piece, info.length, new Uint8Array(Math.min(16384, info.length - piece * 16384)));
    }
    await peer.conn.waitForClose();
  });
  const banned = logs.find((r) => /Banned peer/.test(r.message));
  assert.ok(banned, dump(logs));
  assert.equal(banned.fields.peer, bad);
  assert.match(banned.message, /does not match the info-hash/);
  assert.ok(!fetched.peers.some((p) => p.address === bad));
});

Deno.test("fetchMetadata() finds the liar among several senders of metadata that does not match", async () => {
  const { info, infoHash } = makeInfo(3);
  await using liarPeer = FakePeer.listen();
  await using goodPeer = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [liarPeer.address, goodPeer.address]);
  const liar = await Scripted.accept(liarPeer, infoHash);
  const good = await Scripted.accept(goodPeer, infoHash);
  await liar.handshake({ metadata_size: info.length });
  const liarFirst = [await liar.request(), await liar.request()];
  await good.handshake({ metadata_size: info.length });
  // Both now send: the liar corrupts every piece it sends, so the first assembly fails with two senders.
  const serving = [
    liar.serve(info, (_, real) => real.map((b) => b ^ 0xff)),
    good.serve(info),
  ];
  for (const piece of liarFirst) {
    await liar.data(
      piece,
      info.length,
      info.subarray(piece * 16384, (piece + 1) * 16384).map((b) => b ^ 0xff),
    );
  }
  let fetched: FetchedMetadata;
  try {
    fetched = await withDeadline(result, 15_000, "the metadata");
  } catch (error) {
    throw new Error(`${error}\n${dump(logs)}`);
  }
  assert.deepEqual(fetched.infoBytes, info);
  assert.ok(logs.some((r) => /Fetching all metadata from one peer/.test(r.message)), dump(logs));
  const bans = logs.filter((r) => /Banned peer/.test(r.message)).map((r) => r.fields.peer);
  assert.deepEqual([...new Set(bans)], [liarPeer.address], dump(logs));
  assert.ok(!fetched.peers.some((p) => p.address === liarPeer.address));
  assert.ok(fetched.peers.some((p) => p.address === goodPeer.address));
  await Promise.all([...liarPeer.connections, ...goodPeer.connections].map((c) => c.dispose()));
  await Promise.all(serving);
});

Deno.test("fetchMetadata() gives up at its deadline when only a liar answers, and the process carries on", async () => {
  const { info, infoHash } = makeInfo(1);
  await using fake = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [fake.address], { timeoutMs: 1500 });
  const liar = await Scripted.accept(fake, infoHash);
  await liar.handshake({ metadata_size: info.length });
  const piece = await liar.request();
  await liar.data(piece, info.length, new Uint8Array(info.length));
  await assert.rejects(withDeadline(result, 10_000, "the fetch to give up"), (e: unknown) => {
    assert.ok(e instanceof ShoalError);
    assert.equal(e.code, "METADATA_TIMEOUT");
    return true;
  });
  assert.ok(logs.some((r) => /Banned peer/.test(r.message) && r.fields.peer === fake.address), dump(logs));
});

Deno.test("fetchMetadata() keeps a bitfield sent before the metadata and checks it once the piece count is known", async () => {
  const { info, infoHash, pieceCount } = makeInfo(1);
  await using seed = FakePeer.listen();
  await using wrong = FakePeer.listen();
  await using quiet = FakePeer.listen();
  const { result, logs } = startFetch(infoHash, [seed.address, wrong.address, quiet.address]);
  const s = await Scripted.accept(seed, infoHash);
  const w = await Scripted.accept(wrong, infoHash);
  const q = await Scripted.accept(quiet, infoHash);
  // A full bitfield, a bitfield one byte too long, and nothing at all.
  const full = new Uint8Array(Math.ceil(pieceCount / 8)).fill(0xff);
  if (pieceCount % 8 !== 0) full[full.length - 1] = (0xff << (8 - (pieceCount % 8))) & 0xff;
  await s.conn.send({ type: "bitfield", bits: full });
  await w.conn.send({ type: "bitfield", bits: new Uint8Array(full.length + 1) });
  // Only the quiet one serves, and only after the others have said their piece.
  await s.handshake({});
  await w.handshake({});
  await q.handshake({ metadata_size: info.length });
  const serving = q.serve(info);
  const fetched = await withDeadline(result, 10_000, "the metadata").catch((e) => {
    throw new Error(`${e}\n${dump(logs)}`);
  });
  assert.deepEqual(fetched.infoBytes, info);
  // The seed and the other one had no metadata to offer, so they were dropped; still their
  // bitfields were kept: the seed is listed first, the one whose bitfield does not fit is left out.
  assert.deepEqual(fetched.peers[0], { address: seed.address, pieces: "all" });
  assert.ok(!fetched.peers.some((p) => p.address === wrong.address), JSON.stringify(fetched.peers));
  assert.ok(fetched.peers.some((p) => p.address === quiet.address && p.pieces === null));
  assert.ok(
    logs.some((r) => r.fields.peer === wrong.address && /Left out a peer: Invalid bitfield/.test(r.message)),
    dump(logs),
  );
  await Promise.all(
    [...seed.connections, ...wrong.connections, ...quiet.connections].map((c) => c.dispose()),
  );
  await serving;
});

Deno.test("fetchMetadata() rejects with the abort reason when its signal aborts", async () => {
  const { infoHash } = makeInfo(1);
  await using fake = FakePeer.listen();
  const abort = new AbortController();
  const { result } = startFetch(infoHash, [fake.address], { signal: abort.signal });
  await fake.accept();
  abort.abort(new ShoalError("STOPPED", "test stop"));
  await assert.rejects(withDeadline(result, 5000, "the fetch to stop"), /test stop/);
});

// ---------------------------------------------------------------------------------------------
// Through a session: a shoal seed serves, another session fetches, saves and reuses the metadata.

Deno.test("a session downloads a magnet link from a shoal seed and saves its metadata for the next start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_magnet_session_" });
  try {
    // Enough files that the info dictionary spans two metadata pieces.
    await Deno.mkdir(join(dir, "seed", "many"), { recursive: true });
    for (let i = 0; i < 300; i++) {
      const name = `file-${String(i).padStart(3, "0")}-a-name-long-enough-to-grow-the-info-dictionary.bin`;
      await Deno.writeFile(join(dir, "seed", "many", name), new Uint8Array(500 + i).fill(i & 0xff));
    }
    const created = await createTorrent(join(dir, "seed", "many"), {
      pieceLength: 16384,
      creationDate: null,
    });
    const meta = parseMetainfo(created.torrent);
    assert.ok(meta.infoBytes.length > METADATA_PIECE_SIZE, "the metadata should span two pieces");
    const logs: LogRecord[] = [];
    await using seeder = new BaseSession({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      selector: rarestFirst(),
      trackers: false,
    });
    await seeder.add(meta);
    const uri = formatMagnet({
      ...parseMagnet(`magnet:?xt=urn:btih:${meta.infoHashHex}`),
      name: "many",
      peers: [`127.0.0.1:${seeder.port}`],
      webSeeds: ["http://127.0.0.1:1/many/"],
    });
    {
      await using leecher = new BaseSession({
        downloadDir: join(dir, "leech"),
        bind: "127.0.0.1",
        selector: rarestFirst(),
        trackers: false,
        logLevel: "debug",
        logSinks: [(r) => logs.push(r)],
      });
      const torrent = await leecher.add(uri, { metadataTimeoutMs: 20_000 });
      assert.equal(torrent.infoHash, meta.infoHashHex);
      assert.deepEqual(torrent.metainfo.urlList, ["http://127.0.0.1:1/many/"], "ws is recorded");
      await withDeadline(torrent.completed, 30_000, "the download");
      assert.ok(logs.some((r) => /Metadata verified/.test(r.message)));
      assert.ok(logs.some((r) => /Web seeds are recorded but not used/.test(r.message)));
    }
    const saved = join(dir, "leech", ".shoal", `${meta.infoHashHex}.torrent`);
    assert.equal(parseMetainfo(await Deno.readFile(saved)).infoHashHex, meta.infoHashHex);
    for (let i = 0; i < 300; i += 37) {
      const name = `file-${String(i).padStart(3, "0")}-a-name-long-enough-to-grow-the-info-dictionary.bin`;
      assert.deepEqual(
        await Deno.readFile(join(dir, "leech", "many", name)),
        new Uint8Array(500 + i).fill(i & 0xff),
      );
    }
    // A restart with no peer at all: the saved metadata is used, nothing is fetched.
    logs.length = 0;
    await seeder.close();
    await using again = new BaseSession({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      selector: rarestFirst(),
      trackers: false,
      logLevel: "debug",
      logSinks: [(r) => logs.push(r)],
    });
    const restarted = await again.add(`magnet:?xt=urn:btih:${meta.infoHashHex}`);
    assert.ok(logs.some((r) => /Using metadata saved by an earlier fetch/.test(r.message)));
    assert.ok(!logs.some((r) => /Fetching metadata/.test(r.message)));
    await withDeadline(restarted.completed, 10_000, "the check of the existing data");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
