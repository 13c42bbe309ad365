import assert from "node:assert/strict";
import { commonPrefixBits, compareDistance, randomIdWithPrefix } from "../../lib/dht/node_id.ts";
import { RoutingTable } from "../../lib/dht/routing_table.ts";

const MIN = 60_000;
const self = new Uint8Array(20); // our id: all zeros

/** An id sharing exactly `bits` leading bits with ours, made unique by `n`. */
function idAt(bits: number, n: number): Uint8Array {
  const id = randomIdWithPrefix(self, bits, new Uint8Array(20).fill(0));
  id[18] = n >> 8;
  id[19] = n & 0xff;
  return id;
}

function makeTable(options: { maxNodesPerIp?: number } = {}) {
  let time = 1_000_000;
  const table = new RoutingTable(self, { now: () => time, ...options });
  return { table, advance: (ms: number) => (time += ms) };
}

Deno.test("RoutingTable adds nodes that answered, and only refreshes nodes that queried", () => {
  const { table } = makeTable();
  assert.deepEqual(table.seen(idAt(0, 1), "10.0.0.1:1", "query"), { inTable: false, ping: [] });
  assert.equal(table.size, 0);
  assert.equal(table.seen(idAt(0, 1), "10.0.0.1:1", "response").inTable, true);
  assert.equal(table.size, 1);
  assert.equal(table.seen(idAt(0, 1), "10.0.0.1:1", "query").inTable, true);
  assert.equal(table.state(table.get("10.0.0.1:1")!), "good");
});

Deno.test("RoutingTable never adds our own id", () => {
  const { table } = makeTable();
  assert.equal(table.seen(self, "10.0.0.1:1", "response").inTable, false);
  assert.equal(table.size, 0);
});

Deno.test("RoutingTable keeps loaded nodes questionable until they answer", () => {
  const { table } = makeTable();
  table.seen(idAt(0, 1), "10.0.0.1:1", "loaded");
  const node = table.get("10.0.0.1:1")!;
  assert.equal(table.state(node), "questionable");
  table.seen(idAt(0, 1), "10.0.0.1:1", "response");
  assert.equal(table.state(node), "good");
});

Deno.test("RoutingTable holds k = 8 nodes per far bucket and splits the bucket around our id", () => {
  const { table } = makeTable({ maxNodesPerIp: 100 });
  for (let i = 0; i < 20; i++) table.seen(idAt(0, i), `10.0.0.${i + 1}:1`, "response");
  assert.equal(table.size, 8, "the bucket of ids sharing no bit with ours holds 8");
  for (let bits = 1; bits < 40; bits++) {
    for (let i = 0; i < 3; i++) table.seen(idAt(bits, i), `10.${bits}.0.${i + 1}:1`, "response");
  }
  assert.equal(table.size, 8 + 39 * 3, "buckets nearer to us were split off and filled");
  assert.ok(table.bucketCount >= 39);
  const counts = table.counts();
  assert.equal(counts.good, table.size);
});

Deno.test("RoutingTable nodes turn questionable after 15 minutes, and good again by querying us", () => {
  const { table, advance } = makeTable();
  table.seen(idAt(0, 1), "10.0.0.1:1", "response");
  const node = table.get("10.0.0.1:1")!;
  advance(15 * MIN);
  assert.equal(table.state(node), "questionable");
  table.seen(idAt(0, 1), "10.0.0.1:1", "query");
  assert.equal(table.state(node), "good", "answered once and queried us in the last 15 minutes");
  advance(15 * MIN);
  assert.equal(table.state(node), "questionable");
});

Deno.test("RoutingTable marks a node bad after two failures in a row", () => {
  const { table } = makeTable();
  table.seen(idAt(0, 1), "10.0.0.1:1", "response");
  const node = table.get("10.0.0.1:1")!;
  table.failed("10.0.0.1:1");
  assert.equal(table.state(node), "good");
  table.failed("10.0.0.1:1");
  assert.equal(table.state(node), "bad");
  assert.deepEqual(table.closest(idAt(0, 1), 8), [], "bad nodes are not handed out");
  table.seen(idAt(0, 1), "10.0.0.1:1", "response");
  assert.equal(table.state(node), "good", "an answer clears failures");
});

Deno.test("RoutingTable replaces a bad node at once when a full bucket is offered a new one", () => {
  const { table } = makeTable({ maxNodesPerIp: 100 });
  for (let i = 0; i < 8; i++) table.seen(idAt(0, i), `10.0.0.${i + 1}:1`, "response");
  table.failed("10.0.0.3:1");
  table.failed("10.0.0.3:1");
  assert.equal(table.seen(idAt(0, 99), "10.0.0.99:1", "response").inTable, true);
  assert.equal(table.get("10.0.0.3:1"), undefined);
  assert.equal(table.size, 8);
});

