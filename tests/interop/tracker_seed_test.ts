/**
 * Other clients find a shoal seed through a tracker (issue 5): a libtorrent leecher is
 * given the .torrent only (the tracker URL inside it, no peer address) and must download
 * from `cli.ts seed`, which announced itself to the tracker first.
 *
 * - shoal's built-in tracker, over HTTP and over UDP; the seed uses the torrent's tracker;
 * - opentracker, over HTTP and over UDP; the seed's torrent has no tracker and gets it
 *   from `--tracker` (same info-hash as the leecher's torrent);
 * - `cli.ts share <folder> --tracker URL`: what it prints (the .torrent path and a
 *   magnet link) is all the leecher gets.
 *
 * Before the leecher starts, each test waits (deadline) until the tracker knows the seed,
 * so the leecher's first announce already returns it.
 */

import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { parseMagnet, parseMetainfo } from "../../mod.ts";
import {
  hasLibtorrent,
  makePayload,
  makeTorrentWithLibtorrent,
  type PayloadFile,
  runLibtorrentLeecher,
} from "./_harness.ts";
import { compareDownload, listFiles, MIB, type PreparedTorrent, startCli } from "./_download_helpers.ts";
import { connectedPeers, type SeedCli, startSeedCli } from "./_seed_helpers.ts";
import {
  type BuiltinTracker,
  freeTcpUdpPort,
  hasOpentracker,
  prepareTrackedTorrent,
  startBuiltinTracker,
  startOpentracker,
  waitForTrackerPeers,
} from "./_trackers.ts";

const LT = await hasLibtorrent();
const OT = await hasOpentracker();

const SPEC: readonly PayloadFile[] = [
  { path: "a/deep/one.bin", size: 5 * MIB + 4321 },
  { path: "a/empty.txt", size: 0 },
  { path: "two.bin", size: 2 * MIB - 99 },
];
const PROTOCOLS = ["http", "udp"] as const;

/**
 * Waits until the seed logged its first successful announce to `url`, then returns how
 * many milliseconds after `since` the tracker's scrape showed it as a seeder.
 */
async function waitForSeedOnTracker(
  seed: SeedCli,
  url: string,
  httpUrl: string,
  infoHash: string,
): Promise<number> {
  const since = performance.now();
  const line = await seed.process.waitForLine(
    (l) => l.startsWith(`INFO tracker: Announced to ${url}: `) || l.startsWith("WARN tracker: "),
    30_000,
    `announce to ${url}`,
  );
  assert(line.startsWith("INFO tracker: Announced to "), `${line}\n${seed.process.tail()}`);
  assert.match(line, /\bevent=started\b/);
  await waitForTrackerPeers(httpUrl, infoHash, {
    seeders: 1,
    timeoutMs: 30_000,
    tail: () => seed.process.tail(),
  });
  return performance.now() - since;
}

