import assert from "node:assert/strict";
import { encodeCompactPeer } from "../../lib/net/address.ts";
import { type AnnounceRequest, TrackerError } from "../../lib/tracker/types.ts";
import { UdpTrackerClient } from "../../lib/tracker/udp_tracker.ts";
import {
  announceReply,
  compact4,
  connectReply,
  deadPort,
  errorReply,
  parseUdpAnnounce,
  scrapeReply,
  ScriptedUdpTracker,
  UDP_PROTOCOL_ID,
  wellBehavedUdp,
  withDeadline,
} from "../_scripted_tracker.ts";

const INFO_HASH = new Uint8Array(20).map((_, i) => i * 13);
const PEER_ID = new TextEncoder().encode("-SH0100-udpudpudpudp");
/** Retransmission base for tests that make the tracker stay silent: short, so silence costs little. */
const SHORT_MS = 50;
/** Retransmission base for the other tests: long enough that a loaded machine does not retransmit. */
const BASE_MS = 2000;

function request(extra: Partial<AnnounceRequest> = {}): AnnounceRequest {
  return {
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 51413,
    uploaded: 2 ** 40,
    downloaded: 123,
    left: 456,
    key: 0xcafebabe,
    ...extra,
  };
}

function client(
  extra: { now?: () => number; maxRetries?: number; baseTimeoutMs?: number } = {},
): UdpTrackerClient {
  return new UdpTrackerClient({ baseTimeoutMs: BASE_MS, hostname: "127.0.0.1", ...extra });
}

async function rejection(promise: Promise<unknown>): Promise<TrackerError> {
  const error = await withDeadline(
    promise.then(() => undefined, (e: unknown) => e),
    10_000,
    "the call to fail",
  );
  assert.ok(error instanceof TrackerError, `expected a TrackerError, got ${String(error)}`);
  return error;
}

Deno.test("UdpTrackerClient connects, then announces with every field in place", async () => {
  await using tracker = new ScriptedUdpTracker(wellBehavedUdp(compact4("10.0.0.1:6881", "10.0.0.2:6882")));
  await using udp = client();
  const answer = await withDeadline(
    udp.announce(tracker.url, request({ event: "started", numwant: 30 })),
    5000,
    "the announce",
  );
  assert.deepEqual(answer, {
    interval: 900,
    leechers: 2,
    seeders: 1,
    peers: ["10.0.0.1:6881", "10.0.0.2:6882"],
  });
  const [connect, announce] = tracker.packets;
  assert.equal(connect!.data.length, 16);
  assert.equal(connect!.connectionId, UDP_PROTOCOL_ID);
  assert.equal(connect!.action, 0);
  assert.equal(announce!.data.length, 98);
  assert.equal(announce!.connectionId, 1000n);
  assert.equal(announce!.action, 1);
  assert.deepEqual(parseUdpAnnounce(announce!), {
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    downloaded: 123n,
    left: 456n,
    uploaded: 2n ** 40n,
    event: 2,
    ip: 0,
    key: 0xcafebabe,
    numwant: 30,
    port: 51413,
  });
});

Deno.test("UdpTrackerClient sends event codes 0, 1, 3 and numwant -1 when unset", async () => {
  await using tracker = new ScriptedUdpTracker();
  await using udp = client();
  await udp.announce(tracker.url, request());
  await udp.announce(tracker.url, request({ event: "completed" }));
  await udp.announce(tracker.url, request({ event: "stopped", numwant: 0 }));
  const announces = tracker.packets.filter((p) => p.action === 1).map(parseUdpAnnounce);
  assert.deepEqual(announces.map((a) => [a.event, a.numwant]), [[0, -1], [1, -1], [3, 0]]);
});

Deno.test("UdpTrackerClient reuses a connection id for up to 60 s, then connects again", async () => {
  let now = 1_000_000;
  await using tracker = new ScriptedUdpTracker();
  await using udp = client({ now: () => now });
  await udp.announce(tracker.url, request());
  now += 59_000;
  await udp.announce(tracker.url, request());
  assert.deepEqual(tracker.packets.map((p) => p.action), [0, 1, 1]);
  now += 1_000;
  await udp.announce(tracker.url, request());
  assert.deepEqual(tracker.packets.map((p) => p.action), [0, 1, 1, 0, 1]);
  assert.equal(tracker.packets[4]!.connectionId, 1001n);
});

Deno.test("UdpTrackerClient scrapes and returns the counts by hex info-hash", async () => {
  await using tracker = new ScriptedUdpTracker();
  await using udp = client();
  const other = new Uint8Array(20).fill(0xee);
  const counts = await udp.scrape(tracker.url, [INFO_HASH, other]);
  const scrape = tracker.packets[1]!;
  assert.equal(scrape.action, 2);
  assert.deepEqual(scrape.data.subarray(16), new Uint8Array([...INFO_HASH, ...other]));
  assert.deepEqual([...counts.values()], [
    { seeders: 5, completed: 7, leechers: 3 },
    { seeders: 5, completed: 7, leechers: 3 },
  ]);
  assert.deepEqual([...counts.keys()], [
    Array.from(INFO_HASH, (b) => b.toString(16).padStart(2, "0")).join(""),
    "ee".repeat(20),
  ]);
});

