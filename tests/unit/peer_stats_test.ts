import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createTorrent,
  type Metainfo,
  mse,
  type MsePolicy,
  parseMetainfo,
  Session,
  type Torrent,
} from "../../mod.ts";
import { FakePeer, withDeadline } from "../_fake_peer.ts";

// What Torrent.peers() says about each connection (direction, transport, encryption), and the
// wasted-bytes counts of Torrent.stats() (duplicate blocks, pieces that failed their check).

const PIECE_LENGTH = 32768;

async function makeData(dir: string, pieces: number): Promise<{ meta: Metainfo; payload: Uint8Array }> {
  await Deno.mkdir(join(dir, "seed"), { recursive: true });
  const payload = new Uint8Array(pieces * PIECE_LENGTH).map((_, i) => (i * 131 + (i >> 11)) & 0xff);
  await Deno.writeFile(join(dir, "seed", "payload.bin"), payload);
  const made = await createTorrent(join(dir, "seed", "payload.bin"), {
    pieceLength: PIECE_LENGTH,
    creationDate: null,
  });
  return { meta: parseMetainfo(made.torrent), payload };
}

function connected(torrent: Torrent): Promise<void> {
  if (torrent.peers().length > 0) return Promise.resolve();
  return withDeadline(
    new Promise<void>((resolve) =>
      torrent.addEventListener("peer-connected", () => resolve(), { once: true })
    ),
    10_000,
    "a peer connection",
  );
}

async function linkBetween(policy: MsePolicy) {
  const dir = await Deno.makeTempDir({ prefix: "shoal_peer_info_" });
  const { meta } = await makeData(dir, 64);
  // The seeder's upload limit keeps the download (and so the connection) going while we look.
  const seeder = new Session({
    downloadDir: join(dir, "seed"),
    bind: "127.0.0.1",
    encryption: mse({ policy }),
    uploadLimit: 64 * 1024,
    lsd: false,
  });
  const leecher = new Session({
    downloadDir: join(dir, "leech"),
    bind: "127.0.0.1",
    encryption: mse({ policy }),
    lsd: false,
  });
  const seeding = await seeder.add(meta);
  const leeching = await leecher.add(meta, { peers: [`127.0.0.1:${seeder.port}`] });
  const close = async () => {
    await leecher.close();
    await seeder.close();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await connected(leeching);
    await connected(seeding);
    return { seeding, leeching, close };
  } catch (error) {
    await close();
    throw error;
  }
}

Deno.test("peers() tells the direction, the transport and RC4 encryption of a connection", async () => {
  const { seeding, leeching, close } = await linkBetween("require");
  try {
    const out = leeching.peers()[0]!;
    assert.equal(out.direction, "out");
    assert.equal(out.transport, "tcp");
    assert.equal(out.encryption, "rc4");
    const incoming = seeding.peers()[0]!;
    assert.equal(incoming.direction, "in");
    assert.equal(incoming.transport, "tcp");
    assert.equal(incoming.encryption, "rc4");
  } finally {
    await close();
  }
});

Deno.test("peers() says 'none' for a plain BitTorrent handshake, both ways", async () => {
  const { seeding, leeching, close } = await linkBetween("disable");
  try {
    assert.deepEqual(
      [leeching.peers()[0]?.direction, leeching.peers()[0]?.encryption],
      ["out", "none"],
    );
    assert.deepEqual(
      [seeding.peers()[0]?.direction, seeding.peers()[0]?.encryption],
      ["in", "none"],
    );
  } finally {
    await close();
  }
});

Deno.test("stats() counts duplicate blocks and the bytes of pieces that failed their check as wasted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_wasted_" });
  try {
    const { meta, payload } = await makeData(dir, 4);
    await using fake = FakePeer.listen();
    await using leecher = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      encryption: mse({ policy: "disable" }),
      lsd: false,
      logSinks: [],
    });
    const torrent = await leecher.add(meta, { peers: [fake.address] });
    const conn = await fake.accept();
    await conn.readHandshake();
    await conn.sendHandshake(meta.infoHash);
    await conn.send({ type: "have_all" });
    await conn.send({ type: "unchoke" });
    // Shoal asks for all 8 blocks at once (its first queue depth is 32).
    const requests: { piece: number; begin: number; length: number }[] = [];
    while (requests.length < 8) {
      const m = await conn.waitForMessage((m) => m.type === "request");
      if (m.type === "request") requests.push(m);
    }
    const x = requests[0]!;
    const block = (r: { piece: number; begin: number; length: number }) =>
      payload.subarray(r.piece * PIECE_LENGTH + r.begin, r.piece * PIECE_LENGTH + r.begin + r.length);
    // Reject one block (BEP 6): shoal asks for it again at once. Then send it twice: the copy
    // that answers the rejected request is tolerated, and thrown away as a duplicate.
    await conn.send({ type: "reject", piece: x.piece, begin: x.begin, length: x.length });
    await conn.waitForMessage((m) => m.type === "request" && m.piece === x.piece && m.begin === x.begin);
    await conn.send({ type: "piece", piece: x.piece, begin: x.begin, data: block(x) });
    await conn.send({ type: "piece", piece: x.piece, begin: x.begin, data: block(x) });
    // The other blocks: good, except those of one other piece, which then fails its check.
    const bad = (x.piece + 1) % meta.pieceCount;
    const failed = new Promise<void>((resolve) =>
      torrent.addEventListener("piece-failed", () => resolve(), { once: true })
    );
    for (const r of requests.slice(1)) {
      const data = r.piece === bad ? new Uint8Array(r.length).fill(7) : block(r);
      await conn.send({ type: "piece", piece: r.piece, begin: r.begin, data });
    }
    await withDeadline(failed, 10_000, "a failed piece");
    const stats = torrent.stats();
    assert.equal(stats.duplicateBytes, x.length);
    assert.equal(stats.failedBytes, PIECE_LENGTH);
    assert.equal(stats.wastedBytes, stats.duplicateBytes + stats.failedBytes);
    await torrent.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
