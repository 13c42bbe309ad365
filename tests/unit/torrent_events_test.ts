import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createTorrent,
  type Metainfo,
  parseMetainfo,
  Session,
  type Torrent,
  type TorrentStats,
} from "../../mod.ts";
import { incomingTarget } from "../../lib/torrent/internal.ts";
import { withDeadline } from "../_fake_peer.ts";

/** A seeded file in `dir/seed` and its torrent. */
async function seedFile(dir: string, size: number): Promise<{ meta: Metainfo; data: Uint8Array }> {
  const data = new Uint8Array(size).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
  await Deno.mkdir(join(dir, "seed"));
  await Deno.writeFile(join(dir, "seed", "file.bin"), data);
  const made = await createTorrent(join(dir, "seed", "file.bin"), { pieceLength: 65536, creationDate: null });
  return { meta: parseMetainfo(made.torrent), data };
}

// Type-level guarantees: these lines are checked by `deno check` (and `deno test`), no cast needed.
function typedListeners(torrent: Torrent): void {
  torrent.addEventListener("progress", (e) => {
    const percent: number = e.detail.percent;
    // @ts-expect-error: a progress event's detail has no `piece`
    void e.detail.piece;
    void percent;
  });
  torrent.addEventListener("piece-lost", (e) => {
    const reason: "changed" | "missing" = e.detail.reason;
    void reason;
  });
  torrent.addEventListener("error", (e) => {
    const error: Error = e.detail.error;
    void error;
  });
  // The generic overload stays for any other name.
  torrent.addEventListener("something-else", (e: Event) => void e.type);
}
void typedListeners;

Deno.test("typed listeners get each event's detail, a progress with percent 100 comes right before done, removed listeners are not called", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-events-" });
  try {
    const { meta, data } = await seedFile(dir, 1024 * 1024 + 77);
    await using seeder = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
    });
    await seeder.add(meta);
    await using leecher = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
    });
    const order: string[] = [];
    let lastProgress: TorrentStats | undefined;
    let doneStats: TorrentStats | undefined;
    let progressAtDone: TorrentStats | undefined;
    const verified: number[] = [];
    let removedCalls = 0;
    const removed = (_e: CustomEvent<{ piece: number }>) => removedCalls++;
    const torrent = await leecher.add(meta, {
      peers: [`127.0.0.1:${seeder.port}`],
      onTorrent: (t) => {
        t.addEventListener("progress", (e) => {
          order.push("progress");
          lastProgress = e.detail;
        });
        t.addEventListener("piece-verified", (e) => verified.push(e.detail.piece));
        t.addEventListener("piece-verified", removed);
        t.removeEventListener("piece-verified", removed);
        t.addEventListener("done", (e) => {
          order.push("done");
          doneStats = e.detail;
          progressAtDone = lastProgress;
        });
      },
    });
    await withDeadline(torrent.completed, 30_000, "the download");
    assert.deepEqual(await Deno.readFile(join(dir, "leech", "file.bin")), data);
    assert.equal(removedCalls, 0, "a removed listener is not called");
    assert.equal(new Set(verified).size, meta.pieceCount);
    assert.ok(doneStats !== undefined, "done was sent");
    assert.equal(doneStats.done, true);
    const at = order.indexOf("done");
    assert.equal(order[at - 1], "progress", `a progress event comes right before done: ${order.join(",")}`);
    assert.equal(progressAtDone?.percent, 100);
    assert.equal(progressAtDone?.done, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a torrent that starts complete sends a progress with percent 100 before done", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-events-" });
  try {
    const { meta } = await seedFile(dir, 200_000);
    await using session = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
    });
    const order: [string, number][] = [];
    const torrent = await session.add(meta, {
      onTorrent: (t) => {
        t.addEventListener("progress", (e) => order.push(["progress", e.detail.percent]));
        t.addEventListener("done", (e) => order.push(["done", e.detail.percent]));
      },
    });
    await withDeadline(torrent.completed, 10_000, "the seed to be done");
    const at = order.findIndex(([type]) => type === "done");
    assert.ok(at > 0, `done after a progress: ${JSON.stringify(order)}`);
    assert.deepEqual(order[at - 1], ["progress", 100]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("accepts, handshake and attach are not on Torrent's public surface; the session reaches them through the internal handle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-events-" });
  try {
    const { meta } = await seedFile(dir, 100_000);
    await using session = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
    });
    const torrent = await session.add(meta);
    for (const name of ["accepts", "handshake", "attach"]) {
      assert.equal(name in torrent, false, `${name} is not a member of Torrent`);
    }
    const handle = incomingTarget(torrent);
    assert.ok(handle !== undefined, "the torrent registered its handle");
    assert.deepEqual(handle.handshake().infoHash, meta.infoHash);
    assert.equal(handle.accepts("127.0.0.1:40000"), true);
    assert.equal(incomingTarget({}), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
