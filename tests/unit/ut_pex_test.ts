/**
 * BEP 11 peer exchange: the message codec and its caps, the sending rules (current peers
 * first, then at most once a minute, at most 50 per list, only dialable addresses) with a
 * fake clock, learning with rate limits, and, against a running shoal torrent with a
 * scripted fake peer: ut_pex is offered (not on private torrents), a learned peer is dialled,
 * shoal tells peers about the peers it dialled, and a PEX message over the cap drops the
 * peer while the torrent goes on.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type BDict, decode, encode } from "../../lib/bencode.ts";
import { createTorrent } from "../../lib/create.ts";
import { ProtocolError } from "../../lib/errors.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import {
  decodePexMessage,
  encodePexMessage,
  MAX_PEX_MESSAGE_BYTES,
  PEX_FLAG_REACHABLE,
  PEX_FLAG_SEED,
  PEX_INTERVAL_MS,
  pexAddress,
  type PexConnectedPeer,
  UtPex,
} from "../../lib/peer/ut_pex.ts";
import type { ExtensionPeer, LogRecord, Metainfo } from "../../lib/types.ts";
import type { Torrent } from "../../lib/torrent.ts";
import { mse, Session } from "../../mod.ts";
import { type FakeConnection, FakePeer, withDeadline } from "../_fake_peer.ts";

// ---------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------

function compact(...entries: [number[], number][]): Uint8Array {
  const out: number[] = [];
  for (const [ip, port] of entries) out.push(...ip, port >> 8, port & 0xff);
  return Uint8Array.from(out);
}

function v4(i: number): string {
  return `10.${(i >> 8) & 0xff}.${i & 0xff}.1:${6000 + i}`;
}

Deno.test("encodePexMessage() and decodePexMessage() round-trip IPv4 and IPv6 peers with flags", () => {
  const payload = encodePexMessage({
    added: [
      { address: "10.0.0.2:6881", flags: PEX_FLAG_SEED },
      { address: "[2001:db8::7]:51413", flags: PEX_FLAG_REACHABLE },
      { address: "192.168.1.9:1", flags: 0 },
    ],
    dropped: ["10.0.0.3:6882", "[2001:db8::8]:6883"],
  });
  const dict = decode(payload) as BDict;
  assert.deepEqual([...dict.keys()], ["added", "added.f", "added6", "added6.f", "dropped", "dropped6"]);
  assert.deepEqual(dict.get("added"), compact([[10, 0, 0, 2], 6881], [[192, 168, 1, 9], 1]));
  assert.deepEqual(dict.get("added.f"), Uint8Array.from([PEX_FLAG_SEED, 0]));
  assert.equal((dict.get("added6") as Uint8Array).length, 18);
  const back = decodePexMessage(payload);
  assert.deepEqual(back.added, [
    { address: "10.0.0.2:6881", flags: PEX_FLAG_SEED },
    { address: "192.168.1.9:1", flags: 0 },
    { address: "[2001:db8::7]:51413", flags: PEX_FLAG_REACHABLE },
  ]);
  assert.deepEqual(back.dropped, ["10.0.0.3:6882", "[2001:db8::8]:6883"]);
  assert.equal(back.ignored, 0);
});

Deno.test("encodePexMessage() skips addresses that are not IP literals and refuses more than 50 peers", () => {
  const payload = encodePexMessage({ added: [{ address: "example.org:6881", flags: 0 }], dropped: ["x"] });
  assert.deepEqual(decodePexMessage(payload), { added: [], dropped: [], ignored: 0 });
  const many = Array.from({ length: 51 }, (_, i) => ({ address: v4(i), flags: 0 }));
  assert.throws(() => encodePexMessage({ added: many, dropped: [] }), RangeError);
  assert.throws(() => encodePexMessage({ added: [], dropped: many.map((p) => p.address) }), RangeError);
});

Deno.test("decodePexMessage() uses only the first 50 added and 50 dropped entries", () => {
  const ips = Array.from({ length: 80 }, (_, i): [number[], number] => [[10, 1, i >> 8, i & 0xff], 7000 + i]);
  const ips6 = Array.from(
    { length: 5 },
    (_, i): [number[], number] => [[0x20, 1, ...new Array(13).fill(0), i + 1], 80],
  );
  const payload = encode({ added: compact(...ips), added6: compact(...ips6), dropped: compact(...ips) });
  const message = decodePexMessage(payload);
  assert.equal(message.added.length, 50);
  assert.equal(message.dropped.length, 50);
  assert.equal(message.added[0]!.address, "10.1.0.0:7000");
  assert.equal(message.added[49]!.address, "10.1.0.49:7049");
  assert.equal(message.ignored, 30 + 5 + 30);
  assert.equal(decodePexMessage(payload, { maxPeers: 3 }).added.length, 3);
});

Deno.test("decodePexMessage() skips port 0, unspecified, multicast and broadcast addresses and partial entries", () => {
  const added = compact(
    [[0, 0, 0, 0], 6881],
    [[10, 0, 0, 1], 0],
    [[224, 0, 0, 1], 6881],
    [[255, 255, 255, 255], 6881],
    [[127, 0, 0, 1], 6881],
  );
  const partial = new Uint8Array([...added, 1, 2, 3]);
  const added6 = new Uint8Array(36);
  added6[17] = 1; // [::]:1, unspecified
  added6[18] = 0xff; // [ff00::...]:1, multicast
  added6[35] = 1;
  const message = decodePexMessage(encode({ added: partial, added6, "added.f": new Uint8Array([1]) }));
  assert.deepEqual(message.added, [{ address: "127.0.0.1:6881", flags: 0 }]);
  assert.equal(message.ignored, 6);
});

Deno.test("decodePexMessage() treats keys of the wrong type as absent and ignores unknown keys", () => {
  const payload = encode({
    added: 5,
    "added.f": [1, 2],
    added6: { x: 1 },
    dropped: compact([[10, 0, 0, 9], 9]),
    "x-unknown": "anything",
  });
  assert.deepEqual(decodePexMessage(payload), { added: [], dropped: ["10.0.0.9:9"], ignored: 0 });
  assert.deepEqual(decodePexMessage(encode({})), { added: [], dropped: [], ignored: 0 });
});

Deno.test("decodePexMessage() rejects a payload over the cap, a non-dictionary and malformed bencode", () => {
  const big = encode({ added: new Uint8Array(MAX_PEX_MESSAGE_BYTES) });
  assert.throws(
    () => decodePexMessage(big),
    (e: unknown) => e instanceof ProtocolError && /exceeds 8192/.test(e.message),
  );
  assert.throws(() => decodePexMessage(encode([1, 2])), /not a dictionary/);
  assert.throws(() => decodePexMessage(new TextEncoder().encode("d5:added")), ProtocolError);
  assert.throws(() => decodePexMessage(new TextEncoder().encode("i1e")), ProtocolError);
});

// ---------------------------------------------------------------------------
// Sending and learning, with a fake clock
// ---------------------------------------------------------------------------

class FakeExtPeer implements ExtensionPeer {
  readonly id: string;
  handshake: Map<string, unknown> = new Map();
  supported = true;
  readonly sent: Uint8Array[] = [];
  closed: string | undefined;

  constructor(id: string) {
    this.id = id;
  }

  send(payload: Uint8Array): boolean {
    if (!this.supported) return false;
    this.sent.push(payload.slice());
    return true;
  }

  close(reason: string): void {
    this.closed = reason;
  }

  /** The messages sent to this peer so far, decoded. */
  messages() {
    return this.sent.map((p) => decodePexMessage(p));
  }
}

