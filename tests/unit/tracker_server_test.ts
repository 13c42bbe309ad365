import assert from "node:assert/strict";
import { join } from "node:path";
import { type BDict, type BValue, decode } from "../../lib/bencode.ts";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { TrackerServer, type TrackerServerOptions } from "../../lib/tracker/server.ts";
import { DEFAULT_HTTP_LIMITS, handleHttpRequest } from "../../lib/tracker/server_http.ts";
import { normalizeAddress, SwarmRegistry, type TrackerContext } from "../../lib/tracker/swarm_registry.ts";
import { formatIp, parseIp } from "../../lib/net/address.ts";
import { readAllowList, trackerCommand } from "../../cli/tracker.ts";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const PROTOCOL_ID = 0x41727101980n;

/** An info-hash full of bytes that must be percent-encoded: NUL, '%', '&', '+', '=', 0xff... */
function awkwardHash(seed: number): Uint8Array {
  const out = new Uint8Array(20);
  const awkward = [0x00, 0x25, 0x26, 0x2b, 0x3d, 0x23, 0x3f, 0xff, 0x80, 0x20];
  for (let i = 0; i < 20; i++) out[i] = i < awkward.length ? awkward[i]! : (seed * 31 + i * 7) & 0xff;
  out[19] = seed & 0xff;
  return out;
}

function hashOf(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 13 + i) & 0xff);
}

function peerIdOf(n: number): Uint8Array {
  const out = new TextEncoder().encode("-SH0001-000000000000");
  out.set(new TextEncoder().encode(String(n).padStart(6, "0")), 14);
  return out;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Percent-encodes every byte (`%xx`), the way most clients send info-hashes. */
function escapeAll(bytes: Uint8Array): string {
  return [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

/** Leaves unreserved characters as they are and escapes the rest in upper case. */
function escapeMinimal(bytes: Uint8Array): string {
  return [...bytes].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9.\-_~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
}

interface AnnounceParams {
  infoHash: Uint8Array;
  peerId: Uint8Array;
  port?: number | string;
  left?: number | string;
  event?: string;
  compact?: string;
  numwant?: number;
  noPeerId?: boolean;
  escape?: (bytes: Uint8Array) => string;
}

function announceQuery(p: AnnounceParams): string {
  const esc = p.escape ?? escapeAll;
  let q = `info_hash=${esc(p.infoHash)}&peer_id=${esc(p.peerId)}&port=${p.port ?? 6881}` +
    `&uploaded=0&downloaded=0&left=${p.left ?? 1000}`;
  if (p.event !== undefined) q += `&event=${p.event}`;
  if (p.compact !== undefined) q += `&compact=${p.compact}`;
  if (p.numwant !== undefined) q += `&numwant=${p.numwant}`;
  if (p.noPeerId === true) q += "&no_peer_id=1";
  return q;
}

async function getDict(url: string): Promise<BDict> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `status of ${url}`);
  return decode(new Uint8Array(await response.arrayBuffer())) as BDict;
}

function announce(base: string, p: AnnounceParams): Promise<BDict> {
  return getDict(`${base}?${announceQuery(p)}`);
}

function text(value: BValue | undefined): string {
  assert.ok(value instanceof Uint8Array, `expected a byte string, got ${String(value)}`);
  return new TextDecoder().decode(value);
}

function bytes(value: BValue | undefined): Uint8Array {
  assert.ok(value instanceof Uint8Array, `expected a byte string, got ${String(value)}`);
  return value;
}

/** Decodes a compact peer list of 6-byte (IPv4) or 18-byte (IPv6) entries. */
function compactPeers(value: BValue | undefined, entry: 6 | 18): string[] {
  const data = bytes(value);
  assert.equal(data.length % entry, 0, `compact list of ${data.length} bytes`);
  const out: string[] = [];
  for (let at = 0; at < data.length; at += entry) {
    const ip = formatIp(data.subarray(at, at + entry - 2));
    const port = (data[at + entry - 2]! << 8) | data[at + entry - 1]!;
    out.push(entry === 6 ? `${ip}:${port}` : `[${ip}]:${port}`);
  }
  return out.sort();
}

function udpPortOf(tracker: TrackerServer): number {
  const m = /^udp:\/\/.+:(\d+)\/announce$/.exec(tracker.announceUrls.udp ?? "");
  assert.ok(m !== null, `no UDP announce URL: ${tracker.announceUrls.udp}`);
  return Number(m[1]);
}

function scrapeUrl(announceUrl: string): string {
  return announceUrl.replace(/\/announce$/, "/scrape");
}

async function withTracker(
  options: TrackerServerOptions,
  fn: (tracker: TrackerServer) => Promise<void>,
): Promise<void> {
  const tracker = new TrackerServer({ bind: "127.0.0.1", ...options });
  await tracker.start();
  try {
    await fn(tracker);
  } finally {
    await tracker.close();
  }
}

/** Rejects if `promise` takes longer than `ms`; the timer is always cleared. */
async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 10 ms until it holds, failing after 5 s. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A UDP client socket that talks to the tracker with hand-built packets. */
class UdpClient implements Disposable {
  readonly conn: Deno.DatagramConn;
  readonly #target: Deno.NetAddr;

  constructor(hostname: string, target: { hostname: string; port: number }) {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.#target = { transport: "udp", ...target };
  }

  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }

  async send(packet: Uint8Array): Promise<void> {
    await this.conn.send(packet, this.#target);
  }

  async receive(): Promise<Uint8Array> {
    const [data] = await deadline(this.conn.receive(), 5000, "UDP reply");
    return data.slice();
  }

  async request(packet: Uint8Array): Promise<Uint8Array> {
    await this.send(packet);
    return await this.receive();
  }

  async connect(transaction = 0x1234): Promise<Uint8Array> {
    const reply = await this.request(connectPacket(transaction));
    assert.equal(reply.length, 16);
    const view = new DataView(reply.buffer);
    assert.equal(view.getUint32(0), 0, "connect action");
    assert.equal(view.getUint32(4), transaction, "transaction id echoed");
    return reply.slice(8, 16);
  }

  [Symbol.dispose](): void {
    this.conn.close();
  }
}

function connectPacket(transaction: number): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, PROTOCOL_ID);
  v.setUint32(8, 0);
  v.setUint32(12, transaction);
  return p;
}

