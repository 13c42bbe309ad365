import assert from "node:assert/strict";
import { join } from "node:path";
import { FileStorage } from "../../lib/storage/file_storage.ts";
import { DhtNode } from "../../lib/dht/node.ts";
import { ShoalError } from "../../lib/errors.ts";
import { Session } from "../../mod.ts";
import { makeTorrent } from "../_test_torrent.ts";

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-shutdown-race-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a second FileStorage.close() waits for the first one to close every handle", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent([{ path: "t/a.bin", length: 40_000 }], 16_384);
    const storage = await FileStorage.open(dir, meta);
    await storage.write(0, 0, new Uint8Array(16_384));
    assert.equal(storage.openHandleCount, 1);
    const first = storage.close();
    await storage.close();
    assert.equal(storage.openHandleCount, 0, "the second close() returned before the handles were closed");
    await first;
  });
});

Deno.test("closing a session while add() is still starting rejects the add and leaves nothing running", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent([{ path: "t/a.bin", length: 40_000 }], 16_384);
    const session = new Session({
      downloadDir: dir,
      bind: "127.0.0.1",
      logSinks: [],
      dht: false,
      lsd: false,
    });
    const adding = session.add(meta);
    const closing = session.close();
    // The add must not create a torrent (with its timer, files and listener) after close() ran.
    await assert.rejects(adding, (e: unknown) => e instanceof ShoalError && e.code === "CLOSED");
    await closing;
    assert.equal(session.get(meta.infoHashHex), undefined);
  });
});

Deno.test("a session's second close() waits for the first to stop its torrents", async () => {
  await withTempDir(async (dir) => {
    const { meta, payload } = makeTorrent([{ path: "t/a.bin", length: 40_000 }], 16_384);
    await Deno.mkdir(join(dir, "t"));
    await Deno.writeFile(join(dir, "t", "a.bin"), payload);
    const session = new Session({
      downloadDir: dir,
      bind: "127.0.0.1",
      logSinks: [],
      dht: false,
      lsd: false,
    });
    const torrent = await session.add(meta);
    await torrent.completed;
    const first = session.close();
    await session.close();
    assert.equal(torrent.state, "stopped");
    // Stopped means its files are closed. Counted synchronously, so the first close() cannot
    // finish while we look.
    let open = 0;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`).startsWith(dir + "/")) open++;
      } catch (error) {
        // The descriptor used to list /proc/self/fd is gone by the time it is read.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    assert.equal(open, 0, "files still open after close() resolved");
    await first;
  });
});

Deno.test("a DHT node's second close() waits for the first to save its state", async () => {
  await withTempDir(async (dir) => {
    const statePath = join(dir, "dht.dat");
    const node = new DhtNode({ hostname: "127.0.0.1", statePath, bootstrap: [] });
    await node.start();
    const first = node.close();
    await node.close();
    // Checked synchronously: the first close() cannot finish saving while we look.
    assert.ok(Deno.statSync(statePath).isFile, "the second close() returned before the state was saved");
    await first;
  });
});
