import assert from "node:assert/strict";
import { join } from "node:path";
import type { CompactNode } from "../../lib/dht/krpc.ts";
import { iterativeLookup, type LookupReply } from "../../lib/dht/lookup.ts";
import { DhtNode } from "../../lib/dht/node.ts";
import { compareDistance } from "../../lib/dht/node_id.ts";
import { PeerStore } from "../../lib/dht/peer_store.ts";
import { RoutingTable } from "../../lib/dht/routing_table.ts";
import { RateGate, RateGates } from "../../lib/dht/rate_gate.ts";
import { loadDhtState, saveDhtState } from "../../lib/dht/state.ts";
import { TokenSecrets } from "../../lib/dht/tokens.ts";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { reservedBits, supportsDht } from "../../lib/wire/handshake.ts";
import { mse, Session } from "../../mod.ts";
import { FakePeer } from "../_fake_peer.ts";
import { DEFAULT_DHT_BOOTSTRAP, transferSettings } from "../../cli/transfer_options.ts";

const MIN = 60_000;

function randomId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(20));
}

/** Starts `count` nodes on loopback, each bootstrapped from the first; closes them all in `use`. */
async function withNetwork(
  count: number,
  use: (nodes: DhtNode[]) => Promise<void>,
  extra: (i: number) => ConstructorParameters<typeof DhtNode>[0] = () => ({}),
): Promise<void> {
  const nodes: DhtNode[] = [];
  try {
    const first = new DhtNode({ hostname: "127.0.0.1", ...extra(0) });
    const port = await first.start();
    nodes.push(first);
    for (let i = 1; i < count; i++) {
      const node = new DhtNode({ hostname: "127.0.0.1", bootstrap: [`127.0.0.1:${port}`], ...extra(i) });
      nodes.push(node);
      await node.start();
      await node.ready;
    }
    await use(nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

// --- tokens ---------------------------------------------------------------------------------

Deno.test("TokenSecrets binds tokens to the IP and accepts the current and previous secret only", () => {
  let time = 0;
  const tokens = new TokenSecrets({ now: () => time });
  const token = tokens.make("10.0.0.1");
  assert.equal(token.length, 8);
  assert.ok(tokens.check(token, "10.0.0.1"));
  assert.ok(!tokens.check(token, "10.0.0.2"), "bound to the address");
  assert.ok(!tokens.check(token.subarray(0, 7), "10.0.0.1"));
  time += 5 * MIN;
  assert.ok(tokens.check(token, "10.0.0.1"), "previous secret still accepted after one rotation");
  const fresh = tokens.make("10.0.0.1");
  time += 5 * MIN;
  assert.ok(!tokens.check(token, "10.0.0.1"), "two rotations later it is refused");
  assert.ok(tokens.check(fresh, "10.0.0.1"));
  time += 10 * MIN;
  assert.ok(!tokens.check(fresh, "10.0.0.1"), "a long pause invalidates both secrets");
});

// --- peer store -----------------------------------------------------------------------------

Deno.test("PeerStore keeps announces 30 minutes, caps peers per hash and hashes per IP", () => {
  let time = 0;
  const store = new PeerStore({ now: () => time, maxPeersPerHash: 3, maxHashesPerIp: 2, maxInfoHashes: 3 });
  const h = (n: number) => n.toString(16).padStart(40, "0");
  assert.equal(store.add(h(1), "10.0.0.1:1"), "stored");
  assert.equal(store.add(h(2), "10.0.0.1:1"), "stored");
  assert.equal(store.add(h(3), "10.0.0.1:1"), "ip-limit");
  assert.equal(store.add(h(1), "10.0.0.1:2"), "stored", "another port in a hash it is already in");
  for (let i = 2; i <= 5; i++) store.add(h(1), `10.0.0.${i}:1`);
  assert.equal(store.get(h(1), 50).length, 3, "capped at 3 per hash, oldest dropped");
  assert.ok(!store.get(h(1), 50).includes("10.0.0.1:1"));
  assert.equal(store.add(h(3), "10.0.0.9:1"), "stored");
  assert.equal(store.add(h(4), "10.0.0.9:1"), "store-full");
  assert.equal(store.get(h(1), 2).length, 2, "a sample when asked for fewer");
  time += 30 * MIN;
  assert.deepEqual(store.get(h(1), 50), []);
  store.purge();
  assert.equal(store.infoHashes, 0);
  assert.equal(store.peers, 0);
  assert.equal(store.add(h(4), "10.0.0.1:1"), "stored", "limits free up after expiry");
});

// --- rate gates -----------------------------------------------------------------------------

Deno.test("RateGate refills at its rate up to its burst", () => {
  let time = 0;
  const gate = new RateGate({ rate: 10, burst: 5, now: () => time });
  let granted = 0;
  for (let i = 0; i < 20; i++) if (gate.take()) granted++;
  assert.equal(granted, 5);
  time += 500;
  granted = 0;
  for (let i = 0; i < 20; i++) if (gate.take()) granted++;
  assert.equal(granted, 5, "half a second at 10/s, capped by the burst");
  time += 100;
  assert.ok(gate.take());
  assert.ok(!gate.take());
});

Deno.test("RateGates limits each source alone and forgets sources beyond its cap", () => {
  const gates = new RateGates({ rate: 1, burst: 2, now: () => 0, maxSources: 3 });
  assert.ok(gates.take("a") && gates.take("a") && !gates.take("a"));
  assert.ok(gates.take("b"));
  for (const s of ["c", "d", "e"]) gates.take(s);
  assert.ok(gates.size <= 3);
});

// --- lookup ---------------------------------------------------------------------------------

Deno.test("iterativeLookup() converges on the closest nodes with at most alpha queries in flight", async () => {
  const nodes: CompactNode[] = Array.from({ length: 300 }, (_, i) => ({
    id: randomId(),
    address: `10.${i >> 8}.${i & 0xff}.1:1`,
  }));
  // Each node has a full routing table of the others (k-buckets of 8), as in a settled DHT.
  const tables = new Map<string, RoutingTable>();
  for (const node of nodes) {
    const table = new RoutingTable(node.id, { maxNodesPerIp: 1000 });
    for (const other of nodes) table.seen(other.id, other.address, "response");
    tables.set(node.address, table);
  }
  const target = randomId();
  let inFlight = 0;
  let maxInFlight = 0;
  const result = await iterativeLookup(target, nodes.slice(0, 3), async (node): Promise<LookupReply> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1));
    inFlight--;
    const closer = tables.get(node.address)!.closest(target, 8);
    return { id: node.id, nodes: closer, values: [], token: new Uint8Array([1]) };
  }, { slowMs: 60_000 });
  const best = [...nodes].sort((a, b) => compareDistance(target, a.id, b.id)).slice(0, 8);
  assert.deepEqual(result.closest.map((n) => n.address), best.map((n) => n.address));
  assert.ok(result.closest.every((n) => n.token !== undefined));
  assert.equal(maxInFlight, 3);
  assert.ok(result.queried < 120, `queried ${result.queried} of 300 nodes`);
});

