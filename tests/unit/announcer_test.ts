import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { Announcer, type AnnouncerOptions } from "../../lib/tracker/announcer.ts";
import { UdpTrackerClient } from "../../lib/tracker/udp_tracker.ts";
import type { LogRecord } from "../../lib/types.ts";
import {
  bencoded,
  compact4,
  deadPort,
  param,
  parseUdpAnnounce,
  ScriptedHttpTracker,
  ScriptedUdpTracker,
  waitUntil,
  wellBehavedUdp,
  withDeadline,
} from "../_scripted_tracker.ts";

const INFO_HASH = new Uint8Array(20).fill(0x11);
const PEER_ID = new TextEncoder().encode("-SH0100-announcer000");
const START = 1_700_000_000_000;

/** A fake clock with timers: time moves only when a test advances it. */
class FakeClock {
  now = START;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;

  setTimer = (fn: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + ms, fn });
    return id;
  };

  clearTimer = (handle: unknown): void => {
    this.#timers.delete(handle as number);
  };

  /** When the earliest pending timer fires. */
  nextTimerAt(): number | undefined {
    const times = [...this.#timers.values()].map((t) => t.at);
    return times.length === 0 ? undefined : Math.min(...times);
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!first || entry[1].at < first[1].at)) first = entry;
      }
      if (first === undefined) break;
      this.#timers.delete(first[0]);
      this.now = Math.max(this.now, first[1].at);
      first[1].fn();
    }
    this.now = end;
  }
}

interface Harness {
  announcer: Announcer;
  clock: FakeClock;
  records: LogRecord[];
  peers: [string[], string][];
  stats: { uploaded: number; downloaded: number; left: number };
  [Symbol.asyncDispose](): Promise<void>;
}

function harness(tiers: string[][], extra: Partial<AnnouncerOptions> = {}): Harness {
  const clock = new FakeClock();
  const records: LogRecord[] = [];
  const peers: [string[], string][] = [];
  const stats = { uploaded: 0, downloaded: 0, left: 1000 };
  const announcer = new Announcer({
    tiers,
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 6881,
    stats: () => ({ ...stats }),
    onPeers: (list, tracker) => peers.push([list, tracker]),
    logger: new Logger({ level: "debug", sinks: [(r) => records.push(r)], now: () => clock.now }),
    random: () => 0.999, // keeps each tier in the given order
    now: () => clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    ...extra,
  });
  return { announcer, clock, records, peers, stats, [Symbol.asyncDispose]: () => announcer.stop(1000) };
}

function stateOf(h: Harness, url: string) {
  const status = h.announcer.status().find((s) => s.url === url);
  assert.ok(status, `no status for ${url}`);
  return status;
}

async function settled(h: Harness, url: string, state: string): Promise<void> {
  await waitUntil(() => stateOf(h, url).state === state, `${url} to be ${state}`);
}

function events(tracker: ScriptedHttpTracker): (string | undefined)[] {
  return tracker.requests.map((r) => param(r, "event"));
}

Deno.test("Announcer sends started, completed once, then stopped, with the current stats", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({
      interval: 600,
      "min interval": 120,
      complete: 3,
      incomplete: 4,
      peers: compact4("10.0.0.1:1"),
    })
  );
  const h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  assert.deepEqual(h.peers, [[["10.0.0.1:1"], tracker.announceUrl]]);
  const first = tracker.requests[0]!;
  assert.equal(param(first, "left"), "1000");
  assert.equal(param(first, "numwant"), "50");
  h.stats.left = 0;
  h.stats.downloaded = 1000;
  h.announcer.completed();
  h.announcer.completed();
  const second = await tracker.waitForRequests(2);
  assert.equal(param(second, "event"), "completed");
  assert.equal(param(second, "left"), "0");
  assert.equal(param(second, "downloaded"), "1000");
  assert.equal(param(second, "key"), param(first, "key"), "the key stays the same");
  await waitUntil(() => h.peers.length === 2, "the peers of the completed announce");
  await withDeadline(h.announcer.stop(), 5000, "stop()");
  assert.deepEqual(events(tracker), ["started", "completed", "stopped"]);
  assert.equal(param(tracker.requests[2]!, "numwant"), "0");
  const status = stateOf(h, tracker.announceUrl);
  assert.equal(status.peersReceived, 2);
  assert.equal(status.seeders, 3);
  assert.equal(status.leechers, 4);
  const announced = h.records.filter((r) => r.category === "tracker" && r.level === "info");
  assert.deepEqual(
    announced.map((r) => [r.fields.tracker, r.fields.event, r.fields.peers, r.fields.interval]),
    [
      [tracker.announceUrl, "started", 1, 600],
      [tracker.announceUrl, "completed", 1, 600],
      [tracker.announceUrl, "stopped", undefined, undefined],
    ],
  );
});

