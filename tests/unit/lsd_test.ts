/**
 * BEP 14 local service discovery without a network: the announce format and its parser
 * (bounded, strict where it matters, lenient where HTTP is), and the service's rules with
 * fake channels and a fake clock: announce on add and then at most once per interval (never
 * under a minute), batching into packets of at most 1400 bytes, our own cookie ignored,
 * peers reported once a minute per torrent, malformed packets ignored, a rate limit on what
 * is received, and socket failures logged rather than thrown.
 */

import assert from "node:assert/strict";
import {
  formatLsdAnnounce,
  LocalDiscovery,
  type LocalDiscoveryOptions,
  LSD_MIN_INTERVAL_MS,
  type LsdChannel,
  type LsdOpenRequest,
  MAX_LSD_PACKET,
  parseLsdAnnounce,
} from "../../lib/discovery/lsd.ts";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { Session } from "../../mod.ts";
import { TRANSFER_HELP, TRANSFER_OPTIONS, transferSettings } from "../../cli/transfer_options.ts";

const HASH_A = "0123456789abcdef0123456789abcdef01234567";
const HASH_B = "fedcba9876543210fedcba9876543210fedcba98";
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

function announce(
  fields: { port?: string; hashes?: string[]; cookie?: string; extra?: string } = {},
): Uint8Array {
  let s = "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n";
  s += `Port: ${fields.port ?? "6881"}\r\n`;
  for (const h of fields.hashes ?? [HASH_A]) s += `Infohash: ${h}\r\n`;
  if (fields.cookie !== undefined) s += `cookie: ${fields.cookie}\r\n`;
  s += fields.extra ?? "";
  return text(s + "\r\n\r\n");
}

// ---------------------------------------------------------------------------
// Format and parse
// ---------------------------------------------------------------------------

Deno.test("formatLsdAnnounce() writes the BEP 14 request with one Infohash line per torrent", () => {
  const packet = formatLsdAnnounce({
    host: "239.192.152.143:6771",
    port: 51413,
    infoHashes: [HASH_A, HASH_B.toUpperCase()],
    cookie: "abc123",
  });
  assert.equal(
    str(packet),
    "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n" +
      `Infohash: ${HASH_A}\r\nInfohash: ${HASH_B}\r\ncookie: abc123\r\n\r\n\r\n`,
  );
  const noCookie = str(formatLsdAnnounce({ host: "[ff15::efc0:988f]:6771", port: 1, infoHashes: [HASH_A] }));
  assert(!noCookie.includes("cookie"));
  assert(noCookie.includes("Host: [ff15::efc0:988f]:6771\r\n"));
});

Deno.test("formatLsdAnnounce() refuses a bad port, info-hash, cookie or host", () => {
  const ok = { host: "239.192.152.143:6771", port: 6881, infoHashes: [HASH_A] };
  for (const port of [0, 65536, 1.5, -1]) assert.throws(() => formatLsdAnnounce({ ...ok, port }), RangeError);
  assert.throws(() => formatLsdAnnounce({ ...ok, infoHashes: ["xyz"] }), RangeError);
  assert.throws(() => formatLsdAnnounce({ ...ok, cookie: "a\r\nPort: 1" }), RangeError);
  assert.throws(() => formatLsdAnnounce({ ...ok, host: "a b" }), RangeError);
});

Deno.test("parseLsdAnnounce() reads port, info-hashes, cookie and host, leniently where HTTP is", () => {
  assert.deepEqual(parseLsdAnnounce(announce({ hashes: [HASH_A, HASH_B], cookie: "c1" })), {
    host: "239.192.152.143:6771",
    port: 6881,
    infoHashes: [HASH_A, HASH_B],
    cookie: "c1",
  });
  // Header names in any case, LF line ends, unknown headers, repeated and upper-case hashes.
  const lf = "BT-SEARCH * HTTP/1.1\nhOsT: x\nX-Other: 1\nPORT:  7000 \n" +
    `INFOHASH: ${HASH_A.toUpperCase()}\ninfohash: ${HASH_A}\nInfohash: nothex\n\n`;
  assert.deepEqual(parseLsdAnnounce(text(lf)), { host: "x", port: 7000, infoHashes: [HASH_A], cookie: null });
  // The round trip.
  const packet = formatLsdAnnounce({ host: "h", port: 9, infoHashes: [HASH_B], cookie: "k" });
  assert.deepEqual(parseLsdAnnounce(packet), { host: "h", port: 9, infoHashes: [HASH_B], cookie: "k" });
});

