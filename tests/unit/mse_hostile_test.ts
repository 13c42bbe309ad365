import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import type { Torrent } from "../../lib/torrent.ts";
import type { LogRecord, Metainfo } from "../../lib/types.ts";
import { decodeHandshake, encodeHandshake, reservedBits } from "../../lib/wire/handshake.ts";
import { Session } from "../../mod.ts";
import { mse, type MsePolicy } from "../../plugins/encryption/mse.ts";
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from "../../plugins/encryption/mse_handshake.ts";
import { FakeConnection, FakePeer, withDeadline } from "../_fake_peer.ts";
import { degenerateKeys, type InitiatorScript, runInitiator, runResponder } from "../_mse_script.ts";

// Hostile Message Stream Encryption against a running shoal Session on 127.0.0.1: a scripted
// raw peer (tests/_mse_script.ts) dials shoal, or is dialled by it, and gets one handshake
// step wrong. Each time shoal drops that peer, logs why, and carries on: a correct peer
// connects right after, and a real download completes at the end. The same script with a
// correct handshake split at every byte position must always get through.

const PIECE_LENGTH = 32768;
const WAIT_MS = 5000;
const PEER_ID = new TextEncoder().encode("-FK0001-msehostile01");

/** A temp folder with a payload and its torrent, and a shoal Session under test. */
class Bench implements AsyncDisposable {
  readonly dir: string;
  readonly meta: Metainfo;
  readonly payload: Uint8Array;
  readonly session: Session;
  readonly records: LogRecord[] = [];
  torrent!: Torrent;