Deno.test("Announcer announces again after the interval, without an event and with the tracker id", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ interval: 900, "tracker id": "xyz", peers: "" })
  );
  await using h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  assert.equal(stateOf(h, tracker.announceUrl).nextAnnounce, START + 900_000);
  assert.equal(h.clock.nextTimerAt(), START + 900_000);
  assert.equal(param(tracker.requests[0]!, "trackerid"), undefined);
  h.clock.advance(900_000);
  const second = await tracker.waitForRequests(2);
  assert.equal(param(second, "event"), undefined);
  assert.equal(param(second, "trackerid"), "xyz");
  assert.deepEqual(h.peers, [], "an empty peer list is not passed on");
});

Deno.test("Announcer clamps intervals of 0, negative and huge, and says so", async () => {
  for (const [sent, expected] of [[0, 60], [-30, 60], [10n ** 15n, 3600], [2n ** 80n, 3600]] as const) {
    await using tracker = new ScriptedHttpTracker(() => bencoded({ interval: sent, "min interval": sent }));
    await using h = harness([[tracker.announceUrl]], { minIntervalSeconds: 60, maxIntervalSeconds: 3600 });
    h.announcer.start();
    await settled(h, tracker.announceUrl, "working");
    assert.equal(h.clock.nextTimerAt(), START + expected * 1000, `interval ${sent}`);
    assert.equal(stateOf(h, tracker.announceUrl).nextAnnounce, START + expected * 1000);
    assert.ok(
      h.records.some((r) =>
        r.level === "warn" &&
        r.message === `Tracker asked for an interval of ${Number(sent)} s: using ${expected} s`
      ),
      `a warning for interval ${sent}`,
    );
    h.clock.advance(expected * 1000);
    await tracker.waitForRequests(2);
  }
});

Deno.test("Announcer skips a dead first tracker in a tier and moves the next one to the front", async () => {
  const dead = `http://127.0.0.1:${deadPort()}/announce`;
  await using live = new ScriptedHttpTracker(() =>
    bencoded({ interval: 300, peers: compact4("10.0.0.2:2") })
  );
  await using h = harness([[dead, live.announceUrl]]);
  assert.deepEqual(h.announcer.status().map((s) => s.url), [dead, live.announceUrl]);
  h.announcer.start();
  await settled(h, live.announceUrl, "working");
  assert.deepEqual(h.announcer.status().map((s) => [s.url, s.state]), [
    [live.announceUrl, "working"],
    [dead, "failed"],
  ]);
  assert.match(stateOf(h, dead).lastError ?? "", /^Cannot reach tracker for announce: /);
  assert.equal(stateOf(h, dead).nextAnnounce, undefined, "a standby tracker is not scheduled");
  assert.deepEqual(h.peers, [[["10.0.0.2:2"], live.announceUrl]]);
  h.clock.advance(300_000);
  await live.waitForRequests(2);
  await waitUntil(() => h.peers.length === 2, "the second answer");
  const failures = h.records.filter((r) => r.fields.tracker === dead && r.level === "warn");
  assert.equal(failures.length, 1, "the dead tracker was tried once");
  assert.equal(param(live.requests[1]!, "event"), undefined);
});

Deno.test("Announcer stops using a tracker that answers HTTP 410", async () => {
  await using gone = new ScriptedHttpTracker(() => new Response("gone", { status: 410 }));
  let liveOk = true;
  await using live = new ScriptedHttpTracker(() =>
    liveOk ? bencoded({ interval: 300, peers: "" }) : new Response("down", { status: 503 })
  );
  await using h = harness([[gone.announceUrl, live.announceUrl]], { retryBaseSeconds: 10 });
  h.announcer.start();
  await settled(h, live.announceUrl, "working");
  const status = stateOf(h, gone.announceUrl);
  assert.equal(status.state, "gone");
  assert.match(status.lastError ?? "", /HTTP 410/);
  assert.ok(h.records.some((r) => r.message.startsWith("Tracker is gone, not using it again")));
  liveOk = false;
  h.clock.advance(300_000);
  await settled(h, live.announceUrl, "failed");
  h.clock.advance(3_600_000);
  await live.waitForRequests(3);
  assert.equal(gone.requests.length, 1, "the gone tracker was asked once");
  assert.equal(stateOf(h, gone.announceUrl).nextAnnounce, undefined);
});

