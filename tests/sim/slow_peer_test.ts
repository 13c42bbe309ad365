import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// One seed on a very slow link among fast peers: blocks asked of it are asked again of others
// at the tail (endgame), so nobody waits for it. At 16 KiB/s it could send only about 1/8 of
// the payload in the 5 s the fast peers are given.
Deno.test("sim: a slow peer does not stall the others at the tail", async () => {
  await using swarm = await SimSwarm.create({ seed: 37, size: 1 << 20 });
  const slow = await swarm.addPeer({ seed: true, link: { bandwidth: 16 << 10, latencyMs: 20 } });
  const fast = await swarm.addPeer({ seed: true });
  await Promise.all([slow.torrent, fast.torrent]);
  const leechers = [];
  for (let i = 0; i < 20; i++) leechers.push(await swarm.addPeer());
  const started = performance.now();
  await swarm.allComplete(5_000, leechers);
  const took = performance.now() - started;
  // Waiting for the slow seed's blocks would take 64 s (1 MiB at 16 KiB/s).
  assert.ok(took < 5_000, `the leechers took ${took} ms`);
  for (const peer of leechers) assert.equal((await peer.torrent).stats().done, true);
});
