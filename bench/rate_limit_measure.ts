/**
 * Rate-limit measurement (a script, not a timed test): `deno run -A bench/rate_limit_measure.ts`.
 *
 * Part 1, the limiter alone, in-process: the cost of `take()` when it does not wait (unlimited
 * bucket, and a per-torrent + global chain that never runs dry), then eight simulated peers held
 * to 64 MiB/s on the real clock: achieved rate, timer wake-ups and CPU time per second.
 *
 * Part 2, shoal to shoal on 127.0.0.1: a seeder session with `uploadLimit` 2 MiB/s and a
 * leecher session with `downloadLimit` 3 MiB/s share a 96 MiB torrent. The seeder's
 * `stats().uploaded` is sampled every second for 20 s (per-second rates, the 20-second average
 * and its deviation from the limit), then the upload limit is changed live to 1 MiB/s for 10 s,
 * then lifted (`upload: 0`, unlimited) for 10 s so that the leecher's 3 MiB/s download limit
 * binds. The exit code is 1 when an upload average is more than 10% from its limit.
 *
 * `--limiter-only` runs part 1 only.
 *
 * @module
 */

import process from "node:process";
import { join } from "node:path";
import { createTorrent, Session } from "../mod.ts";
import { RateLimiter, TokenBucket } from "../lib/peer/rate_limiter.ts";

const KIB = 1024;
const MIB = 1024 * 1024;
/** 2 MiB/s × 20 s + 1 MiB/s × 10 s + 3 MiB/s × 10 s = 80 MiB, plus slack. */
const PAYLOAD_BYTES = 96 * MIB;
const UPLOAD_LIMIT = 2 * MIB;
const LOWER_UPLOAD_LIMIT = 1 * MIB;
const DOWNLOAD_LIMIT = 3 * MIB;
const TOLERANCE = 0.1;

/** One measured window. */
interface Window {
  /** Bytes per second over the whole window. */
  average: number;
  /** (average − limit) / limit, in %. */
  deviationPercent: number;
  /** Whether the counter stopped moving (the transfer finished) before the window ended. */
  finishedEarly: boolean;
}

const mibps = (bytesPerSecond: number): string => `${(bytesPerSecond / MIB).toFixed(3)} MiB/s`;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * Samples a byte counter once a second for `seconds` seconds and reports each second's rate
 * and the window's average against `limit`.
 */
async function sampleWindow(
  label: string,
  read: () => number,
  limit: number,
  seconds: number,
  report: (line: string) => void,
  done: () => boolean,
): Promise<Window> {
  report(`${label}: limit ${mibps(limit)}, sampled every second for ${seconds} s`);
  const startBytes = read();
  const start = performance.now();
  let previousBytes = startBytes;
  let previousTime = start;
  for (let i = 1; i <= seconds; i++) {
    await delay(start + i * 1000 - performance.now());
    const bytes = read();
    const now = performance.now();
    const rate = ((bytes - previousBytes) * 1000) / (now - previousTime);
    report(
      `  ${String(i).padStart(2)} s  ${mibps(rate).padStart(14)}  (${
        ((bytes - startBytes) / MIB).toFixed(2)
      } MiB so far)`,
    );
    previousBytes = bytes;
    previousTime = now;
  }
  const average = ((previousBytes - startBytes) * 1000) / (previousTime - start);
  const deviationPercent = ((average - limit) / limit) * 100;
  report(
    `  average over ${((previousTime - start) / 1000).toFixed(2)} s: ${mibps(average)}, ` +
      `deviation from the limit ${deviationPercent >= 0 ? "+" : ""}${deviationPercent.toFixed(2)}%`,
  );
  return { average, deviationPercent, finishedEarly: done() };
}

/** Writes `size` bytes of random data (incompressible, unlike zeros). */
async function writePayload(path: string, size: number): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const chunk = new Uint8Array(MIB);
    for (let written = 0; written < size; written += chunk.length) {
      for (let o = 0; o < chunk.length; o += 65536) crypto.getRandomValues(chunk.subarray(o, o + 65536));
      let offset = 0;
      const end = Math.min(chunk.length, size - written);
      while (offset < end) offset += await file.write(chunk.subarray(offset, end));
    }
  } finally {
    file.close();
  }
}

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

/** Nanoseconds per awaited `take()` that never waits. */
async function costPerTake(take: (bytes: number) => Promise<void>, count: number): Promise<number> {
  for (let i = 0; i < 10_000; i++) await take(16 * KIB); // warm-up
  const start = performance.now();
  for (let i = 0; i < count; i++) await take(16 * KIB);
  return ((performance.now() - start) * 1e6) / count;
}