Deno.test("parseLsdAnnounce() returns null for packets that are not announces", () => {
  const bad: [string, Uint8Array][] = [
    ["another request", text("M-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n")],
    ["a response", text("HTTP/1.1 200 OK\r\n\r\n")],
    ["no port", text(`BT-SEARCH * HTTP/1.1\r\nInfohash: ${HASH_A}\r\n\r\n`)],
    ["port 0", announce({ port: "0" })],
    ["port 65536", announce({ port: "65536" })],
    ["port with letters", announce({ port: "68a1" })],
    ["a negative port", announce({ port: "-5" })],
    ["no info-hash", announce({ hashes: [] })],
    ["only bad info-hashes", announce({ hashes: ["abc", HASH_A + "00"] })],
    ["a header without a colon", announce({ extra: "garbage line\r\n" })],
    ["too many headers", announce({ extra: "X: 1\r\n".repeat(70) })],
    ["over 2 KiB", announce({ extra: `X-Pad: ${"p".repeat(2100)}\r\n` })],
    ["empty", new Uint8Array(0)],
  ];
  for (const [what, packet] of bad) assert.equal(parseLsdAnnounce(packet), null, what);
});

Deno.test("parseLsdAnnounce() never throws on random bytes or truncated announces", () => {
  let x = 12345;
  const rand = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  const good = announce({ hashes: [HASH_A, HASH_B], cookie: "c" });
  for (let i = 0; i < 2000; i++) {
    const random = Uint8Array.from({ length: rand() * 9 }, rand);
    assert.equal(parseLsdAnnounce(random), null);
    const cut = good.slice(0, i % good.length);
    const flipped = good.slice();
    flipped[i % good.length] = rand();
    for (const packet of [cut, flipped]) {
      const result = parseLsdAnnounce(packet);
      if (result !== null) {
        assert(result.port >= 1 && result.port <= 65535);
        assert(result.infoHashes.length > 0);
      }
    }
  }
});

// ---------------------------------------------------------------------------
// The service, with fake channels and a fake clock
// ---------------------------------------------------------------------------

class FakeChannel implements LsdChannel {
  readonly family: 4 | 6;
  readonly sent: Uint8Array[] = [];
  closed = false;
  failSends = false;
  readonly #queue: { data: Uint8Array; hostname: string }[] = [];
  #wake: (() => void) | null = null;

  constructor(family: 4 | 6) {
    this.family = family;
  }

  send(packet: Uint8Array): Promise<void> {
    if (this.failSends) return Promise.reject(new Error("Network is unreachable"));
    this.sent.push(packet);
    return Promise.resolve();
  }

