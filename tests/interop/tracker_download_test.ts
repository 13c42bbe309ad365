/**
 * shoal finds its seeder through a tracker and nothing else (issue 4): `cli.ts download`
 * is given no `--peer`; the torrent names a tracker, the seeder announced itself there
 * first, and shoal must announce, get the seeder's address back and dial it.
 *
 * - opentracker (Debian's) with a libtorrent seeder, over HTTP and over UDP;
 * - opentracker with a Transmission seeder (it announces too; shoal dials it, which it
 *   accepts from loopback), over HTTP and over UDP;
 * - shoal's built-in tracker with a libtorrent seeder, over HTTP and over UDP, plus the
 *   library: a `Session` given the tracker only as an extra tier (`trackers` option).
 *
 * Before shoal starts, each test waits (scrape, deadline) until the tracker knows the
 * seeder, so shoal's first announce already returns it: nothing depends on re-announce
 * timing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseMetainfo, Session } from "../../mod.ts";
import {
  hasLibtorrent,
  hasTransmission,
  type PayloadFile,
  startLibtorrentSeeder,
  startTransmissionSeeder,
  withTimeout,
} from "./_harness.ts";
import { compareDownload, listFiles, MIB, type PreparedTorrent, startCli } from "./_download_helpers.ts";
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
const TR = await hasTransmission();
const OT = await hasOpentracker();

/** A few MiB (Transmission is slow), nested, a zero-byte file, a short last piece. */
const SPEC: readonly PayloadFile[] = [
  { path: "big/one.bin", size: 3 * MIB + 12_345 },
  { path: "empty.txt", size: 0 },
  { path: "two.bin", size: MIB - 777 },
];
const PROTOCOLS = ["http", "udp"] as const;
type Protocol = typeof PROTOCOLS[number];

