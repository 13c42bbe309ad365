/**
 * kill -9 in the middle of a download, then run it again: the shoal CLI downloads from
 * a libtorrent seeder and is killed with SIGKILL once a random fraction (20% to 80%,
 * from a printed seed) of the pieces is on disk; a second run must finish with
 * identical bytes and fetch only what was missing.
 *
 * How much each run fetched is measured on the other side: every run gets a fresh
 * libtorrent seeder, which reports the payload bytes it uploaded when stopped. The
 * kill point is found by sampling the download folder itself (`PieceSampler`), not by
 * timing. The second run's own view of what survived comes from its
 * "Checked existing data" log record (`--log-level info`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent } from "./_harness.ts";
import {
  compareDownload,
  MIB,
  PieceSampler,
  type PreparedTorrent,
  prepareTorrent,
  seededRandom,
  startCli,
  startCountingSeeder,
  testSeed,
} from "./_download_helpers.ts";

const LT = await hasLibtorrent();
const ROUNDS = 3;
/** Blocks a single seeder may send twice or that arrive after a piece was written: a small margin. */
const MARGIN_BYTES = 1 * MIB;
/** Tries per round to kill the first run before it completes. */
const MAX_ATTEMPTS = 3;

interface FirstRun {
  /** Pieces whose first bytes were on disk after the kill. */
  onDisk: number;
  /** Payload bytes the seeder sent to the first run. */
  uploaded: number;
}

/**
 * Runs the CLI from a fresh libtorrent seeder and SIGKILLs it once `targetPieces` pieces are
 * on disk. Resolves with undefined when the download completed before that.
 */
async function runUntilKilled(
  prepared: PreparedTorrent,
  out: string,
  targetPieces: number,
): Promise<FirstRun | undefined> {
  const sampler = await PieceSampler.create(prepared, out);
  const seeder = await startCountingSeeder(prepared.torrentPath, prepared.seedDir, 60_000);
  let onDisk: number;
  let uploaded: number;
  try {
    const cli = startCli(["download", prepared.torrentPath, "-o", out, "--peer", `127.0.0.1:${seeder.port}`]);
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const count = await sampler.sample();
        if (count >= targetPieces) {
          cli.kill("SIGKILL");
          break;
        }
        if (cli.exited !== undefined) {
          await cli.wait(10_000);
          if (
            cli.exited.code === 0 && count < targetPieces && (await sampler.sample()) === sampler.pieceCount
          ) {
            return undefined;
          }
          throw new Error(
            `The first run exited (code ${cli.exited.code}) with ${count} pieces\n${cli.tail()}`,
          );
        }
        if (Date.now() > deadline) {
          throw new Deno.errors.TimedOut(`Timed out: ${count} pieces\n${cli.tail()}`);
        }
      }
      const status = await cli.wait(10_000);
      assert.equal(status.signal, "SIGKILL", `the first run should die of SIGKILL\n${cli.tail()}`);
    } finally {
      await cli.stop();
    }
    onDisk = await sampler.sample();
  } finally {
    uploaded = await seeder.stop();
  }
  return { onDisk, uploaded };
}

interface Round {
  targetPercent: number;
  killedAtPercent: number;
  piecesOnDiskAtKill: number;
  haveAtRestart: number;
  rechecked: number;
  firstRunUploadedMiB: number;
  missingMiB: number;
  secondRunFetchedMiB: number;
  secondRunSeconds: number;
}

function parseChecked(lines: readonly string[]): { have: number; rechecked: number } {
  const line = lines.find((l) => l.includes("Checked existing data"));
  const have = line?.match(/\bhave=(\d+)/)?.[1];
  const rechecked = line?.match(/\brechecked=(\d+)/)?.[1];
  if (have === undefined || rechecked === undefined) {
    throw new Error(`No "Checked existing data" record in the CLI's log:\n${lines.join("\n")}`);
  }
  return { have: Number(have), rechecked: Number(rechecked) };
}