/** Runs a libtorrent leecher with no peer address and checks what it got and whom from. */
async function leechWithoutPeers(
  prepared: PreparedTorrent,
  torrentPath: string,
  out: string,
  seed: SeedCli,
): Promise<number> {
  const started = performance.now();
  const result = await runLibtorrentLeecher({ torrentPath, dataDir: out, peers: [], timeoutMs: 60_000 })
    .catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${seed.process.tail()}`, { cause: error });
    });
  const ms = performance.now() - started;
  assert.equal(result.bytes, prepared.metainfo.totalLength);
  assert.deepEqual(await compareDownload(prepared, out), []);
  assert.deepEqual(
    await listFiles(join(out, prepared.name)),
    prepared.spec.map((f) => f.path).sort(),
    "the leecher has exactly the torrent's files",
  );
  // The seed served a libtorrent peer, which could only have come from the tracker.
  const clients = [...connectedPeers(seed.process.stderrLines).values()];
  assert(clients.some((c) => c.startsWith("LT")), seed.process.tail());
  return ms;
}

async function stopSeed(seed: SeedCli, url: string): Promise<void> {
  const code = await seed.interrupt();
  assert.equal(code, 130, seed.process.tail());
  // It said goodbye to the tracker.
  assert(
    seed.process.stderrLines.some((l) => l.startsWith("INFO tracker: Announced stopped") && l.includes(url)),
    seed.process.tail(),
  );
}

function describeAnnounces(tracker: BuiltinTracker, t0: number): string {
  return tracker.announces().map((a) =>
    `${((a.time - t0) / 1000).toFixed(1)}s ${a.protocol} ${a.peer} ${a.event || "-"} -> ${a.peers} peers`
  ).join("; ");
}

for (const protocol of PROTOCOLS) {
  Deno.test({
    name: `a libtorrent leecher finds a cli seed through the built-in tracker over ${protocol.toUpperCase()}`,
    ignore: !LT,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal-seed-bt-${protocol}-` });
      const t0 = Date.now();
      const tracker = await startBuiltinTracker();
      try {
        const url = protocol === "http" ? tracker.httpUrl : tracker.udpUrl;
        const prepared = await prepareTrackedTorrent(dir, { trackers: [url], spec: SPEC, seed: 51 });
        const hex = prepared.metainfo.infoHashHex;
        const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir);
        try {
          const onTrackerMs = await waitForSeedOnTracker(seed, url, tracker.httpUrl, hex);
          const leechMs = await leechWithoutPeers(prepared, prepared.torrentPath, join(dir, "out"), seed);
          await stopSeed(seed, url);
          const seen = tracker.announces();
          const why = describeAnnounces(tracker, t0);
          assert(seen.every((a) => a.protocol === protocol.toUpperCase() && a.torrent === hex), why);
          const fromSeed = seen.filter((a) => a.peer === seed.address);
          assert.deepEqual(fromSeed.map((a) => a.event), ["started", "stopped"], why);
          const fromLeecher = seen.filter((a) => a.peer !== seed.address);
          assert(fromLeecher.length >= 1 && fromLeecher[0]!.peers >= 1, why);
          console.log(
            `built-in tracker ${protocol}: cli seed on the tracker ${
              onTrackerMs.toFixed(0)
            } ms after its data ` +
              `check; libtorrent leecher done in ${leechMs.toFixed(0)} ms (process start included); ` +
              `announces: ${why}`,
          );
        } finally {
          await seed.process.stop();
        }
      } finally {
        await tracker.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

for (const protocol of PROTOCOLS) {
  Deno.test({
    name:
      `a libtorrent leecher finds a cli seed given --tracker through opentracker over ${protocol.toUpperCase()}`,
    ignore: !(LT && OT),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal-seed-ot-${protocol}-` });
      try {
        const port = freeTcpUdpPort();
        const url = protocol === "http"
          ? `http://127.0.0.1:${port}/announce`
          : `udp://127.0.0.1:${port}/announce`;
        const prepared = await prepareTrackedTorrent(dir, { trackers: [url], spec: SPEC, seed: 52 });
        const hex = prepared.metainfo.infoHashHex;
        // The seed's own torrent names no tracker; `--tracker` adds it.
        const bareTorrent = join(dir, "bare.torrent");
        const bare = await makeTorrentWithLibtorrent(
          join(prepared.seedDir, prepared.name),
          bareTorrent,
          64 * 1024,
        );
        assert.equal(bare.infoHash, hex);
        assert.deepEqual(parseMetainfo(await Deno.readFile(bareTorrent)).announceList, []);
        const tracker = await startOpentracker({ infoHashes: [hex], port });
        try {
          const seed = await startSeedCli(bareTorrent, prepared.seedDir, { args: ["--tracker", url] });
          try {
            const onTrackerMs = await waitForSeedOnTracker(seed, url, tracker.httpUrl, hex);
            const leechMs = await leechWithoutPeers(prepared, prepared.torrentPath, join(dir, "out"), seed)
              .catch((error: unknown) => {
                throw new Error(`${(error as Error).message}\n--- opentracker ---\n${tracker.output()}`, {
                  cause: error,
                });
              });
            await stopSeed(seed, url);
            console.log(
              `opentracker ${protocol}: cli seed on the tracker ${
                onTrackerMs.toFixed(0)
              } ms after its data ` +
                `check; libtorrent leecher done in ${leechMs.toFixed(0)} ms (process start included)`,
            );
          } finally {
            await seed.process.stop();
          }
        } finally {
          await tracker.stop();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "cli share prints a .torrent path and a magnet link that are enough for a libtorrent leecher",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-share-bt-" });
    const t0 = Date.now();
    const tracker = await startBuiltinTracker();
    try {
      const shareDir = join(dir, "share");
      const name = "holiday";
      await makePayload(join(shareDir, name), [...SPEC], 53);
      const torrentOut = join(dir, "made", "holiday.torrent");
      await Deno.mkdir(join(dir, "made"));
      const share = startCli([
        "share",
        join(shareDir, name),
        "--tracker",
        tracker.httpUrl,
        "-o",
        torrentOut,
        "--bind",
        "127.0.0.1",
        "--log-level",
        "info",
        "-q",
      ]);
      try {
        await share.waitForLine((l) => l.startsWith("Magnet: "), 60_000, "magnet link");
        // What it printed on stdout, and only that, tells the leecher what to do.
        const printed = share.stdoutLines;
        const torrentLine = printed.find((l) => l.startsWith("Torrent: "));
        const magnetLine = printed.find((l) => l.startsWith("Magnet: "));
        assert(torrentLine !== undefined && magnetLine !== undefined, share.tail());
        const torrentPath = torrentLine.slice("Torrent: ".length);
        assert.equal(resolve(torrentPath), torrentOut);
        const meta = parseMetainfo(await Deno.readFile(torrentPath));
        assert.deepEqual(meta.announceList, [[tracker.httpUrl]]);
        assert.equal(meta.name, name);
        const magnet = parseMagnet(magnetLine.slice("Magnet: ".length));
        assert.equal(magnet.infoHashHex, meta.infoHashHex);
        assert.equal(magnet.name, name);
        assert.deepEqual(magnet.trackers, [tracker.httpUrl]);
        const seedLine = await share.waitForLine(
          (l) =>
            l.startsWith(`INFO tracker: Announced to ${tracker.httpUrl}: `) || l.startsWith("WARN tracker: "),
          30_000,
          "announce",
        );
        assert(seedLine.startsWith("INFO tracker: Announced to "), `${seedLine}\n${share.tail()}`);
        await waitForTrackerPeers(tracker.httpUrl, meta.infoHashHex, {
          seeders: 1,
          timeoutMs: 30_000,
          tail: () => share.tail(),
        });
        const prepared: PreparedTorrent = {
          seedDir: shareDir,
          name,
          torrentPath,
          metainfo: meta,
          spec: SPEC,
        };
        const out = join(dir, "out");
        const started = performance.now();
        const result = await runLibtorrentLeecher({ torrentPath, dataDir: out, peers: [], timeoutMs: 60_000 })
          .catch((error: unknown) => {
            throw new Error(`${(error as Error).message}\n${share.tail()}`, { cause: error });
          });
        const leechMs = performance.now() - started;
        assert.equal(result.bytes, meta.totalLength);
        assert.deepEqual(await compareDownload(prepared, out), []);
        assert(
          share.stderrLines.some((l) => l.startsWith("INFO peer: Peer connected") && l.includes("client=LT")),
          share.tail(),
        );
        share.kill("SIGINT");
        const status = await share.wait(15_000);
        assert.equal(status.code, 130, share.tail());
        const fromLeecher = tracker.announces().filter((a) => a.event === "started" && a.peers >= 1);
        assert(fromLeecher.length >= 1, describeAnnounces(tracker, t0));
        console.log(
          `cli share -> built-in tracker http -> libtorrent leecher: ${
            (meta.totalLength / MIB).toFixed(1)
          } MiB in ${leechMs.toFixed(0)} ms (process start included); announces: ${
            describeAnnounces(tracker, t0)
          }`,
        );
      } finally {
        await share.stop();
      }
    } finally {
      await tracker.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
