/**
 * How fast createTorrent hashes a 1 GiB file, compared with `openssl speed sha1` on one
 * core (the target is at least 80% of OpenSSL). Also reports the raw read rate from the
 * page cache and the rate of node:crypto SHA-1 on data already in memory, which bound it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import process from "node:process";
import { createTorrent } from "../mod.ts";

const MIB = 1024 * 1024;
const FILE_SIZE = 1024 * MIB;
const PIECE_LENGTH = 512 * 1024; // what libtorrent (and shoal) pick automatically for 1 GiB
const ROUNDS = 3;

/** Writes `size` bytes made of one random 1 MiB block repeated. */
async function makeFile(path: string, size: number): Promise<void> {
  const block = new Uint8Array(MIB);
  for (let at = 0; at < block.length; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let written = 0; written < size; written += block.length) {
    let at = 0;
    while (at < block.length) at += await file.write(block.subarray(at));
  }
}

/** Reads the whole file once (so it sits in the page cache); returns MiB/s. */
async function readAll(path: string): Promise<number> {
  const buffer = new Uint8Array(4 * MIB);
  const started = performance.now();
  let total = 0;
  using file = await Deno.open(path, { read: true });
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    total += n;
  }
  return total / MIB / ((performance.now() - started) / 1000);
}

/** SHA-1 with node:crypto over `size` bytes already in memory, in pieces; returns MiB/s. */
function hashInMemory(size: number): number {
  const buffer = new Uint8Array(4 * MIB);
  crypto.getRandomValues(buffer.subarray(0, 65536));
  const started = performance.now();
  for (let done = 0; done < size; done += buffer.length) {
    for (let at = 0; at < buffer.length; at += PIECE_LENGTH) {
      createHash("sha1").update(buffer.subarray(at, at + PIECE_LENGTH)).digest();
    }
  }
  return size / MIB / ((performance.now() - started) / 1000);
}

/**
 * Runs `openssl speed -bytes 16384 -seconds 3 sha1`; returns MiB/s (it prints 1000-byte
 * kB/s). By default OpenSSL divides by the CPU user time it used, which ignores load from
 * other processes; with `elapsed` it divides by wall-clock time, like our own timings.
 */
async function opensslSpeed(elapsed: boolean): Promise<number> {
  const child = new Deno.Command("openssl", {
    args: ["speed", ...(elapsed ? ["-elapsed"] : []), "-bytes", "16384", "-seconds", "3", "sha1"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    const m = /^sha1\s+([\d.]+)k\s*$/m.exec(text);
    if (!out.success || m === null) throw new Error(`Cannot read the output of openssl speed: ${text}`);
    return (Number(m[1]) * 1000) / MIB;
  } finally {
    clearTimeout(timer);
  }
}

/** createTorrent's rate in MiB/s, by three clocks. */
interface Rates {
  /** By wall-clock time. */
  wall: number;
  /** By CPU time, user + system: hashing plus the kernel's copies out of the page cache. */
  cpu: number;
  /** By user CPU time alone. */
  user: number;
}

async function timeCreate(path: string): Promise<Rates> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const made = await createTorrent(path, { pieceLength: PIECE_LENGTH, creationDate: null });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  if (made.totalLength !== FILE_SIZE) {
    throw new Error(`Hashed ${made.totalLength} bytes, expected ${FILE_SIZE}`);
  }
  return {
    wall: FILE_SIZE / MIB / seconds,
    cpu: FILE_SIZE / MIB / ((cpu.user + cpu.system) / 1e6),
    user: FILE_SIZE / MIB / (cpu.user / 1e6),
  };
}

function best(xs: number[]): number {
  return Math.max(...xs);
}

function list(xs: number[]): string {
  return `best ${best(xs).toFixed(0)} MiB/s (${xs.map((x) => x.toFixed(0)).join(", ")})`;
}

function verdict(ratio: number): string {
  return `${(ratio * 100).toFixed(0)}% ${ratio >= 0.8 ? "(OK)" : "(below the 80% target)"}`;
}

/**
 * Runs the benchmark. OpenSSL and createTorrent are measured in alternation, three times
 * each, and the best of each is compared, so that load from other processes hurts both
 * alike. `openssl speed` divides by the CPU user time it used, which on a busy machine
 * gives more than wall-clock time would, so it is run both ways and compared both ways:
 * wall clock (shoal against `openssl speed -elapsed`) and CPU time (shoal's user + system
 * time, which includes the kernel copying out of the page cache, against `openssl speed`).
 *
 * @param report Where result lines go.
 */
export async function run(report: (line: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_create_bench_" });
  try {
    const path = join(dir, "payload.bin");
    await makeFile(path, FILE_SIZE);
    report(`createTorrent 1 GiB, first run:               ${(await timeCreate(path)).wall.toFixed(0)} MiB/s`);
    report(`read 1 GiB from the page cache (warm read):   ${(await readAll(path)).toFixed(0)} MiB/s`);
    report(`node:crypto sha1 in memory (512 KiB pieces):  ${hashInMemory(FILE_SIZE).toFixed(0)} MiB/s`);
    const opensslCpu: number[] = [];
    const opensslWall: number[] = [];
    const shoal: Rates[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      opensslCpu.push(await opensslSpeed(false));
      opensslWall.push(await opensslSpeed(true));
      shoal.push(await timeCreate(path));
    }
    const wall = shoal.map((r) => r.wall);
    const cpu = shoal.map((r) => r.cpu);
    const user = shoal.map((r) => r.user);
    report(`openssl speed sha1 (16 KiB, per CPU second):  ${list(opensslCpu)}`);
    report(`openssl speed -elapsed sha1 (wall clock):     ${list(opensslWall)}`);
    report(`createTorrent 1 GiB warm, wall clock:         ${list(wall)}`);
    report(`createTorrent 1 GiB warm, per CPU second:     ${list(cpu)}`);
    report(`createTorrent 1 GiB warm, per user second:    ${list(user)}`);
    report(`ratio, wall clock vs openssl -elapsed:        ${verdict(best(wall) / best(opensslWall))}`);
    report(`ratio, wall clock vs openssl (CPU-based):     ${verdict(best(wall) / best(opensslCpu))}`);
    report(`ratio, user + system time vs openssl:         ${verdict(best(cpu) / best(opensslCpu))}`);
    report(`ratio, user time vs openssl:                  ${verdict(best(user) / best(opensslCpu))}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
