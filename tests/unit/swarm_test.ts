import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { BanList } from "../../lib/peer/ban_list.ts";
import type { HandshakenPeer } from "../../lib/peer/handshake_read.ts";
import { Candidates } from "../../lib/swarm/candidates.ts";
import { METADATA_SWARM, type SwarmPolicy, TORRENT_SWARM } from "../../lib/swarm/constants.ts";
import { Swarm, type SwarmOptions } from "../../lib/swarm/swarm.ts";
import type { Transport, TransportConnection } from "../../lib/types.ts";

const OURS = new Uint8Array(20).fill(1);

function id(n: number): Uint8Array {
  return new Uint8Array(20).fill(n);
}

/** A handshaken peer whose duplex only records that it was closed. */
function fakePeer(peerId: Uint8Array): HandshakenPeer & { closed: boolean } {
  const peer = {
    closed: false,
    duplex: {
      readable: new ReadableStream<Uint8Array>(),
      writable: new WritableStream<Uint8Array>(),
      close: () => {
        peer.closed = true;
      },
    },
    remote: { infoHash: new Uint8Array(20), peerId, reserved: new Uint8Array(8) },
    encryption: "none",
  };
  return peer;
}

/** A transport whose dials never settle until the signal aborts, or fail at once. */
function transport(mode: "hang" | "fail", dialed: string[]): Transport {
  return {
    name: "test",
    connect(address: string, signal: AbortSignal): Promise<TransportConnection> {
      dialed.push(address);
      if (mode === "fail") return Promise.reject(new Error("refused"));
      return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    },
    listen(): never {
      throw new Error("not used");
    },
  };
}

function swarm(
  policy: Partial<SwarmPolicy>,
  extra: Partial<SwarmOptions> = {},
): { swarm: Swarm; taken: string[]; clock: { t: number } } {
  const taken: string[] = [];
  const clock = { t: 0 };
  const s = new Swarm({
    policy: { ...METADATA_SWARM, ...policy },
    peerId: OURS,
    handshake: () => ({ infoHash: new Uint8Array(20), peerId: OURS, reserved: new Uint8Array(8) }),
    logger: new Logger(),
    category: "swarm",
    active: () => true,
    onPeer: (address) => taken.push(address),
    now: () => clock.t,
    ...extra,
  });
  return { swarm: s, taken, clock };
}

Deno.test("candidates back off exponentially up to the cap and are forgotten after maxFailures", () => {
  const list = new Candidates({ ...TORRENT_SWARM, maxFailures: 3 });
  assert.equal(list.add("10.0.0.1:1", "tracker"), true);
  assert.equal(list.add("10.0.0.1:1", "dht"), false);
  list.failed("10.0.0.1:1", 1000);
  assert.equal(list.get("10.0.0.1:1")?.nextTry, 6000);
  list.failed("10.0.0.1:1", 1000);
  assert.equal(list.get("10.0.0.1:1")?.nextTry, 11_000);
  list.failed("10.0.0.1:1", 1000);
  assert.equal(list.get("10.0.0.1:1"), undefined);
  const capped = new Candidates({ ...METADATA_SWARM, retryMaxMs: 3000 });
  capped.add("a:1", "dht");
  for (let i = 0; i < 4; i++) capped.failed("a:1", 0);
  assert.equal(capped.get("a:1")?.nextTry, 3000);
  capped.failed("b:1", 0); // unknown: nothing happens
});

Deno.test("candidates are capped at maxCandidates and keep their source", () => {
  const { swarm: s } = swarm({ maxCandidates: 2 }, { active: () => false });
  assert.equal(s.add(["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"], "pex"), 2);
  assert.equal(s.candidates.size, 2);
  assert.equal(s.candidates.get("10.0.0.1:1")?.source, "pex");
});

Deno.test("invalid addresses throw for manual peers and are skipped for other sources", () => {
  const { swarm: s } = swarm({}, { active: () => false });
  assert.equal(s.add(["nonsense", "10.0.0.1:1"], "tracker"), 1);
  assert.throws(() => s.add(["nonsense"], "manual"));
});

Deno.test("connectMore dials up to maxConnections and at most maxDials at once", () => {
  const dialed: string[] = [];
  const abort = new AbortController();
  const { swarm: s } = swarm({ maxConnections: 3 }, {
    dial: { transport: transport("hang", dialed) },
    signal: abort.signal,
  });
  s.add(["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"], "dht");
  assert.deepEqual(dialed, ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]);
  assert.equal(s.size, 3);
  assert.equal(s.dialing, 3);
  assert.equal(s.tried, 3);
  abort.abort();

  const dialed2: string[] = [];
  const abort2 = new AbortController();
  const { swarm: t } = swarm({ maxConnections: 10, maxDials: 2 }, {
    dial: { transport: transport("hang", dialed2) },
    signal: abort2.signal,
  });
  t.add(["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"], "dht");
  assert.equal(dialed2.length, 2);
  abort2.abort();
});