/** What one tracker-only download measured. */
interface Discovery {
  /** Milliseconds from starting the CLI to its first successful announce. */
  announcedMs: number;
  /** Milliseconds from starting the CLI to the seeder's connection. */
  connectedMs: number;
  /** Milliseconds from starting the CLI to its exit. */
  totalMs: number;
  /** The port shoal listened on. */
  shoalPort: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Runs `cli.ts download <torrent> -o <out>` with no peer, and checks that it announced to
 * `trackerUrl`, got the seeder (`127.0.0.1:seederPort`, client id starting with `client`)
 * from it, connected, and wrote the exact files.
 */
async function downloadThroughTracker(opts: {
  prepared: PreparedTorrent;
  out: string;
  trackerUrl: string;
  seederPort: number;
  client: "LT" | "TR";
  timeoutMs: number;
  extraArgs?: string[];
  seederTail: () => string;
}): Promise<Discovery> {
  const { prepared, out, trackerUrl } = opts;
  const meta = prepared.metainfo;
  const started = performance.now();
  const cli = startCli([
    "download",
    prepared.torrentPath,
    "-o",
    out,
    "--bind",
    "127.0.0.1",
    "--log-level",
    "info",
    "-q",
    ...(opts.extraArgs ?? []),
  ]);
  try {
    const since = (line: Promise<string>) => line.then(() => performance.now() - started, () => NaN);
    const announcedAt = since(cli.waitForLine(
      (l) => l.startsWith(`INFO tracker: Announced to ${trackerUrl}: `),
      opts.timeoutMs,
      "announce",
    ));
    const seederAddress = `127.0.0.1:${opts.seederPort}`;
    const connectedAt = since(cli.waitForLine(
      (l) => l.startsWith("INFO peer: Peer connected") && l.includes(`peer=${seederAddress}`),
      opts.timeoutMs,
      "seeder connected",
    ));
    const status = await cli.wait(opts.timeoutMs);
    const totalMs = performance.now() - started;
    const why = `${cli.tail(60)}\n${opts.seederTail()}`;
    assert.equal(status.code, 0, `exit code ${status.code}\n${why}`);
    const lines = cli.stderrLines;
    assert(
      lines.some((l) => l.startsWith(`Complete: ${meta.pieceCount}/${meta.pieceCount} pieces`)),
      why,
    );
    // The first announce returned the seeder: the tracker was the only way to learn it.
    const announce = lines.find((l) => l.startsWith(`INFO tracker: Announced to ${trackerUrl}: `));
    assert(announce !== undefined, `no announce to ${trackerUrl}\n${why}`);
    const announced = Number(/: (\d+) peers\b/.exec(announce)?.[1]);
    assert(announced >= 1, `the tracker returned no peer: ${announce}\n${why}`);
    assert.match(announce, /\bevent=started\b/);
    const connected = lines.find((l) =>
      l.startsWith("INFO peer: Peer connected") && l.includes(`peer=${seederAddress}`)
    );
    assert(connected !== undefined, `shoal never connected to the seeder at ${seederAddress}\n${why}`);
    assert.match(connected, new RegExp(`\\bclient=${opts.client}`), why);
    // The end-of-run report: the tracker worked and gave peers.
    const report = lines.indexOf("Trackers:");
    assert(report >= 0, `no tracker report\n${why}`);
    const row = lines.slice(report + 1).find((l) => l.includes(` ${trackerUrl}: `));
    assert(row !== undefined, `tracker report has no row for ${trackerUrl}\n${why}`);
    assert.match(
      row,
      new RegExp(`^\\s*tier 1 ${escapeRegExp(trackerUrl)}: working, last announce .*, [1-9]\\d* peers$`),
    );
    assert.deepEqual(await compareDownload(prepared, out), []);
    assert.deepEqual(
      await listFiles(join(out, prepared.name), [".shoal"]),
      prepared.spec.map((f) => f.path).sort(),
      "the download folder holds exactly the torrent's files",
    );
    const listening = lines.find((l) => /^Listening on port \d+/.test(l));
    return {
      announcedMs: await announcedAt,
      connectedMs: await connectedAt,
      totalMs,
      shoalPort: Number(/(\d+)/.exec(listening ?? "")?.[1]),
    };
  } finally {
    await cli.stop();
  }
}

function report(what: string, d: Discovery, meta: { totalLength: number }, extra = ""): void {
  console.log(
    `${what}: ${(meta.totalLength / MIB).toFixed(1)} MiB; first announce ${d.announcedMs.toFixed(0)} ms, ` +
      `seeder connected ${d.connectedMs.toFixed(0)} ms, exit ${
        d.totalMs.toFixed(0)
      } ms after the CLI started` +
      ` (Deno start-up included)${extra}`,
  );
}

// ---------------------------------------------------------------------------
// opentracker
// ---------------------------------------------------------------------------

/** Reserves the tracker's port, makes the torrent with its URL inside, starts opentracker. */
async function opentrackerTorrent(dir: string, protocol: Protocol, seed: number) {
  const port = freeTcpUdpPort();
  const urls = { http: `http://127.0.0.1:${port}/announce`, udp: `udp://127.0.0.1:${port}/announce` };
  const prepared = await prepareTrackedTorrent(dir, { trackers: [urls[protocol]], spec: SPEC, seed });
  assert.deepEqual(prepared.metainfo.announceList, [[urls[protocol]]]);
  const tracker = await startOpentracker({ infoHashes: [prepared.metainfo.infoHashHex], port });
  assert.equal(tracker.httpUrl, urls.http);
  assert.equal(tracker.udpUrl, urls.udp);
  return { prepared, tracker, url: urls[protocol] };
}

for (const protocol of PROTOCOLS) {
  Deno.test({
    name: `cli download finds a libtorrent seeder only through opentracker over ${protocol.toUpperCase()}`,
    ignore: !(LT && OT),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal-ot-lt-${protocol}-` });
      try {
        const { prepared, tracker, url } = await opentrackerTorrent(dir, protocol, 41);
        try {
          const seeder = await startLibtorrentSeeder({
            torrentPath: prepared.torrentPath,
            dataDir: prepared.seedDir,
          });
          try {
            const waitStart = performance.now();
            const counts = await waitForTrackerPeers(tracker.httpUrl, prepared.metainfo.infoHashHex, {
              seeders: 1,
              timeoutMs: 30_000,
              tail: () => `${seeder.tail()}\n${tracker.output()}`,
            });
            const seederAnnouncedMs = performance.now() - waitStart;
            const d = await downloadThroughTracker({
              prepared,
              out: join(dir, "out"),
              trackerUrl: url,
              seederPort: seeder.port,
              client: "LT",
              timeoutMs: 120_000,
              seederTail: () => `${seeder.tail()}\n--- opentracker ---\n${tracker.output()}`,
            });
            report(
              `opentracker ${protocol} + libtorrent seeder -> shoal cli`,
              d,
              prepared.metainfo,
              `; the seeder was on the tracker ${seederAnnouncedMs.toFixed(0)} ms after it was ready ` +
                `(${JSON.stringify(counts)})`,
            );
          } finally {
            await seeder.stop();
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

for (const protocol of PROTOCOLS) {
  Deno.test({
    name: `cli download finds a Transmission seeder only through opentracker over ${protocol.toUpperCase()}`,
    ignore: !(LT && TR && OT),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal-ot-tr-${protocol}-` });
      try {
        const { prepared, tracker, url } = await opentrackerTorrent(dir, protocol, 42);
        try {
          const seeder = await startTransmissionSeeder({
            torrentPath: prepared.torrentPath,
            dataDir: prepared.seedDir,
            readyTimeoutMs: 120_000,
          });
          try {
            const waitStart = performance.now();
            const counts = await waitForTrackerPeers(tracker.httpUrl, prepared.metainfo.infoHashHex, {
              seeders: 1,
              timeoutMs: 60_000,
              tail: () => `${seeder.tail()}\n${tracker.output()}`,
            });
            const seederAnnouncedMs = performance.now() - waitStart;
            const d = await downloadThroughTracker({
              prepared,
              out: join(dir, "out"),
              trackerUrl: url,
              seederPort: seeder.port,
              client: "TR",
              timeoutMs: 240_000,
              seederTail: () => `${seeder.tail()}\n--- opentracker ---\n${tracker.output()}`,
            });
            report(
              `opentracker ${protocol} + Transmission seeder -> shoal cli`,
              d,
              prepared.metainfo,
              `; the seeder was on the tracker ${seederAnnouncedMs.toFixed(0)} ms after it said Seeding ` +
                `(${JSON.stringify(counts)})`,
            );
          } finally {
            await seeder.stop();
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

// ---------------------------------------------------------------------------
// shoal's built-in tracker
// ---------------------------------------------------------------------------

function describeAnnounces(tracker: BuiltinTracker, t0: number): string {
  return tracker.announces().map((a) =>
    `${((a.time - t0) / 1000).toFixed(1)}s ${a.protocol} ${a.peer} ${a.event || "-"} -> ${a.peers} peers`
  ).join("; ");
}

for (const protocol of PROTOCOLS) {
  Deno.test({
    name:
      `cli download finds a libtorrent seeder only through the built-in tracker over ${protocol.toUpperCase()}`,
    ignore: !LT,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal-bt-lt-${protocol}-` });
      const t0 = Date.now();
      const tracker = await startBuiltinTracker();
      try {
        const url = protocol === "http" ? tracker.httpUrl : tracker.udpUrl;
        const prepared = await prepareTrackedTorrent(dir, { trackers: [url], spec: SPEC, seed: 43 });
        const hex = prepared.metainfo.infoHashHex;
        const seeder = await startLibtorrentSeeder({
          torrentPath: prepared.torrentPath,
          dataDir: prepared.seedDir,
        });
        try {
          const waitStart = performance.now();
          await waitForTrackerPeers(tracker.httpUrl, hex, {
            seeders: 1,
            timeoutMs: 30_000,
            tail: seeder.tail,
          });
          const seederAnnouncedMs = performance.now() - waitStart;
          const d = await downloadThroughTracker({
            prepared,
            out: join(dir, "out"),
            trackerUrl: url,
            seederPort: seeder.port,
            client: "LT",
            timeoutMs: 120_000,
            seederTail: () => `${seeder.tail()}\n--- tracker ---\n${describeAnnounces(tracker, t0)}`,
          });
          // The tracker saw both, each over the torrent's protocol, and shoal's announces
          // carried the port it listened on.
          const seen = tracker.announces();
          const label = protocol.toUpperCase();
          assert(
            seen.every((a) => a.protocol === label && a.torrent === hex),
            describeAnnounces(tracker, t0),
          );
          assert(seen.some((a) => a.peer === `127.0.0.1:${seeder.port}`), describeAnnounces(tracker, t0));
          const shoal = seen.filter((a) => a.peer === `127.0.0.1:${d.shoalPort}`);
          assert.deepEqual(
            shoal.map((a) => a.event),
            ["started", "completed", "stopped"],
            describeAnnounces(tracker, t0),
          );
          assert(shoal[0]!.peers >= 1, describeAnnounces(tracker, t0));
          assert.equal(tracker.server.stats().errors, 0);
          report(
            `built-in tracker ${protocol} + libtorrent seeder -> shoal cli`,
            d,
            prepared.metainfo,
            `; the seeder was on the tracker ${seederAnnouncedMs.toFixed(0)} ms after it was ready; ` +
              `announces: ${describeAnnounces(tracker, t0)}`,
          );
        } finally {
          await seeder.stop();
        }
      } finally {
        await tracker.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "a Session given the built-in UDP tracker as an extra tier downloads from a libtorrent seeder",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-bt-session-" });
    const tracker = await startBuiltinTracker();
    try {
      // The seeder's torrent names the tracker; shoal's has no tracker at all (same info-hash):
      // it learns the tracker from `trackers` only.
      const prepared = await prepareTrackedTorrent(dir, { trackers: [tracker.udpUrl], spec: SPEC, seed: 44 });
      const bare = await prepareTrackedTorrent(join(dir, "bare"), { trackers: [], spec: SPEC, seed: 44 });
      assert.equal(bare.metainfo.infoHashHex, prepared.metainfo.infoHashHex);
      assert.deepEqual(bare.metainfo.announceList, []);
      const seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
      });
      try {
        await waitForTrackerPeers(tracker.httpUrl, prepared.metainfo.infoHashHex, {
          seeders: 1,
          timeoutMs: 30_000,
          tail: seeder.tail,
        });
        const out = join(dir, "out");
        const session = new Session({ downloadDir: out, bind: "127.0.0.1" });
        try {
          const meta = parseMetainfo(await Deno.readFile(bare.torrentPath));
          const torrent = await session.add(meta, { trackers: [[tracker.udpUrl]] });
          await withTimeout(torrent.completed, 120_000, "download through the tracker");
          const [status, ...others] = torrent.trackers();
          assert.deepEqual(others, []);
          assert(status !== undefined);
          assert.equal(status.url, tracker.udpUrl);
          assert.equal(status.tier, 0);
          assert.equal(status.state, "working", JSON.stringify(status));
          assert(status.peersReceived >= 1, JSON.stringify(status));
          assert(status.lastAnnounce !== undefined);
        } finally {
          await session.close();
        }
        assert.deepEqual(await compareDownload(prepared, out), []);
        const shoal = tracker.announces().filter((a) => a.peer !== `127.0.0.1:${seeder.port}`);
        assert.deepEqual(shoal.map((a) => a.event), ["started", "completed", "stopped"]);
      } finally {
        await seeder.stop();
      }
    } finally {
      await tracker.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