  private constructor(dir: string, meta: Metainfo, payload: Uint8Array, policy: MsePolicy) {
    this.dir = dir;
    this.meta = meta;
    this.payload = payload;
    this.session = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      encryption: mse({ policy }),
      trackers: false,
      lsd: false,
      pex: false,
      logLevel: "debug",
      logSinks: [(record) => this.records.push(record)],
    });
  }

  static async create(policy: MsePolicy): Promise<Bench> {
    const dir = await Deno.makeTempDir({ prefix: "shoal_mse_hostile_" });
    try {
      await Deno.mkdir(join(dir, "seed"));
      const payload = new Uint8Array(randomBytes(5 * PIECE_LENGTH + 1234));
      await Deno.writeFile(join(dir, "seed", "payload.bin"), payload);
      const created = await createTorrent(join(dir, "seed", "payload.bin"), {
        pieceLength: PIECE_LENGTH,
        creationDate: null,
      });
      const bench = new Bench(dir, parseMetainfo(created.torrent), payload, policy);
      bench.torrent = await bench.session.add(bench.meta);
      return bench;
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
  }

  /** Opens a raw connection to the session, as a peer dialling it. */
  async dial(): Promise<{ conn: FakeConnection; address: string }> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.session.port });
    conn.setNoDelay(true);
    const local = conn.localAddr as Deno.NetAddr;
    return { conn: new FakeConnection(conn), address: `127.0.0.1:${local.port}` };
  }

  /** Waits for a record about `peer` whose message matches, and returns the message. */
  async reason(peer: string, pattern: RegExp): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      const hit = this.records.find((r) => r.fields.peer === peer && pattern.test(r.message));
      if (hit) return hit.message;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const about = this.records.filter((r) => r.fields.peer === peer).map((r) => r.message);
    throw new Error(`No log record about ${peer} matches ${pattern}; about it: ${JSON.stringify(about)}`);
  }

  /** A correct encrypted peer still gets shoal's BitTorrent handshake back. */
  async assertStillAccepts(): Promise<void> {
    const { conn } = await this.dial();
    try {
      const session = await runInitiator(conn, { infoHash: this.meta.infoHash, ia: this.handshake() });
      assert.ok(session !== null, "shoal closed a correct encrypted connection");
      const answer = await session.read(68);
      assert.ok(answer !== null, "shoal sent no BitTorrent handshake");
      assert.deepEqual(decodeHandshake(answer).infoHash, this.meta.infoHash);
    } finally {
      await conn.dispose();
    }
  }

  /** A seeding Session with MSE prefer: the download must complete from it. */
  async assertCompletesFromGoodSeeder(): Promise<void> {
    await using seeder = new Session({
      downloadDir: join(this.dir, "seed"),
      bind: "127.0.0.1",
      encryption: mse({ policy: "prefer" }),
      trackers: false,
      lsd: false,
      pex: false,
    });
    assert.equal((await seeder.add(this.meta)).state, "seeding");
    this.torrent.addPeers([`127.0.0.1:${seeder.port}`]);
    await withDeadline(this.torrent.completed, 30_000, "the download from the good seeder");
    const got = await Deno.readFile(join(this.dir, "leech", "payload.bin"));
    assert.ok(
      got.length === this.payload.length && got.every((b, i) => b === this.payload[i]),
      "bytes differ",
    );
  }

  /** A plaintext BitTorrent handshake for the torrent, from the scripted peer. */
  handshake(): Uint8Array {
    return encodeHandshake({ infoHash: this.meta.infoHash, peerId: PEER_ID, reserved: reservedBits({}) });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.session.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Runs a hostile initiator script against the session; asserts it is dropped, and why. */
async function droppedIncoming(
  bench: Bench,
  script: Omit<InitiatorScript, "infoHash"> & { infoHash?: Uint8Array },
  reason: RegExp,
): Promise<void> {
  const { conn, address } = await bench.dial();
  try {
    const outcome = await runInitiator(conn, { infoHash: bench.meta.infoHash, ...script });
    assert.equal(outcome, null, "the hostile handshake went through");
    await conn.waitForClose(WAIT_MS);
    assert.match(await bench.reason(address, /^Incoming connection dropped: /), reason);
  } finally {
    await conn.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Peers that dial shoal

Deno.test("shoal drops a peer that sends random bytes instead of a key, and keeps accepting", async () => {
  await using bench = await Bench.create("require");
  for (const size of [96 + 700, 2000]) {
    const { conn, address } = await bench.dial();
    const garbage = new Uint8Array(randomBytes(size));
    garbage[0] = 0;
    await conn.write(garbage);
    await conn.waitForClose(WAIT_MS);
    assert.match(await bench.reason(address, /^Incoming connection dropped: /), /no sync point/);
    await conn.dispose();
  }
  await bench.assertStillAccepts();
});

Deno.test("shoal drops a peer whose sync point is not within the 512-byte pad window", async () => {
  await using bench = await Bench.create("require");
  await droppedIncoming(bench, { padA: 513 }, /no sync point HASH\('req1', S\) within 512 bytes/);
  await bench.assertStillAccepts();
  // The window's edge: a PadA of exactly 512 bytes is fine.
  const { conn } = await bench.dial();
  const ok = await runInitiator(conn, { infoHash: bench.meta.infoHash, padA: 512, ia: bench.handshake() });
  assert.ok(ok !== null && (await ok.read(68)) !== null, "a 512-byte PadA was refused");
  await conn.dispose();
});

Deno.test("shoal drops a peer that announces a PadC longer than 512 bytes", async () => {
  await using bench = await Bench.create("require");
  await droppedIncoming(bench, { padCField: 513, padC: 513 }, /invalid PadC: length 513 exceeds 512/);
  await bench.assertStillAccepts();
});

Deno.test("shoal drops a peer with a degenerate public key (0, 1, p-1, p, 2^768-1) without answering", async () => {
  await using bench = await Bench.create("require");
  for (const [name, key] of degenerateKeys()) {
    const { conn, address } = await bench.dial();
    await conn.write(key);
    assert.equal(await conn.readExactly(1, WAIT_MS), null, `${name}: shoal answered a degenerate key`);
    assert.match(
      await bench.reason(address, /^Incoming connection dropped: /),
      /(degenerate|invalid) public key/,
    );
    await conn.dispose();
  }
  await bench.assertStillAccepts();
});

Deno.test("shoal drops a peer that asks for a torrent it does not have (unknown obfuscated info-hash)", async () => {
  await using bench = await Bench.create("require");
  await droppedIncoming(bench, { infoHash: new Uint8Array(20).fill(9) }, /unknown torrent/);
  await bench.assertStillAccepts();
});

Deno.test("shoal under require drops a peer offering plaintext only, and a plaintext handshake", async () => {
  await using bench = await Bench.create("require");
  await droppedIncoming(bench, { provide: CRYPTO_PLAINTEXT }, /offers no crypto method we accept/);
  const { conn, address } = await bench.dial();
  await conn.write(bench.handshake());
  await conn.waitForClose(WAIT_MS);
  assert.match(
    await bench.reason(address, /^Incoming connection dropped: /),
    /Refused a plaintext connection: encryption 'mse-require' requires it/,
  );
  await conn.dispose();
  await bench.assertStillAccepts();
});

Deno.test("shoal accepts an encrypted handshake split at every byte position", async () => {
  await using bench = await Bench.create("require");
  // Ya 96, PadA 10, req1 20, req2^req3 20, VC..len(PadC) 14, PadC 5, len(IA) 2, IA 68.
  const total = 96 + 10 + 20 + 20 + 14 + 5 + 2 + 68;
  for (let at = 1; at < total; at++) {
    const { conn } = await bench.dial();
    try {
      const s = await runInitiator(conn, {
        infoHash: bench.meta.infoHash,
        ia: bench.handshake(),
        splitAt: at,
      });
      assert.ok(s !== null, `split at ${at}: shoal closed the connection`);
      const answer = await s.read(68);
      assert.ok(answer !== null, `split at ${at}: no handshake back`);
      assert.deepEqual(decodeHandshake(answer).infoHash, bench.meta.infoHash);
    } finally {
      await conn.dispose();
    }
  }
});

Deno.test("after every kind of hostile MSE peer, shoal still completes a download from a good one", async () => {
  await using bench = await Bench.create("require");
  await droppedIncoming(bench, { padA: 600 }, /no sync point/);
  await droppedIncoming(bench, { padCField: 1000 }, /invalid PadC/);
  await droppedIncoming(bench, { infoHash: new Uint8Array(20) }, /unknown torrent/);
  await droppedIncoming(bench, { vc: new Uint8Array(8).fill(0xff) }, /wrong verification constant/);
  for (const [, key] of degenerateKeys()) await droppedIncoming(bench, { publicKey: key }, /public key/);
  await bench.assertCompletesFromGoodSeeder();
});

// ---------------------------------------------------------------------------------------------
// Peers that shoal dials

/** Adds a fake peer to the torrent, waits for shoal's connection, and runs `script` on it. */
async function dialled(
  bench: Bench,
  script: (conn: FakeConnection) => Promise<void>,
): Promise<string> {
  await using fake = FakePeer.listen();
  bench.torrent.addPeers([fake.address]);
  const conn = await fake.accept(WAIT_MS);
  await script(conn);
  return fake.address;
}

async function droppedOutgoing(
  bench: Bench,
  script: (conn: FakeConnection) => Promise<void>,
  reason: RegExp,
): Promise<void> {
  const address = await dialled(bench, async (conn) => {
    await script(conn);
    await conn.waitForClose(WAIT_MS);
  });
  assert.match(await bench.reason(address, /^encrypted connection failed: /), reason);
}

Deno.test("shoal drops a dialled peer that answers with random bytes instead of a key", async () => {
  await using bench = await Bench.create("require");
  await droppedOutgoing(bench, async (conn) => {
    assert.ok(await conn.readExactly(96, WAIT_MS));
    await conn.write(new Uint8Array(randomBytes(96 + 700)));
  }, /no verification constant within 512 bytes/);
  await bench.assertStillAccepts();
});

Deno.test("shoal drops a dialled peer with a degenerate public key before sending anything more", async () => {
  await using bench = await Bench.create("require");
  for (const [name, key] of degenerateKeys()) {
    let after = 0;
    await droppedOutgoing(bench, async (conn) => {
      assert.ok(await conn.readExactly(96, WAIT_MS));
      await conn.write(key);
      while ((await conn.readExactly(1, WAIT_MS)) !== null) after++;
    }, /(degenerate|invalid) public key/);
    // At most PadA followed Ya: no step 3 (which is at least 54 bytes after a full pad).
    assert.ok(after <= 512, `${name}: shoal sent ${after} bytes after its key`);
  }
});

Deno.test("shoal drops a dialled peer whose PadB is longer than 512 bytes, or whose PadD is", async () => {
  await using bench = await Bench.create("require");
  await droppedOutgoing(bench, async (conn) => {
    await runResponder(conn, { infoHash: bench.meta.infoHash, padB: 513 }).catch((e: unknown) => {
      // The script cannot find shoal's sync point once shoal has hung up: expected.
      assert.ok(e instanceof Error);
    });
  }, /no verification constant within 512 bytes/);
  await droppedOutgoing(bench, async (conn) => {
    await runResponder(conn, { infoHash: bench.meta.infoHash, padDField: 513, padD: 513 });
  }, /invalid PadD: length 513 exceeds 512/);
});

Deno.test("shoal under require drops a dialled peer that selects plaintext or an unknown method", async () => {
  await using bench = await Bench.create("require");
  for (const select of [CRYPTO_PLAINTEXT, CRYPTO_RC4 | CRYPTO_PLAINTEXT, 0, 0x10]) {
    await droppedOutgoing(bench, async (conn) => {
      await runResponder(conn, { infoHash: bench.meta.infoHash, select: () => select });
    }, /selected an invalid crypto method/);
  }
});

Deno.test("shoal completes an encrypted handshake with a dialled peer split at every byte position", async () => {
  await using bench = await Bench.create("require");
  // Yb 96, PadB 10, VC 8, crypto_select 4, len(PadD) 2, PadD 5.
  const total = 96 + 10 + 8 + 4 + 2 + 5;
  for (let at = 1; at < total; at++) {
    await dialled(bench, async (conn) => {
      const s = await runResponder(conn, { infoHash: bench.meta.infoHash, splitAt: at });
      assert.ok(s !== null, `split at ${at}: shoal hung up`);
      assert.equal(s.provide, CRYPTO_RC4, "require offers RC4 only");
      const theirs = await s.read(68);
      assert.ok(theirs !== null, `split at ${at}: no handshake from shoal`);
      assert.deepEqual(decodeHandshake(theirs).infoHash, bench.meta.infoHash);
      await conn.dispose();
    });
  }
});

Deno.test("shoal under prefer retries in plaintext on a fresh connection when the encrypted one fails", async () => {
  await using bench = await Bench.create("prefer");
  await using fake = FakePeer.listen();
  bench.torrent.addPeers([fake.address]);
  const first = await fake.accept(WAIT_MS);
  assert.ok(await first.readExactly(96, WAIT_MS), "no MSE key on the first connection");
  first.close(); // like a peer that speaks no MSE
  const second = await fake.accept(WAIT_MS);
  const handshake = await second.readHandshake(WAIT_MS);
  assert.deepEqual(handshake.infoHash, bench.meta.infoHash);
  assert.match(
    await bench.reason(fake.address, /^encrypted connection failed: /),
    /Connection closed during the encryption handshake after 0 bytes/,
  );
});
