import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// A peer that claims every piece and answers with random bytes, known to every leecher: it is
// banned (by the leechers it sent bad pieces to), no honest peer is, and everyone completes.
Deno.test("sim: a corrupt peer among 20 is banned and everyone completes", async () => {
  await using swarm = await SimSwarm.create({ seed: 53, size: 1 << 20 });
  const seed = await swarm.addPeer({ seed: true, link: { bandwidth: 4 << 20 } });
  await seed.torrent;
  const corrupt = swarm.corruptPeer();
  const bans: { by: string; address: string }[] = [];
  const leechers = [];
  for (let i = 0; i < 20; i++) {
    const peer = await swarm.addPeer({ peers: [seed.address, corrupt] });
    (await peer.torrent).addEventListener("peer-banned", (e) => {
      bans.push({ by: peer.address, address: e.detail.address });
    });
    leechers.push(peer);
  }
  await swarm.allComplete(30_000, leechers);
  assert.ok(bans.length > 0, "nobody banned the corrupt peer");
  assert.deepEqual(bans.filter((b) => b.address !== corrupt), [], "an honest peer was banned");
  let failed = 0;
  for (const peer of leechers) failed += (await peer.torrent).stats().failedBytes;
  assert.ok(failed > 0, "no piece failed its check: the corrupt peer sent nothing");
});
