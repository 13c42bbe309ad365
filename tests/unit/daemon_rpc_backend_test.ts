import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, parseMetainfo, Session } from "../../mod.ts";
import { managerBackend, StateStore, TorrentManager } from "../../lib/daemon/mod.ts";
import { TR_STATUS } from "../../lib/rpc/mod.ts";

// managerBackend(): the Transmission RPC contract over the daemon's torrent manager.

Deno.test("managerBackend() adds, sets and stops through the manager, so it is all saved, and refuses what the manager cannot do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_manager_backend_" });
  const open = async () => {
    const session = new Session({ downloadDir: join(dir, "dl"), bind: "127.0.0.1", lsd: false });
    const store = await StateStore.open(join(dir, "state"), { logger: session.logger });
    const manager = await TorrentManager.open({ session, store, downloadDir: join(dir, "dl"), tickMs: 50 });
    const backend = managerBackend(manager, {
      session,
      downloadDir: join(dir, "dl"),
      stateDir: join(dir, "state"),
    });
    return { manager, backend };
  };
  let manager: TorrentManager | undefined;
  try {
    await Deno.mkdir(join(dir, "src"));
    await Deno.writeFile(join(dir, "src", "a.bin"), new Uint8Array(40_000).map((_, i) => i & 0xff));
    const made = await createTorrent(join(dir, "src", "a.bin"), { pieceLength: 16384, creationDate: null });
    const meta = parseMetainfo(made.torrent);
    let opened = await open();
    manager = opened.manager;
    let backend = opened.backend;

    const added = await backend.add({ metainfo: made.torrent, paused: true, labels: ["linux"] });
    assert.equal(added.duplicate, false);
    assert.equal(added.entry.id, 1);
    assert.equal(added.entry.hashString, meta.infoHashHex);
    assert.equal((await backend.add({ metainfo: made.torrent })).duplicate, true);
    const magnet = await backend.add({
      filename: `magnet:?xt=urn:btih:${"07".repeat(20)}&dn=m`,
      paused: true,
    });
    assert.equal(magnet.entry.id, 2);
    assert.equal(magnet.entry.status, TR_STATUS.stopped); // a paused magnet

    await backend.set(1, {
      uploadLimit: 50,
      uploadLimited: true,
      seedRatioLimit: 1.5,
      seedRatioMode: 1,
      labels: ["a", "b"],
      filesUnwanted: [0],
    });
    await backend.stop(1);
    const entry = backend.torrents().find((e) => e.id === 1)!;
    assert.equal(entry.status, TR_STATUS.stopped);
    assert.equal(entry.uploadLimit, 50);
    assert.equal(entry.uploadLimited, true);
    assert.equal(entry.seedRatioMode, 1);
    assert.equal(entry.seedRatioLimit, 1.5);
    assert.deepEqual(entry.labels, ["a", "b"]);
    assert.deepEqual(entry.wanted, [false]);
    assert.equal(entry.downloadDir, join(dir, "dl"));
    assert.match(entry.magnetLink, new RegExp(`btih:${meta.infoHashHex}`));

    // What the manager cannot do is refused, and nothing is changed.
    assert.throws(() => backend.moveInQueue([1], "top"), /not supported/);
    await assert.rejects(backend.setLocation(1, join(dir, "dl"), { move: false }), /not supported/);
    await assert.rejects(backend.set(1, { queuePosition: 1 }), /not supported/);
    await assert.rejects(backend.add({ filename: "/etc/passwd" }), /outside the folders/);
    await assert.rejects(backend.stop(9), /no torrent with id 9/);
    await assert.rejects(backend.portTest(), /not supported/);

    // The manager saved it all: a new manager on the same state shows the same.
    await manager.close();
    opened = await open();
    manager = opened.manager;
    backend = opened.backend;
    await manager.whenStarted(1); // restored: its data is checked against the resume record first
    const again = backend.torrents();
    assert.deepEqual(again.map((e) => e.id), [1, 2]);
    assert.equal(again[0]!.status, TR_STATUS.stopped);
    assert.equal(again[0]!.uploadLimit, 50);
    assert.deepEqual(again[0]!.labels, ["a", "b"]);
    assert.deepEqual(again[0]!.wanted, [false]);

    await backend.remove(2, { deleteData: false });
    assert.deepEqual(backend.torrents().map((e) => e.id), [1]);
    assert.deepEqual(backend.removedSince(60), [2]);
  } finally {
    await manager?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