Deno.test("RoutingTable keeps newcomers of a full live bucket as replacements and asks to ping questionable nodes", () => {
  const { table, advance } = makeTable({ maxNodesPerIp: 100 });
  for (let i = 0; i < 8; i++) table.seen(idAt(0, i), `10.0.0.${i + 1}:1`, "response");
  const fresh = table.seen(idAt(0, 50), "10.0.0.50:1", "response");
  assert.deepEqual(fresh, { inTable: false, ping: [] }, "all good: nothing to ping, newcomer waits");
  advance(16 * MIN);
  for (let i = 0; i < 4; i++) table.seen(idAt(0, i), `10.0.0.${i + 1}:1`, "response"); // these answered again
  const offered = table.seen(idAt(0, 51), "10.0.0.51:1", "response");
  assert.equal(offered.inTable, false);
  assert.deepEqual(offered.ping.map((n) => n.address).sort(), [
    "10.0.0.5:1",
    "10.0.0.6:1",
    "10.0.0.7:1",
    "10.0.0.8:1",
  ]);
  // A questionable node fails its pings: it is replaced by the freshest replacement.
  table.failed("10.0.0.5:1");
  table.failed("10.0.0.5:1");
  assert.equal(table.get("10.0.0.5:1"), undefined);
  assert.ok(table.get("10.0.0.51:1"));
  assert.equal(table.size, 8);
});

Deno.test("RoutingTable.closest() returns nodes by XOR distance to the target", () => {
  const { table } = makeTable({ maxNodesPerIp: 100 });
  const ids: Uint8Array[] = [];
  for (let bits = 0; bits < 30; bits++) {
    const nodeId = idAt(bits, bits);
    ids.push(nodeId);
    table.seen(nodeId, `10.0.${bits}.1:1`, "response");
  }
  const target = idAt(12, 7);
  const closest = table.closest(target, 5);
  assert.equal(closest.length, 5);
  const expected = [...ids].sort((a, b) => compareDistance(target, a, b)).slice(0, 5);
  assert.deepEqual(closest.map((n) => n.id), expected);
  for (let i = 1; i < closest.length; i++) {
    assert.ok(compareDistance(target, closest[i - 1]!.id, closest[i]!.id) <= 0);
  }
});

Deno.test("RoutingTable takes one node per public IP address, any number on loopback", () => {
  const { table } = makeTable();
  assert.equal(table.seen(idAt(0, 1), "8.8.8.8:1", "response").inTable, true);
  assert.equal(table.seen(idAt(1, 2), "8.8.8.8:2", "response").inTable, false);
  assert.equal(table.wants(idAt(2, 3), "8.8.8.8:3"), false);
  for (let i = 0; i < 5; i++) {
    assert.equal(table.seen(idAt(i + 3, i), `127.0.0.1:${i + 1}`, "response").inTable, true);
  }
  assert.equal(table.size, 6);
});

Deno.test("RoutingTable ignores an id claimed from a second address, and a new id at a known address until it answers", () => {
  const { table } = makeTable({ maxNodesPerIp: 100 });
  table.seen(idAt(0, 1), "10.0.0.1:1", "response");
  assert.equal(table.seen(idAt(0, 1), "10.0.0.2:1", "response").inTable, false, "same id elsewhere");
  assert.equal(table.get("10.0.0.2:1"), undefined);
  assert.equal(table.seen(idAt(0, 2), "10.0.0.1:1", "loaded").inTable, false);
  assert.equal(
    table.seen(idAt(0, 2), "10.0.0.1:1", "response").inTable,
    true,
    "the node restarted with a new id",
  );
  assert.equal(table.size, 1);
  assert.equal(commonPrefixBits(table.get("10.0.0.1:1")!.id, idAt(0, 2)), 160);
});

Deno.test("RoutingTable.wants() says whether pinging an unknown node is worth it", () => {
  const { table } = makeTable({ maxNodesPerIp: 100 });
  assert.equal(table.wants(idAt(0, 1), "10.0.0.1:1"), true);
  for (let i = 0; i < 8; i++) table.seen(idAt(0, i), `10.0.0.${i + 1}:1`, "response");
  assert.equal(table.wants(idAt(0, 1), "10.0.0.2:1"), false, "already known");
  assert.equal(table.wants(idAt(0, 50), "10.0.0.50:1"), false, "far bucket full of good nodes");
  assert.equal(table.wants(idAt(5, 50), "10.0.0.50:1"), true, "our own bucket can split");
});

Deno.test("RoutingTable.refreshTargets() names a random id in each bucket unchanged for 15 minutes", () => {
  const { table, advance } = makeTable({ maxNodesPerIp: 100 });
  for (let i = 0; i < 9; i++) table.seen(idAt(i % 3, i), `10.0.0.${i + 1}:1`, "response");
  assert.deepEqual(table.refreshTargets(), []);
  advance(15 * MIN);
  const targets = table.refreshTargets();
  assert.equal(targets.length, table.bucketCount);
  targets.forEach((target, i) => {
    const bits = commonPrefixBits(target, self);
    if (i < table.bucketCount - 1) assert.equal(bits, i);
    else assert.ok(bits >= i);
  });
  assert.deepEqual(table.refreshTargets(), [], "refreshed buckets wait another 15 minutes");
});
