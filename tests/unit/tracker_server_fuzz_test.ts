import assert from "node:assert/strict";
import { type BDict, decode } from "../../lib/bencode.ts";
import { formatIp } from "../../lib/net/address.ts";
import { TrackerServer } from "../../lib/tracker/server.ts";

// A bounded burst of garbage against the built-in tracker (HTTP through fetch and raw TCP, UDP
// datagrams), after which a valid announce must still get a correct answer and the registry
// must have stayed within its caps. The garbage is pseudo-random from a fixed seed, printed on
// failure, so a failing run can be replayed.

const SEED = Number(Deno.env.get("SHOAL_FUZZ_SEED") ?? 0x5eed7);
const HTTP_REQUESTS = 1200;
const TCP_CONNECTIONS = 800;
const UDP_PACKETS = 2000;
const PROTOCOL_ID = 0x41727101980n;
const MAX_TORRENTS = 64;
const MAX_PEERS_PER_TORRENT = 16;
const MAX_PEERS = 100;
/** A few torrents that many garbage announces share, so the per-torrent cap is reached. */
const POPULAR = [1, 2, 3, 4].map((n) => new Uint8Array(20).fill(n));

/** xorshift32: small, seedable, good enough to make garbage. */
class Random {
  #x: number;
  constructor(seed: number) {
    this.#x = (seed >>> 0) || 1;
  }
  next(): number {
    let x = this.#x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x / 0x100000000;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(length: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

function escapeAll(bytes: Uint8Array): string {
  return [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
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

/** Runs `count` tasks, `width` at a time. */
async function pool(count: number, width: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

const URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%?";
const METHODS = [
  ..."GET ".repeat(12).trim().split(" "),
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "HEAD",
  "FOO",
];
const PARAMS = [
  "info_hash",
  "peer_id",
  "port",
  "left",
  "event",
  "compact",
  "numwant",
  "ip",
  "key",
  "no_peer_id",
];

function randomText(r: Random, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += URL_CHARS[r.int(URL_CHARS.length)];
  return s;
}

function randomValue(r: Random): string {
  switch (r.int(6)) {
    case 0:
      return escapeAll(r.bytes(r.pick([0, 1, 19, 20, 20, 21, 40])));
    case 1:
      return String(r.int(100_000) - 10);
    case 2:
      return r.pick(["started", "stopped", "completed", "paused", "", "%ff%fe"]);
    case 3:
      return "9".repeat(r.int(40));
    case 4:
      return randomText(r, r.int(50));
    default:
      return "%" + randomText(r, 2);
  }
}

/** A garbage (or garbage-looking, sometimes valid) HTTP request through fetch. */
function randomRequest(r: Random, base: string): { url: string; init: RequestInit } {
  let path: string;
  const kind = r.int(10);
  if (kind < 2) {
    path = "/" + randomText(r, r.int(200));
  } else {
    path = r.pick(["/announce", "/announce", "/announce", "/announce", "/scrape", "/scrape", "/announce/"]);
  }
  const params: string[] = [];
  const count = r.int(12);
  for (let i = 0; i < count; i++) {
    const name = r.chance(0.8) ? r.pick(PARAMS) : randomText(r, r.int(10));
    params.push(r.chance(0.1) ? name : `${name}=${randomValue(r)}`);
  }
  if (kind >= 7) {
    // Valid announces (the first value of a parameter counts) with random or popular torrents:
    // they fill the registry, which must stay capped.
    params.unshift(
      `info_hash=${escapeAll(r.chance(0.5) ? r.pick(POPULAR) : r.bytes(20))}`,
      `peer_id=${escapeAll(r.bytes(20))}`,
      `port=${1 + r.int(65535)}`,
      `left=${r.int(3)}`,
    );
  }
  const url = `${base}${path}${params.length > 0 ? "?" + params.join("&") : ""}`;
  const method = r.pick(METHODS);
  const headers = new Headers();
  if (r.chance(0.1)) headers.set("x-junk", "j".repeat(1 + r.int(16_000)));
  if (r.chance(0.1)) {
    for (let i = 0; i < 50; i++) headers.set(`x-h${i}`, randomText(r, 20).replace(/%/g, "p"));
  }
  const init: RequestInit = { method, headers };
  if (method !== "GET" && method !== "HEAD" && r.chance(0.5)) init.body = r.bytes(r.int(5000));
  return { url, init };
}

/** Raw bytes for a TCP connection: random bytes, a truncated request, or a malformed one. */
function randomRawRequest(r: Random): { bytes: Uint8Array; complete: boolean } {
  const encoder = new TextEncoder();
  const full = `GET /announce?info_hash=${escapeAll(r.bytes(20))}&peer_id=${escapeAll(r.bytes(20))}` +
    `&port=${r.int(70000)} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n\r\n`;
  switch (r.int(6)) {
    case 0:
      return { bytes: r.bytes(1 + r.int(4000)), complete: false };
    case 1:
      return { bytes: encoder.encode(full.slice(0, 1 + r.int(full.length - 1))), complete: false };
    case 2: {
      // Raw non-ASCII bytes in the request target.
      const head = encoder.encode("GET /announce?info_hash=");
      const tail = encoder.encode(" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
      const junk = r.bytes(20);
      const out = new Uint8Array(head.length + junk.length + tail.length);
      out.set(head);
      out.set(junk, head.length);
      out.set(tail, head.length + junk.length);
      return { bytes: out, complete: true };
    }
    case 3:
      return {
        bytes: encoder.encode(
          `GET /${"a".repeat(9000 + r.int(20_000))} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`,
        ),
        complete: true,
      };
    case 4: {
      let headers = "";
      for (let i = 0; i < 150; i++) headers += `X-${i}: ${"v".repeat(r.int(100))}\r\n`;
      return { bytes: encoder.encode(`GET /announce HTTP/1.1\r\nHost: t\r\n${headers}\r\n`), complete: true };
    }
    default:
      return {
        bytes: encoder.encode(
          `${r.pick(["GET", "BREW", "G E T", ""])} ${r.pick(["/", "*", "announce", ""])} ` +
            `${r.pick(["HTTP/1.1", "HTTP/9.9", "HTCPCP/1.0", ""])}\r\n\r\n`,
        ),
        complete: true,
      };
  }
}

function isExpectedSocketError(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted;
}

async function rawTcp(port: number, request: { bytes: Uint8Array; complete: boolean }): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    try {
      await conn.write(request.bytes);
    } catch (e) {
      if (!isExpectedSocketError(e)) throw e;
      return;
    }
    if (!request.complete) return;
    // A complete (if malformed) request gets an answer, or the server closes the connection.
    const buffer = new Uint8Array(4096);
    try {
      const n = await deadline(conn.read(buffer), 10_000, "answer on raw TCP");
      if (n !== null) {
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(new TextDecoder().decode(buffer.subarray(0, n)))?.[1];
        assert.ok(status !== undefined && Number(status) < 500, `answer: ${status}`);
      }
    } catch (e) {
      if (!isExpectedSocketError(e)) throw e;
    }
  } finally {
    conn.close();
  }
}

function connectPacket(transaction: number): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, PROTOCOL_ID);
  v.setUint32(12, transaction);
  return p;
}

function announcePacket(
  connectionId: Uint8Array,
  transaction: number,
  infoHash: Uint8Array,
  peerId: Uint8Array,
  port: number,
  left: bigint,
): Uint8Array {
  const p = new Uint8Array(98);
  const v = new DataView(p.buffer);
  p.set(connectionId);
  v.setUint32(8, 1);
  v.setUint32(12, transaction);
  p.set(infoHash, 16);
  p.set(peerId, 36);
  v.setBigUint64(64, left);
  v.setUint32(80, 2);
  v.setInt32(92, -1);
  v.setUint16(96, port);
  return p;
}

/** A garbage datagram: random, or a valid-looking prefix with bad fields. */
function randomPacket(r: Random, validId: Uint8Array): Uint8Array {
  const kind = r.int(10);
  if (kind < 4) return r.bytes(r.int(2001));
  const length = kind === 9 ? 16 + r.int(1985) : 16 + r.int(200);
  const p = r.bytes(length);
  const v = new DataView(p.buffer);
  if (kind === 4) {
    v.setBigUint64(0, PROTOCOL_ID); // a connect, with random trailing bytes and action
    if (r.chance(0.5)) v.setUint32(8, 0);
  } else if (kind === 5) {
    v.setUint32(8, r.int(5)); // a forged connection id with a plausible action
  } else {
    p.set(validId); // a valid connection id with random fields, any length
    v.setUint32(8, kind === 9 ? 2 : r.pick([1, 1, 1, 2, 3, 4, 0xffffffff]));
    if (length >= 36 && r.chance(0.5)) p.set(r.pick(POPULAR), 16);
    if (length >= 98 && r.chance(0.5)) v.setUint16(96, r.pick([0, 1, 65535]));
  }
  return p;
}

/** Closes a socket that may already be closed. */
function closeQuietly(conn: Deno.DatagramConn): void {
  try {
    conn.close();
  } catch (e) {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  }
}

/** Checks the shape of every reply the tracker sent during the burst. */
function checkReply(reply: Uint8Array): void {
  assert.ok(reply.length >= 8 && reply.length <= 1200, `reply of ${reply.length} bytes`);
  const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  const action = v.getUint32(0);
  if (action === 0) assert.equal(reply.length, 16);
  else if (action === 1) assert.equal((reply.length - 20) % 6, 0);
  else if (action === 2) assert.equal((reply.length - 8) % 12, 0);
  else assert.equal(action, 3, `action ${action}`);
}

Deno.test(`the tracker survives a burst of garbage HTTP and UDP and still answers (seed ${SEED})`, async () => {
  const r = new Random(SEED);
  let now = 1_700_000_000_000;
  const tracker = new TrackerServer({
    bind: "127.0.0.1",
    now: () => now,
    maxTorrents: MAX_TORRENTS,
    maxPeersPerTorrent: MAX_PEERS_PER_TORRENT,
    maxPeers: MAX_PEERS,
  });
  const { httpPort, udpPort } = await tracker.start();
  const base = `http://127.0.0.1:${httpPort}`;
  const udpTarget: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: udpPort! };
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let lingering: Deno.TcpConn | undefined;
  try {
    // --- HTTP through fetch -------------------------------------------------------------
    const statuses = new Map<number, number>();
    const requests = Array.from({ length: HTTP_REQUESTS }, () => randomRequest(r, base));
    await pool(HTTP_REQUESTS, 16, async (i) => {
      const { url, init } = requests[i]!;
      const response = await deadline(fetch(url, init), 10_000, `${init.method} ${url.slice(0, 100)}`);
      await response.arrayBuffer();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      assert.ok(response.status < 500, `${init.method} ${url.slice(0, 200)} gave ${response.status}`);
    });
    assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(404) ?? 0) > 0, JSON.stringify([...statuses]));

    // --- Raw TCP: random bytes, truncated and malformed requests -------------------------
    const raw = Array.from({ length: TCP_CONNECTIONS }, () => randomRawRequest(r));
    await pool(TCP_CONNECTIONS, 16, (i) => rawTcp(httpPort!, raw[i]!));
    // One truncated request stays open through the rest of the test and the close.
    lingering = await Deno.connect({ hostname: "127.0.0.1", port: httpPort! });
    await lingering.write(
      new TextEncoder().encode("GET /announce?info_hash=%01%02 HTTP/1.1\r\nHost: t\r\nX-"),
    );

    // --- UDP -------------------------------------------------------------------------------
    await client.send(connectPacket(1), udpTarget);
    const [first] = await deadline(client.receive(), 5000, "UDP connect reply");
    const validId = first.slice(8, 16);
    const replies: Uint8Array[] = [];
    let receiving = true;
    const receiver = (async () => {
      while (receiving) {
        const [data] = await client.receive();
        replies.push(data.slice());
      }
    })().catch((e: unknown) => {
      if (!(e instanceof Deno.errors.BadResource) && !(e instanceof Deno.errors.Interrupted)) throw e;
    });
    for (let i = 0; i < UDP_PACKETS; i++) {
      await client.send(randomPacket(r, validId), udpTarget);
      // Let the server drain its socket now and then, so the burst is handled, not lost.
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 1));
    }

    // --- Still answering, correctly -------------------------------------------------------
    now += 60_000; // refills the per-address reply budget the garbage used up
    const infoHash = new Uint8Array(20).fill(0xab);
    const seedId = new TextEncoder().encode("-SH0001-seedseedseed");
    const leechId = new TextEncoder().encode("-SH0001-leechleechle");
    const announce = async (peerId: Uint8Array, port: number, left: number): Promise<BDict> => {
      const response = await fetch(
        `${base}/announce?info_hash=${escapeAll(infoHash)}&peer_id=${
          escapeAll(peerId)
        }&port=${port}&left=${left}`,
      );
      return decode(new Uint8Array(await response.arrayBuffer())) as BDict;
    };
    await announce(seedId, 7001, 0);
    const answer = await announce(leechId, 7002, 100);
    assert.equal(answer.get("failure reason"), undefined);
    assert.equal(answer.get("complete"), 1);
    assert.equal(answer.get("incomplete"), 1);
    assert.deepEqual(answer.get("peers"), new Uint8Array([127, 0, 0, 1, 7001 >> 8, 7001 & 0xff]));

    // The UDP endpoint too: a fresh connect and an announce that finds the HTTP seed.
    const before = replies.length;
    await client.send(connectPacket(0x77777777), udpTarget);
    const connectReply = await deadline(
      (async () => {
        for (;;) {
          const found = replies.slice(before).find((p) => new DataView(p.buffer).getUint32(4) === 0x77777777);
          if (found !== undefined) return found;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })(),
      5000,
      "UDP connect reply after the burst",
    );
    const id = connectReply.slice(8, 16);
    const udpPeerId = new TextEncoder().encode("-SH0001-udpudpudpudp");
    await client.send(announcePacket(id, 0x88888888, infoHash, udpPeerId, 7003, 5n), udpTarget);
    const announceReply = await deadline(
      (async () => {
        for (;;) {
          const found = replies.slice(before).find((p) =>
            p.length >= 8 && new DataView(p.buffer).getUint32(4) === 0x88888888
          );
          if (found !== undefined) return found;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })(),
      5000,
      "UDP announce reply after the burst",
    );
    const view = new DataView(announceReply.buffer);
    assert.equal(view.getUint32(0), 1, "announce action");
    assert.deepEqual([view.getUint32(12), view.getUint32(16)], [2, 1], "leechers and seeders");
    const peers: string[] = [];
    for (let at = 20; at < announceReply.length; at += 6) {
      peers.push(`${formatIp(announceReply.subarray(at, at + 4))}:${view.getUint16(at + 4)}`);
    }
    assert.deepEqual(peers.sort(), ["127.0.0.1:7001", "127.0.0.1:7002"]);

    receiving = false;
    for (const reply of replies) checkReply(reply);
    const stats = tracker.stats();
    assert.ok(stats.torrents <= MAX_TORRENTS, `torrents ${stats.torrents}`);
    assert.ok(stats.peers <= MAX_PEERS, `peers ${stats.peers}`);
    for (const hash of POPULAR) {
      const response = await fetch(`${base}/scrape?info_hash=${escapeAll(hash)}`);
      const files = (decode(new Uint8Array(await response.arrayBuffer())) as BDict).get("files") as BDict;
      const entry = files.get(String.fromCharCode(...hash)) as BDict | undefined;
      const count = Number(entry?.get("complete") ?? 0) + Number(entry?.get("incomplete") ?? 0);
      assert.ok(count <= MAX_PEERS_PER_TORRENT, `${count} peers in one torrent`);
    }
    assert.ok(stats.announces > 10 && stats.errors > 100 && stats.dropped > 100, JSON.stringify(stats));
    closeQuietly(client);
    await receiver;
  } finally {
    closeQuietly(client);
    await deadline(tracker.close(), 10_000, "tracker close with a half-sent request open");
    lingering?.close();
  }
});
