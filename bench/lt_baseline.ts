/**
 * The libtorrent side of the loopback download benchmark: a libtorrent seeder
 * and a libtorrent leecher on 127.0.0.1, timed and measured in the leecher's own
 * process, as the baseline shoal's download is compared with.
 *
 * Run directly to measure a fresh payload (deleted afterwards):
 *
 * ```sh
 * deno run -A bench/lt_baseline.ts [SIZE_MIB=1024] [PIECE_KIB=1024]
 * ```
 *
 * @module
 */

import { join } from "node:path";
import {
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../tests/interop/_harness.ts";

/** Options of {@linkcode libtorrentBaseline}. */
export interface LibtorrentBaselineOptions {
  /** The .torrent file, already made. */
  torrentPath: string;
  /** The folder that holds the torrent's data (the torrent's name is inside it). */
  dataDir: string;
  /**
   * Folder to download into; a temp folder (removed afterwards) when absent.
   *
   * @default {undefined}
   */
  downloadDir?: string;
  /**
   * Encryption policy of both peers.
   *
   * @default {"enabled"}
   */
  enc?: "forced" | "enabled" | "disabled";
  /**
   * Deadline for the download.
   *
   * @default {300000}
   */
  timeoutMs?: number;
}

/** What one libtorrent-to-libtorrent download measured (leecher process only). */
export interface BaselineResult {
  /** Seconds from adding the torrent to having every piece verified. */
  seconds: number;
  /** Payload MiB per second over those seconds. */
  mibPerSec: number;
  /** User + system CPU seconds of the leecher process during the download. */
  cpuSeconds: number;
  /** Peak resident set size of the leecher process, in MiB. */
  peakRssMiB: number;
}

/**
 * Starts a libtorrent seeder for a prepared torrent and its data, downloads it
 * with a libtorrent leecher over loopback, and returns the leecher's numbers.
 *
 * @example
 * ```ts
 * import { libtorrentBaseline } from "./lt_baseline.ts";
 * if (Deno.args.includes("--run-example")) {
 *   const r = await libtorrentBaseline({ torrentPath: "big.torrent", dataDir: "payload" });
 *   console.log(`${r.mibPerSec.toFixed(0)} MiB/s`);
 * }
 * ```
 *
 * @param options The torrent, its data and where to download.
 * @returns Time, throughput, CPU and peak memory of the download.
 */
export async function libtorrentBaseline(options: LibtorrentBaselineOptions): Promise<BaselineResult> {
  const enc = options.enc ?? "enabled";
  const ownDir = options.downloadDir === undefined
    ? await Deno.makeTempDir({ prefix: "shoal-bench-lt-" })
    : undefined;
  const downloadDir = options.downloadDir ?? ownDir ?? "";
  try {
    await using seeder = await startLibtorrentSeeder({
      torrentPath: options.torrentPath,
      dataDir: options.dataDir,
      enc,
      readyTimeoutMs: 300_000,
    });
    const r = await runLibtorrentLeecher({
      torrentPath: options.torrentPath,
      dataDir: downloadDir,
      peers: [`127.0.0.1:${seeder.port}`],
      enc,
      timeoutMs: options.timeoutMs ?? 300_000,
    }).catch((e: unknown) => {
      throw new Error(`Baseline download failed\n${seeder.tail()}`, { cause: e });
    });
    const mib = r.bytes / (1024 * 1024);
    return {
      seconds: r.seconds,
      mibPerSec: mib / r.seconds,
      cpuSeconds: r.cpuSeconds,
      peakRssMiB: r.peakRssBytes / (1024 * 1024),
    };
  } finally {
    if (ownDir !== undefined) await Deno.remove(ownDir, { recursive: true });
  }
}

async function main(args: string[]): Promise<void> {
  const sizeMiB = Number(args[0] ?? 1024);
  const pieceKiB = Number(args[1] ?? 1024);
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-" });
  try {
    const dataDir = join(dir, "data");
    let t = performance.now();
    await makePayload(dataDir, [{ path: "payload.bin", size: sizeMiB * 1024 * 1024 }], 1);
    console.log(`payload: ${sizeMiB} MiB written in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    t = performance.now();
    const torrentPath = join(dir, "payload.torrent");
    await makeTorrentWithLibtorrent(join(dataDir, "payload.bin"), torrentPath, pieceKiB * 1024);
    console.log(`torrent: ${pieceKiB} KiB pieces, made in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    const r = await libtorrentBaseline({ torrentPath, dataDir, downloadDir: join(dir, "download") });
    console.log(
      `libtorrent -> libtorrent: ${r.seconds.toFixed(2)} s, ${r.mibPerSec.toFixed(1)} MiB/s, ` +
        `leecher CPU ${r.cpuSeconds.toFixed(2)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