interface UdpAnnounce {
  connectionId: Uint8Array;
  transaction?: number;
  infoHash: Uint8Array;
  peerId: Uint8Array;
  left?: bigint;
  event?: number;
  numwant?: number;
  port: number;
}

function announcePacket(a: UdpAnnounce): Uint8Array {
  const p = new Uint8Array(98);
  const v = new DataView(p.buffer);
  p.set(a.connectionId, 0);
  v.setUint32(8, 1);
  v.setUint32(12, a.transaction ?? 77);
  p.set(a.infoHash, 16);
  p.set(a.peerId, 36);
  v.setBigUint64(56, 0n);
  v.setBigUint64(64, a.left ?? 1000n);
  v.setBigUint64(72, 0n);
  v.setUint32(80, a.event ?? 2);
  v.setUint32(84, 0);
  v.setUint32(88, 0xdeadbeef);
  v.setInt32(92, a.numwant ?? -1);
  v.setUint16(96, a.port);
  return p;
}

function scrapePacket(connectionId: Uint8Array, transaction: number, hashes: Uint8Array[]): Uint8Array {
  const p = new Uint8Array(16 + 20 * hashes.length);
  const v = new DataView(p.buffer);
  p.set(connectionId, 0);
  v.setUint32(8, 2);
  v.setUint32(12, transaction);
  hashes.forEach((h, i) => p.set(h, 16 + 20 * i));
  return p;
}

interface AnnounceReply {
  interval: number;
  leechers: number;
  seeders: number;
  peers: string[];
}

function parseAnnounceReply(reply: Uint8Array, transaction: number, entry: 6 | 18): AnnounceReply {
  const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  assert.equal(v.getUint32(0), 1, `announce action (reply: ${errorText(reply)})`);
  assert.equal(v.getUint32(4), transaction);
  const peers = reply.length > 20 ? compactPeers(reply.subarray(20), entry) : [];
  return { interval: v.getUint32(8), leechers: v.getUint32(12), seeders: v.getUint32(16), peers };
}

function errorText(reply: Uint8Array): string {
  const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  if (reply.length < 8 || v.getUint32(0) !== 3) return "(not an error packet)";
  return new TextDecoder().decode(reply.subarray(8));
}

function assertUdpError(reply: Uint8Array, transaction: number, message: RegExp): void {
  const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  assert.equal(v.getUint32(0), 3, "error action");
  assert.equal(v.getUint32(4), transaction, "transaction id echoed");
  assert.match(errorText(reply), message);
}

// ---------------------------------------------------------------------------
// Addresses and registry
// ---------------------------------------------------------------------------

Deno.test("parseIp() and formatIp() handle IPv4, IPv6, mapped and invalid addresses", () => {
  assert.deepEqual(parseIp("10.1.2.3"), new Uint8Array([10, 1, 2, 3]));
  assert.equal(parseIp("256.1.1.1"), null);
  assert.equal(parseIp("1.2.3"), null);
  assert.equal(parseIp("1::2::3"), null);
  assert.equal(parseIp("12345::"), null);
  assert.equal(parseIp("1:2:3:4:5:6:7:8:9"), null);
  assert.equal(formatIp(parseIp("2001:db8:0:0:1:0:0:1")!), "2001:db8::1:0:0:1");
  assert.equal(formatIp(parseIp("::")!), "::");
  assert.equal(formatIp(parseIp("1:2:3:4:5:6:7:8")!), "1:2:3:4:5:6:7:8");
  assert.equal(normalizeAddress("[fe80::1%eth0]")?.ip, "fe80::1");
  assert.deepEqual(normalizeAddress("::ffff:192.0.2.7"), {
    ip: "192.0.2.7",
    bytes: new Uint8Array([192, 0, 2, 7]),
    family: 4,
  });
  assert.equal(normalizeAddress("::ffff:c000:207")?.ip, "192.0.2.7");
  assert.equal(normalizeAddress("::1")?.family, 6);
  assert.equal(normalizeAddress("garbage"), undefined);
});

function registryAnnounce(
  registry: SwarmRegistry,
  n: number,
  options: {
    seed?: boolean;
    event?: "started" | "completed" | "stopped" | "none";
    hash?: number;
    numwant?: number;
  } = {},
) {
  return registry.announce({
    infoHash: hashOf(options.hash ?? 1),
    peerId: peerIdOf(n),
    address: normalizeAddress(`10.0.${n >> 8}.${n & 0xff}`)!,
    port: 6000 + n,
    seed: options.seed ?? false,
    event: options.event ?? "started",
    numwant: options.numwant ?? 50,
  });
}

