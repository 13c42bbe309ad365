/**
 * aria2 1.36 (Debian `aria2`) against shoal, both ways (issue 11).
 *
 * - aria2 leeches a 64 MiB multi-file torrent from `cli.ts seed`, finding the seed only through
 *   the torrent's HTTP tracker (shoal's built-in one). aria2 sends a fresh `bitfield` in the
 *   middle of a connection instead of a burst of `have`s; shoal once dropped it for that
 *   ("Peer sent a bitfield after other messages") and the transfer stalled.
 * - aria2 seeds (`--seed-ratio=0.0 --check-integrity`) and `cli.ts download --peer` fetches
 *   the torrent from it.
 *
 * aria2 runs with DHT, LPD and PEX off, on 127.0.0.1 only.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { compareDownload, LineProcess, listFiles, STANDARD_PAYLOAD, startCli } from "./_download_helpers.ts";
import { freePort, hasLibtorrent, waitForPort } from "./_harness.ts";
import { connectedPeers, droppedByShoal, startSeedCli } from "./_seed_helpers.ts";
import { prepareTrackedTorrent, startBuiltinTracker, waitForTrackerPeers } from "./_trackers.ts";

async function hasAria2(): Promise<boolean> {
  try {
    const out = await new Deno.Command("aria2c", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return out.success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false; // not installed: the tests are skipped
    throw error;
  }
}

const ARIA2 = await hasAria2();
const LT = await hasLibtorrent(); // makes the test torrents

/** Options every aria2 in these tests gets: loopback only, no DHT, LPD or PEX, plain output. */
const ARIA2_SAFE = [
  "--enable-dht=false",
  "--enable-dht6=false",
  "--bt-enable-lpd=false",
  "--enable-peer-exchange=false",
  "--interface=127.0.0.1",
  "--disable-ipv6=true",
  "--summary-interval=0",
  "--no-conf=true",
  "--enable-color=false",
  "--file-allocation=none",
  "--bt-tracker-connect-timeout=5",
  "--bt-tracker-timeout=5",
];

function startAria2(args: string[], cwd: string): LineProcess {
  return new LineProcess("aria2c", "aria2c", [...ARIA2_SAFE, ...args], cwd);
}

Deno.test({
  name: "aria2 leeches a 64 MiB multi-file torrent from a cli seed found through the torrent's tracker",
  ignore: !(ARIA2 && LT),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-aria2-leech-" });
    const tracker = await startBuiltinTracker();
    try {
      const prepared = await prepareTrackedTorrent(dir, {
        trackers: [tracker.httpUrl],
        spec: STANDARD_PAYLOAD,
        seed: 111,
        pieceLength: 64 * 1024,
      });
      const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir);
      try {
        await waitForTrackerPeers(tracker.httpUrl, prepared.metainfo.infoHashHex, {
          seeders: 1,
          timeoutMs: 30_000,
          tail: () => seed.process.tail(),
        });
        const out = join(dir, "out");
        await Deno.mkdir(out);
        const port = await freePort();
        // --seed-time=0: exit once the download is complete and checked.
        await using aria2 = startAria2(
          ["--seed-time=0", `--listen-port=${port}`, "-d", out, prepared.torrentPath],
          dir,
        );
        const status = await aria2.wait(120_000).catch((error: unknown) => {
          throw new Error(`${(error as Error).message}\n--- seed ---\n${seed.process.tail()}`, {
            cause: error,
          });
        });
        assert.equal(status.code, 0, `${aria2.tail()}\n--- seed ---\n${seed.process.tail()}`);
        assert.deepEqual(await compareDownload(prepared, out), []);
        assert.deepEqual(
          (await listFiles(join(out, prepared.name))).filter((f) => !f.endsWith(".aria2")),
          prepared.spec.map((f) => f.path).sort(),
        );
        const log = seed.process.stderrLines;
        assert([...connectedPeers(log).values()].some((c) => c.startsWith("A2")), seed.process.tail());
        // No connection was dropped for what aria2 sent.
        assert.deepEqual(droppedByShoal(log), [], seed.process.tail());
        assert.equal(await seed.interrupt(), 130, seed.process.tail());
      } finally {
        await seed.process.stop();
      }
    } finally {
      await tracker.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the cli downloads a 64 MiB multi-file torrent from an aria2 seed",
  ignore: !(ARIA2 && LT),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-aria2-seed-" });
    try {
      // The torrent names a tracker nobody runs: the only peer is the one given with --peer.
      const prepared = await prepareTrackedTorrent(dir, {
        trackers: [`http://127.0.0.1:${await freePort()}/announce`],
        spec: STANDARD_PAYLOAD,
        seed: 112,
        pieceLength: 256 * 1024,
      });
      const port = await freePort();
      // --seed-ratio=0.0: seed forever; --check-integrity: hash the data first, then seed it.
      await using aria2 = startAria2(
        [
          "--seed-ratio=0.0",
          "--check-integrity=true",
          `--listen-port=${port}`,
          "-d",
          prepared.seedDir,
          prepared.torrentPath,
        ],
        dir,
      );
      await aria2.waitForLine(
        (l) => l.includes("Verification finished successfully"),
        60_000,
        "aria2's check",
      );
      await waitForPort(port, 30_000);
      const out = join(dir, "out");
      await using cli = startCli([
        "download",
        prepared.torrentPath,
        "-o",
        out,
        "--peer",
        `127.0.0.1:${port}`,
        "--no-dht",
        "--log-level",
        "info",
      ]);
      const status = await cli.wait(120_000).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n--- aria2 ---\n${aria2.tail()}`, { cause: error });
      });
      assert.equal(status.code, 0, `${cli.tail()}\n--- aria2 ---\n${aria2.tail()}`);
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert([...connectedPeers(cli.stderrLines).values()].some((c) => c.startsWith("A2")), cli.tail());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
