import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, type Metainfo, parseMetainfo, Session, ShoalError, type Torrent } from "../../mod.ts";
import { withDeadline } from "../_fake_peer.ts";

// pause() and resume() between two shoal sessions on 127.0.0.1. The seed is rate-limited so the
// download is still running when it is paused. Every wait has a deadline; nothing is timed.

const LOOPBACK = { hostname: "127.0.0.1", trackers: false, lsd: false, dht: false } as const;

async function seedFile(dir: string, size: number): Promise<{ meta: Metainfo; data: Uint8Array }> {
  const data = new Uint8Array(size).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
  await Deno.mkdir(join(dir, "seed"));
  await Deno.writeFile(join(dir, "seed", "file.bin"), data);
  const made = await createTorrent(join(dir, "seed", "file.bin"), { pieceLength: 65536, creationDate: null });
  return { meta: parseMetainfo(made.torrent), data };
}

/** Waits until `check()` holds, polling; fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  await withDeadline(
    (async () => {
      while (!check()) await new Promise((r) => setTimeout(r, 25));
    })(),
    ms,
    what,
  );
}

/** Waits for `n` more progress events (the torrent's 1 s ticks). */
function ticks(torrent: Torrent, n: number): Promise<void> {
  return withDeadline(
    new Promise<void>((resolve) => {
      let seen = 0;
      const onProgress = () => {
        if (++seen < n) return;
        torrent.removeEventListener("progress", onProgress);
        resolve();
      };
      torrent.addEventListener("progress", onProgress);
    }),
    n * 1000 + 5000,
    `${n} progress ticks`,
  );
}

Deno.test("pause() mid-download closes every peer and stops the transfer; resume() completes it with verified data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-pause-" });
  try {
    const { meta, data } = await seedFile(dir, 3 * 1024 * 1024 + 321);
    await using seeder = new Session({
      ...LOOPBACK,
      downloadDir: join(dir, "seed"),
      uploadLimit: 768 * 1024,
    });
    const seed = await seeder.add(meta);
    await using leecher = new Session({ ...LOOPBACK, downloadDir: join(dir, "leech") });
    const torrent = await leecher.add(meta, { peers: [`127.0.0.1:${seeder.port}`] });
    await until(() => torrent.stats().downloaded >= 256 * 1024, 30_000, "the download to be under way");
    assert.equal(torrent.stats().done, false, "the rate limit keeps the download running");

    await torrent.pause();
    await torrent.pause(); // a second pause does nothing
    assert.equal(torrent.state, "paused");
    assert.equal(torrent.stats().state, "paused");
    assert.deepEqual(torrent.peers(), []);
    await until(() => seed.peers().length === 0, 10_000, "the seed to see the leecher go");
    const downloaded = torrent.stats().downloaded;
    const have = torrent.have.count();
    await ticks(torrent, 3);
    assert.equal(torrent.stats().downloaded, downloaded, "nothing is received while paused");
    assert.deepEqual(torrent.peers(), [], "no peer is dialled while paused");
    assert.equal(torrent.state, "paused");
    assert.ok(torrent.have.count() >= have, "the progress is kept");
    let settled = false;
    torrent.completed.then(() => settled = true, () => settled = true);
    await ticks(torrent, 1);
    assert.equal(settled, false, "completed stays pending while paused");

    torrent.resume();
    torrent.resume(); // not paused any more: nothing happens
    assert.equal(torrent.state, "downloading");
    await withDeadline(torrent.completed, 60_000, "the download to complete after resume");
    assert.equal(torrent.state, "seeding");
    assert.deepEqual(await Deno.readFile(join(dir, "leech", "file.bin")), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a paused seed refuses an incoming leecher until it is resumed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-pause-" });
  try {
    const { meta, data } = await seedFile(dir, 512 * 1024 + 7);
    await using seeder = new Session({ ...LOOPBACK, downloadDir: join(dir, "seed") });
    const seed = await seeder.add(meta);
    await withDeadline(seed.completed, 10_000, "the seed to be complete");
    await seed.pause();
    assert.equal(seed.state, "paused");
    assert.equal(seed.stats().state, "paused");

    await using leecher = new Session({ ...LOOPBACK, downloadDir: join(dir, "leech") });
    const torrent = await leecher.add(meta, { peers: [`127.0.0.1:${seeder.port}`] });
    let connected = 0;
    torrent.addEventListener("peer-connected", () => connected++);
    await ticks(seed, 3);
    assert.equal(connected, 0, "the paused seed refused the leecher");
    assert.deepEqual(seed.peers(), []);
    assert.equal(torrent.stats().completedPieces, 0);

    seed.resume();
    assert.equal(seed.state, "seeding");
    await withDeadline(torrent.completed, 60_000, "the leecher to download from the resumed seed");
    assert.ok(connected > 0);
    assert.deepEqual(await Deno.readFile(join(dir, "leech", "file.bin")), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pause() during the start-up check or after stop() throws NOT_RUNNING; resume() of a running torrent does nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-pause-" });
  try {
    const { meta } = await seedFile(dir, 300_000);
    await using session = new Session({ ...LOOPBACK, downloadDir: join(dir, "seed") });
    let during: Promise<void> | undefined;
    const torrent = await session.add(meta, {
      onTorrent: (t) => {
        during = t.pause();
        during.catch(() => {/* asserted below */});
      },
    });
    await assert.rejects(during!, (e: unknown) => e instanceof ShoalError && e.code === "NOT_RUNNING");
    await withDeadline(torrent.completed, 10_000, "the seed to be complete");
    torrent.resume();
    assert.equal(torrent.state, "seeding");
    await torrent.stop();
    await assert.rejects(
      torrent.pause(),
      (e: unknown) => e instanceof ShoalError && e.code === "NOT_RUNNING" && /stopped/.test(e.message),
    );
    torrent.resume();
    assert.equal(torrent.state, "stopped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
