/**
 * MSE benchmark: how much Message Stream Encryption costs a download. One libtorrent seeder
 * on loopback (encryption "enabled": it takes plaintext and MSE connections, and RC4 when
 * that is all the other side offers) serves a single-file torrent; a shoal `Session` in
 * this process downloads it alternately with `mse({ policy: "disable" })` (plaintext) and
 * `mse({ policy: "require" })` (MSE with RC4 both ways), from the same seeder in the same
 * run. Reports MiB/s and CPU seconds of each, the ratio (target: encrypted at least 0.8 of
 * plaintext), and the raw speed of the RC4 implementation.
 *
 * For scale, libtorrent's own leecher does the same from the same seeder in each round
 * (`--enc disabled` and `--enc forced`, which means RC4): the seeder enciphers every byte
 * in both encrypted cases, so libtorrent's own ratio is what the machine allows.
 *
 * Throughput is measured from adding the torrent to having every piece verified and
 * written (libtorrent's leecher reports the same span). CPU seconds are of the leecher
 * process (for shoal, this process: the bench itself is idle meanwhile).
 *
 * @module
 */

import { join } from "node:path";
import process from "node:process";
import { automaticPieceLength } from "../mod.ts";
import { BaseSession } from "../lib/session.ts";
import { parseMetainfo } from "../lib/metainfo.ts";
import { rarestFirst } from "../plugins/selection/rarest_first.ts";
import { mse, type MseDuplex, type MsePolicy } from "../plugins/encryption/mse.ts";
import { Rc4 } from "../plugins/encryption/rc4.ts";
import {
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
  withTimeout,
} from "../tests/interop/_harness.ts";

const MIB = 1024 * 1024;
const ROUNDS = 3;

interface Measured {
  seconds: number;
  mibPerSec: number;
  cpuSeconds: number;
  methods: string[];
}

/** Downloads the torrent once into `dir` with the given policy. */
async function download(
  torrentBytes: Uint8Array,
  dir: string,
  seederPort: number,
  policy: MsePolicy,
): Promise<Measured> {
  const plugin = mse({ policy });
  const methods: string[] = [];
  await using session = new BaseSession({
    downloadDir: dir,
    selector: rarestFirst(),
    bind: "127.0.0.1",
    trackers: false,
    lsd: false,
    pex: false,
    encryption: {
      ...plugin,
      outgoing: async (raw, infoHash, signal) => {
        const duplex = await plugin.outgoing(raw, infoHash, signal);
        methods.push((duplex as MseDuplex).method);
        return duplex;
      },
      incoming: (raw, lookup, signal) => plugin.incoming(raw, lookup, signal),
    },
  });
  const meta = parseMetainfo(torrentBytes);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const torrent = await session.add(meta, { peers: [`127.0.0.1:${seederPort}`] });
  await withTimeout(torrent.completed, 600_000, `the ${policy} download`);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  if (methods.length === 0) methods.push("plaintext (no MSE)");
  return {
    seconds,
    mibPerSec: meta.totalLength / MIB / seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    methods,
  };
}

function fmt(m: Measured): string {
  return `${m.seconds.toFixed(2)} s ${m.mibPerSec.toFixed(1)} MiB/s cpu ${m.cpuSeconds.toFixed(2)} s`;
}

/** MiB/s of `Rc4.process` over 64 KiB buffers, out of place (as the connection uses it). */
function rc4Speed(totalMiB: number): number {
  const rc4 = new Rc4(new Uint8Array(20).fill(7));
  const input = new Uint8Array(65536);
  const output = new Uint8Array(65536);
  for (let i = 0; i < 64; i++) rc4.process(input, output); // warm up the JIT
  const cpu = process.cpuUsage();
  for (let done = 0; done < totalMiB * MIB; done += input.length) rc4.process(input, output);
  const used = process.cpuUsage(cpu);
  return totalMiB / ((used.user + used.system) / 1e6);
}