Deno.test("SwarmRegistry gives a leecher seeds first and a seed only leechers", () => {
  const registry = new SwarmRegistry();
  for (let n = 1; n <= 5; n++) registryAnnounce(registry, n, { seed: true });
  for (let n = 6; n <= 10; n++) registryAnnounce(registry, n);
  const leecher = registryAnnounce(registry, 11, { numwant: 5 });
  assert.deepEqual(leecher.peers.map((p) => p.port).sort(), [6001, 6002, 6003, 6004, 6005]);
  const seed = registryAnnounce(registry, 12, { seed: true, numwant: 50 });
  assert.deepEqual(seed.peers.map((p) => p.port).sort(), [6006, 6007, 6008, 6009, 6010, 6011]);
  assert.equal(seed.complete, 6);
  assert.equal(seed.incomplete, 6);
});

Deno.test("SwarmRegistry returns a random subset of the requested size without duplicates", () => {
  const registry = new SwarmRegistry();
  for (let n = 1; n <= 100; n++) registryAnnounce(registry, n);
  const seen = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const result = registryAnnounce(registry, 1, { numwant: 10 });
    const ports = result.peers.map((p) => p.port);
    assert.equal(ports.length, 10);
    assert.equal(new Set(ports).size, 10, "no duplicates");
    assert.ok(!ports.includes(6001), "never the requester");
    for (const p of ports) seen.add(p);
  }
  assert.ok(seen.size > 30, `subsets vary between announces (saw ${seen.size} peers)`);
});

Deno.test("SwarmRegistry counts a completed download once and forgets stopped peers", () => {
  const registry = new SwarmRegistry();
  registryAnnounce(registry, 1);
  assert.equal(registryAnnounce(registry, 1, { event: "completed", seed: true }).downloaded, 1);
  assert.equal(registryAnnounce(registry, 1, { event: "completed", seed: true }).downloaded, 1);
  const stopped = registryAnnounce(registry, 1, { event: "stopped" });
  assert.equal(stopped.complete, 0);
  assert.deepEqual(stopped.peers, []);
  assert.equal(registry.peers, 0);
  // A stop for a torrent nobody announced creates nothing.
  registryAnnounce(registry, 2, { event: "stopped", hash: 99 });
  assert.equal(registry.scrape(hashOf(99)), undefined);
});

Deno.test("SwarmRegistry enforces maxPeers over all torrents, evicting the least recently active swarm first", () => {
  const registry = new SwarmRegistry({ maxPeers: 4 });
  registryAnnounce(registry, 1, { hash: 1 });
  registryAnnounce(registry, 2, { hash: 1 });
  registryAnnounce(registry, 3, { hash: 2 });
  registryAnnounce(registry, 4, { hash: 2 });
  registryAnnounce(registry, 5, { hash: 3 });
  assert.equal(registry.peers, 4);
  assert.equal(registry.scrape(hashOf(1))?.incomplete, 1, "torrent 1 (least recent) lost its oldest peer");
  assert.equal(registry.scrape(hashOf(3))?.incomplete, 1);
});

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

Deno.test("HTTP announce: peers find each other, compact by default, never the requester", async () => {
  await withTracker({}, async (tracker) => {
    const url = tracker.announceUrls.http!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/announce$/);
    const infoHash = awkwardHash(1);
    const seed = await announce(url, {
      infoHash,
      peerId: peerIdOf(1),
      port: 7001,
      left: 0,
      event: "started",
    });
    assert.equal(seed.get("interval"), 1800);
    assert.equal(seed.get("min interval"), 60);
    assert.deepEqual(compactPeers(seed.get("peers"), 6), []);
    const leech = await announce(url, { infoHash, peerId: peerIdOf(2), port: 7002, event: "started" });
    assert.equal(leech.get("complete"), 1);
    assert.equal(leech.get("incomplete"), 1);
    assert.deepEqual(compactPeers(leech.get("peers"), 6), ["127.0.0.1:7001"]);
    assert.equal(leech.has("peers6"), false);
    // The same client announcing again (no event) still does not get itself.
    const again = await announce(url, { infoHash, peerId: peerIdOf(2), port: 7002 });
    assert.deepEqual(compactPeers(again.get("peers"), 6), ["127.0.0.1:7001"]);
    // The seed, announcing with the info-hash escaped differently, gets the leecher.
    const seed2 = await announce(url, {
      infoHash,
      peerId: peerIdOf(1),
      port: 7001,
      left: 0,
      escape: escapeMinimal,
    });
    assert.deepEqual(compactPeers(seed2.get("peers"), 6), ["127.0.0.1:7002"]);
    const stats = tracker.stats();
    assert.equal(stats.torrents, 1);
    assert.equal(stats.peers, 2);
    assert.equal(stats.announces, 4);
    assert.equal(stats.errors, 0);
  });
});

Deno.test("HTTP announce with compact=0 returns dictionaries, with or without peer ids", async () => {
  await withTracker({}, async (tracker) => {
    const url = tracker.announceUrls.http!;
    const infoHash = hashOf(2);
    await announce(url, { infoHash, peerId: peerIdOf(1), port: 7001, left: 0 });
    const full = await announce(url, { infoHash, peerId: peerIdOf(2), port: 7002, compact: "0" });
    const list = full.get("peers");
    assert.ok(Array.isArray(list) && list.length === 1);
    const peer = list[0] as BDict;
    assert.equal(text(peer.get("ip")), "127.0.0.1");
    assert.equal(peer.get("port"), 7001);
    assert.deepEqual(bytes(peer.get("peer id")), peerIdOf(1));
    const bare = await announce(url, {
      infoHash,
      peerId: peerIdOf(2),
      port: 7002,
      compact: "0",
      noPeerId: true,
    });
    const bareList = bare.get("peers") as BDict[];
    assert.equal(bareList[0]!.has("peer id"), false);
  });
});

