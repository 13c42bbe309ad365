/**
 * How fast createTorrent hashes a 1 GiB file, compared with `openssl speed sha1` on one
 * core (the target is at least 80% of OpenSSL). Also reports the raw read rate from the
 * page cache and the rate of node:crypto SHA-1 on data already in memory, which bound it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { createTorrent } from "../mod.ts";

const MIB = 1024 * 1024;
const FILE_SIZE = 1024 * MIB;
const PIECE_LENGTH = 512 * 1024; // what libtorrent (and shoal) pick automatically for 1 GiB

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

/** Runs `openssl speed -bytes 16384 -seconds 3 sha1`; returns MiB/s (it prints 1000-byte kB/s). */
async function opensslSpeed(): Promise<number> {
  const child = new Deno.Command("openssl", {
    args: ["speed", "-bytes", "16384", "-seconds", "3", "sha1"],
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

async function timeCreate(path: string): Promise<number> {
  const started = performance.now();
  const made = await createTorrent(path, { pieceLength: PIECE_LENGTH, creationDate: null });
  const seconds = (performance.now() - started) / 1000;
  if (made.totalLength !== FILE_SIZE) throw new Error(`Hashed ${made.totalLength} bytes, expected ${FILE_SIZE}`);
  return FILE_SIZE / MIB / seconds;
}

/**
 * Runs the benchmark.
 *
 * @param report Where result lines go.
 */
export async function run(report: (line: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_create_bench_" });
  try {
    const path = join(dir, "payload.bin");
    await makeFile(path, FILE_SIZE);
    const openssl = await opensslSpeed();
    report(`openssl speed sha1 (16 KiB blocks, 1 core): ${openssl.toFixed(0)} MiB/s`);
    report(`node:crypto sha1 in memory (512 KiB pieces): ${hashInMemory(FILE_SIZE).toFixed(0)} MiB/s`);
    const first = await timeCreate(path);
    report(`createTorrent 1 GiB, first run:            ${first.toFixed(0)} MiB/s`);
    report(`read 1 GiB from the page cache (warm read):  ${(await readAll(path)).toFixed(0)} MiB/s`);
    const warm = Math.max(await timeCreate(path), await timeCreate(path));
    report(`createTorrent 1 GiB, warm (best of 2):      ${warm.toFixed(0)} MiB/s`);
    const ratio = warm / openssl;
    report(`ratio shoal / openssl: ${(ratio * 100).toFixed(0)}% (target >= 80%): ${ratio >= 0.8 ? "OK" : "BELOW TARGET"}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
