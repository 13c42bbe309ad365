import assert from "node:assert/strict";
import { SimSwarm } from "../_sim_swarm.ts";

// Leechers with only a magnet link (the info-hash) and the seeds' addresses: the metadata (two
// ut_metadata pieces, 16 KiB each) comes from the seeds, then the data, and all complete.
Deno.test("sim: 8 magnet leechers get the metadata from 4 seeds and complete", async () => {
  // 832 pieces of 16 KiB: 16 640 bytes of piece hashes, so the info dictionary is 2 metadata pieces.
  await using swarm = await SimSwarm.create({ seed: 67, size: 832 * (16 << 10), pieceLength: 16 << 10 });
  assert.ok(swarm.meta.infoBytes.length > 16 << 10, "the metadata fits one piece");
  const seeds = [];
  for (let i = 0; i < 4; i++) seeds.push(await swarm.addPeer({ seed: true }));
  await Promise.all(seeds.map((s) => s.torrent));
  const leechers = [];
  for (let i = 0; i < 8; i++) leechers.push(await swarm.addPeer({ magnet: true }));
  await swarm.allComplete(40_000, leechers);
  for (const peer of leechers) {
    const torrent = await peer.torrent;
    assert.equal(torrent.metainfo.infoHashHex, swarm.meta.infoHashHex);
    assert.equal(torrent.stats().done, true);
  }
});