  async *receive(): AsyncGenerator<{ data: Uint8Array; hostname: string }> {
    while (!this.closed) {
      const next = this.#queue.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  deliver(data: Uint8Array, hostname: string): void {
    this.#queue.push({ data, hostname });
    this.#wake?.();
  }

  close(): void {
    this.closed = true;
    this.#wake?.();
  }
}

/** A service over fake channels (IPv4 and IPv6) with a hand-moved clock. */
function setup(options: Partial<LocalDiscoveryOptions> = {}) {
  const clock = { now: 5_000_000 };
  const found: [string, string][] = [];
  const logs: LogRecord[] = [];
  const channels = [new FakeChannel(4), new FakeChannel(6)];
  const requests: LsdOpenRequest[] = [];
  const lsd = new LocalDiscovery({
    port: () => 6881,
    onPeer: (hash, address) => found.push([hash, address]),
    now: () => clock.now,
    cookie: "ourcookie",
    logger: new Logger({ level: "debug", sinks: [(r) => logs.push(r)] }),
    open: (request) => {
      requests.push(request);
      return Promise.resolve(channels);
    },
    ...options,
  });
  return { lsd, clock, found, logs, channels, requests };
}

function hashesIn(packets: Uint8Array[]): string[] {
  return packets.flatMap((p) => [...parseLsdAnnounce(p)!.infoHashes]);
}

Deno.test("LocalDiscovery announces a torrent when added, then at most once per interval", async () => {
  const { lsd, clock, channels } = setup();
  try {
    lsd.add(HASH_A.toUpperCase()); // announced at once (flush() waits for that announce)
    await lsd.flush();
    const [v4, v6] = channels;
    assert.equal(v4!.sent.length, 1, "one packet per group");
    assert.equal(v6!.sent.length, 1, "one packet per group");
    const first = parseLsdAnnounce(v4!.sent[0]!)!;
    assert.deepEqual(first, {
      host: "239.192.152.143:6771",
      port: 6881,
      infoHashes: [HASH_A],
      cookie: "ourcookie",
    });
    assert.equal(parseLsdAnnounce(v6!.sent[0]!)!.host, "[ff15::efc0:988f]:6771");
    clock.now += 4 * 60_000;
    assert.equal(await lsd.flush(), 0, "not again within 5 minutes");
    lsd.add(HASH_B); // a new torrent is announced at once, alone
    await lsd.flush();
    assert.deepEqual(hashesIn(v4!.sent.slice(1)), [HASH_B]);
    clock.now += 60_000;
    assert.equal(await lsd.flush(), 2);
    assert.deepEqual(hashesIn(v4!.sent.slice(2)), [HASH_A]);
    assert.deepEqual(lsd.torrents.sort(), [HASH_A, HASH_B]);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery never announces a torrent more than once a minute, whatever the interval", async () => {
  const { lsd, clock, channels } = setup({ intervalMs: 1000 });
  try {
    lsd.add(HASH_A);
    await lsd.flush();
    clock.now += LSD_MIN_INTERVAL_MS - 1;
    assert.equal(await lsd.flush(), 0);
    clock.now += 1;
    assert.equal(await lsd.flush(), 2);
    assert.equal(channels[0]!.sent.length, 2);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery puts many torrents into packets of at most 1400 bytes", async () => {
  const { lsd, channels } = setup();
  try {
    const hashes = Array.from({ length: 60 }, (_, i) => i.toString(16).padStart(40, "0"));
    for (const h of hashes) lsd.add(h);
    await lsd.flush();
    const v4 = channels[0]!.sent;
    assert(v4.length >= 3, `${v4.length} packets`);
    for (const p of v4) assert(p.length <= MAX_LSD_PACKET, `${p.length} bytes`);
    assert.deepEqual(hashesIn(v4).sort(), hashes);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery sends nothing without a listening port, and goes on when a send fails", async () => {
  let port = 0;
  const { lsd, channels, logs } = setup({ port: () => port });
  try {
    lsd.add(HASH_A);
    assert.equal(await lsd.flush(), 0);
    port = 7000;
    channels[1]!.failSends = true;
    assert.equal(await lsd.flush(), 1);
    assert.equal(parseLsdAnnounce(channels[0]!.sent[0]!)!.port, 7000);
    assert(logs.some((r) => r.message.startsWith("Cannot send an announce: Network is unreachable")));
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery reports others' announces for our torrents, ignoring its own cookie", async () => {
  const { lsd, found } = setup();
  try {
    lsd.add(HASH_A);
    assert.equal(lsd.receive(announce({ cookie: "ourcookie" }), "10.0.0.2"), "own");
    assert.equal(lsd.receive(announce({ hashes: [HASH_B], cookie: "x" }), "10.0.0.3"), "ignored");
    assert.equal(lsd.receive(announce({ hashes: [HASH_B, HASH_A], cookie: "x" }), "10.0.0.4"), "peers");
    assert.equal(lsd.receive(announce({ port: "7000" }), "::ffff:10.0.0.5"), "peers");
    assert.equal(lsd.receive(announce({ port: "7001" }), "2001:db8::6"), "peers");
    assert.equal(lsd.receive(announce(), "0.0.0.0"), "ignored", "a source nobody can dial");
    assert.deepEqual(found, [
      [HASH_A, "10.0.0.4:6881"],
      [HASH_A, "10.0.0.5:7000"],
      [HASH_A, "[2001:db8::6]:7001"],
    ]);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery reports one peer at most once a minute per torrent, and not after remove()", async () => {
  const { lsd, clock, found } = setup();
  try {
    lsd.add(HASH_A);
    assert.equal(lsd.receive(announce(), "10.0.0.4"), "peers");
    assert.equal(lsd.receive(announce(), "10.0.0.4"), "ignored");
    assert.equal(
      lsd.receive(announce({ port: "6882" }), "10.0.0.4"),
      "peers",
      "another port is another peer",
    );
    clock.now += LSD_MIN_INTERVAL_MS;
    assert.equal(lsd.receive(announce(), "10.0.0.4"), "peers");
    lsd.remove(HASH_A);
    clock.now += LSD_MIN_INTERVAL_MS;
    assert.equal(lsd.receive(announce(), "10.0.0.4"), "ignored");
    assert.equal(found.length, 3);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery ignores malformed packets and rate-limits what it receives", async () => {
  const { lsd, clock, found, logs } = setup();
  try {
    lsd.add(HASH_A);
    assert.equal(lsd.receive(text("GET / HTTP/1.1\r\n\r\n"), "10.0.0.9"), "malformed");
    assert.equal(lsd.receive(new Uint8Array(5000), "10.0.0.9"), "malformed");
    assert(logs.some((r) => r.message === "Ignored a malformed announce"));
    // 18 tokens are left of the burst of 20; then 5 a second.
    const outcomes = Array.from(
      { length: 30 },
      (_, i) => lsd.receive(announce({ port: `${7000 + i}` }), "10.0.0.8"),
    );
    assert.equal(outcomes.filter((o) => o === "peers").length, 18);
    assert.equal(outcomes.filter((o) => o === "rate-limited").length, 12);
    clock.now += 1000;
    const later = Array.from(
      { length: 10 },
      (_, i) => lsd.receive(announce({ port: `${8000 + i}` }), "10.0.0.8"),
    );
    assert.equal(later.filter((o) => o === "peers").length, 5);
    assert.equal(found.length, 23);
  } finally {
    await lsd.close();
  }
});

Deno.test("LocalDiscovery takes packets from its channels and closes them on close()", async () => {
  let reported!: (value: [string, string]) => void;
  const first = new Promise<[string, string]>((resolve) => (reported = resolve));
  const { lsd, channels } = setup({ onPeer: (hash, address) => reported([hash, address]) });
  lsd.add(HASH_A);
  await lsd.flush();
  channels[0]!.deliver(announce({ cookie: "theirs" }), "192.168.1.20");
  const timer = setTimeout(() => reported(["timeout", ""]), 5000);
  assert.deepEqual(await first, [HASH_A, "192.168.1.20:6881"]);
  clearTimeout(timer);
  await lsd.close();
  assert(channels.every((c) => c.closed));
  lsd.add(HASH_B); // after close: a no-op
  assert.equal(await lsd.flush(), 0);
});

Deno.test("LocalDiscovery follows the listening address and logs, never throws, when it cannot open", async () => {
  const cases: [string | undefined, LsdOpenRequest | null][] = [
    [undefined, { interface: "0.0.0.0", ipv4: true, ipv6: true }],
    ["::", { interface: "0.0.0.0", ipv4: true, ipv6: true }],
    ["127.0.0.1", { interface: "127.0.0.1", ipv4: true, ipv6: false }],
    ["::1", null],
  ];
  for (const [hostname, expected] of cases) {
    const { lsd, requests, logs } = setup(hostname === undefined ? {} : { hostname });
    lsd.add(HASH_A);
    await lsd.flush();
    await lsd.close();
    if (expected === null) {
      assert.equal(requests.length, 0);
      assert(logs.some((r) => r.message.startsWith("Local discovery is off")));
    } else {
      const { logger: _, ...request } = requests[0]!;
      assert.deepEqual(request, expected, `hostname ${hostname}`);
    }
  }
  const failing = setup({ open: () => Promise.reject(new Error("Address in use")) });
  failing.lsd.add(HASH_A);
  assert.equal(await failing.lsd.flush(), 0);
  await failing.lsd.close();
  assert(
    failing.logs.some((r) => r.level === "warn" && r.message === "Local discovery is off: Address in use"),
  );
});

// ---------------------------------------------------------------------------
// The session and the CLI switch
// ---------------------------------------------------------------------------

Deno.test("a session runs local discovery for public torrents only, and not at all with lsd: false", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_lsd_session_" });
  try {
    await Deno.writeFile(join(dir, "a.bin"), new Uint8Array(40_000).fill(7));
    const torrents = await Promise.all(
      [false, true].map(async (isPrivate) =>
        parseMetainfo(
          (await createTorrent(join(dir, "a.bin"), { private: isPrivate, creationDate: null })).torrent,
        )
      ),
    );
    for (
      const [lsd, meta, expected] of [
        [undefined, torrents[0]!, true],
        [false, torrents[0]!, false],
        [undefined, torrents[1]!, false],
      ] as const
    ) {
      const logs: LogRecord[] = [];
      const session = new Session({
        downloadDir: dir,
        bind: "127.0.0.1", // keeps discovery on loopback
        trackers: false,
        logLevel: "debug",
        logSinks: [(r) => logs.push(r)],
        ...(lsd === false ? { lsd } : {}),
      });
      try {
        await session.add(meta);
      } finally {
        await session.close();
      }
      const started = logs.some((r) => r.category === "lsd" && r.message === "Local discovery started");
      assert.equal(started, expected, `lsd ${lsd}, private ${meta.private}`);
      if (!expected) assert(!logs.some((r) => r.category === "lsd"), `lsd ${lsd}, private ${meta.private}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI's --no-lsd and --no-pex switches turn discovery and peer exchange off", () => {
  assert.match(TRANSFER_HELP, /--no-lsd/);
  assert.match(TRANSFER_HELP, /--no-pex/);
  const { values } = parseArgs({
    args: ["--no-lsd", "--no-pex"],
    options: TRANSFER_OPTIONS,
    strict: true,
    allowPositionals: true,
  });
  const off = transferSettings("download", values);
  assert.equal(off.lsd, false);
  assert.equal(off.pex, false);
  const on = transferSettings("download", {});
  assert.equal(on.lsd, true);
  assert.equal(on.pex, true);
});