Deno.test("HTTP announce over IPv6 returns peers6, and IPv4-mapped clients count as IPv4", async () => {
  await withTracker({ bind: "::" }, async (tracker) => {
    const port = new URL(tracker.announceUrls.http!).port;
    assert.match(tracker.announceUrls.http!, /^http:\/\/\[::1\]:/);
    const v6 = `http://[::1]:${port}/announce`;
    const v4 = `http://127.0.0.1:${port}/announce`;
    const infoHash = hashOf(3);
    await announce(v6, { infoHash, peerId: peerIdOf(1), port: 7001, left: 0 });
    const fromV4 = await announce(v4, { infoHash, peerId: peerIdOf(2), port: 7002 });
    assert.deepEqual(compactPeers(fromV4.get("peers"), 6), []);
    assert.deepEqual(compactPeers(fromV4.get("peers6"), 18), ["[::1]:7001"]);
    const fromV6 = await announce(v6, { infoHash, peerId: peerIdOf(3), port: 7003 });
    // The IPv4 client reached a dual-stack socket as ::ffff:127.0.0.1 and is listed as IPv4.
    assert.deepEqual(compactPeers(fromV6.get("peers"), 6), ["127.0.0.1:7002"]);
    assert.deepEqual(compactPeers(fromV6.get("peers6"), 18), ["[::1]:7001"]);
    const dicts = await announce(v4, { infoHash, peerId: peerIdOf(4), port: 7004, compact: "0" });
    const ips = (dicts.get("peers") as BDict[]).map((p) => `${text(p.get("ip"))}/${p.get("port")}`).sort();
    assert.deepEqual(ips, ["127.0.0.1/7002", "::1/7001", "::1/7003"]);
  });
});

Deno.test("HTTP event=stopped removes the peer and event=completed counts a download", async () => {
  await withTracker({}, async (tracker) => {
    const url = tracker.announceUrls.http!;
    const infoHash = hashOf(4);
    await announce(url, { infoHash, peerId: peerIdOf(1), port: 7001, event: "started" });
    await announce(url, { infoHash, peerId: peerIdOf(1), port: 7001, left: 0, event: "completed" });
    const scrape = await getDict(`${scrapeUrl(url)}?info_hash=${escapeAll(infoHash)}`);
    const files = scrape.get("files") as BDict;
    const entry = files.get(String.fromCharCode(...infoHash)) as BDict;
    assert.deepEqual([entry.get("complete"), entry.get("incomplete"), entry.get("downloaded")], [1, 0, 1]);
    const stopped = await announce(url, {
      infoHash,
      peerId: peerIdOf(1),
      port: 7001,
      left: 0,
      event: "stopped",
    });
    assert.equal(stopped.get("complete"), 0);
    assert.equal(tracker.stats().peers, 0);
    const other = await announce(url, { infoHash, peerId: peerIdOf(2), port: 7002 });
    assert.deepEqual(compactPeers(other.get("peers"), 6), []);
  });
});

Deno.test("HTTP failures are bencoded 'failure reason' answers with status 200", async () => {
  await withTracker({}, async (tracker) => {
    const url = tracker.announceUrls.http!;
    const good = { infoHash: hashOf(5), peerId: peerIdOf(1) };
    const cases: [string, RegExp][] = [
      [`${url}?peer_id=${escapeAll(good.peerId)}&port=1`, /Invalid info_hash/],
      [
        `${url}?info_hash=${escapeAll(hashOf(5).subarray(0, 19))}&peer_id=${escapeAll(good.peerId)}&port=1`,
        /info_hash/,
      ],
      [`${url}?info_hash=${escapeAll(good.infoHash)}&port=1`, /Invalid peer_id/],
      [`${url}?${announceQuery({ ...good, port: 0 })}`, /Invalid port/],
      [`${url}?${announceQuery({ ...good, port: 70000 })}`, /Invalid port/],
      [`${url}?${announceQuery({ ...good, port: "abc" })}`, /Invalid port/],
      [`${url}?${announceQuery({ ...good, left: "-5" })}`, /Invalid left/],
      [`${url}?info_hash=%zz`, /Invalid query string/],
      [`${scrapeUrl(url)}?info_hash=%01%02`, /Invalid info_hash/],
    ];
    for (const [target, reason] of cases) {
      const dict = await getDict(target);
      assert.match(text(dict.get("failure reason")), reason, target);
    }
    const stats = tracker.stats();
    assert.equal(stats.errors, cases.length);
    assert.equal(stats.torrents, 0);
  });
});

Deno.test("HTTP requests that are not tracker requests get a quick 4xx", async () => {
  await withTracker({}, async (tracker) => {
    const base = tracker.announceUrls.http!.replace(/\/announce$/, "");
    const cases: [string, RequestInit, number][] = [
      [`${base}/`, {}, 404],
      [`${base}/announce.php`, {}, 404],
      [`${base}/ANNOUNCE`, {}, 404],
      [`${base}/announce`, { method: "POST", body: "x" }, 405],
      [`${base}/scrape`, { method: "DELETE" }, 405],
      [`${base}/announce?x=${"a".repeat(9000)}`, {}, 414],
    ];
    for (const [target, init, status] of cases) {
      const response = await fetch(target, init);
      await response.body?.cancel();
      assert.equal(response.status, status, `${init.method ?? "GET"} ${target.slice(0, 80)}`);
    }
  });
});