/** A UtPex over a mutable list of connected peers and a hand-moved clock. */
function setup(options: { enabled?: () => boolean } = {}) {
  const connected: PexConnectedPeer[] = [];
  const learned: string[][] = [];
  const clock = { now: 1_000_000 };
  const logs: LogRecord[] = [];
  const pex = new UtPex({
    peers: () => connected,
    addPeers: (addresses) => {
      learned.push(addresses);
      return addresses.length;
    },
    now: () => clock.now,
    ...(options.enabled ? { enabled: options.enabled } : {}),
  });
  return { pex, connected, learned, clock, logs };
}

Deno.test("pexAddress() uses the dialled address, or the p port of an incoming peer", () => {
  assert.equal(pexAddress({ id: "10.0.0.5:6881", outgoing: true, seed: false }), "10.0.0.5:6881");
  const incoming = (p: unknown) => ({
    id: "10.0.0.7:50123",
    outgoing: false,
    seed: false,
    handshake: new Map([["p", p]]),
  });
  assert.equal(pexAddress(incoming(6882)), "10.0.0.7:6882");
  assert.equal(pexAddress({ ...incoming(6882), id: "[2001:db8::1]:50000" }), "[2001:db8::1]:6882");
  for (const bad of [0, 70000, 1.5, "6882", new Uint8Array([1])]) {
    assert.equal(pexAddress(incoming(bad)), null);
  }
  assert.equal(pexAddress({ id: "10.0.0.8:50124", outgoing: false, seed: false }), null);
});

