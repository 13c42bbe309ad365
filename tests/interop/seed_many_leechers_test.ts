/**
 * Three libtorrent leechers download the standard 64 MiB multi-file torrent at once from one
 * `cli.ts seed`, the only seeder, started with `--upload-slots 2` (one regular slot and one
 * optimistic): not everyone can be served at once, so the choker must hand the slots on.
 * Its decisions are read from the seed's log (`--log-level info`, "Rechoked" records).
 *
 * The leechers are only told about the seed. They may still learn about each other through
 * shoal's peer exchange (BEP 11) and trade pieces among themselves, so the seed's upload total
 * must cover at least one whole copy (nobody else had the data), not necessarily three.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, type LeechResult, runLibtorrentLeecher } from "./_harness.ts";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";
import {
  connectedPeers,
  droppedByShoal,
  parseRechokes,
  startSeedCli,
  uploadedBytes,
} from "./_seed_helpers.ts";

const LT = await hasLibtorrent();
const LEECHERS = 3;
const SLOTS = 2;

Deno.test({
  name: "three libtorrent leechers download from one cli seed with two upload slots, and the choker rotates",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-seed-many-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 23 });
      const meta = prepared.metainfo;
      const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir, {
        // No PEX: the leechers must not learn each other and finish without the seed's unchokes
        // (seen under load: the third leecher got everything from the other two and left).
        args: ["--upload-slots", `${SLOTS}`, "--no-pex"],
      });
      try {
        const started = performance.now();
        const finished: number[] = [];
        const results: LeechResult[] = await Promise.all(
          Array.from({ length: LEECHERS }, (_, i) =>
            runLibtorrentLeecher({
              torrentPath: prepared.torrentPath,
              dataDir: join(dir, `out-${i}`),
              peers: [seed.address],
              timeoutMs: 80_000,
            }).then((r) => {
              finished.push((performance.now() - started) / 1000);
              return r;
            })),
        );
        for (let i = 0; i < LEECHERS; i++) {
          assert.equal(results[i]!.bytes, meta.totalLength);
          assert.deepEqual(await compareDownload(prepared, join(dir, `out-${i}`)), [], `leecher ${i}`);
        }
        assert.equal(await seed.interrupt(), 130, seed.process.tail());
        const lines = seed.process.stderrLines;
        const tail = seed.process.tail(200);

        const peers = connectedPeers(lines);
        assert([...peers.values()].every((c) => c.startsWith("LT")), tail);
        assert.deepEqual(droppedByShoal(lines), [], "the seed dropped a leecher");

        const rechokes = parseRechokes(lines);
        const distinctPeers = new Set(rechokes.flatMap((r) => r.unchoked));
        const distinctSets = new Set(rechokes.map((r) => r.unchoked.join(" ")));
        assert(
          rechokes.every((r) => r.unchoked.length <= SLOTS),
          `more than ${SLOTS} peers unchoked at once:\n${tail}`,
        );
        assert(
          distinctPeers.size >= LEECHERS,
          `only ${distinctPeers.size} peers were ever unchoked:\n${tail}`,
        );
        assert(distinctSets.size >= 2, `the unchoked set never changed:\n${tail}`);

        const uploaded = uploadedBytes(lines);
        assert(uploaded !== undefined, tail);
        assert(uploaded >= meta.totalLength - 0.01 * MIB, `uploaded ${uploaded}\n${tail}`);
        console.log(
          `3 x ${
            (meta.totalLength / MIB).toFixed(1)
          } MiB from one shoal seed with ${SLOTS} slots: leechers done at ${
            finished.map((s) => s.toFixed(2)).join(", ")
          } s; the seed uploaded ${
            (uploaded / meta.totalLength).toFixed(2)
          } copies; ${rechokes.length} rechokes, ${distinctSets.size} distinct unchoked sets, ` +
            `${distinctPeers.size} distinct peers unchoked`,
        );
        for (const r of rechokes) {
          console.log(
            `  unchoked ${r.unchoked.join(",")} optimistic ${r.optimistic} interested ${r.interested}`,
          );
        }
      } finally {
        await seed.process.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