Deno.test("HTTP allow-list refuses other torrents in announce and scrape", async () => {
  const allowed = hashOf(6);
  const other = hashOf(7);
  await withTracker({ allowList: new Set([hex(allowed).toUpperCase()]) }, async (tracker) => {
    const url = tracker.announceUrls.http!;
    const refused = await announce(url, { infoHash: other, peerId: peerIdOf(1), port: 7001 });
    assert.match(text(refused.get("failure reason")), /not allowed/);
    const ok = await announce(url, { infoHash: allowed, peerId: peerIdOf(1), port: 7001 });
    assert.equal(ok.has("failure reason"), false);
    assert.equal(ok.get("incomplete"), 1);
    const scrape = await getDict(
      `${scrapeUrl(url)}?info_hash=${escapeAll(allowed)}&info_hash=${escapeAll(other)}`,
    );
    const files = scrape.get("files") as BDict;
    assert.deepEqual([...files.keys()], [String.fromCharCode(...allowed)]);
    assert.equal(tracker.stats().torrents, 1);
  });
  assert.throws(() => new TrackerServer({ allowList: new Set(["abc"]) }), /Invalid allow-list entry/);
});

Deno.test("HTTP scrape reports several torrents, unknown ones as zeros, and a bounded full scrape", async () => {
  await withTracker({}, async (tracker) => {
    const url = tracker.announceUrls.http!;
    await announce(url, { infoHash: hashOf(8), peerId: peerIdOf(1), port: 7001, left: 0 });
    await announce(url, { infoHash: hashOf(9), peerId: peerIdOf(2), port: 7002 });
    const some = await getDict(
      `${scrapeUrl(url)}?info_hash=${escapeAll(hashOf(8))}&info_hash=${escapeAll(hashOf(10))}`,
    );
    const files = some.get("files") as BDict;
    assert.equal((files.get(String.fromCharCode(...hashOf(8))) as BDict).get("complete"), 1);
    assert.equal((files.get(String.fromCharCode(...hashOf(10))) as BDict).get("complete"), 0);
    const all = await getDict(scrapeUrl(url));
    assert.equal((all.get("files") as BDict).size, 2);
    assert.equal(tracker.stats().scrapes, 2);
  });
  // With more torrents than the full-scrape limit, a scrape naming none is refused.
  const registry = new SwarmRegistry();
  for (let n = 1; n <= 3; n++) registryAnnounce(registry, n, { hash: n });
  const context: TrackerContext = {
    registry,
    allowList: undefined,
    interval: 1800,
    minInterval: 60,
    defaultNumwant: 50,
    maxNumwant: 200,
    counters: { announces: 0, scrapes: 0, errors: 0, dropped: 0 },
    logger: undefined,
    now: Date.now,
  };
  const response = handleHttpRequest(
    new Request("http://tracker/scrape"),
    { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    context,
    { ...DEFAULT_HTTP_LIMITS, maxFullScrape: 2 },
  );
  const dict = decode(new Uint8Array(await response.arrayBuffer())) as BDict;
  assert.match(text(dict.get("failure reason")), /Full scrape refused/);
  const tooMany = handleHttpRequest(
    new Request(`http://tracker/scrape?${"info_hash=%01&".repeat(4)}`),
    { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    context,
    { ...DEFAULT_HTTP_LIMITS, maxScrapeHashes: 3 },
  );
  const tooManyDict = decode(new Uint8Array(await tooMany.arrayBuffer())) as BDict;
  assert.match(text(tooManyDict.get("failure reason")), /Too many info_hash/);
});

Deno.test("peers expire after peerTtlSeconds (injected clock) and empty swarms are dropped", async () => {
  let now = 1_000_000_000_000;
  await withTracker({ now: () => now, peerTtlSeconds: 100 }, async (tracker) => {
    const url = tracker.announceUrls.http!;
    const infoHash = hashOf(11);
    await announce(url, { infoHash, peerId: peerIdOf(1), port: 7001, left: 0 });
    now += 60_000;
    await announce(url, { infoHash, peerId: peerIdOf(2), port: 7002 });
    assert.equal(tracker.stats().peers, 2);
    now += 50_000; // peer 1 is 110 s old, peer 2 is 50 s old
    const third = await announce(url, { infoHash, peerId: peerIdOf(3), port: 7003 });
    assert.deepEqual(compactPeers(third.get("peers"), 6), ["127.0.0.1:7002"]);
    assert.equal(third.get("complete"), 0);
    assert.equal(tracker.stats().peers, 2);
    now += 101_000;
    const stats = tracker.stats();
    assert.equal(stats.peers, 0);
    assert.equal(stats.torrents, 0);
  });
});

Deno.test("maxPeersPerTorrent, maxTorrents and maxNumwant are enforced, oldest evicted first", async () => {
  let now = 1_000_000_000_000;
  await withTracker(
    { now: () => now, maxPeersPerTorrent: 3, maxTorrents: 2, maxNumwant: 2 },
    async (tracker) => {
      const url = tracker.announceUrls.http!;
      const infoHash = hashOf(12);
      for (let n = 1; n <= 5; n++) {
        now += 1000;
        await announce(url, { infoHash, peerId: peerIdOf(n), port: 7000 + n, left: 0 });
      }
      assert.equal(tracker.stats().peers, 3);
      const scrape = await getDict(`${scrapeUrl(url)}?info_hash=${escapeAll(infoHash)}`);
      assert.equal(
        ((scrape.get("files") as BDict).get(String.fromCharCode(...infoHash)) as BDict).get("complete"),
        3,
      );
      now += 1000;
      const leech = await announce(url, { infoHash, peerId: peerIdOf(9), port: 7009, numwant: 50 });
      const peers = compactPeers(leech.get("peers"), 6);
      assert.equal(peers.length, 2, "numwant capped at maxNumwant");
      for (const p of peers) {
        assert.ok(["127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"].includes(p), `${p} was evicted`);
      }
      // A third torrent evicts the least recently announced one.
      now += 1000;
      await announce(url, { infoHash: hashOf(13), peerId: peerIdOf(1), port: 7001 });
      now += 1000;
      await announce(url, { infoHash: hashOf(14), peerId: peerIdOf(1), port: 7001 });
      const stats = tracker.stats();
      assert.equal(stats.torrents, 2);
      assert.equal(stats.peers, 2);
    },
  );
});

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

Deno.test("UDP connect, announce and scrape with hand-built packets", async () => {
  await withTracker({ interval: 900 }, async (tracker) => {
    const target = { hostname: "127.0.0.1", port: udpPortOf(tracker) };
    assert.match(tracker.announceUrls.udp!, /^udp:\/\/127\.0\.0\.1:\d+\/announce$/);
    using a = new UdpClient("127.0.0.1", target);
    using b = new UdpClient("127.0.0.1", target);
    const infoHash = awkwardHash(2);
    const idA = await a.connect(0xaabbccdd);
    const first = parseAnnounceReply(
      await a.request(
        announcePacket({
          connectionId: idA,
          transaction: 5,
          infoHash,
          peerId: peerIdOf(1),
          left: 0n,
          port: 7101,
        }),
      ),
      5,
      6,
    );
    assert.deepEqual(first, { interval: 900, leechers: 0, seeders: 1, peers: [] });
    const idB = await b.connect(1);
    const second = parseAnnounceReply(
      await b.request(
        announcePacket({ connectionId: idB, transaction: 6, infoHash, peerId: peerIdOf(2), port: 7102 }),
      ),
      6,
      6,
    );
    assert.deepEqual(second, { interval: 900, leechers: 1, seeders: 1, peers: ["127.0.0.1:7101"] });
    // Completed, then scrape two torrents (one unknown).
    await b.request(
      announcePacket({
        connectionId: idB,
        transaction: 7,
        infoHash,
        peerId: peerIdOf(2),
        left: 0n,
        event: 1,
        port: 7102,
      }),
    );
    const scrape = await b.request(scrapePacket(idB, 8, [infoHash, hashOf(99)]));
    assert.equal(scrape.length, 8 + 24);
    const v = new DataView(scrape.buffer);
    assert.deepEqual([v.getUint32(0), v.getUint32(4)], [2, 8]);
    assert.deepEqual([v.getUint32(8), v.getUint32(12), v.getUint32(16)], [2, 1, 0]);
    assert.deepEqual([v.getUint32(20), v.getUint32(24), v.getUint32(28)], [0, 0, 0]);
    // Stopped removes the peer.
    const stopped = parseAnnounceReply(
      await b.request(
        announcePacket({
          connectionId: idB,
          transaction: 9,
          infoHash,
          peerId: peerIdOf(2),
          event: 3,
          port: 7102,
        }),
      ),
      9,
      6,
    );
    assert.deepEqual([stopped.seeders, stopped.leechers, stopped.peers], [1, 0, []]);
    // The HTTP and UDP endpoints share their swarms.
    const http = await announce(tracker.announceUrls.http!, { infoHash, peerId: peerIdOf(3), port: 7103 });
    assert.deepEqual(compactPeers(http.get("peers"), 6), ["127.0.0.1:7101"]);
    assert.equal(tracker.stats().errors, 0);
  });
});

Deno.test("UDP errors: bad connection id, unknown action, short announce, bad port, not allowed", async () => {
  const allowed = hashOf(20);
  await withTracker({ allowList: new Set([hex(allowed)]) }, async (tracker) => {
    using c = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port: udpPortOf(tracker) });
    const forged = new Uint8Array(8).fill(0x42);
    assertUdpError(
      await c.request(
        announcePacket({
          connectionId: forged,
          transaction: 11,
          infoHash: allowed,
          peerId: peerIdOf(1),
          port: 1,
        }),
      ),
      11,
      /Invalid connection id/,
    );
    const id = await c.connect();
    const unknown = new Uint8Array(16);
    unknown.set(id);
    new DataView(unknown.buffer).setUint32(8, 9);
    new DataView(unknown.buffer).setUint32(12, 12);
    assertUdpError(await c.request(unknown), 12, /Unknown action/);
    const full = announcePacket({
      connectionId: id,
      transaction: 13,
      infoHash: allowed,
      peerId: peerIdOf(1),
      port: 1,
    });
    assertUdpError(await c.request(full.subarray(0, 97)), 13, /too short/);
    assertUdpError(
      await c.request(
        announcePacket({
          connectionId: id,
          transaction: 14,
          infoHash: allowed,
          peerId: peerIdOf(1),
          port: 0,
        }),
      ),
      14,
      /Invalid port/,
    );
    assertUdpError(
      await c.request(
        announcePacket({
          connectionId: id,
          transaction: 15,
          infoHash: hashOf(21),
          peerId: peerIdOf(1),
          port: 1,
        }),
      ),
      15,
      /not allowed/,
    );
    assert.equal(tracker.stats().errors, 5);
    assert.equal(tracker.stats().torrents, 0);
  });
});

