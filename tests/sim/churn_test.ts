import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// Peers leave mid-download and newcomers join: everyone still in the swarm completes. After
// 150 ms nobody can be done: every link takes 2 MiB/s, so a peer has at most 300 of 512 KiB.
Deno.test("sim: churn (8 of 30 leave mid-download, 8 join) and all remaining complete", async () => {
  await using swarm = await SimSwarm.create({
    seed: 23,
    size: 512 << 10,
    link: { latencyMs: 2, bandwidth: 2 << 20 },
  });
  await (await swarm.addPeer({ seed: true })).torrent;
  const first = [];
  for (let i = 0; i < 30; i++) first.push(await swarm.addPeer());
  await Promise.all(first.map((p) => p.torrent));
  await new Promise((resolve) => setTimeout(resolve, 150));
  const leaving = new Set<(typeof first)[number]>();
  while (leaving.size < 8) leaving.add(first[Math.floor(swarm.net.random() * first.length)]!);
  for (const peer of leaving) {
    assert.equal((await peer.torrent).stats().done, false, `${peer.address} finished before churn began`);
    await swarm.remove(peer);
  }
  const late = [];
  for (let i = 0; i < 8; i++) late.push(await swarm.addPeer());
  await swarm.allComplete(40_000);
  for (const peer of [...first, ...late].filter((p) => !p.gone)) {
    assert.equal((await peer.torrent).stats().done, true, `${peer.address} is not complete`);
  }
  assert.equal(swarm.peers.filter((p) => !p.gone).length, 1 + 22 + 8);
});
