/**
 * The shoal CLI downloads the standard 64 MiB multi-file torrent from a Transmission
 * seeder. Transmission ignores loopback peers it learns from trackers but accepts
 * incoming connections, so shoal dials it with `--peer`. Transmission may not keep
 * zero-byte files itself; as the leecher, shoal must create them.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, hasTransmission, startTransmissionSeeder } from "./_harness.ts";
import { compareDownload, listFiles, prepareTorrent, startCli } from "./_download_helpers.ts";

// The torrent is made with libtorrent; Transmission seeds it.
const READY = (await hasTransmission()) && (await hasLibtorrent());

Deno.test({
  name: "cli download fetches a 64 MiB multi-file torrent from a Transmission seeder byte for byte",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-dl-tr-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 12 });
      const meta = prepared.metainfo;
      assert.notEqual(meta.totalLength % meta.pieceLength, 0, "the last piece should be short");
      const seeder = await startTransmissionSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        readyTimeoutMs: 120_000,
      });
      try {
        const out = join(dir, "out");
        const cli = startCli([
          "download",
          prepared.torrentPath,
          "-o",
          out,
          "--peer",
          `127.0.0.1:${seeder.port}`,
          "--log-level",
          "info",
        ]);
        try {
          const started = performance.now();
          const status = await cli.wait(240_000);
          const seconds = (performance.now() - started) / 1000;
          assert.equal(status.code, 0, `exit code ${status.code}\n${cli.tail()}\n${seeder.tail()}`);
          assert(
            cli.stderrLines.some((l) =>
              l.startsWith(`Complete: ${meta.pieceCount}/${meta.pieceCount} pieces`)
            ),
            cli.tail(),
          );
          assert(
            cli.stderrLines.some((l) => l.includes("Peer connected") && l.includes("client=TR")),
            cli.tail(),
          );
          assert.deepEqual(await compareDownload(prepared, out), []);
          assert.equal((await Deno.stat(join(out, prepared.name, "docs/empty.txt"))).size, 0);
          assert.deepEqual(
            await listFiles(join(out, prepared.name)),
            prepared.spec.map((f) => f.path).sort(),
            "no extra files in the download folder",
          );
          console.log(
            `Transmission -> shoal cli: ${(meta.totalLength / 1048576).toFixed(1)} MiB in ${
              seconds.toFixed(2)
            } s (whole process, Deno start-up and Transmission's first unchoke included)`,
          );
        } finally {
          await cli.stop();
        }
      } finally {
        await seeder.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