Deno.test("UdpTrackerClient ignores a reply with the wrong transaction id and accepts the right one", async () => {
  const good = wellBehavedUdp(compact4("10.9.9.9:9"));
  await using tracker = new ScriptedUdpTracker(async (packet, reply, t) => {
    if (packet.action === 1) {
      await reply(announceReply((packet.txid + 1) >>> 0, { peers: compact4("6.6.6.6:6") }));
    }
    await good(packet, reply, t);
  });
  const records: string[] = [];
  const { Logger } = await import("../../lib/log.ts");
  await using udp = new UdpTrackerClient({
    baseTimeoutMs: 5000,
    hostname: "127.0.0.1",
    logger: new Logger({ level: "debug", sinks: [(r) => records.push(r.message)] }),
  });
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.deepEqual(answer.peers, ["10.9.9.9:9"]);
  assert.ok(records.includes("Ignored a UDP tracker datagram: unknown transaction id"), records.join("\n"));
});

Deno.test("UdpTrackerClient ignores replies from another port, with another action, or too short", async () => {
  const good = wellBehavedUdp(compact4("10.9.9.9:9"));
  await using tracker = new ScriptedUdpTracker(async (packet, reply, t) => {
    if (packet.action === 0) {
      await t.sendFromOtherPort(connectReply(packet.txid, 666n), packet.from);
      await reply(scrapeReply(packet.txid, [])); // wrong action
      await reply(connectReply(packet.txid, 777n).subarray(0, 12)); // too short
      await reply(new Uint8Array(5)); // shorter than a header
    }
    if (packet.action === 1) {
      await t.sendFromOtherPort(announceReply(packet.txid, { peers: compact4("6.6.6.6:6") }), packet.from);
      await t.sendFromOtherPort(errorReply(packet.txid, "Impostor"), packet.from);
      await reply(announceReply(packet.txid).subarray(0, 19));
    }
    await good(packet, reply, t);
  });
  await using udp = new UdpTrackerClient({ baseTimeoutMs: 5000, hostname: "127.0.0.1" });
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.deepEqual(answer.peers, ["10.9.9.9:9"]);
  assert.equal(tracker.packets[1]!.connectionId, 1000n, "the impostor's connection id was not used");
});

Deno.test("UdpTrackerClient turns the error action into a TrackerError with the tracker's message", async () => {
  await using tracker = new ScriptedUdpTracker(async (packet, reply) => {
    if (packet.action === 0) await reply(connectReply(packet.txid, 42n));
    else await reply(errorReply(packet.txid, "Torrent not registered"));
  });
  await using udp = client();
  const error = await rejection(udp.announce(tracker.url, request()));
  assert.equal(error.message, "UDP tracker refused the announce: Torrent not registered");
  assert.equal(error.retryable, true);
  assert.deepEqual(tracker.packets.map((p) => p.action), [0, 1], "a fresh connection id is not retried");
});

Deno.test("UdpTrackerClient connects again once when the tracker says the cached connection id expired", async () => {
  const good = wellBehavedUdp(compact4("10.1.1.1:1"));
  await using tracker = new ScriptedUdpTracker(async (packet, reply, t) => {
    if (packet.action === 1 && !t.validIds.has(packet.connectionId)) {
      await reply(errorReply(packet.txid, "Connection ID missmatch."));
      return;
    }
    await good(packet, reply, t);
  });
  await using udp = client();
  await udp.announce(tracker.url, request());
  tracker.validIds.clear(); // the tracker forgets the id the client has cached
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.deepEqual(answer.peers, ["10.1.1.1:1"]);
  assert.deepEqual(tracker.packets.map((p) => [p.action, p.connectionId]), [
    [0, UDP_PROTOCOL_ID],
    [1, 1000n],
    [1, 1000n],
    [0, UDP_PROTOCOL_ID],
    [1, 1001n],
  ]);
});

Deno.test("UdpTrackerClient connects again when a cached connection id gets no answer", async () => {
  await using tracker = new ScriptedUdpTracker(wellBehavedUdp(compact4("10.1.1.1:1")));
  await using udp = client({ baseTimeoutMs: SHORT_MS });
  await udp.announce(tracker.url, request());
  tracker.validIds.clear(); // requests with the old id are now silently dropped
  const before = tracker.packets.length;
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.deepEqual(answer.peers, ["10.1.1.1:1"]);
  const sent = tracker.packets.slice(before).map((p) => [p.action, p.connectionId]);
  assert.deepEqual(
    sent.slice(0, 2),
    [[1, 1000n], [0, UDP_PROTOCOL_ID]],
    "one unanswered try, then a connect",
  );
  assert.equal(sent.at(-1)![0], 1);
  assert.ok(tracker.validIds.has(sent.at(-1)![1] as bigint), "the answered announce used the new id");
});

