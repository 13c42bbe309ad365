/**
 * A shoal session downloads a multi-file torrent (a zero-byte file, a short last piece) from
 * a libtorrent seeder into `memoryStorage()`: every piece is verified, the bytes read back
 * from memory equal the source files, and no payload file is written to the download folder.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type MemoryStorage, memoryStorage, Session } from "../../mod.ts";
import { hasLibtorrent, startLibtorrentSeeder, withTimeout } from "./_harness.ts";
import { MIB, prepareTorrent } from "./_download_helpers.ts";

const LT = await hasLibtorrent();

Deno.test({
  name: "a session downloads from a libtorrent seeder into memoryStorage(), every piece verified",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mem-lt-" });
    try {
      const prepared = await prepareTorrent(dir, {
        seed: 23,
        name: "inmem",
        spec: [
          { path: "a/big.bin", size: 6 * MIB + 12_345 },
          { path: "empty.txt", size: 0 },
          { path: "b/small.bin", size: MIB - 777 },
        ],
      });
      const meta = prepared.metainfo;
      assert.notEqual(meta.totalLength % meta.pieceLength, 0, "the last piece should be short");

      const seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
      });
      try {
        const stores: MemoryStorage[] = [];
        const out = join(dir, "out");
        await using session = new Session({
          downloadDir: out,
          bind: "127.0.0.1",
          trackers: false,
          lsd: false,
          storage: memoryStorage({ maxBytes: 64 * MIB, onOpen: (store) => stores.push(store) }),
        });
        const verified = new Set<number>();
        const torrent = await session.add(meta, {
          peers: [`127.0.0.1:${seeder.port}`],
          onTorrent: (t) => t.addEventListener("piece-verified", (e) => verified.add(e.detail.piece)),
        });
        assert.equal(torrent.startupCheck?.have, 0, "memory storage starts empty");
        await withTimeout(torrent.completed, 120_000, "the download into memory");

        assert.equal(torrent.have.count(), meta.pieceCount);
        assert.equal(verified.size, meta.pieceCount);
        assert.equal(stores.length, 1);
        const store = stores[0]!;
        assert.equal(store.storedBytes, meta.totalLength, "memory holds the torrent's whole size");

        // The source, concatenated in the torrent's file order.
        const source = new Uint8Array(meta.totalLength);
        for (const file of meta.files) {
          if (file.length > 0) {
            source.set(await Deno.readFile(join(prepared.seedDir, file.safePath)), file.offset);
          }
        }
        for (let p = 0; p < meta.pieceCount; p++) {
          const start = p * meta.pieceLength;
          const length = Math.min(meta.pieceLength, meta.totalLength - start);
          const got = await store.read(p, 0, length);
          assert.ok(got.every((b, i) => b === source[start + i]), `piece ${p} differs from the source`);
        }
        const written = await Array.fromAsync(Deno.readDir(out), (e) => e.name);
        assert.ok(!written.includes(prepared.name), `payload files were written to ${out}: ${written}`);
      } finally {
        await seeder.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
