/**
 * `shoal daemon` as a process: a .torrent dropped in its watch folder is downloaded from a
 * rate-limited shoal seed found through shoal's built-in tracker (everything on 127.0.0.1);
 * the daemon is SIGKILLed mid-download and started again on the same state folder. The torrent
 * must be restored, finish bit-identical, and the second run must fetch only part of it (the
 * verified pieces are kept). Then SIGTERM stops it with exit code 0 and resume data saved.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, parseMetainfo, Session } from "../../mod.ts";
import { type LineProcess, startCli } from "./_download_helpers.ts";
import { startBuiltinTracker } from "./_trackers.ts";

const PIECE = 32 * 1024;
const PIECES = 96; // 3 MiB at 384 KiB/s: about 8 s
const RATE = 384 * 1024;

async function waitFor(what: string, test: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("shoal daemon survives SIGKILL mid-download, resumes from its state folder and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_daemon_kill_" });
  await using tracker = await startBuiltinTracker({ interval: 5, minInterval: 1 });
  const payload = new Uint8Array(PIECES * PIECE).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
  await Deno.mkdir(join(dir, "seed"));
  await Deno.writeFile(join(dir, "seed", "data.bin"), payload);
  const made = await createTorrent(join(dir, "seed", "data.bin"), {
    pieceLength: PIECE,
    creationDate: null,
    trackers: [[tracker.httpUrl]],
  });
  const meta = parseMetainfo(made.torrent);
  await using seeder = new Session({
    downloadDir: join(dir, "seed"),
    bind: "127.0.0.1",
    uploadLimit: RATE,
    lsd: false,
  });
  const seed = await seeder.add(meta);
  const args = [
    "daemon",
    "--state-dir",
    join(dir, "state"),
    "--download-dir",
    join(dir, "dl"),
    "--watch-dir",
    join(dir, "watch"),
    "--port",
    "0",
    "--bind",
    "127.0.0.1",
    "--no-dht",
    "--no-lsd",
    "--log-level",
    "info",
  ];
  let daemon: LineProcess | undefined;
  try {
    daemon = startCli(args);
    await daemon.waitForLine(
      (l) => l.includes("shoal daemon ready") && l.includes("0 torrents restored"),
      30_000,
      "ready",
    );
    await Deno.writeFile(join(dir, "watch", "data.torrent"), made.torrent);
    await waitFor(
      "the watch folder to take the torrent",
      () => exists(join(dir, "watch", "data.torrent.added")),
      15_000,
    );
    // Kill once more than a third has been sent (and well before the end).
    await waitFor("a third of the download", () => seed.stats().uploaded >= payload.length / 3, 30_000);
    daemon.kill("SIGKILL");
    await daemon.wait(10_000);
    const firstRun = seed.stats().uploaded;
    assert.ok(firstRun < payload.length * 0.9, `killed too late: ${firstRun} bytes sent`);
    const record = JSON.parse(
      await Deno.readTextFile(join(dir, "state", "torrents", `${meta.infoHashHex}.json`)),
    );
    assert.equal(record.id, 1);

    daemon = startCli(args);
    await daemon.waitForLine(
      (l) => l.includes("shoal daemon ready") && l.includes("1 torrents restored"),
      30_000,
      "ready again",
    );
    const out = join(dir, "dl", "data.bin");
    await waitFor("the download to complete", async () => {
      if (!(await exists(out))) return false;
      const bytes = await Deno.readFile(out);
      return bytes.length === payload.length && bytes.every((b, i) => b === payload[i]);
    }, 60_000);
    const secondRun = seed.stats().uploaded - firstRun;
    assert.ok(
      secondRun < payload.length - firstRun / 2,
      `the second run fetched ${secondRun} of ${payload.length} bytes after ${firstRun} were sent: pieces were fetched again`,
    );
    // Done: the record notes it soon after (saved on the "done" event).
    await waitFor("the done date in the record", async () => {
      const now = JSON.parse(
        await Deno.readTextFile(join(dir, "state", "torrents", `${meta.infoHashHex}.json`)),
      );
      return now.doneAt !== null;
    }, 10_000);
    daemon.kill("SIGTERM");
    const status = await daemon.wait(15_000);
    assert.equal(status.code, 0, daemon.tail());
    assert.ok(await exists(join(dir, "state", "resume", `${meta.infoHashHex}.resume`)), "resume data saved");
  } finally {
    await daemon?.stop();
    await seeder.close();
    await Deno.remove(dir, { recursive: true });
  }
});