Deno.test("Announcer backs off exponentially after failures, capped, and reports the failure reason", async () => {
  await using tracker = new ScriptedHttpTracker(() => bencoded({ "failure reason": "Unregistered torrent" }));
  await using h = harness([[tracker.announceUrl]], { retryBaseSeconds: 15, retryMaxSeconds: 100 });
  h.announcer.start();
  const waits: number[] = [];
  for (let n = 1; n <= 5; n++) {
    await tracker.waitForRequests(n);
    await waitUntil(
      () => h.clock.nextTimerAt() !== undefined && stateOf(h, tracker.announceUrl).state === "failed",
      "backoff",
    );
    const wait = h.clock.nextTimerAt()! - h.clock.now;
    waits.push(wait / 1000);
    assert.equal(stateOf(h, tracker.announceUrl).nextAnnounce, h.clock.now + wait);
    h.clock.advance(wait);
  }
  assert.deepEqual(waits, [15, 30, 60, 100, 100]);
  assert.deepEqual(events(tracker), ["started", "started", "started", "started", "started"]);
  const failure = h.records.find((r) => r.level === "warn" && r.fields.tracker === tracker.announceUrl)!;
  assert.equal(failure.message, "Announce failed: Tracker refused the announce: Unregistered torrent");
  assert.equal(failure.fields.error, "Tracker refused the announce: Unregistered torrent");
  assert.equal(failure.fields.event, "started");
});

Deno.test("Announcer keeps running after a body that is not bencode and recovers", async () => {
  let broken = true;
  await using tracker = new ScriptedHttpTracker(() =>
    broken
      ? new Response("<html>502 Bad Gateway</html>")
      : bencoded({ interval: 300, peers: compact4("10.0.0.3:3") })
  );
  await using h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "failed");
  assert.match(stateOf(h, tracker.announceUrl).lastError ?? "", /^Tracker announce answer is not bencode/);
  broken = false;
  h.clock.advance(15_000);
  await settled(h, tracker.announceUrl, "working");
  assert.deepEqual(h.peers, [[["10.0.0.3:3"], tracker.announceUrl]]);
  assert.deepEqual(events(tracker), ["started", "started"], "started is sent until one succeeds");
  assert.equal(stateOf(h, tracker.announceUrl).lastError, undefined);
});

Deno.test("Announcer uses the whole entries of a compact list of 6n+3 bytes and logs a warning", async () => {
  const peers = new Uint8Array([...compact4("10.0.0.4:4"), 7, 7, 7]);
  await using tracker = new ScriptedHttpTracker(() => bencoded({ interval: 300, peers }));
  await using h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  assert.deepEqual(h.peers, [[["10.0.0.4:4"], tracker.announceUrl]]);
  const warning = h.records.find((r) => r.level === "warn")!;
  assert.equal(
    warning.message,
    "Tracker answer: Compact 'peers' of 9 bytes is not a multiple of 6: used 1 peers, ignored 3 trailing bytes",
  );
  assert.equal(warning.fields.tracker, tracker.announceUrl);
});

Deno.test("Announcer logs the tracker's warning message", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ interval: 300, peers: "", "warning message": "Upgrade your client" })
  );
  await using h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  assert.ok(
    h.records.some((r) => r.level === "warn" && r.message === "Tracker warning: Upgrade your client"),
  );
});

Deno.test("Announcer announces to every tier independently", async () => {
  await using a = new ScriptedHttpTracker(() => bencoded({ interval: 300, peers: compact4("10.0.0.5:5") }));
  await using b = new ScriptedHttpTracker(() => bencoded({ "failure reason": "No" }));
  await using c = new ScriptedHttpTracker(() => bencoded({ interval: 300, peers: compact4("10.0.0.6:6") }));
  await using h = harness([[a.announceUrl], [b.announceUrl, c.announceUrl]]);
  h.announcer.start();
  await settled(h, a.announceUrl, "working");
  await settled(h, c.announceUrl, "working");
  assert.deepEqual(h.announcer.status().map((s) => [s.tier, s.url, s.state]), [
    [0, a.announceUrl, "working"],
    [1, c.announceUrl, "working"],
    [1, b.announceUrl, "failed"],
  ]);
  assert.deepEqual(h.peers.map(([, tracker]) => tracker).sort(), [a.announceUrl, c.announceUrl].sort());
});

Deno.test("Announcer sends stopped only to trackers that got a successful started", async () => {
  await using ok = new ScriptedHttpTracker(() => bencoded({ interval: 300, peers: "" }));
  await using failing = new ScriptedHttpTracker(() => new Response("no", { status: 500 }));
  const h = harness([[ok.announceUrl], [failing.announceUrl]]);
  h.announcer.start();
  await settled(h, ok.announceUrl, "working");
  await settled(h, failing.announceUrl, "failed");
  await withDeadline(h.announcer.stop(), 5000, "stop()");
  assert.deepEqual(events(ok), ["started", "stopped"]);
  assert.deepEqual(events(failing), ["started"]);
  assert.equal(h.clock.nextTimerAt(), undefined, "no timer is left");
});

