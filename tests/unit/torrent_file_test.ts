import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { encode } from "../../lib/bencode.ts";
import { MetainfoError } from "../../lib/errors.ts";
import { readTorrentFile } from "../../lib/torrent_file.ts";

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-torrent-file-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A sparse file of `size` bytes: instant to make, and read whole it would take that much memory. */
async function sparse(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true });
  await file.truncate(size);
}

Deno.test("readTorrentFile() reads a .torrent file byte for byte", async () => {
  await withTempDir(async (dir) => {
    const bytes = encode({
      info: { name: "a", "piece length": 16384, length: 1, pieces: new Uint8Array(20) },
    });
    await Deno.writeFile(join(dir, "a.torrent"), bytes);
    assert.deepEqual(await readTorrentFile(join(dir, "a.torrent")), bytes);
  });
});

Deno.test("readTorrentFile() refuses a file over 64 MiB from its size, without reading it", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.torrent");
    await sparse(path, 100 * 1024 * 1024);
    await assert.rejects(
      readTorrentFile(path),
      (e: unknown) =>
        e instanceof MetainfoError &&
        e.message === `Cannot read ${path}: it is 104857600 bytes long, more than a .torrent file may have ` +
            "(67108864 bytes)",
    );
  });
});

Deno.test("readTorrentFile() stops reading an endless device one byte past the limit", async () => {
  await assert.rejects(
    readTorrentFile("/dev/zero", { maxBytes: 1024 * 1024 }),
    (e: unknown) =>
      e instanceof MetainfoError &&
      e.message ===
        "Cannot read /dev/zero: it has more than 1048576 bytes, more than a .torrent file may have " +
          "(1048576 bytes)",
  );
});

Deno.test("shoal info refuses a 100 MiB .torrent file with a message naming the limit", async () => {
  await withTempDir(async (dir) => {
    await sparse(join(dir, "huge.torrent"), 100 * 1024 * 1024);
    const chunks: Uint8Array[] = [];
    const sink = () => new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c.slice()) });
    const code = await main(["info", "huge.torrent"], {
      stdout: sink(),
      stderr: sink(),
      isTerminal: false,
      cwd: dir,
    });
    const text = chunks.map((c) => new TextDecoder().decode(c)).join("");
    assert.notEqual(code, 0);
    assert.match(text, /it is 104857600 bytes long, more than a \.torrent file may have \(67108864 bytes\)/);
  });
});