Deno.test("UdpTrackerClient retransmits maxRetries times, then fails clearly", async () => {
  await using tracker = new ScriptedUdpTracker(() => {});
  await using udp = client({ baseTimeoutMs: SHORT_MS, maxRetries: 2 });
  const error = await rejection(udp.announce(tracker.url, request()));
  assert.equal(
    error.message,
    `UDP tracker did not answer the connect after 3 tries (0.35 s): ${tracker.url}`,
  );
  assert.equal(error.retryable, true);
  await tracker.waitForPackets(3);
  assert.deepEqual(tracker.packets.map((p) => p.action), [0, 0, 0]);
  assert.ok(
    tracker.packets.every((p) => p.txid === tracker.packets[0]!.txid),
    "a retransmission keeps its txid",
  );
});

Deno.test("UdpTrackerClient retransmits a lost connect and carries on", async () => {
  let connects = 0;
  await using tracker = new ScriptedUdpTracker(async (packet, reply) => {
    if (packet.action === 0 && ++connects === 2) await reply(connectReply(packet.txid, 5n));
    if (packet.action === 1) await reply(announceReply(packet.txid, { interval: 77 }));
  });
  await using udp = client({ baseTimeoutMs: SHORT_MS });
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.equal(answer.interval, 77);
  assert.equal(tracker.packets.at(-1)!.connectionId, 5n);
});

Deno.test("UdpTrackerClient reports a peer list of 6n+3 bytes and keeps the whole entries", async () => {
  await using tracker = new ScriptedUdpTracker(async (packet, reply) => {
    if (packet.action === 0) await reply(connectReply(packet.txid, 1n));
    else {await reply(
        announceReply(packet.txid, { peers: new Uint8Array([...compact4("10.0.0.1:1"), 9, 9, 9]) }),
      );}
  });
  await using udp = client();
  const answer = await udp.announce(tracker.url, request());
  assert.deepEqual(answer.peers, ["10.0.0.1:1"]);
  assert.deepEqual(answer.issues, [
    "Compact 'peers' of 9 bytes is not a multiple of 6: used 1 peers, ignored 3 trailing bytes",
  ]);
});

Deno.test("UdpTrackerClient reads 18-byte peers from a tracker reached over IPv6", async (t) => {
  let tracker: ScriptedUdpTracker;
  try {
    tracker = new ScriptedUdpTracker(
      wellBehavedUdp(
        new Uint8Array([...encodeCompactPeer("[::1]:7000")!, ...encodeCompactPeer("[2001:db8::5]:7")!]),
      ),
      "::1",
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrNotAvailable)) throw error;
    t.step({ name: "skipped: no IPv6 loopback", ignore: true, fn: () => {} });
    return;
  }
  await using _tracker = tracker;
  await using udp = new UdpTrackerClient({ baseTimeoutMs: BASE_MS, hostname: "127.0.0.1", hostname6: "::1" });
  const answer = await withDeadline(udp.announce(tracker.url, request()), 5000, "the announce");
  assert.deepEqual(answer.peers, ["[::1]:7000", "[2001:db8::5]:7"]);
});

Deno.test("UdpTrackerClient resolves localhost to 127.0.0.1", async () => {
  await using tracker = new ScriptedUdpTracker(wellBehavedUdp(compact4("10.0.0.3:3")));
  await using udp = client();
  const answer = await udp.announce(`udp://localhost:${tracker.port}`, request());
  assert.deepEqual(answer.peers, ["10.0.0.3:3"]);
});

Deno.test("UdpTrackerClient rejects URLs it cannot use as not retryable", async () => {
  await using udp = client();
  for (
    const url of ["http://127.0.0.1:1/announce", "udp://127.0.0.1/announce", "udp://127.0.0.1:0", "nope"]
  ) {
    const error = await rejection(udp.announce(url, request()));
    assert.equal(error.retryable, false, url);
  }
});

Deno.test("UdpTrackerClient close() rejects calls in progress", async () => {
  const udp = client({ maxRetries: 8 });
  const call = udp.announce(`udp://127.0.0.1:${deadPort()}`, request());
  const failed = rejection(call);
  await new Promise((resolve) => setTimeout(resolve, 10));
  await udp[Symbol.asyncDispose]();
  const error = await failed;
  assert.equal(error.message, "UDP tracker client is closed");
  const after = await rejection(udp.announce("udp://127.0.0.1:1", request()));
  assert.equal(after.message, "UDP tracker client is closed");
});

Deno.test("UdpTrackerClient rejects with the caller's abort reason", async () => {
  await using tracker = new ScriptedUdpTracker(() => {});
  await using udp = new UdpTrackerClient({ baseTimeoutMs: 60_000, hostname: "127.0.0.1" });
  const controller = new AbortController();
  const call = udp.announce(tracker.url, request(), { signal: controller.signal });
  await tracker.waitForPackets(1);
  const reason = new Error("Shutting down");
  controller.abort(reason);
  await assert.rejects(withDeadline(call, 5000, "the abort"), (e) => e === reason);
});