Deno.test("UDP packets too short for a transaction id, or connects with a wrong magic, are dropped", async () => {
  await withTracker({}, async (tracker) => {
    using c = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port: udpPortOf(tracker) });
    const badMagic = connectPacket(21);
    badMagic[0] = 1;
    for (const packet of [new Uint8Array(0), new Uint8Array(1), new Uint8Array(15).fill(0xff), badMagic]) {
      await c.send(packet);
    }
    // The server answers packets in order: the first reply is the one to the valid connect.
    await c.connect(22);
    assert.equal(tracker.stats().dropped, 4);
  });
});

Deno.test("UDP connection ids last one to two minutes (injected clock)", async () => {
  let now = 1_000_000_020_000; // 20 s into a one-minute bucket
  await withTracker({ now: () => now }, async (tracker) => {
    using c = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port: udpPortOf(tracker) });
    const id = await c.connect();
    const packet = (transaction: number) =>
      announcePacket({ connectionId: id, transaction, infoHash: hashOf(30), peerId: peerIdOf(1), port: 1 });
    now += 90_000; // next bucket: still valid
    parseAnnounceReply(await c.request(packet(1)), 1, 6);
    now += 60_000; // two buckets later: expired
    assertUdpError(await c.request(packet(2)), 2, /Invalid connection id/);
    // Another address never shares an id.
    using other = new UdpClient("127.0.0.2", { hostname: "127.0.0.1", port: udpPortOf(tracker) });
    const fresh = await c.connect();
    assertUdpError(
      await other.request(
        announcePacket({
          connectionId: fresh,
          transaction: 3,
          infoHash: hashOf(30),
          peerId: peerIdOf(2),
          port: 2,
        }),
      ),
      3,
      /Invalid connection id/,
    );
  });
});

