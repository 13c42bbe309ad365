import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// A seed with 3 upload slots and 16 leechers on equal links: the seed never uploads to more
// than its slots plus the optimistic one at a time, and the leechers' tit-for-tat spreads the
// uploading: at least half of them upload, none carries more than a third of it
Deno.test("sim: choker fairness: uploads are spread across 16 leechers", async () => {
  const link = { latencyMs: 2, bandwidth: 1 << 20 };
  await using swarm = await SimSwarm.create({ seed: 41, size: 1 << 20, link });
  const seed = await swarm.addPeer({ seed: true, uploadSlots: 3 });
  const seedTorrent = await seed.torrent;
  const leechers = [];
  for (let i = 0; i < 16; i++) leechers.push(await swarm.addPeer());
  let most = 0;
  const transports = new Set<string>();
  const sampler = setInterval(() => {
    const peers = seedTorrent.peers();
    for (const p of peers) transports.add(p.transport);
    const unchoked = peers.filter((p) => !p.flags.amChoking && p.flags.peerInterested);
    most = Math.max(most, unchoked.length);
  }, 10);
  try {
    await swarm.allComplete(30_000, leechers);
  } finally {
    clearInterval(sampler);
  }
  assert.deepEqual([...transports], ["memory"], "PeerInfo.transport names the session's transport");
  assert.ok(most >= 1 && most <= 3 + 1, `the seed uploaded to ${most} peers at once`);
  const up = await Promise.all(leechers.map(async (p) => (await p.torrent).stats().uploaded));
  const total = up.reduce((a, b) => a + b, 0);
  const uploading = up.filter((n) => n > 0).length;
  assert.ok(uploading >= 8, `only ${uploading} of 16 leechers uploaded: ${up.join(", ")}`);
  assert.ok(Math.max(...up) <= total / 3, `one leecher uploaded ${Math.max(...up)} of ${total} bytes`);
});
