/**
 * Magnet links against real clients:
 *
 * - the shoal CLI fetches a magnet link's metadata (two BEP 9 pieces) from a libtorrent seed
 *   it knows only through `x.pe`, verifies it, downloads the data and saves the metadata;
 * - the same with only `tr=` pointing at opentracker and a Transmission seed;
 * - libtorrent fetches the metadata from a shoal seed through a magnet link;
 * - `so=` downloads only the selected files from a libtorrent seed (the others are absent, or
 *   hold only the bytes of pieces they share with a selected file).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { piecesFor, selectOnly } from "../../lib/file_priority.ts";
import { parseMetainfo, Session } from "../../mod.ts";
import type { Metainfo } from "../../mod.ts";
import {
  hasLibtorrent,
  hasTransmission,
  type PayloadFile,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
  startTransmissionSeeder,
} from "./_harness.ts";
import {
  compareDownload,
  listFiles,
  MIB,
  type PreparedTorrent,
  prepareTorrent,
  startCli,
} from "./_download_helpers.ts";
import {
  freeTcpUdpPort,
  hasOpentracker,
  prepareTrackedTorrent,
  startOpentracker,
  waitForTrackerPeers,
} from "./_trackers.ts";

const LT = await hasLibtorrent();
const TR = await hasTransmission();
const OT = await hasOpentracker();

/**
 * 20 MiB in 16 KiB pieces: 1,281 pieces, so the info dictionary (25 KiB of piece hashes) spans
 * two metadata pieces. Nested folders, a zero-byte file, a short last piece.
 */
const SPEC: readonly PayloadFile[] = [
  { path: "a/first.bin", size: 12 * MIB + 5_000 },
  { path: "a/empty.txt", size: 0 },
  { path: "b/middle.bin", size: 3 * MIB - 1_234 },
  { path: "c/last.bin", size: 5 * MIB + 777 },
];
const SMALL_PIECES = 16 * 1024;

function magnetOf(meta: Metainfo, params: string): string {
  return `magnet:?xt=urn:btih:${meta.infoHashHex}&dn=${encodeURIComponent(meta.name)}${params}`;
}

/** Runs `cli.ts download <magnet>` and checks the exit, the verified metadata and the files. */
async function downloadMagnet(opts: {
  prepared: PreparedTorrent;
  magnet: string;
  out: string;
  timeoutMs: number;
  seederTail: () => string;
}): Promise<string[]> {
  const { prepared, out } = opts;
  const meta = prepared.metainfo;
  const cli = startCli([
    "download",
    opts.magnet,
    "-o",
    out,
    "--bind",
    "127.0.0.1",
    "--log-level",
    "info",
    "-q",
  ]);
  try {
    const status = await cli.wait(opts.timeoutMs);
    const why = `${cli.tail(60)}\n${opts.seederTail()}`;
    assert.equal(status.code, 0, `exit code ${status.code}\n${why}`);
    const lines = cli.stderrLines;
    assert(lines.some((l) => l.startsWith("Fetching metadata for ")), why);
    assert(
      lines.some((l) =>
        l.startsWith("INFO metadata: Metadata verified") && l.includes(`pieces=${meta.pieceCount}`)
      ),
      why,
    );
    assert(lines.some((l) => l.startsWith(`Complete: ${meta.pieceCount}/${meta.pieceCount} pieces`)), why);
    assert.deepEqual(await compareDownload(prepared, out), []);
    assert.deepEqual(
      await listFiles(join(out, prepared.name), [".shoal"]),
      prepared.spec.map((f) => f.path).sort(),
      "the download folder holds exactly the torrent's files",
    );
    const saved = parseMetainfo(await Deno.readFile(join(out, ".shoal", `${meta.infoHashHex}.torrent`)));
    assert.deepEqual(saved.infoBytes, meta.infoBytes, "the saved metadata is the torrent's info dictionary");
    return [...lines];
  } finally {
    await cli.stop();
  }
}

