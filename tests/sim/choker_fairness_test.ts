import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// A seed with 3 upload slots and 16 leechers on equal links. The seed never uploads to more
// than its slots plus the optimistic one at a time, turns its slots over (several leechers are
// served, none gets much more than one copy from it), and the leechers' tit-for-tat carries
// most of the load (at least half of the 16 copies come from leechers).
Deno.test("sim: choker fairness: the seed's slots are bounded and spread, leechers share the load", async () => {
  const link = { latencyMs: 2, bandwidth: 1 << 20 };
  await using swarm = await SimSwarm.create({ seed: 41, size: 512 << 10, link });
  const seed = await swarm.addPeer({ seed: true, uploadSlots: 3 });
  const seedTorrent = await seed.torrent;
  const leechers = [];
  for (let i = 0; i < 16; i++) leechers.push(await swarm.addPeer());
  let most = 0;
  const transports = new Set<string>();
  const fromSeed = new Map<string, number>();
  const sample = () => {
    const peers = seedTorrent.peers();
    for (const p of peers) {
      transports.add(p.transport);
      fromSeed.set(p.address, Math.max(fromSeed.get(p.address) ?? 0, p.uploaded));
    }
    most = Math.max(most, peers.filter((p) => !p.flags.amChoking && p.flags.peerInterested).length);
  };
  const sampler = setInterval(sample, 10);
  try {
    await swarm.allComplete(30_000, leechers);
  } finally {
    clearInterval(sampler);
  }
  const size = swarm.meta.totalLength;
  assert.deepEqual([...transports], ["memory"], "PeerInfo.transport names the session's transport");
  assert.ok(most >= 1 && most <= 3 + 1, `the seed uploaded to ${most} peers at once`);
  const served = [...fromSeed.values()].filter((n) => n > 0);
  assert.ok(served.length >= 4, `the seed served only ${served.length} leechers`);
  assert.ok(Math.max(...served) <= size * 1.25, `one leecher got ${Math.max(...served)} bytes from the seed`);
  const up = await Promise.all(leechers.map(async (p) => (await p.torrent).stats().uploaded));
  const total = up.reduce((a, b) => a + b, 0);
  assert.ok(total >= 8 * size, `the leechers uploaded ${total} bytes in all: ${up.join(", ")}`);
});