Deno.test("UtPex sends the current peers first, then at most once a minute and only the changes", () => {
  const { pex, connected, clock } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  connected.push(
    { id: a.id, outgoing: true, seed: false },
    { id: "10.0.0.2:2000", outgoing: true, seed: true },
    { id: "10.0.0.3:40000", outgoing: false, seed: false, handshake: new Map([["p", 3000]]) },
  );
  pex.onHandshake(a);
  assert.equal(pex.tick(), 1);
  assert.deepEqual(a.messages(), [{
    added: [
      { address: "10.0.0.2:2000", flags: PEX_FLAG_SEED | PEX_FLAG_REACHABLE },
      { address: "10.0.0.3:3000", flags: 0 },
    ],
    dropped: [],
    ignored: 0,
  }]);
  // A new peer and a lost one within the minute: nothing yet.
  connected.splice(1, 1);
  connected.push({ id: "10.0.0.4:4000", outgoing: true, seed: false });
  clock.now += PEX_INTERVAL_MS - 1;
  assert.equal(pex.tick(), 0);
  clock.now += 1;
  assert.equal(pex.tick(), 1);
  assert.deepEqual(a.messages()[1], {
    added: [{ address: "10.0.0.4:4000", flags: PEX_FLAG_REACHABLE }],
    dropped: ["10.0.0.2:2000"],
    ignored: 0,
  });
  // Nothing changed: no (empty) message, even after a minute.
  clock.now += 5 * PEX_INTERVAL_MS;
  assert.equal(pex.tick(), 0);
  assert.equal(a.sent.length, 2);
});

Deno.test("UtPex leaves out the recipient and incoming peers without a port, and sends nothing empty", () => {
  const { pex, connected } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  connected.push(
    { id: a.id, outgoing: true, seed: false },
    { id: "10.0.0.9:50000", outgoing: false, seed: true },
    { id: "not an address", outgoing: false, seed: false, handshake: new Map([["p", 5]]) },
  );
  pex.onHandshake(a);
  assert.equal(pex.tick(), 0);
  assert.equal(a.sent.length, 0);
  // An incoming recipient is left out of its own list by its connection id too.
  const b = new FakeExtPeer("10.0.0.5:41000");
  connected.push({ id: b.id, outgoing: false, seed: false, handshake: new Map([["p", 5000]]) });
  pex.onHandshake(b);
  assert.equal(pex.tick(), 2);
  assert.deepEqual(a.messages()[0]!.added, [{ address: "10.0.0.5:5000", flags: 0 }]);
  assert.deepEqual(b.messages()[0]!.added, [{ address: "10.0.0.1:1000", flags: PEX_FLAG_REACHABLE }]);
});

Deno.test("UtPex sends at most 50 added peers per message and the rest a minute later", () => {
  const { pex, connected, clock } = setup();
  const a = new FakeExtPeer("10.9.9.9:1");
  connected.push({ id: a.id, outgoing: true, seed: false });
  for (let i = 0; i < 70; i++) connected.push({ id: v4(i), outgoing: true, seed: false });
  pex.onHandshake(a);
  pex.tick();
  assert.equal(a.messages()[0]!.added.length, 50);
  clock.now += PEX_INTERVAL_MS;
  pex.tick();
  const second = a.messages()[1]!;
  assert.equal(second.added.length, 20);
  const all = new Set([...a.messages()[0]!.added, ...second.added].map((p) => p.address));
  assert.equal(all.size, 70);
  // All 70 go away: dropped also at most 50 per message.
  connected.splice(1);
  clock.now += PEX_INTERVAL_MS;
  pex.tick();
  assert.equal(a.messages()[2]!.dropped.length, 50);
  clock.now += PEX_INTERVAL_MS;
  pex.tick();
  assert.equal(a.messages()[3]!.dropped.length, 20);
});

Deno.test("UtPex sends only to peers that announced ut_pex, and forgets closed peers", () => {
  const { pex, connected, clock } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  a.supported = false;
  connected.push({ id: "10.0.0.2:2000", outgoing: true, seed: false });
  pex.onHandshake(a);
  assert.equal(pex.tick(), 0);
  a.supported = true; // a later extended handshake enabled it
  assert.equal(pex.tick(), 1);
  pex.onClose(a);
  clock.now += PEX_INTERVAL_MS;
  connected.push({ id: "10.0.0.3:3000", outgoing: true, seed: false });
  assert.equal(pex.tick(), 0);
  assert.equal(a.sent.length, 1);
});