async function benchSize(sizeMiB: number, report: (line: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-mse-" });
  try {
    const dataDir = join(dir, "data");
    const size = sizeMiB * MIB;
    await makePayload(dataDir, [{ path: "payload.bin", size }], 11);
    const torrentPath = join(dir, "payload.torrent");
    const pieceLength = automaticPieceLength(size);
    await makeTorrentWithLibtorrent(join(dataDir, "payload.bin"), torrentPath, pieceLength);
    const torrentBytes = await Deno.readFile(torrentPath);
    report(
      `${sizeMiB} MiB single file, ${pieceLength / 1024} KiB pieces, one libtorrent seeder (enc enabled)`,
    );
    await using seeder = await startLibtorrentSeeder({
      torrentPath,
      dataDir,
      enc: "enabled",
      readyTimeoutMs: 300_000,
    });
    const plain: Measured[] = [];
    const rc4: Measured[] = [];
    const ltPlain: Measured[] = [];
    const ltRc4: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [enc, into] of [["disabled", ltPlain], ["forced", ltRc4]] as const) {
        const out = join(dir, `lt-${enc}-${round}`);
        const r = await runLibtorrentLeecher({
          torrentPath,
          dataDir: out,
          peers: [`127.0.0.1:${seeder.port}`],
          enc,
          timeoutMs: 600_000,
        });
        into.push({
          seconds: r.seconds,
          mibPerSec: sizeMiB / r.seconds,
          cpuSeconds: r.cpuSeconds,
          methods: [],
        });
        await Deno.remove(out, { recursive: true });
      }
      for (const [policy, into] of [["disable", plain], ["require", rc4]] as const) {
        const out = join(dir, `${policy}-${round}`);
        const m = await download(torrentBytes, out, seeder.port, policy);
        into.push(m);
        await Deno.remove(out, { recursive: true });
        report(
          `  round ${round + 1} shoal ${policy === "disable" ? "plaintext" : "MSE RC4  "}: ${fmt(m)} ` +
            `(${m.methods.join(", ")})`,
        );
      }
      report(`  round ${round + 1} libtorrent plaintext: ${fmt(ltPlain[round]!)}`);
      report(`  round ${round + 1} libtorrent MSE RC4  : ${fmt(ltRc4[round]!)}`);
    }
    const best = (xs: Measured[]) => xs.reduce((a, b) => (b.mibPerSec > a.mibPerSec ? b : a));
    const median = (xs: Measured[]) => [...xs].sort((a, b) => a.mibPerSec - b.mibPerSec)[xs.length >> 1]!;
    const p = best(plain), e = best(rc4);
    report(
      `  best: plaintext ${p.mibPerSec.toFixed(1)} MiB/s, MSE RC4 ${e.mibPerSec.toFixed(1)} MiB/s, ` +
        `ratio ${(e.mibPerSec / p.mibPerSec).toFixed(2)} (target >= 0.8); median ratio ${
          (median(rc4).mibPerSec / median(plain).mibPerSec).toFixed(2)
        }`,
    );
    report(
      `  CPU seconds (shoal): plaintext ${p.cpuSeconds.toFixed(2)}, MSE RC4 ${e.cpuSeconds.toFixed(2)} ` +
        `(+${(e.cpuSeconds - p.cpuSeconds).toFixed(2)} s for ${sizeMiB} MiB of RC4)`,
    );
    const lp = best(ltPlain), le = best(ltRc4);
    report(
      `  libtorrent's own leecher, same seeder: plaintext ${lp.mibPerSec.toFixed(1)} MiB/s, ` +
        `MSE RC4 ${le.mibPerSec.toFixed(1)} MiB/s, ratio ${(le.mibPerSec / lp.mibPerSec).toFixed(2)}; ` +
        `shoal MSE RC4 / libtorrent MSE RC4 ${(e.mibPerSec / le.mibPerSec).toFixed(2)}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs the MSE benchmark: RC4 speed, then plaintext vs encrypted downloads at 256 MiB and
 * 1 GiB.
 *
 * @param report Receives result lines.
 */
export async function run(report: (line: string) => void): Promise<void> {
  report(`RC4 (plugins/encryption/rc4.ts): ${rc4Speed(512).toFixed(0)} MiB/s per core, out of place`);
  await benchSize(256, report);
  await benchSize(1024, report);
}

if (import.meta.main) await run((line) => console.log(line));
