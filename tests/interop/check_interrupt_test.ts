/**
 * Ctrl+C during the start-up data check (issue 12, items 3 and 8): `cli.ts seed` of a
 * multi-GiB torrent with no resume data shows "Checking existing data: N% (...)" while it
 * hashes, and SIGINT stops the check within a second or two (not when the whole check ends)
 * with exit code 130, "Interrupted while checking data", and no resume file written.
 *
 * The data is one sparse 6 GiB file (zeros, so it costs no disk space and its piece hashes
 * are all one digest, computed once) beside a small file of real bytes: reading and hashing
 * all of it takes several seconds, far more than the deadline after SIGINT.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encode, parseMetainfo } from "../../mod.ts";
import { sha1 } from "../../lib/storage/verify.ts";
import { LineProcess, REPO_ROOT } from "./_download_helpers.ts";

const PIECE = 4 * 1024 * 1024;
const BIG = 6 * 1024 * 1024 * 1024;
const SMALL = PIECE * 2;

Deno.test("cli seed: Ctrl+C during the data check stops it at once and exits 130", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-check-interrupt-" });
  try {
    const data = join(dir, "big");
    await Deno.mkdir(data);
    const small = new Uint8Array(SMALL).map((_, i) => (i * 2654435761) >>> 24);
    await Deno.writeFile(join(data, "a_small.bin"), small);
    const file = await Deno.open(join(data, "b_sparse.bin"), { write: true, create: true });
    await file.truncate(BIG);
    file.close();
    const zeroHash = sha1(new Uint8Array(PIECE));
    const hashes = new Uint8Array(((SMALL + BIG) / PIECE) * 20);
    hashes.set(sha1(small.subarray(0, PIECE)), 0);
    hashes.set(sha1(small.subarray(PIECE)), 20);
    for (let i = 2; i < hashes.length / 20; i++) hashes.set(zeroHash, i * 20);
    const torrent = encode({
      info: {
        files: [{ length: SMALL, path: ["a_small.bin"] }, { length: BIG, path: ["b_sparse.bin"] }],
        name: "big",
        "piece length": PIECE,
        pieces: hashes,
      },
    });
    const meta = parseMetainfo(torrent);
    const torrentPath = join(dir, "big.torrent");
    await Deno.writeFile(torrentPath, torrent);

    await using seed = new LineProcess("shoal seed", Deno.execPath(), [
      "run",
      "-A",
      join(REPO_ROOT, "cli.ts"),
      "seed",
      torrentPath,
      dir,
      "--bind",
      "127.0.0.1",
      "--no-dht",
      "--no-lsd",
    ], REPO_ROOT);
    await seed.waitForLine((l) => /^Checking existing data: \d+% \(/.test(l), 30_000, "checking progress");
    // Some of the check done, far from all of it.
    await new Promise((r) => setTimeout(r, 300));
    const sent = performance.now();
    seed.kill("SIGINT");
    const status = await seed.wait(10_000);
    const seconds = (performance.now() - sent) / 1000;
    assert.equal(status.code, 130, seed.tail());
    assert.ok(seconds < 3, `exited ${seconds.toFixed(1)} s after Ctrl+C\n${seed.tail()}`);
    assert.ok(seed.stderrLines.includes("Interrupted while checking data"), seed.tail());
    assert.ok(!seed.stderrLines.some((l) => /^Checking existing data: 100%/.test(l)), seed.tail());
    const resume = join(dir, ".shoal", `${meta.infoHashHex}.resume`);
    await assert.rejects(Deno.lstat(resume), Deno.errors.NotFound, "an interrupted check wrote resume data");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
