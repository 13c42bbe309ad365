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
 * Set `SHOAL_SEED_BENCH_ROUNDS=N` for N rounds per seed, and `SHOAL_SEED_BENCH_PROFILE=<dir>` to run
 * the shoal seed with `--cpu-prof` into that folder.
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
/** Rounds per seed; `SHOAL_SEED_BENCH_ROUNDS` overrides (more rounds average out a busy machine). */
const ROUNDS = Math.max(1, Number(Deno.env.get("SHOAL_SEED_BENCH_ROUNDS") ?? 2) || 2);

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
 * A folder for the leecher's copy: on tmpfs (`/dev/shm`) when it has room for two copies, so
 * disk write-back does not add noise to a benchmark of the seed; else `fallback`.
 */
async function leechFolder(fallback: string): Promise<string> {
  try {
    const out = await new Deno.Command("df", { args: ["-k", "--output=avail", "/dev/shm"], stderr: "null" })
      .output();
    const freeKiB = Number(new TextDecoder().decode(out.stdout).split("\n")[1]?.trim());
    if (out.success && freeKiB * 1024 > 2 * SIZE_MIB * MIB) {
      return await Deno.makeTempDir({ dir: "/dev/shm", prefix: "shoal-bench-seed-" });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e; // no df, no /dev/shm: use the fallback
  }
  return fallback;
}

/**
 * Runs the seed benchmark (1 GiB, two rounds per seed unless `SHOAL_SEED_BENCH_ROUNDS` says otherwise,
 * alternating).
 *
 * @param report Receives result lines.
 */
export async function run(report: (line: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-seed-" });
  const leechRoot = await leechFolder(dir);
  try {
    const dataDir = join(dir, "data");
    const size = SIZE_MIB * MIB;
    await makePayload(dataDir, [{ path: "payload.bin", size }], 17);
    const torrentPath = join(dir, "payload.torrent");
    const pieceLength = automaticPieceLength(size);
    await makeTorrentWithLibtorrent(join(dataDir, "payload.bin"), torrentPath, pieceLength);
    report(
      `${SIZE_MIB} MiB single file, ${pieceLength / 1024} KiB pieces; a libtorrent leecher on 127.0.0.1 ` +
        `fetches it from one seed at a time, into ${leechRoot === dir ? "the temp folder" : "tmpfs"}`,
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
          const leechDir = join(leechRoot, `leech-${round}-${which}`);
          const m = which === "shoal"
            ? await leech("shoal", shoal.process.pid, shoal.address, torrentPath, leechDir, dropped)
            : await leech("libtorrent", lt.pid, `127.0.0.1:${lt.port}`, torrentPath, leechDir, () => 0);
          results.push(m);
          report(`round ${round + 1}: ${fmt(m)}`);
        }
      }
      summarize(results, (await memoryOf(shoal.process.pid)).peak, report);
    } catch (error) {
      const status = shoal.process.exited;
      throw new Error(
        `Seed benchmark failed: ${(error as Error).message}` +
          (status ? `\nthe shoal seed exited with code ${status.code}` : "") + `\n${shoal.process.tail()}`,
        { cause: error },
      );
    } finally {
      await shoal.interrupt();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    if (leechRoot !== dir) await Deno.remove(leechRoot, { recursive: true });
  }
}

function summarize(results: Measured[], shoalHighWater: number, report: (line: string) => void): void {
  const of = (seed: string) => results.filter((m) => m.seed === seed);
  const best = (xs: Measured[]) => xs.reduce((a, b) => (b.mibPerSec > a.mibPerSec ? b : a));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const shoal = of("shoal"), lt = of("libtorrent");
  const s = best(shoal), l = best(lt);
  const meanRatio = mean(shoal.map((m) => m.mibPerSec)) / mean(lt.map((m) => m.mibPerSec));
  report(
    `best: shoal ${s.mibPerSec.toFixed(1)} MiB/s, libtorrent ${l.mibPerSec.toFixed(1)} MiB/s, ` +
      `ratio shoal/libtorrent ${(s.mibPerSec / l.mibPerSec).toFixed(2)} (target >= 1.0); ` +
      `mean ratio ${meanRatio.toFixed(2)}`,
  );
  report(
    `seed CPU seconds per GiB served: shoal ${mean(shoal.map((m) => m.seedCpu)).toFixed(2)}, ` +
      `libtorrent ${mean(lt.map((m) => m.seedCpu)).toFixed(2)}`,
  );
  report(
    `seed peak RSS while serving: shoal ${Math.max(...shoal.map((m) => m.seedPeakRssMiB)).toFixed(0)} MiB ` +
      `(lifetime high-water mark ${(shoalHighWater / MIB).toFixed(0)} MiB, data check included), ` +
      `libtorrent ${
        Math.max(...lt.map((m) => m.seedPeakRssMiB)).toFixed(0)
      } MiB (includes its mapped file pages)`,
  );
}
