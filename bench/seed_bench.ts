/**
 * Seed benchmark: a libtorrent leecher downloads a 1 GiB single-file torrent from a shoal seed
 * (`cli.ts seed`, a child process bound to 127.0.0.1) and from a libtorrent seed, alternately,
 * in the same run, two rounds each; each time the leecher is told about one seed only.
 * Reports the leecher's MiB/s (libtorrent's own timing: from adding the torrent to having
 * every piece), the CPU seconds each seed process used during that download and its peak
 * resident memory, and the throughput ratio shoal / libtorrent (target: at least 1.0).
 *
 * CPU and memory come from `/proc/<pid>` of the seed processes (sampled every 100 ms for the
 * peak during a download). libtorrent's resident memory includes the pages of the file it
 * maps; shoal reads with positional I/O. Encryption is off on every side.
 *
 * Set `SHOAL_SEED_BENCH_PROFILE=<dir>` to run the shoal seed with `--cpu-prof` into that folder.
 *
 * @module
 */

import { join } from "node:path";
import { automaticPieceLength } from "../mod.ts";
import {
  type LeechResult,
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../tests/interop/_harness.ts";
import { cpuSeconds, memoryOf, startSeedCli } from "../tests/interop/_seed_helpers.ts";

const MIB = 1024 * 1024;
const SIZE_MIB = 1024;
const ROUNDS = 2;

interface Measured {
  seed: "shoal" | "libtorrent";
  mibPerSec: number;
  seconds: number;
  /** CPU seconds of the seed process during the download. */
  seedCpu: number;
  /** Peak resident memory of the seed process during the download, MiB. */
  seedPeakRssMiB: number;
  /** CPU seconds of the leecher process. */
  leechCpu: number;
  /** Connections the seed dropped during the download (shoal only). */
  dropped: number;
}

/** Samples a process's resident memory every 100 ms until stopped; returns the peak. */
function rssSampler(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, (await memoryOf(pid)).rss);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, (await memoryOf(pid)).rss);
    },
  };
}

async function leech(
  seed: "shoal" | "libtorrent",
  pid: number,
  address: string,
  torrentPath: string,
  leechDir: string,
  droppedSoFar: () => number,
): Promise<Measured> {
  const dropped0 = droppedSoFar();
  const cpu0 = await cpuSeconds(pid);
  const sampler = rssSampler(pid);
  let r: LeechResult;
  let peakRss = 0;
  try {
    r = await runLibtorrentLeecher({
      torrentPath,
      dataDir: leechDir,
      peers: [address],
      enc: "disabled",
      timeoutMs: 300_000,
    });
  } finally {
    peakRss = await sampler.stop();
  }
  const cpu1 = await cpuSeconds(pid);
  await Deno.remove(leechDir, { recursive: true });
  return {
    seed,
    mibPerSec: r.bytes / MIB / r.seconds,
    seconds: r.seconds,
    seedCpu: cpu1 - cpu0,
    seedPeakRssMiB: peakRss / MIB,
    leechCpu: r.cpuSeconds,
    dropped: droppedSoFar() - dropped0,
  };
}

function fmt(m: Measured): string {
  return `${m.seed.padEnd(10)} ${m.seconds.toFixed(2)} s ${m.mibPerSec.toFixed(1).padStart(6)} MiB/s, ` +
    `seed cpu ${m.seedCpu.toFixed(2)} s, seed peak rss ${m.seedPeakRssMiB.toFixed(0)} MiB, ` +
    `leecher cpu ${m.leechCpu.toFixed(2)} s` +
    (m.dropped > 0 ? `, seed dropped the leecher ${m.dropped}x` : "");
}

/**
 * Runs the seed benchmark (1 GiB, two rounds per seed, alternating).
 *
 * @param report Receives result lines.
 */
export async function run(report: (line: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-seed-" });
  try {
    const dataDir = join(dir, "data");
    const size = SIZE_MIB * MIB;
    await makePayload(dataDir, [{ path: "payload.bin", size }], 17);
    const torrentPath = join(dir, "payload.torrent");
    const pieceLength = automaticPieceLength(size);
    await makeTorrentWithLibtorrent(join(dataDir, "payload.bin"), torrentPath, pieceLength);
    report(
      `${SIZE_MIB} MiB single file, ${pieceLength / 1024} KiB pieces; a libtorrent leecher on 127.0.0.1 ` +
        `fetches it from one seed at a time`,
    );
    const profileDir = Deno.env.get("SHOAL_SEED_BENCH_PROFILE");
    const shoal = await startSeedCli(torrentPath, dataDir, {
      readyTimeoutMs: 300_000,
      ...(profileDir ? { denoFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {}),
    });
    try {
      await using lt = await startLibtorrentSeeder({
        torrentPath,
        dataDir,
        enc: "disabled",
        readyTimeoutMs: 300_000,
      });
      const dropped = () =>
        shoal.process.stderrLines.filter((l) => l.startsWith("INFO peer: Peer disconnected: ")).length;
      const results: Measured[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate which seed goes first, so neither always meets a warmer page cache.
        const order = round % 2 === 0 ? ["shoal", "libtorrent"] as const : ["libtorrent", "shoal"] as const;
        for (const which of order) {
          const leechDir = join(dir, `leech-${round}-${which}`);
          const m = which === "shoal"
            ? await leech("shoal", shoal.process.pid, shoal.address, torrentPath, leechDir, dropped)
            : await leech("libtorrent", lt.pid, `127.0.0.1:${lt.port}`, torrentPath, leechDir, () => 0);
          results.push(m);
          report(`round ${round + 1}: ${fmt(m)}`);
        }
      }
      const of = (seed: string) => results.filter((m) => m.seed === seed);
      const best = (xs: Measured[]) => xs.reduce((a, b) => (b.mibPerSec > a.mibPerSec ? b : a));
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const s = best(of("shoal")), l = best(of("libtorrent"));
      report(
        `best: shoal ${s.mibPerSec.toFixed(1)} MiB/s, libtorrent ${l.mibPerSec.toFixed(1)} MiB/s, ` +
          `ratio shoal/libtorrent ${(s.mibPerSec / l.mibPerSec).toFixed(2)} (target >= 1.0); mean ratio ${
            (mean(of("shoal").map((m) => m.mibPerSec)) / mean(of("libtorrent").map((m) => m.mibPerSec)))
              .toFixed(2)
          }`,
      );
      report(
        `seed CPU per GiB served: shoal ${mean(of("shoal").map((m) => m.seedCpu)).toFixed(2)} s, ` +
          `libtorrent ${mean(of("libtorrent").map((m) => m.seedCpu)).toFixed(2)} s; seed peak RSS: shoal ${
            Math.max(...of("shoal").map((m) => m.seedPeakRssMiB)).toFixed(0)
          } MiB (VmHWM ${
            ((await memoryOf(shoal.process.pid)).peak / MIB).toFixed(0)
          } MiB, data check included), ` +
          `libtorrent ${
            Math.max(...of("libtorrent").map((m) => m.seedPeakRssMiB)).toFixed(0)
          } MiB (includes its mapped file pages)`,
      );
    } finally {
      await shoal.interrupt();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
