/**
 * The shoal CLI downloads a 64 MiB multi-file torrent (nested folders, a zero-byte
 * file, a short last piece) from a libtorrent seeder it is told about with `--peer`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, startLibtorrentSeeder } from "./_harness.ts";
import { compareDownload, listFiles, prepareTorrent, startCli } from "./_download_helpers.ts";

const LT = await hasLibtorrent();

Deno.test({
  name: "cli download fetches a 64 MiB multi-file torrent from a libtorrent seeder byte for byte",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-dl-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 11 });
      const meta = prepared.metainfo;
      assert.notEqual(meta.totalLength % meta.pieceLength, 0, "the last piece should be short");
      assert(prepared.spec.some((f) => f.size === 0), "the payload should have a zero-byte file");

      const seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
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
          const status = await cli.wait(120_000);
          const seconds = (performance.now() - started) / 1000;
          assert.equal(status.code, 0, `exit code ${status.code}\n${cli.tail()}`);
          assert(
            cli.stderrLines.some((l) =>
              l.startsWith(`Complete: ${meta.pieceCount}/${meta.pieceCount} pieces`)
            ),
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
            `libtorrent -> shoal cli: ${(meta.totalLength / 1048576).toFixed(1)} MiB in ${
              seconds.toFixed(2)
            } s ` +
              `(whole process, Deno start-up included)`,
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