Deno.test("iterativeLookup() collects peers, survives dead nodes and honours maxQueries", async () => {
  const seeds = Array.from({ length: 20 }, (_, i) => ({ id: randomId(), address: `10.0.0.${i + 1}:1` }));
  const result = await iterativeLookup(randomId(), seeds, (node) => {
    const n = Number(node.address.split(".")[3]!.split(":")[0]);
    if (n % 2 === 0) return Promise.resolve(null);
    if (n === 3) return Promise.reject(new Error("broken"));
    return Promise.resolve({ id: node.id, nodes: [], values: [`1.1.1.1:${n}`, "2.2.2.2:2"] });
  });
  assert.ok(result.peers.includes("2.2.2.2:2"));
  assert.equal(new Set(result.peers).size, result.peers.length);
  assert.ok(result.closest.every((n) => Number(n.address.split(".")[3]!.split(":")[0]) % 2 === 1));
  const capped = await iterativeLookup(randomId(), seeds, () => Promise.resolve(null), { maxQueries: 5 });
  assert.equal(capped.queried, 5);
});

Deno.test("iterativeLookup() does not wait for a node that never answers once the others are done", async () => {
  const seeds = Array.from({ length: 4 }, (_, i) => ({ id: randomId(), address: `10.0.0.${i + 1}:1` }));
  const lookup = iterativeLookup(
    randomId(),
    seeds,
    (node) =>
      node.address === "10.0.0.1:1"
        ? new Promise<null>(() => {}) // never settles
        : Promise.resolve({ id: node.id, nodes: [], values: [] }),
    { slowMs: 20 },
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the lookup waited for the silent node")), 5000);
  });
  try {
    const result = await Promise.race([lookup, deadline]);
    assert.equal(result.queried, 4);
    assert.equal(result.responded, 3);
    assert.ok(result.closest.every((n) => n.address !== "10.0.0.1:1"));
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("iterativeLookup() ends early when aborted", async () => {
  const controller = new AbortController();
  const seeds = [{ id: randomId(), address: "10.0.0.1:1" }];
  const pending = iterativeLookup(randomId(), seeds, () => new Promise(() => {}), {
    signal: controller.signal,
    slowMs: 60_000,
  });
  controller.abort();
  const result = await pending;
  assert.equal(result.queried, 1);
  assert.equal(result.responded, 0);
});

// --- state ----------------------------------------------------------------------------------

Deno.test("saveDhtState() writes atomically and loadDhtState() reads it back or reports damage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "sub", "dht.dat");
    const state = {
      id: randomId(),
      nodes: [{ id: randomId(), address: "10.0.0.1:6881" }, { id: randomId(), address: "127.0.0.1:1" }],
      externalIp: "8.8.4.4",
    };
    await saveDhtState(path, state);
    assert.deepEqual(await loadDhtState(path), state);
    assert.deepEqual(
      [...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name),
      ["dht.dat"],
      "no temp file left",
    );
    await Deno.writeTextFile(path, "d2:id3:abce");
    await assert.rejects(loadDhtState(path), /Invalid DHT state.*'id' is not 20 bytes/);
    await Deno.writeTextFile(path, "not bencode");
    await assert.rejects(loadDhtState(path), /Invalid DHT state/);
    assert.equal(await loadDhtState(join(dir, "missing.dat")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- nodes on loopback ----------------------------------------------------------------------

Deno.test("DhtNode lookups find peers announced by another node of a small loopback DHT", async () => {
  await withNetwork(6, async (nodes) => {
    for (const node of nodes.slice(1)) assert.ok(node.nodeCount >= 1, "bootstrapped");
    const infoHash = randomId();
    const announce = await nodes[2]!.lookup(infoHash, { announcePort: 51413 });
    assert.ok(announce.responded >= 1, `responded ${announce.responded}`);
    assert.ok(announce.announced >= 1, `announced to ${announce.announced}`);
    const found = await nodes[5]!.lookup(infoHash);
    assert.deepEqual(found.peers, ["127.0.0.1:51413"]);
    const again = await nodes[2]!.lookup(infoHash, { announcePort: 51413 });
    assert.deepEqual(again.peers, [], "the announcer does not get its own address back as a peer");
    const other = await nodes[4]!.lookup(randomId());
    assert.deepEqual(other.peers, []);
  });
});

Deno.test("DhtNode honours implied_port: the announce's UDP source port is stored", async () => {
  await withNetwork(3, async (nodes) => {
    const infoHash = randomId();
    await nodes[1]!.lookup(infoHash, { announcePort: 1, impliedPort: true });
    const found = await nodes[2]!.lookup(infoHash);
    assert.deepEqual(found.peers, [`127.0.0.1:${nodes[1]!.port}`]);
  });
});

Deno.test("DhtNode.addNode() pings a node (from a peer's port message) and adds it when it answers", async () => {
  const a = new DhtNode({ hostname: "127.0.0.1" });
  const b = new DhtNode({ hostname: "127.0.0.1" });
  try {
    await a.start();
    const portB = await b.start();
    await a.ready;
    assert.equal(a.nodeCount, 0);
    assert.equal(a.addNode("not an address"), false);
    assert.equal(a.addNode(`127.0.0.1:${portB}`), true);
    const deadline = Date.now() + 5000;
    while (a.nodeCount === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(a.nodeCount, 1);
    // b learned a from its ping and pinged it back.
    while (b.nodeCount === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(b.nodeCount, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("DhtNode lookups on an empty table end at once with no peers", async () => {
  const node = new DhtNode({ hostname: "127.0.0.1" });
  try {
    await node.start();
    const result = await node.lookup(randomId(), { announcePort: 6881 });
    assert.deepEqual(result, { peers: [], queried: 0, responded: 0, announced: 0, ms: result.ms });
  } finally {
    await node.close();
  }
});

Deno.test("DhtNode restarts from its saved id and routing table, and says so in the log", async () => {
  const dir = await Deno.makeTempDir();
  const records: LogRecord[] = [];
  const logger = new Logger({ sinks: [(r) => records.push(r)] });
  const statePath = join(dir, ".shoal", "dht.dat");
  try {
    let firstId: Uint8Array | undefined;
    let firstPorts: number[] = [];
    let firstPort = 0;
    await withNetwork(4, async (nodes) => {
      const node = new DhtNode({
        hostname: "127.0.0.1",
        statePath,
        logger,
        bootstrap: [`127.0.0.1:${nodes[0]!.port}`],
      });
      await node.start();
      await node.ready;
      assert.equal(node.nodeCount, 4);
      firstId = node.id;
      firstPort = node.port;
      firstPorts = nodes.map((n) => n.port);
      await node.close();
      assert.ok((await Deno.stat(statePath)).isFile);

      // No bootstrap nodes this time: the saved table is all it has.
      const again = new DhtNode({ hostname: "127.0.0.1", port: firstPort, statePath, logger });
      await again.start();
      assert.deepEqual(again.id, firstId, "same node id");
      assert.equal(again.nodeCount, 4, "the saved nodes are in the table before any query");
      await again.ready;
      const infoHash = randomId();
      await nodes[1]!.lookup(infoHash, { announcePort: 7000 });
      const found = await again.lookup(infoHash);
      assert.deepEqual(found.peers, ["127.0.0.1:7000"]);
      await again.close();
    });
    const loaded = records.find((r) => r.message.startsWith("Loaded "));
    assert.ok(loaded, "a log record tells the table was loaded");
    assert.equal(loaded.message, `Loaded 4 DHT nodes from ${statePath}`);
    assert.equal(loaded.fields.nodes, 4);
    const saved = await loadDhtState(statePath);
    assert.deepEqual(saved?.id, firstId);
    assert.deepEqual(saved?.nodes.map((n) => Number(n.address.split(":")[1])).sort(), [...firstPorts].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DhtNode starts fresh, with a warning, from a damaged state file", async () => {
  const dir = await Deno.makeTempDir();
  const records: LogRecord[] = [];
  try {
    const statePath = join(dir, "dht.dat");
    await Deno.writeTextFile(statePath, "garbage");
    const node = new DhtNode({
      hostname: "127.0.0.1",
      statePath,
      logger: new Logger({ sinks: [(r) => records.push(r)] }),
    });
    await node.start();
    await node.close();
    assert.ok(records.some((r) => r.level === "warn" && /Ignoring saved DHT state/.test(r.message)));
    assert.deepEqual((await loadDhtState(statePath))?.id, node.id, "a valid state replaced it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- the BEP 5 port message -----------------------------------------------------------------

async function withSessionAndFakePeer(
  dht: boolean,
  use: (
    session: Session,
    conn: Awaited<ReturnType<FakePeer["accept"]>>,
    infoHash: Uint8Array,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(join(dir, "payload.bin"), new Uint8Array(100_000).fill(7));
    const meta = parseMetainfo(
      (await createTorrent(join(dir, "payload.bin"), { pieceLength: 32768 })).torrent,
    );
    await using session = new Session({
      downloadDir: join(dir, "out"),
      bind: "127.0.0.1",
      encryption: mse({ policy: "disable" }), // the fake peer speaks plaintext
      trackers: false,
      lsd: false,
      ...(dht ? { dht: { port: 0 } } : {}),
    });
    await using fake = FakePeer.listen();
    await session.add(meta, { peers: [fake.address] });
    const conn = await fake.accept();
    await use(session, conn, meta.infoHash);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("A session with the DHT on advertises it, sends its DHT port and pings the node a peer's port names", async () => {
  await withSessionAndFakePeer(true, async (session, conn, infoHash) => {
    const theirs = await conn.readHandshake();
    assert.ok(supportsDht(theirs.reserved), "the DHT bit is set");
    await conn.sendHandshake(infoHash, {
      reserved: reservedBits({ fast: true, extensions: true, dht: true }),
    });
    const port = await conn.waitForMessage((m) => m.type === "port");
    assert.ok(port.type === "port");
    assert.equal(port.port, session.dht?.port);
    // Our "DHT node" is a real one: the session's node pings it and takes it into its table.
    const other = new DhtNode({ hostname: "127.0.0.1" });
    try {
      await conn.send({ type: "port", port: await other.start() });
      const deadline = Date.now() + 5000;
      while (session.dht!.nodeCount === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(session.dht!.nodeCount, 1);
    } finally {
      await other.close();
    }
  });
});

Deno.test("A session sends no port message to a peer without the DHT bit, nor with the DHT off", async () => {
  for (const dht of [true, false]) {
    await withSessionAndFakePeer(dht, async (_session, conn, infoHash) => {
      const theirs = await conn.readHandshake();
      assert.equal(supportsDht(theirs.reserved), dht);
      await conn.sendHandshake(infoHash, { reserved: reservedBits({ fast: true, extensions: true }) });
      // Shoal sends have_none (Fast) and its extended handshake, then a port message if any.
      // The fake peer's have_all makes shoal interested: that must come before any port message.
      const seen: string[] = [];
      for (let i = 0; i < 2; i++) seen.push((await conn.readMessage())!.type);
      assert.deepEqual(seen, ["have_none", "extended"]);
      await conn.send({ type: "have_all" });
      const next = await conn.waitForMessage((m) => m.type === "interested" || m.type === "port");
      assert.equal(next.type, "interested", "no port message came first");
    });
  }
});

// --- CLI options ----------------------------------------------------------------------------

Deno.test("CLI transfer options turn the DHT on by default, off with --no-dht, and check --dht-* values", () => {
  assert.deepEqual(transferSettings("download", {}).dht, { bootstrap: [...DEFAULT_DHT_BOOTSTRAP] });
  assert.deepEqual(transferSettings("download", { bind: "127.0.0.1" }).dht, { bootstrap: [] });
  assert.equal(transferSettings("download", { "no-dht": true }).dht, false);
  assert.deepEqual(
    transferSettings("download", { "dht-port": "6881", "dht-bootstrap": ["127.0.0.1:1", "dht.example:6881"] })
      .dht,
    { port: 6881, bootstrap: ["127.0.0.1:1", "dht.example:6881"] },
  );
  assert.throws(() => transferSettings("download", { "dht-port": "70000" }), /Invalid --dht-port/);
  assert.throws(
    () => transferSettings("download", { "dht-bootstrap": ["nohost"] }),
    /Invalid --dht-bootstrap/,
  );
  assert.throws(() => transferSettings("download", { "dht-bootstrap": ["h:0"] }), /Invalid --dht-bootstrap/);
});
