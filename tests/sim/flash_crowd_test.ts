import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// One seed, 30 leechers joining at once: everyone completes with the right bytes, and the seed
// uploads a bounded multiple of the payload (the leechers trade among themselves).
Deno.test("sim: a flash crowd of 30 leechers from one seed all complete", async () => {
  await using swarm = await SimSwarm.create({ seed: 11, size: 1 << 20 });
  const seed = await swarm.addPeer({ seed: true });
  await seed.torrent;
  const leechers = [];
  for (let i = 0; i < 30; i++) leechers.push(await swarm.addPeer());
  await swarm.allComplete(30_000);
  for (const peer of leechers) {
    const torrent = await peer.torrent;
    assert.equal(torrent.stats().done, true, `${peer.address} is not complete`);
  }
  const up = await swarm.uploaded();
  const size = swarm.meta.totalLength;
  const seedUp = up.get(seed.address)!;
  assert.ok(seedUp >= size, `the seed uploaded ${seedUp} bytes, less than one copy`);
  assert.ok(seedUp <= 15 * size, `the seed uploaded ${seedUp} bytes, more than one copy per two leechers`);
  const leecherUp = [...up].filter(([a]) => a !== seed.address).reduce((s, [, n]) => s + n, 0);
  assert.ok(leecherUp > 0, "the leechers traded nothing among themselves");
});