Deno.test("UDP over IPv6 returns 18-byte peers, and IPv4 clients get only IPv4 peers", async () => {
  await withTracker({ bind: "::" }, async (tracker) => {
    const port = udpPortOf(tracker);
    using v6 = new UdpClient("::1", { hostname: "::1", port });
    using v4 = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port });
    const infoHash = hashOf(31);
    const id6 = await v6.connect();
    const id4 = await v4.connect();
    await v6.request(
      announcePacket({ connectionId: id6, infoHash, peerId: peerIdOf(1), left: 0n, port: 7201 }),
    );
    const fromV4 = parseAnnounceReply(
      await v4.request(
        announcePacket({ connectionId: id4, transaction: 2, infoHash, peerId: peerIdOf(2), port: 7202 }),
      ),
      2,
      6,
    );
    assert.deepEqual(fromV4.peers, []);
    assert.equal(fromV4.seeders, 1);
    const fromV6 = parseAnnounceReply(
      await v6.request(
        announcePacket({ connectionId: id6, transaction: 3, infoHash, peerId: peerIdOf(3), port: 7203 }),
      ),
      3,
      18,
    );
    assert.deepEqual(fromV6.peers, ["[::1]:7201"]);
  });
});

Deno.test("UDP unverified replies are rate-limited per source address (injected clock)", async () => {
  let now = 1_000_000_000_000;
  await withTracker({ now: () => now, udpReplyBurst: 5, udpRepliesPerSecond: 1 }, async (tracker) => {
    const port = udpPortOf(tracker);
    using c = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port });
    const forged = new Uint8Array(8).fill(7);
    for (let t = 0; t < 10; t++) {
      await c.send(
        announcePacket({
          connectionId: forged,
          transaction: t,
          infoHash: hashOf(1),
          peerId: peerIdOf(1),
          port: 1,
        }),
      );
    }
    // Drain exactly the five allowed error replies; the other five were dropped.
    for (let t = 0; t < 5; t++) assertUdpError(await c.receive(), t, /Invalid connection id/);
    await c.send(connectPacket(100)); // no token left: dropped
    // Wait (with a deadline) until the server has seen it, before moving the clock.
    await waitFor(() => tracker.stats().dropped === 6, "six dropped packets");
    now += 1000; // one token back
    const id = await c.connect(101);
    assert.equal(tracker.stats().dropped, 6);
    // Verified requests are not limited.
    for (let t = 0; t < 10; t++) {
      parseAnnounceReply(
        await c.request(
          announcePacket({
            connectionId: id,
            transaction: t,
            infoHash: hashOf(1),
            peerId: peerIdOf(1),
            port: 1,
          }),
        ),
        t,
        6,
      );
    }
  });
});

Deno.test("UDP announce answers stay within 1200 bytes however many peers are wanted", async () => {
  let now = 1_000_000_000_000;
  await withTracker({ now: () => now, maxNumwant: 1000 }, async (tracker) => {
    const registryFill = 400;
    const url = tracker.announceUrls.http!;
    const infoHash = hashOf(40);
    for (let n = 1; n <= registryFill; n++) {
      await announce(url, { infoHash, peerId: peerIdOf(n), port: 10000 + n, left: 0 });
    }
    now += 1;
    const port = udpPortOf(tracker);
    using c = new UdpClient("127.0.0.1", { hostname: "127.0.0.1", port });
    const id = await c.connect();
    const reply = await c.request(
      announcePacket({
        connectionId: id,
        transaction: 1,
        infoHash,
        peerId: peerIdOf(9999),
        port: 9,
        numwant: 1000,
      }),
    );
    assert.ok(reply.length <= 1200, `reply of ${reply.length} bytes`);
    assert.equal(parseAnnounceReply(reply, 1, 6).peers.length, Math.floor((1200 - 20) / 6));
    const http = await announce(url, { infoHash, peerId: peerIdOf(9999), port: 9, numwant: 1000 });
    assert.equal(bytes(http.get("peers")).length, 6 * 400, "HTTP honours maxNumwant");
  });
});

// ---------------------------------------------------------------------------
// Lifecycle, logging and CLI
// ---------------------------------------------------------------------------

