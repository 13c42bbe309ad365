/**
 * A Transmission leecher downloads the standard 64 MiB multi-file torrent from `cli.ts seed`,
 * the only seeder. Transmission downloads only from peers that dial it, so the seed is
 * started with `--peer 127.0.0.1:<Transmission's port>`. Transmission does not create
 * zero-byte files, so those are checked as absent-or-empty rather than byte-compared.
 *
 * Transmission unchokes a new peer only at its next rechoke (up to about 10 s) and then
 * fetches at about 8 MiB/s on loopback: the deadline is generous, the run takes 15-30 s.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, hasTransmission, startTransmissionLeecher } from "./_harness.ts";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";
import { connectedPeers, droppedByShoal, startSeedCli, uploadedBytes } from "./_seed_helpers.ts";

// The torrent is made with libtorrent; Transmission downloads it.
const READY = (await hasTransmission()) && (await hasLibtorrent());

Deno.test({
  name: "a Transmission leecher downloads a 64 MiB multi-file torrent from cli seed byte for byte",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-seed-tr-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 22 });
      const meta = prepared.metainfo;
      assert.notEqual(meta.totalLength % meta.pieceLength, 0, "the last piece should be short");
      const out = join(dir, "out");
      const leecher = await startTransmissionLeecher({ torrentPath: prepared.torrentPath, dataDir: out });
      try {
        const started = performance.now();
        const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir, {
          args: ["--peer", `127.0.0.1:${leecher.port}`],
        });
        try {
          await leecher.waitUntilSeeding(80_000).catch((e: unknown) => {
            throw new Error(`${(e as Error).message}\n${seed.process.tail()}`, { cause: e });
          });
          const seconds = (performance.now() - started) / 1000;
          const problems = await compareDownload(prepared, out);
          // Transmission leaves zero-byte files out; every other file must be identical.
          const empty = prepared.spec.filter((f) => f.size === 0).map((f) => `${f.path}: missing`);
          assert.deepEqual(problems.filter((p) => !empty.includes(p)), [], leecher.tail());
          assert.equal(await seed.interrupt(), 130, seed.process.tail());
          const lines = seed.process.stderrLines;
          const clients = [...new Set(connectedPeers(lines).values())];
          assert(clients.length > 0 && clients.every((c) => c.startsWith("TR")), seed.process.tail());
          assert.deepEqual(droppedByShoal(lines), [], "the seed dropped the Transmission leecher");
          const uploaded = uploadedBytes(lines);
          assert(uploaded !== undefined && uploaded >= meta.totalLength - 0.01 * MIB, seed.process.tail());
          console.log(
            `shoal cli seed -> Transmission: ${(meta.totalLength / MIB).toFixed(1)} MiB in ${
              seconds.toFixed(2)
            } s (from the seed's start, Deno start-up, data check and Transmission's first unchoke included)`,
          );
        } finally {
          await seed.process.stop();
        }
      } finally {
        await leecher.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
