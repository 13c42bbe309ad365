/**
 * A libtorrent leecher downloads the standard 64 MiB multi-file torrent (nested folders, a
 * zero-byte file, a short last piece) from `cli.ts seed`, a child process that is the only
 * seeder: the leecher is given the seed's address and nothing else.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, runLibtorrentLeecher } from "./_harness.ts";
import { compareDownload, listFiles, MIB, prepareTorrent } from "./_download_helpers.ts";
import { connectedPeers, droppedByShoal, startSeedCli, uploadedBytes } from "./_seed_helpers.ts";

const LT = await hasLibtorrent();

Deno.test({
  name: "a libtorrent leecher downloads a 64 MiB multi-file torrent from cli seed byte for byte",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-seed-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 21 });
      const meta = prepared.metainfo;
      assert.notEqual(meta.totalLength % meta.pieceLength, 0, "the last piece should be short");
      assert(prepared.spec.some((f) => f.size === 0), "the payload should have a zero-byte file");
      assert(
        prepared.spec.some((f) => f.path.split("/").length > 3),
        "the payload should have nested folders",
      );

      const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir);
      try {
        const out = join(dir, "out");
        const result = await runLibtorrentLeecher({
          torrentPath: prepared.torrentPath,
          dataDir: out,
          peers: [seed.address],
          timeoutMs: 60_000,
        });
        assert.equal(result.bytes, meta.totalLength);
        assert.deepEqual(await compareDownload(prepared, out), []);
        assert.deepEqual(
          await listFiles(join(out, prepared.name)),
          prepared.spec.map((f) => f.path).sort(),
          "the leecher has exactly the torrent's files",
        );
        const code = await seed.interrupt();
        const lines = seed.process.stderrLines;
        assert.equal(code, 130, seed.process.tail());
        const clients = new Set(connectedPeers(lines).values());
        assert.deepEqual([...clients].map((c) => c.slice(0, 2)), ["LT"], seed.process.tail());
        // A well-behaved leecher is served, never dropped.
        assert.deepEqual(droppedByShoal(lines), [], "the seed dropped the libtorrent leecher");
        const uploaded = uploadedBytes(lines);
        assert(uploaded !== undefined, seed.process.tail());
        // The summary has two decimals of MiB; the leecher may fetch a few blocks twice (endgame).
        assert(uploaded >= meta.totalLength - 0.01 * MIB, `uploaded ${uploaded}\n${seed.process.tail()}`);
        console.log(
          `shoal cli seed -> libtorrent: ${(meta.totalLength / MIB).toFixed(1)} MiB in ${
            result.seconds.toFixed(2)
          } s (${(meta.totalLength / MIB / result.seconds).toFixed(1)} MiB/s, libtorrent's own timing)`,
        );
      } finally {
        await seed.process.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
