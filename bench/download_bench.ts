/**
 * Download benchmark: a single-file torrent served by one libtorrent seeder on loopback,
 * fetched by shoal's CLI (`cli.ts download`, a child process) and by libtorrent's own
 * leecher, alternately, from the same seeder in the same run. Reports MiB/s, CPU seconds
 * and peak RSS of each leecher process and the ratios. Runs at 256 MiB and 1 GiB, to show
 * whether shoal's memory grows with the torrent.
 *
 * Targets (issue 3): throughput ratio at least 1.0; shoal's peak RSS at most 150 MiB and
 * no larger at 1 GiB than at 256 MiB.
 *
 * Throughput uses the same definition for both: from adding the torrent to having every
 * piece verified (shoal prints it on its `Complete:` line; libtorrent's leecher reports it).
 * shoal's whole-process time (Deno start-up, folder check, the final fsync of every file,
 * which libtorrent does not do) is shown beside it. CPU seconds and peak RSS are of the
 * whole leecher process. Both use plaintext (encryption disabled on all sides).
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { automaticPieceLength } from "../mod.ts";
import {
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../tests/interop/_harness.ts";

const MIB = 1024 * 1024;
const ROUNDS = 2;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Measured {
  /** Seconds from adding the torrent to every piece verified (the same definition for both). */
  seconds: number;
  /** Seconds of the whole process (shoal: Deno start-up, folder check, final fsync included). */
  processSeconds: number;
  mibPerSec: number;
  cpuSeconds: number;
  peakRssMiB: number;
}

async function runShoal(torrentPath: string, downloadDir: string, port: number): Promise<Measured> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [
      join(ROOT, "bench", "measure.py"),
      Deno.execPath(),
      "run",
      "-A",
      join(ROOT, "cli.ts"),
      "download",
      torrentPath,
      "-o",
      downloadDir,
      "--peer",
      `127.0.0.1:${port}`,
      "--bind",
      "127.0.0.1",
      "-q",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const line = stdout.trim().split("\n").reverse().find((l) => l.includes('"measure"'));
  if (!out.success || line === undefined) {
    throw new Error(`shoal download failed (exit ${out.code}):\n${new TextDecoder().decode(out.stderr)}`);
  }
  const m = JSON.parse(line) as { seconds: number; cpu_seconds: number; peak_rss_bytes: number };
  const stderr = new TextDecoder().decode(out.stderr);
  const active = /downloaded this run in ([0-9.]+) s/.exec(stderr);
  if (active === null) throw new Error(`shoal printed no completion time:\n${stderr}`);
  return {
    seconds: Number(active[1]),
    processSeconds: m.seconds,
    mibPerSec: 0,
    cpuSeconds: m.cpu_seconds,
    peakRssMiB: m.peak_rss_bytes / MIB,
  };
}

async function benchSize(sizeMiB: number, report: (line: string) => void): Promise<Measured> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-dl-" });
  try {
    const dataDir = join(dir, "data");
    const size = sizeMiB * MIB;
    await makePayload(dataDir, [{ path: "payload.bin", size }], 7);
    const torrentPath = join(dir, "payload.torrent");
    const pieceLength = automaticPieceLength(size);
    await makeTorrentWithLibtorrent(join(dataDir, "payload.bin"), torrentPath, pieceLength);
    report(
      `${sizeMiB} MiB single file, ${pieceLength / 1024} KiB pieces, one libtorrent seeder on 127.0.0.1`,
    );
    await using seeder = await startLibtorrentSeeder({
      torrentPath,
      dataDir,
      enc: "disabled",
      readyTimeoutMs: 300_000,
    });
    const shoal: Measured[] = [];
    const lt: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const ltDir = join(dir, `lt-${round}`);
      const r = await runLibtorrentLeecher({
        torrentPath,
        dataDir: ltDir,
        peers: [`127.0.0.1:${seeder.port}`],
        enc: "disabled",
        timeoutMs: 300_000,
      });
      lt.push({
        seconds: r.seconds,
        processSeconds: r.seconds,
        mibPerSec: sizeMiB / r.seconds,
        cpuSeconds: r.cpuSeconds,
        peakRssMiB: r.peakRssBytes / MIB,
      });
      await Deno.remove(ltDir, { recursive: true });
      const shoalDir = join(dir, `shoal-${round}`);
      const s = await runShoal(torrentPath, shoalDir, seeder.port);
      s.mibPerSec = sizeMiB / s.seconds;
      shoal.push(s);
      await Deno.remove(shoalDir, { recursive: true });
      report(
        `  round ${round + 1}: shoal ${fmt(shoal[round]!)} | libtorrent ${fmt(lt[round]!)}`,
      );
    }
    const best = (xs: Measured[]) => xs.reduce((a, b) => (b.mibPerSec > a.mibPerSec ? b : a));
    const s = best(shoal), l = best(lt);
    const peakShoal = Math.max(...shoal.map((x) => x.peakRssMiB));
    report(
      `  best: shoal ${s.mibPerSec.toFixed(1)} MiB/s, libtorrent ${l.mibPerSec.toFixed(1)} MiB/s, ` +
        `throughput ratio ${(s.mibPerSec / l.mibPerSec).toFixed(2)} (target >= 1.0)`,
    );
    report(
      `  CPU seconds: shoal ${s.cpuSeconds.toFixed(2)}, libtorrent ${l.cpuSeconds.toFixed(2)}; ` +
        `peak RSS: shoal ${peakShoal.toFixed(0)} MiB (target <= 150), ` +
        `libtorrent ${
          Math.max(...lt.map((x) => x.peakRssMiB)).toFixed(0)
        } MiB (includes its mapped file pages)`,
    );
    return { ...s, peakRssMiB: peakShoal };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function fmt(m: Measured): string {
  const whole = m.processSeconds !== m.seconds ? ` (process ${m.processSeconds.toFixed(2)} s)` : "";
  return `${m.seconds.toFixed(2)} s${whole} ${m.mibPerSec.toFixed(1)} MiB/s cpu ${
    m.cpuSeconds.toFixed(2)
  } s rss ${m.peakRssMiB.toFixed(0)} MiB`;
}

/**
 * Runs the download benchmark at 256 MiB and 1 GiB.
 *
 * @param report Receives result lines.
 */
export async function run(report: (line: string) => void): Promise<void> {
  const small = await benchSize(256, report);
  const big = await benchSize(1024, report);
  report(
    `shoal peak RSS: ${small.peakRssMiB.toFixed(0)} MiB at 256 MiB, ${
      big.peakRssMiB.toFixed(0)
    } MiB at 1 GiB ` +
      `(${big.peakRssMiB <= small.peakRssMiB * 1.1 ? "flat" : "GROWS with the torrent"})`,
  );
}