Deno.test("TrackerServer logs under 'tracker-server', serves one protocol when asked, and closes twice", async () => {
  const records: LogRecord[] = [];
  const logger = new Logger({ level: "debug", sinks: [(r) => records.push(r)] });
  const tracker = new TrackerServer({ bind: "127.0.0.1", udp: false, logger });
  const ports = await tracker.start();
  assert.equal(ports.udpPort, undefined);
  assert.equal(tracker.announceUrls.udp, undefined);
  await assert.rejects(() => tracker.start(), /already started/);
  await announce(tracker.announceUrls.http!, { infoHash: hashOf(50), peerId: peerIdOf(1), port: 1 });
  await tracker.close();
  await tracker.close();
  assert.ok(records.length >= 3);
  assert.ok(records.every((r) => r.category === "tracker-server"));
  assert.deepEqual(records.map((r) => r.message).filter((m) => m !== "HTTP announce"), [
    "Tracker listening",
    "Tracker stopped",
  ]);
  await assert.rejects(() => fetch(`http://127.0.0.1:${ports.httpPort}/announce`), TypeError);
});

Deno.test("TrackerServer.start() fails cleanly when the port is taken", async () => {
  await withTracker({}, async (first) => {
    const second = new TrackerServer({ bind: "127.0.0.1", httpPort: 0, udpPort: udpPortOf(first) });
    await assert.rejects(() => second.start(), Deno.errors.AddrInUse);
    await second.close();
    const io = {
      stdout: new WritableStream<Uint8Array>(),
      stderr: new WritableStream<Uint8Array>(),
      isTerminal: false,
    };
    await assert.rejects(
      () =>
        trackerCommand.run([
          "--bind",
          "127.0.0.1",
          "--http-port",
          "0",
          "--udp-port",
          String(udpPortOf(first)),
        ], io),
      /Cannot listen on 127\.0\.0\.1 \(HTTP port 0, UDP port \d+\): /,
    );
  });
});

function capture(): { stream: WritableStream<Uint8Array>; text: () => string } {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(decoder.decode(chunk));
    },
  });
  return { stream, text: () => chunks.join("") };
}

Deno.test("readAllowList() accepts comments and blank lines and names a bad line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_tracker_test_" });
  try {
    const good = join(dir, "good.txt");
    await Deno.writeTextFile(
      good,
      `# torrents we serve\n\n${"AB".repeat(20)}\n  ${"cd".repeat(20)} # the other one\n`,
    );
    assert.deepEqual([...await readAllowList(good)], ["ab".repeat(20), "cd".repeat(20)]);
    const bad = join(dir, "bad.txt");
    await Deno.writeTextFile(bad, `${"ab".repeat(20)}\nnot-a-hash\n`);
    await assert.rejects(() => readAllowList(bad), /line 2 is not a 40-hex info-hash: not-a-hash/);
    await assert.rejects(() => readAllowList(join(dir, "missing.txt")), /Cannot read allow-list/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shoal tracker prints its announce URLs, serves, and stops on the signal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_tracker_test_" });
  try {
    const allowed = hashOf(60);
    await Deno.writeTextFile(join(dir, "allow.txt"), `${hex(allowed)}\n`);
    const out = capture();
    const err = capture();
    const controller = new AbortController();
    const running = trackerCommand.run(
      [
        "--http-port",
        "0",
        "--udp-port",
        "0",
        "--bind",
        "127.0.0.1",
        "--allow",
        "allow.txt",
        "--interval",
        "120",
      ],
      { stdout: out.stream, stderr: err.stream, isTerminal: false, cwd: dir, signal: controller.signal },
    );
    let url: string | undefined;
    const until = Date.now() + 10_000;
    while (url === undefined && Date.now() < until) {
      url = /HTTP announce URL: (\S+)/.exec(out.text())?.[1];
      if (url === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(url !== undefined, `no URL printed: ${out.text()} ${err.text()}`);
    assert.match(out.text(), /UDP announce URL: +udp:\/\/127\.0\.0\.1:\d+\/announce/);
    assert.match(out.text(), /Serving 1 allowed torrent\n/);
    const reply = await announce(url, { infoHash: allowed, peerId: peerIdOf(1), port: 1 });
    assert.equal(reply.get("interval"), 120);
    const refused = await announce(url, { infoHash: hashOf(61), peerId: peerIdOf(1), port: 1 });
    assert.ok(refused.has("failure reason"));
    controller.abort();
    assert.equal(await deadline(running, 10_000, "tracker command to stop"), 0);
    assert.match(err.text(), /Stopped: 1 announces, 0 scrapes, 1 refused/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shoal tracker rejects bad options with usage errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_tracker_test_" });
  try {
    await Deno.writeTextFile(join(dir, "bad.txt"), "xyz\n");
    const io = {
      stdout: new WritableStream<Uint8Array>(),
      stderr: new WritableStream<Uint8Array>(),
      isTerminal: false,
      cwd: dir,
    };
    await assert.rejects(
      () => trackerCommand.run(["--http-port", "99999"], io),
      /Invalid --http-port: 99999/,
    );
    await assert.rejects(() => trackerCommand.run(["--interval", "0"], io), /Invalid --interval: 0/);
    await assert.rejects(() => trackerCommand.run(["--no-http", "--no-udp"], io), /Nothing to serve/);
    await assert.rejects(() => trackerCommand.run(["--bogus"], io), /Unknown option: --bogus/);
    await assert.rejects(
      () => trackerCommand.run(["--allow", "bad.txt"], io),
      /line 1 is not a 40-hex info-hash/,
    );
    const out = capture();
    assert.equal(await trackerCommand.run(["--help"], { ...io, stdout: out.stream }), 0);
    assert.match(out.text(), /Usage: shoal tracker/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