Deno.test({
  name: "cli download fetches a magnet link's metadata from a libtorrent seed given only by x.pe",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-magnet-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 91, pieceLength: SMALL_PIECES });
      assert(prepared.metainfo.infoBytes.length > 16384, "the metadata should span two pieces");
      await using seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
      });
      const started = performance.now();
      const lines = await downloadMagnet({
        prepared,
        magnet: magnetOf(prepared.metainfo, `&x.pe=127.0.0.1:${seeder.port}`),
        out: join(dir, "out"),
        timeoutMs: 120_000,
        seederTail: () => seeder.tail(),
      });
      assert(lines.some((l) => l.startsWith("INFO peer: Peer connected") && l.includes("client=LT")));
      console.log(
        `libtorrent (x.pe) -> shoal cli magnet: ${
          (prepared.metainfo.infoBytes.length / 1024).toFixed(1)
        } KiB ` +
          `of metadata and ${(prepared.metainfo.totalLength / MIB).toFixed(1)} MiB in ` +
          `${((performance.now() - started) / 1000).toFixed(2)} s (Deno start-up included)`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cli download fetches a magnet link's metadata from a Transmission seed found through opentracker (tr=)",
  ignore: !(LT && TR && OT),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-magnet-tr-" });
    try {
      const port = freeTcpUdpPort();
      const url = `http://127.0.0.1:${port}/announce`;
      const prepared = await prepareTrackedTorrent(dir, {
        trackers: [url],
        spec: [{ path: "one.bin", size: 2 * MIB + 4_321 }, { path: "sub/two.bin", size: MIB - 99 }],
        seed: 92,
        pieceLength: SMALL_PIECES,
      });
      await using tracker = await startOpentracker({ infoHashes: [prepared.metainfo.infoHashHex], port });
      await using seeder = await startTransmissionSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        readyTimeoutMs: 120_000,
      });
      await waitForTrackerPeers(tracker.httpUrl, prepared.metainfo.infoHashHex, {
        seeders: 1,
        timeoutMs: 60_000,
        tail: () => `${seeder.tail()}\n${tracker.output()}`,
      });
      const lines = await downloadMagnet({
        prepared,
        magnet: magnetOf(prepared.metainfo, `&tr=${encodeURIComponent(url)}`),
        out: join(dir, "out"),
        timeoutMs: 240_000,
        seederTail: () => `${seeder.tail()}\n--- opentracker ---\n${tracker.output()}`,
      });
      assert(
        lines.some((l) => l.startsWith("INFO peer: Peer connected") && l.includes("client=TR")),
        lines.join("\n"),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "libtorrent fetches the metadata from a shoal seed through a magnet link, then the data",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-magnet-serve-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 93, pieceLength: SMALL_PIECES });
      const meta = prepared.metainfo;
      await using session = new Session({
        downloadDir: prepared.seedDir,
        bind: "127.0.0.1",
        trackers: false,
      });
      const torrent = await session.add(meta);
      assert.equal(torrent.state, "seeding");
      let metadataSeconds: number | undefined;
      const out = join(dir, "out");
      const result = await runLibtorrentLeecher({
        torrentPath: prepared.torrentPath, // not read: the magnet link is used
        magnet: magnetOf(meta, `&x.pe=127.0.0.1:${session.port}`),
        dataDir: out,
        peers: [`127.0.0.1:${session.port}`],
        timeoutMs: 120_000,
        onMetadata: (seconds) => (metadataSeconds = seconds),
      });
      assert.notEqual(metadataSeconds, undefined, "libtorrent reported no metadata");
      assert.equal(result.bytes, meta.totalLength);
      assert.deepEqual(await compareDownload(prepared, out), []);
      console.log(
        `shoal seed -> libtorrent magnet: metadata in ${metadataSeconds!.toFixed(2)} s, ` +
          `${(meta.totalLength / MIB).toFixed(1)} MiB in ${result.seconds.toFixed(2)} s`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cli download with so= fetches only the selected files from a libtorrent seed",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-magnet-so-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 94, pieceLength: 256 * 1024 });
      const meta = prepared.metainfo;
      const indexOf = (path: string) => meta.files.findIndex((f) => f.path.join("/") === path);
      const selected = [indexOf("a/first.bin"), indexOf("c/last.bin")];
      assert(selected.every((i) => i >= 0), JSON.stringify(meta.files.map((f) => f.path)));
      const { wanted } = piecesFor(meta, selectOnly(meta.files.length, selected));
      assert(wanted !== null && wanted.count() < meta.pieceCount);
      const wantedCount = wanted.count();
      await using seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
      });
      const out = join(dir, "out");
      const cli = startCli([
        "download",
        magnetOf(meta, `&x.pe=127.0.0.1:${seeder.port}&so=${selected.join(",")}`),
        "-o",
        out,
        "--bind",
        "127.0.0.1",
        "-q",
      ]);
      try {
        const status = await cli.wait(120_000);
        const why = `${cli.tail(60)}\n${seeder.tail()}`;
        assert.equal(status.code, 0, why);
        assert(
          cli.stderrLines.some((l) =>
            l.startsWith(`Complete: ${wantedCount}/${wantedCount} wanted pieces verified`)
          ),
          why,
        );
      } finally {
        await cli.stop();
      }
      // The selected files are whole; a skipped one is absent or holds only the bytes of
      // pieces it shares with a selected file (zeros elsewhere); the empty one is absent.
      const problems = await compareDownload({
        ...prepared,
        spec: SPEC.filter((f) => f.path !== "b/middle.bin" && f.size > 0),
      }, out);
      assert.deepEqual(problems, []);
      await assert.rejects(Deno.stat(join(out, meta.name, "a/empty.txt")), Deno.errors.NotFound);
      const middle = meta.files[indexOf("b/middle.bin")]!;
      let copy: Uint8Array | null = null;
      try {
        copy = await Deno.readFile(join(out, meta.name, "b/middle.bin"));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (copy !== null) {
        let stray = 0;
        for (let i = 0; i < copy.length; i++) {
          const piece = Math.floor((middle.offset + i) / meta.pieceLength);
          if (!wanted.get(piece) && copy[i] !== 0) stray++;
        }
        assert.equal(stray, 0, "bytes of pieces that only skipped files touch were written");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