Deno.test("UtPex learns added peers through addPeers, without the sender itself", () => {
  const { pex, learned } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  pex.onHandshake(a);
  pex.onMessage(
    a,
    encodePexMessage({
      added: [{ address: "10.0.0.1:1000", flags: 0 }, { address: "10.0.0.7:7000", flags: 0 }],
      dropped: ["10.0.0.8:8000"],
    }),
  );
  assert.deepEqual(learned, [["10.0.0.7:7000"]]);
  pex.onMessage(a, encodePexMessage({ added: [], dropped: ["10.0.0.7:7000"] }));
  assert.equal(learned.length, 1, "dropped peers are not removed from the candidates, nor added");
});

Deno.test("UtPex ignores more than 3 messages a minute and drops a peer that keeps flooding", () => {
  const { pex, learned, clock } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  pex.onHandshake(a);
  const message = (i: number) => encodePexMessage({ added: [{ address: v4(i), flags: 0 }], dropped: [] });
  for (let i = 0; i < 5; i++) pex.onMessage(a, message(i));
  assert.equal(learned.length, 3);
  clock.now += PEX_INTERVAL_MS;
  pex.onMessage(a, message(9));
  assert.equal(learned.length, 4, "a minute later, messages are used again");
  for (let i = 0; i < 2; i++) pex.onMessage(a, message(10 + i));
  for (let i = 0; i < 8; i++) pex.onMessage(a, message(20 + i)); // 10 ignored so far
  assert.throws(
    () => pex.onMessage(a, message(99)),
    (e: unknown) => e instanceof ProtocolError && /too often/.test(e.message),
  );
});

Deno.test("UtPex throws ProtocolError for a message over the cap, before any rate rule", () => {
  const { pex, learned } = setup();
  const a = new FakeExtPeer("10.0.0.1:1000");
  pex.onHandshake(a);
  const big = new Uint8Array(MAX_PEX_MESSAGE_BYTES + 1);
  assert.throws(
    () => pex.onMessage(a, big),
    (e: unknown) => e instanceof ProtocolError && /exceeds/.test(e.message),
  );
  assert.throws(() => pex.onMessage(a, encode("not a dict")), ProtocolError);
  assert.deepEqual(learned, []);
});

Deno.test("UtPex neither sends nor learns while disabled", () => {
  let enabled = false;
  const { pex, connected, learned } = setup({ enabled: () => enabled });
  const a = new FakeExtPeer("10.0.0.1:1000");
  connected.push({ id: "10.0.0.2:2000", outgoing: true, seed: false });
  pex.onHandshake(a);
  assert.equal(pex.tick(), 0);
  pex.onMessage(a, encodePexMessage({ added: [{ address: "10.0.0.7:7000", flags: 0 }], dropped: [] }));
  assert.deepEqual(learned, []);
  enabled = true;
  assert.equal(pex.tick(), 1);
});

// ---------------------------------------------------------------------------
// Against a running torrent, with scripted fake peers
// ---------------------------------------------------------------------------

const OUR_PEX_ID = 7;

/** A leeching session for a small torrent (private or not), with logs kept. */
async function leecher(dir: string, options: { private?: boolean; pex?: boolean } = {}) {
  await Deno.mkdir(join(dir, "seed"), { recursive: true });
  const payload = new Uint8Array(5 * 16384 + 100).map((_, i) => (i * 31 + 7) & 0xff);
  await Deno.writeFile(join(dir, "seed", "data.bin"), payload);
  const created = await createTorrent(join(dir, "seed", "data.bin"), {
    pieceLength: 16384,
    creationDate: null,
    ...(options.private ? { private: true } : {}),
  });
  const meta = parseMetainfo(created.torrent);
  const logs: LogRecord[] = [];
  const session = new Session({
    downloadDir: join(dir, "leech"),
    bind: "127.0.0.1",
    encryption: mse({ policy: "disable" }), // the fake peers speak plaintext
    trackers: false,
    lsd: false,
    logLevel: "debug",
    logSinks: [(r) => logs.push(r)],
    ...(options.pex === false ? { pex: false } : {}),
  });
  return { dir, meta, session, logs, payload };
}

