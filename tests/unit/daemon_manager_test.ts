import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, formatMagnet, parseMetainfo, Session } from "../../mod.ts";
import { type DaemonTorrentState, StateStore, TorrentManager } from "../../lib/daemon/mod.ts";

// The daemon's torrent manager, with real shoal sessions on 127.0.0.1 as seeds.

const PIECE = 32768;

interface World {
  dir: string;
  torrent: Uint8Array;
  torrentPath: string;
  seedPort: number;
  files: Record<string, Uint8Array>;
  /** A manager on `<dir>/state`, downloading into `<dir>/dl`. */
  open(): Promise<TorrentManager>;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_manager_" });
  const opened: TorrentManager[] = [];
  const files: Record<string, Uint8Array> = {
    "a.bin": new Uint8Array(5 * PIECE).map((_, i) => (i * 7 + (i >> 9)) & 0xff),
    "sub/b.bin": new Uint8Array(3 * PIECE + 100).map((_, i) => (i * 11 + 3) & 0xff),
  };
  try {
    for (const [path, bytes] of Object.entries(files)) {
      await Deno.mkdir(join(dir, "seed", "data", path, ".."), { recursive: true });
      await Deno.writeFile(join(dir, "seed", "data", path), bytes);
    }
    const made = await createTorrent(join(dir, "seed", "data"), { pieceLength: PIECE, creationDate: null });
    const torrentPath = join(dir, "data.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    await using seeder = new Session({ downloadDir: join(dir, "seed"), bind: "127.0.0.1", lsd: false });
    await seeder.add(parseMetainfo(made.torrent));
    await fn({
      dir,
      torrent: made.torrent,
      torrentPath,
      seedPort: seeder.port,
      files,
      open: async () => {
        const session = new Session({ downloadDir: join(dir, "dl"), bind: "127.0.0.1", lsd: false });
        const store = await StateStore.open(join(dir, "state"), { logger: session.logger });
        const manager = await TorrentManager.open({
          session,
          store,
          downloadDir: join(dir, "dl"),
          tickMs: 50,
        });
        opened.push(manager);
        return manager;
      },
    });
  } finally {
    await Promise.all(opened.map((m) => m.close()));
    await Deno.remove(dir, { recursive: true });
  }
}

async function waitFor(what: string, test: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function stateIs(manager: TorrentManager, id: number, state: DaemonTorrentState): () => boolean {
  return () => manager.get(id)?.state === state;
}

Deno.test("TorrentManager adds bytes, a path and a duplicate, downloads, and restores paused state and labels", async () => {
  await withWorld(async (world) => {
    const manager = await world.open();
    const peers = [`127.0.0.1:${world.seedPort}`];
    const added = await manager.add({ torrent: world.torrent }, { peers, labels: ["iso", " iso ", "linux"] });
    assert.equal(added.id, 1);
    assert.equal(added.duplicate, false);
    const again = await manager.add({ path: world.torrentPath });
    assert.deepEqual(again, { ...added, duplicate: true });
    await waitFor("seeding", stateIs(manager, 1, "seeding"));
    const snap = manager.get(1)!;
    assert.deepEqual(snap.labels, ["iso", "linux"]);
    assert.equal(snap.files.length, 2);
    assert.ok(snap.files.every((f) => f.bytesCompleted === f.length && f.wanted));
    assert.ok(snap.doneAt !== null);
    JSON.stringify(manager.snapshot()); // JSON-safe
    for (const [path, bytes] of Object.entries(world.files)) {
      assert.deepEqual(await Deno.readFile(join(world.dir, "dl", "data", path)), bytes);
    }
    await manager.pause(1);
    assert.equal(manager.get(1)!.state, "paused");
    await manager.setLabels(1, ["kept"]);
    await manager.close();

    const restored = await world.open();
    assert.equal(restored.size, 1);
    await restored.whenStarted(1);
    assert.equal(restored.get(1)!.state, "paused");
    assert.deepEqual(restored.get(1)!.labels, ["kept"]);
    assert.equal(restored.get(1)!.stats?.done, true, "resume data was used");
    await restored.resume(1);
    assert.equal(restored.get(1)!.state, "seeding");
    const second = await restored.add({ magnet: formatMagnet({ ...parseMagnetOf(world.torrent), peers }) });
    assert.equal(second.duplicate, true);
  });
});

function parseMagnetOf(torrent: Uint8Array) {
  const meta = parseMetainfo(torrent);
  return { infoHash: meta.infoHash, infoHashHex: meta.infoHashHex, trackers: [], webSeeds: [], peers: [] };
}

Deno.test("TorrentManager lists a magnet at once and saves its metainfo when it arrives", async () => {
  await withWorld(async (world) => {
    const manager = await world.open();
    const states: DaemonTorrentState[] = [];
    manager.addEventListener("state-changed", (e) => void states.push(e.detail.to));
    const link = { ...parseMagnetOf(world.torrent), peers: [`127.0.0.1:${world.seedPort}`] };
    const { id, hash } = await manager.add({ magnet: formatMagnet(link) });
    assert.equal(manager.get(id)!.state, "magnet");
    await waitFor("seeding", stateIs(manager, id, "seeding"));
    await waitFor("a state-changed event to seeding", () => states.includes("seeding"));
    assert.equal(manager.get(id)!.name, "data");
    const saved = parseMetainfo(await Deno.readFile(join(world.dir, "state", "torrents", `${hash}.torrent`)));
    assert.equal(saved.infoHashHex, hash);
  });
});

Deno.test("TorrentManager finishes a torrent whose seed goal is reached, and removes it keeping or deleting data", async () => {
  await withWorld(async (world) => {
    const manager = await world.open();
    const removed: number[] = [];
    manager.addEventListener("removed", (e) => void removed.push(e.detail.id));
    const { id, hash } = await manager.add({ torrent: world.torrent }, {
      peers: [`127.0.0.1:${world.seedPort}`],
      seedGoals: { ratio: 0 },
    });
    await waitFor("finished", stateIs(manager, id, "finished"));
    await manager.remove(id);
    assert.deepEqual(removed, [id]);
    assert.equal(manager.get(id), undefined);
    assert.ok(Deno.statSync(join(world.dir, "dl", "data", "a.bin")).isFile, "data kept");
    await assert.rejects(
      Deno.stat(join(world.dir, "state", "torrents", `${hash}.json`)),
      Deno.errors.NotFound,
    );

    const next = await manager.add({ torrent: world.torrent });
    assert.equal(next.id, id + 1, "ids are not reused");
    await waitFor("seeding", stateIs(manager, next.id, "seeding"));
    await Deno.writeTextFile(join(world.dir, "dl", "data", "sub", "mine.txt"), "not the torrent's");
    await manager.remove(next.id, { deleteData: true });
    await assert.rejects(Deno.stat(join(world.dir, "dl", "data", "a.bin")), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(join(world.dir, "dl", "data", "sub", "b.bin")), Deno.errors.NotFound);
    assert.ok(Deno.statSync(join(world.dir, "dl", "data", "sub", "mine.txt")).isFile, "other files stay");
  });
});

Deno.test("TorrentManager deletes nothing outside the download folder through a planted symbolic link", async () => {
  await withWorld(async (world) => {
    const outside = join(world.dir, "outside");
    await Deno.mkdir(join(outside, "sub"), { recursive: true });
    await Deno.writeTextFile(join(outside, "a.bin"), "precious");
    await Deno.writeTextFile(join(outside, "sub", "b.bin"), "precious too");
    await Deno.mkdir(join(world.dir, "dl"), { recursive: true });
    await Deno.symlink(outside, join(world.dir, "dl", "data"));
    const manager = await world.open();
    const { id } = await manager.add({ torrent: world.torrent }, { paused: true });
    await manager.whenStarted(id);
    await manager.remove(id, { deleteData: true });
    assert.equal(await Deno.readTextFile(join(outside, "a.bin")), "precious");
    assert.equal(await Deno.readTextFile(join(outside, "sub", "b.bin")), "precious too");
    assert.ok(Deno.lstatSync(join(world.dir, "dl", "data")).isSymlink);
  });
});

Deno.test("TorrentManager refuses bad input with typed errors and keeps running", async () => {
  await withWorld(async (world) => {
    const manager = await world.open();
    await assert.rejects(manager.add({ torrent: new TextEncoder().encode("d4:infoi1ee") }), {
      name: "MetainfoError",
    });
    await assert.rejects(manager.add({ url: "ftp://example.com/x.torrent" }), { code: "INVALID_SOURCE" });
    await assert.rejects(manager.add({ path: join(world.dir, "none.torrent") }), { code: "INVALID_SOURCE" });
    await assert.rejects(manager.pause(42), { code: "NOT_FOUND" });
    const { id } = await manager.add({ torrent: world.torrent }, { paused: true });
    await assert.rejects(manager.setLimits(id, { upload: -1 }), { code: "INVALID_ARGUMENT" });
    await assert.rejects(manager.setFiles(id, { files: [9], wanted: false }), { code: "INVALID_ARGUMENT" });
    await manager.setFiles(id, { files: [1], wanted: false, priority: "high" });
    assert.deepEqual(manager.get(id)!.files.map((f) => [f.wanted, f.priority]), [[true, "normal"], [
      false,
      "high",
    ]]);
    assert.equal(manager.size, 1);
  });
});