/** Part 1: the limiter alone, no network. */
async function measureLimiter(report: (line: string) => void): Promise<void> {
  report("Limiter alone (in-process, no network)");
  const count = 1_000_000;
  const baseline = await costPerTake(() => Promise.resolve(), count);
  report(`  await of a resolved promise (baseline):       ${baseline.toFixed(0).padStart(5)} ns`);
  const unlimited = new TokenBucket({ rate: 0 });
  const unlimitedNs = await costPerTake((n) => unlimited.take(n), count);
  report(`  take() on an unlimited bucket:                 ${unlimitedNs.toFixed(0).padStart(5)} ns`);
  const huge = 1e15; // limited, but never runs dry
  const chain = new RateLimiter([new TokenBucket({ rate: huge }), new TokenBucket({ rate: huge })]);
  const chainNs = await costPerTake((n) => chain.take(n), count);
  report(`  take() on a torrent + global chain (no wait):  ${chainNs.toFixed(0).padStart(5)} ns`);
  report(
    `  for scale: sending one 16 KiB block at 200 MiB/s takes ${
      ((16 * KIB) / (200 * MIB) * 1e9).toFixed(0)
    } ns`,
  );

  // Eight peers held to 64 MiB/s on the real clock: every grant after the first burst waits.
  const limit = 64 * MIB;
  const seconds = 2;
  let wakeUps = 0;
  const bucket = new TokenBucket({
    rate: limit,
    setTimer: (fn, ms) => {
      wakeUps++;
      return setTimeout(fn, ms);
    },
    clearTimer: (id) => clearTimeout(id as number),
  });
  const global = new TokenBucket({ rate: 0 });
  const limiter = new RateLimiter([bucket, global]);
  const controller = new AbortController();
  let granted = 0;
  let grants = 0;
  const peer = async (): Promise<void> => {
    while (!controller.signal.aborted) {
      try {
        await limiter.take(16 * KIB, controller.signal);
      } catch (error) {
        if (error === controller.signal.reason) return;
        throw error;
      }
      granted += 16 * KIB;
      grants++;
    }
  };
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const peers = Array.from({ length: 8 }, peer);
  await delay(seconds * 1000);
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  controller.abort(new Error("Done"));
  await Promise.all(peers);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  report(`  8 peers × 16 KiB held to ${mibps(limit)} for ${elapsed.toFixed(2)} s on the real clock:`);
  report(
    `    achieved ${mibps(granted / elapsed)} (${
      (((granted / elapsed) / limit - 1) * 100).toFixed(2)
    }% from the ` +
      `limit, burst ${(bucket.burst / MIB).toFixed(1)} MiB included), ${grants} grants, ` +
      `${(wakeUps / elapsed).toFixed(0)} timer wake-ups/s`,
  );
  report(
    `    CPU ${(cpuMs / elapsed).toFixed(1)} ms per second (${
      (cpuMs / elapsed / 10).toFixed(2)
    }% of a core), ` +
      `${((cpuMs * 1000) / grants).toFixed(2)} µs per grant, timers and promise plumbing included`,
  );
}

/** Part 2: a shoal seeder and a shoal leecher on loopback, both limited. */
async function measureNetwork(report: (line: string) => void): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-rate-" });
  try {
    const seedDir = join(dir, "seed");
    const leechDir = join(dir, "leech");
    await Deno.mkdir(seedDir);
    await Deno.mkdir(leechDir);
    const payload = join(seedDir, "payload.bin");
    await writePayload(payload, PAYLOAD_BYTES);
    const made = await createTorrent(payload, { creationDate: null });
    report(
      `shoal → shoal on 127.0.0.1: ${PAYLOAD_BYTES / MIB} MiB, ${made.pieceLength / KIB} KiB pieces; ` +
        `seeder uploadLimit ${mibps(UPLOAD_LIMIT)}, leecher downloadLimit ${mibps(DOWNLOAD_LIMIT)}`,
    );
    await using seeder = new Session({
      downloadDir: seedDir,
      bind: "127.0.0.1",
      uploadLimit: UPLOAD_LIMIT,
    });
    await using leecher = new Session({
      downloadDir: leechDir,
      bind: "127.0.0.1",
      downloadLimit: DOWNLOAD_LIMIT,
    });
    const seed = await seeder.add(made.torrent);
    await waitFor("the seeder to finish checking", () => seed.stats().state === "seeding", 120_000);
    const leech = await leecher.add(made.torrent, { peers: [`127.0.0.1:${seeder.port}`] });
    await waitFor("the first uploaded bytes", () => seed.stats().uploaded > 0, 30_000);
    const finished = () => leech.stats().state === "seeding";
    const uploaded = () => seed.stats().uploaded;

    const first = await sampleWindow("Upload", uploaded, UPLOAD_LIMIT, 20, report, finished);
    seeder.setLimits({ upload: LOWER_UPLOAD_LIMIT });
    report(`Upload limit changed live to ${mibps(LOWER_UPLOAD_LIMIT)}`);
    const second = await sampleWindow("Upload", uploaded, LOWER_UPLOAD_LIMIT, 10, report, finished);
    seeder.setLimits({ upload: 0 });
    report(`Upload limit lifted (0: unlimited): the leecher's download limit binds`);
    const third = await sampleWindow(
      "Download",
      () => leech.stats().downloaded,
      DOWNLOAD_LIMIT,
      10,
      report,
      finished,
    );

    let ok = true;
    for (
      const [name, w] of [["upload 2 MiB/s", first], ["upload 1 MiB/s", second], [
        "download 3 MiB/s",
        third,
      ]] as const
    ) {
      const within = Math.abs(w.deviationPercent) <= TOLERANCE * 100;
      if (w.finishedEarly) {
        report(`  warning: the transfer finished during the ${name} window; its figure is low`);
      }
      report(
        `Result ${name}: ${mibps(w.average)}, ${w.deviationPercent.toFixed(2)}% — ` +
          (within ? `within ${TOLERANCE * 100}%` : `NOT within ${TOLERANCE * 100}%`),
      );
      if (name.startsWith("upload") && !within) ok = false;
    }
    return ok;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs the measurement (both parts unless `limiterOnly`).
 *
 * @param report Where result lines go.
 * @param limiterOnly Skip the network part.
 * @returns Whether every upload window held its limit within 10%.
 */
export async function run(report: (line: string) => void, limiterOnly = false): Promise<boolean> {
  await measureLimiter(report);
  if (limiterOnly) return true;
  report("");
  return await measureNetwork(report);
}

if (import.meta.main) {
  const ok = await run((line) => console.log(line), Deno.args.includes("--limiter-only"));
  Deno.exit(ok ? 0 : 1);
}