/** Answers shoal's dial: handshakes, offers ut_pex (as id 7), returns shoal's extended handshake. */
async function greet(
  conn: FakeConnection,
  meta: Metainfo,
  peerId = "-FK0001-fakepeer0001",
): Promise<BDict> {
  await conn.readHandshake();
  await conn.sendHandshake(meta.infoHash, { peerId: new TextEncoder().encode(peerId) });
  await conn.send({ type: "extended", id: 0, payload: encode({ m: { ut_pex: OUR_PEX_ID } }) });
  const theirs = await conn.waitForMessage((m) => m.type === "extended" && m.id === 0);
  assert(theirs.type === "extended");
  return decode(theirs.payload.slice()) as BDict;
}

function remotePexId(handshake: BDict): number {
  const m = handshake.get("m");
  assert(m instanceof Map);
  return (m.get("ut_pex") as number | undefined) ?? 0;
}

async function withLeecher(
  options: { private?: boolean; pex?: boolean },
  fn: (ctx: Awaited<ReturnType<typeof leecher>>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_pex_" });
  const ctx = await leecher(dir, options);
  try {
    await fn(ctx);
  } finally {
    await ctx.session.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a torrent offers ut_pex in its extended handshake, but not when private or with pex: false", async () => {
  const cases = [
    { options: {}, offered: true },
    { options: { private: true }, offered: false },
    { options: { pex: false }, offered: false },
  ];
  for (const { options, offered } of cases) {
    await withLeecher(options, async ({ meta, session }) => {
      await using fake = FakePeer.listen();
      await session.add(meta, { peers: [fake.address] });
      const conn = await fake.accept();
      const theirs = await greet(conn, meta);
      assert.equal(remotePexId(theirs) !== 0, offered, JSON.stringify(options));
    });
  }
});

Deno.test("a torrent dials a peer learned through PEX and tells its first peer about it", async () => {
  await withLeecher({}, async ({ meta, session, logs }) => {
    await using first = FakePeer.listen();
    await using second = FakePeer.listen();
    const torrent = await session.add(meta, { peers: [first.address] });
    const conn = await first.accept();
    const theirs = await greet(conn, meta);
    const pexId = remotePexId(theirs);
    assert.notEqual(pexId, 0);
    await conn.send({
      type: "extended",
      id: pexId,
      payload: encodePexMessage({
        added: [{ address: second.address, flags: PEX_FLAG_REACHABLE }],
        dropped: [],
      }),
    });
    const conn2 = await second.accept(10_000);
    await greet(conn2, meta, "-FK0001-fakepeer0002");
    assert(
      logs.some((r) =>
        r.category === "pex" && r.message === "Peers from PEX" && r.fields.peers === second.address
      ),
    );
    await waitFor(
      () => torrent.peers().some((p) => p.address === second.address),
      "the learned peer to connect",
    );
    // Shoal dialled the second peer: it tells the first about it (message id 7, as we asked).
    const sent = await conn.waitForMessage((m) => m.type === "extended" && m.id === OUR_PEX_ID, 10_000);
    assert(sent.type === "extended");
    const told = decodePexMessage(sent.payload);
    assert.deepEqual(told.added, [{ address: second.address, flags: PEX_FLAG_REACHABLE }]);
  });
});

Deno.test("a torrent drops a peer whose PEX message is over the cap, and goes on to complete", async () => {
  await withLeecher({}, async ({ dir, meta, session, payload }) => {
    await using fake = FakePeer.listen();
    const torrent: Torrent = await session.add(meta, { peers: [fake.address] });
    const gone = new Promise<string>((resolve) =>
      torrent.addEventListener("peer-disconnected", (e) => {
        const detail = e.detail;
        if (detail.address === fake.address) resolve(detail.reason ?? "");
      })
    );
    const conn = await fake.accept();
    const pexId = remotePexId(await greet(conn, meta));
    const oversized = encode({ added: new Uint8Array(60_000), "added.f": new Uint8Array(10_000) });
    await conn.send({ type: "extended", id: pexId, payload: oversized });
    await conn.waitForClose();
    assert.match(
      await withDeadline(gone, 5000, "the disconnect event"),
      /PEX message of \d+ bytes exceeds 8192/,
    );
    assert.equal(torrent.state, "downloading");
    // Still alive: a good seeder completes the download.
    await using seeder = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
    });
    await seeder.add(meta);
    torrent.addPeers([`127.0.0.1:${seeder.port}`]);
    await withDeadline(torrent.completed, 20_000, "the download to complete");
    assert.deepEqual(await Deno.readFile(join(dir, "leech", "data.bin")), payload);
  });
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