Deno.test({
  name: "a download killed with SIGKILL at a random point resumes and fetches only what was missing",
  ignore: !LT,
  async fn() {
    const seed = testSeed();
    console.log(`random seed ${seed} (set SHOAL_TEST_SEED=${seed} to repeat)`);
    const random = seededRandom(seed);
    const dir = await Deno.makeTempDir({ prefix: "shoal-dl-kill-" });
    try {
      const prepared = await prepareTorrent(dir, { seed: 14 });
      const meta = prepared.metainfo;
      const pieceBytes = (n: number) => n * meta.pieceLength;
      const rounds: Round[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // First run: killed once a random fraction of the pieces is on disk. On a loaded machine
        // the sampler can miss a late kill point (the run completes first): then try a new
        // folder and point, a few times, and say so.
        let first: FirstRun | undefined;
        let out = "";
        let target = 0;
        for (let attempt = 0; attempt < MAX_ATTEMPTS && first === undefined; attempt++) {
          out = join(dir, `out-${round}-${attempt}`);
          target = 0.2 + 0.6 * random();
          first = await runUntilKilled(prepared, out, Math.ceil(target * meta.pieceCount));
          if (first === undefined) {
            console.log(`round ${round}: the first run completed before the kill point`);
          }
        }
        assert(first !== undefined, `the first run completed before the kill point ${MAX_ATTEMPTS} times`);

        // Second run: to completion, from a fresh seeder that counts what it sends.
        const seeder2 = await startCountingSeeder(prepared.torrentPath, prepared.seedDir, 60_000);
        let secondUploaded: number;
        let checked: { have: number; rechecked: number };
        let seconds: number;
        try {
          const cli = startCli([
            "download",
            prepared.torrentPath,
            "-o",
            out,
            "--peer",
            `127.0.0.1:${seeder2.port}`,
            "--log-level",
            "info",
          ]);
          try {
            const started = performance.now();
            const status = await cli.wait(120_000);
            seconds = (performance.now() - started) / 1000;
            assert.equal(status.code, 0, `second run: exit code ${status.code}\n${cli.tail()}`);
            checked = parseChecked(cli.stderrLines);
          } finally {
            await cli.stop();
          }
        } finally {
          secondUploaded = await seeder2.stop();
        }
        assert.deepEqual(await compareDownload(prepared, out), [], `round ${round}`);

        // What was missing, the short last piece counted as a whole one: an upper bound.
        const missing = pieceBytes(meta.pieceCount - checked.have);
        const r: Round = {
          targetPercent: Math.round(target * 1000) / 10,
          killedAtPercent: Math.round((first.onDisk / meta.pieceCount) * 1000) / 10,
          piecesOnDiskAtKill: first.onDisk,
          haveAtRestart: checked.have,
          rechecked: checked.rechecked,
          firstRunUploadedMiB: Math.round((first.uploaded / MIB) * 100) / 100,
          missingMiB: Math.round((missing / MIB) * 100) / 100,
          secondRunFetchedMiB: Math.round((secondUploaded / MIB) * 100) / 100,
          secondRunSeconds: Math.round(seconds * 100) / 100,
        };
        rounds.push(r);
        const info = JSON.stringify(r);
        assert(checked.have > 0, `nothing survived the kill: ${info}`);
        assert(checked.have < meta.pieceCount, `everything survived the kill: ${info}`);
        // Pieces seen on disk may have been cut mid-write; the rest must be found again.
        assert(checked.have >= first.onDisk - 8, `verified pieces were lost: ${info}`);
        assert(secondUploaded < meta.totalLength, `the second run fetched the whole torrent: ${info}`);
        assert(
          secondUploaded <= missing + MARGIN_BYTES,
          `the second run fetched more than was missing: ${info}`,
        );
        assert(
          secondUploaded >= meta.totalLength - pieceBytes(checked.have),
          `the seeder sent less than was missing: ${info}`,
        );
      }
      console.log(`torrent: ${(meta.totalLength / MIB).toFixed(2)} MiB, ${meta.pieceCount} pieces`);
      console.table(rounds);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
