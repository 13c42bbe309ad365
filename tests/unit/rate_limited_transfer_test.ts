import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, parseMetainfo, Session } from "../../mod.ts";

Deno.test("a rate-limited shoal seeder and a rate-limited shoal leecher complete a transfer, limits changed live", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-limits-" });
  try {
    const data = new Uint8Array(3 * 1024 * 1024 + 1234).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
    await Deno.mkdir(join(dir, "seed"));
    await Deno.writeFile(join(dir, "seed", "file.bin"), data);
    const made = await createTorrent(join(dir, "seed", "file.bin"), {
      pieceLength: 65536,
      creationDate: null,
    });
    const meta = parseMetainfo(made.torrent);
    await using seeder = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      uploadLimit: 2 * 1024 * 1024,
    });
    await seeder.add(meta);
    await using leecher = new Session({
      downloadDir: join(dir, "leech"),
      bind: "127.0.0.1",
      downloadLimit: 1024 * 1024,
    });
    const torrent = await leecher.add(meta, { peers: [`127.0.0.1:${seeder.port}`] });
    // Change both limits while data flows: the transfer must still finish.
    torrent.addEventListener("piece-verified", () => {
      leecher.setLimits({ download: 3 * 1024 * 1024 });
      torrent.setLimits({ download: 4 * 1024 * 1024 });
    }, { once: true });
    const deadline = setTimeout(() => torrent.stop(), 30_000);
    try {
      await torrent.completed;
    } finally {
      clearTimeout(deadline);
    }
    assert.deepEqual(await Deno.readFile(join(dir, "leech", "file.bin")), data);
    assert.ok(seeder.torrents[0]!.stats().uploaded >= data.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