Deno.test("Announcer stop() gives up on a tracker that never answers stopped", async () => {
  await using tracker = new ScriptedHttpTracker((r) =>
    param(r, "event") === "stopped" ? "hang" : bencoded({ interval: 300, peers: "" })
  );
  const h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  let done = false;
  const stopping = h.announcer.stop(2500).then(() => done = true);
  await tracker.waitForRequests(2);
  assert.equal(done, false);
  assert.equal(h.clock.nextTimerAt(), START + 2500, "the stop deadline");
  h.clock.advance(2500);
  await withDeadline(stopping, 5000, "stop() to give up");
  const warning = h.records.find((r) => r.level === "warn" && r.fields.event === "stopped")!;
  assert.equal(warning.message, "Announce 'stopped' failed: Gave up on 'stopped' announces after 2500 ms");
  assert.equal(h.announcer.stop(), h.announcer.stop(), "later calls return the same promise");
});

Deno.test("Announcer announceNow() waits for the min interval", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ interval: 1200, "min interval": 120, peers: "" })
  );
  await using h = harness([[tracker.announceUrl]]);
  h.announcer.start();
  await settled(h, tracker.announceUrl, "working");
  h.clock.advance(10_000);
  h.announcer.announceNow();
  assert.equal(h.clock.nextTimerAt(), START + 120_000, "moved up to the min interval");
  h.clock.advance(110_000);
  await tracker.waitForRequests(2);
  await settled(h, tracker.announceUrl, "working");
  h.clock.advance(120_000);
  h.announcer.announceNow();
  await tracker.waitForRequests(3);
  assert.deepEqual(events(tracker), ["started", undefined, undefined]);
});

Deno.test("Announcer does not retry a tracker whose URL it cannot use", async () => {
  await using h = harness([["wss://tracker.example/announce", "http://[bad"]]);
  h.announcer.start();
  await settled(h, "wss://tracker.example/announce", "failed");
  await settled(h, "http://[bad", "failed");
  assert.equal(h.clock.nextTimerAt(), undefined);
  assert.ok(h.records.some((r) => r.level === "error" && r.message === "No usable tracker left in tier 0"));
  assert.equal(
    stateOf(h, "wss://tracker.example/announce").lastError,
    "Unsupported tracker URL scheme: wss: (wss://tracker.example/announce)",
  );
});

Deno.test("Announcer shuffles each tier once with the given random source and drops duplicates", async () => {
  await using h = harness([["http://a/announce", "http://b/announce", "http://c/announce"], [
    "http://a/announce",
    " ",
  ], ["http://d/announce"]], { random: () => 0 });
  assert.deepEqual(h.announcer.status().map((s) => [s.tier, s.url, s.state]), [
    [0, "http://b/announce", "idle"],
    [0, "http://c/announce", "idle"],
    [0, "http://a/announce", "idle"],
    [1, "http://d/announce", "idle"],
  ]);
});

Deno.test("Announcer announces over UDP with a shared client, and stopped too", async () => {
  await using tracker = new ScriptedUdpTracker(wellBehavedUdp(compact4("10.0.0.7:7")));
  await using udp = new UdpTrackerClient({ baseTimeoutMs: 2000, hostname: "127.0.0.1" });
  const h = harness([[tracker.url]], { udp });
  h.announcer.start();
  await settled(h, tracker.url, "working");
  assert.deepEqual(h.peers, [[["10.0.0.7:7"], tracker.url]]);
  assert.deepEqual(stateOf(h, tracker.url).seeders, 1);
  await withDeadline(h.announcer.stop(), 5000, "stop()");
  const announces = tracker.packets.filter((p) => p.action === 1).map(parseUdpAnnounce);
  assert.deepEqual(announces.map((a) => [a.event, a.numwant]), [[2, 50], [3, 0]]);
  // The shared client is still open after the announcer stopped.
  await udp.announce(tracker.url, {
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 1,
    uploaded: 0,
    downloaded: 0,
    left: 0,
    key: 1,
  });
});

Deno.test("Announcer makes its own UDP client when none is given and closes it at stop", async () => {
  await using tracker = new ScriptedUdpTracker(wellBehavedUdp(compact4("10.0.0.8:8")));
  const h = harness([[tracker.url]]);
  h.announcer.start();
  await settled(h, tracker.url, "working");
  await withDeadline(h.announcer.stop(), 5000, "stop()");
  assert.deepEqual(tracker.packets.filter((p) => p.action === 1).map((p) => parseUdpAnnounce(p).event), [
    2,
    3,
  ]);
});