Deno.test("a failed dial backs the address off; it is dialled again once the wait is over", async () => {
  const dialed: string[] = [];
  const counts: number[] = [];
  const { swarm: s, clock } = swarm({}, {
    dial: { transport: transport("fail", dialed) },
    countDial: (delta) => counts.push(delta),
    countConnection: (delta) => counts.push(delta),
  });
  s.add(["10.0.0.1:1"], "lsd");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(dialed.length, 1);
  assert.equal(s.size, 0);
  assert.equal(counts.reduce((a, b) => a + b, 0), 0);
  assert.equal(s.candidates.get("10.0.0.1:1")?.nextTry, METADATA_SWARM.retryBaseMs);
  s.connectMore();
  assert.equal(dialed.length, 1);
  clock.t = METADATA_SWARM.retryBaseMs;
  s.connectMore();
  assert.equal(dialed.length, 2);
  await new Promise((r) => setTimeout(r, 20));
});

Deno.test("admit from a wider authority and an inactive owner stop dials", () => {
  const dialed: string[] = [];
  const { swarm: s } = swarm({}, { dial: { transport: transport("fail", dialed) }, admit: () => false });
  s.add(["10.0.0.1:1"], "dht");
  const { swarm: t } = swarm({}, { dial: { transport: transport("fail", dialed) }, active: () => false });
  t.add(["10.0.0.1:1"], "dht");
  assert.equal(dialed.length, 0);
});

Deno.test("accept counts connections and drops ourselves, duplicates and an inactive owner", () => {
  const counts: number[] = [];
  const { swarm: s, taken } = swarm({ uniquePeerIds: true, maxConnections: 2 }, {
    countConnection: (delta) => counts.push(delta),
    active: () => false,
  });
  s.add(["127.0.0.1:9"], "manual");
  const { swarm: live, taken: liveTaken } = swarm({ uniquePeerIds: true, maxConnections: 2 }, {
    countConnection: (delta) => counts.push(delta),
  });
  const first = fakePeer(id(2));
  assert.equal(s.accept("10.0.0.9:1", first, false), false);
  assert.equal(first.closed, true);
  assert.equal(taken.length, 0);

  const self = fakePeer(OURS);
  live.candidates.add("10.0.0.1:1", "tracker");
  assert.equal(live.accept("10.0.0.1:1", self, true), false);
  assert.equal(self.closed, true);
  assert.equal(live.candidates.get("10.0.0.1:1"), undefined, "an address of ours is forgotten");

  assert.equal(live.accept("10.0.0.2:1", fakePeer(id(2)), true), true);
  const twin = fakePeer(id(2));
  assert.equal(live.accept("10.0.0.3:1", twin, false), false, "same peer id");
  assert.equal(twin.closed, true);
  const again = fakePeer(id(3));
  assert.equal(live.accept("10.0.0.2:1", again, false), false, "same address");
  assert.deepEqual(liveTaken, ["10.0.0.2:1"]);
  assert.equal(live.isOutgoing("10.0.0.2:1"), true);
  assert.equal(live.handshaken, 1);
  assert.equal(live.size, 1);
  assert.equal(live.admits("10.0.0.4:1"), true);
  live.accept("10.0.0.4:1", fakePeer(id(4)), false);
  assert.equal(live.admits("10.0.0.5:1"), false, "at maxConnections");
  live.closed("10.0.0.4:1");
  live.closed("10.0.0.4:1"); // once only
  assert.equal(live.size, 1);
  assert.deepEqual(counts, [1, 1, -1]);
});

Deno.test("without uniquePeerIds two addresses of one peer id are both taken", () => {
  const { swarm: s, taken } = swarm({ uniquePeerIds: false });
  s.accept("10.0.0.1:1", fakePeer(id(2)), false);
  s.accept("10.0.0.2:1", fakePeer(id(2)), false);
  assert.equal(taken.length, 2);
});

Deno.test("a closed connection backs off, forgiven on connect only under forgiveOnConnect", () => {
  for (const forgive of [true, false]) {
    const { swarm: s } = swarm({ forgiveOnConnect: forgive }, { active: () => true });
    s.candidates.add("10.0.0.1:1", "tracker");
    s.candidates.failed("10.0.0.1:1", 0);
    s.accept("10.0.0.1:1", fakePeer(id(2)), true);
    s.closed("10.0.0.1:1");
    assert.equal(s.candidates.get("10.0.0.1:1")?.failures, forgive ? 1 : 2);
    s.accept("10.0.0.1:1", fakePeer(id(2)), true);
    s.closed("10.0.0.1:1", true);
    assert.equal(s.candidates.get("10.0.0.1:1"), undefined, "forever");
  }
});

Deno.test("bans: exact addresses by default, a BanList by IP; banned addresses are not added or admitted", () => {
  const { swarm: s } = swarm({}, { active: () => false });
  s.add(["10.0.0.1:1", "10.0.0.1:2"], "tracker");
  assert.equal(s.ban("10.0.0.1:1", "test"), true);
  assert.equal(s.ban("10.0.0.1:1", "test"), false);
  assert.equal(s.candidates.get("10.0.0.1:1"), undefined);
  assert.equal(s.isBanned("10.0.0.1:2"), false);
  assert.equal(s.add(["10.0.0.1:1"], "pex"), 0);
  assert.equal(s.admits("10.0.0.1:1"), false);

  const { swarm: t } = swarm({}, { active: () => false, bans: new BanList() });
  t.ban("10.0.0.1:1", "test");
  assert.equal(t.isBanned("10.0.0.1:2"), true, "by IP");
  assert.equal(t.isBanned("127.0.0.1:2"), false);
});
