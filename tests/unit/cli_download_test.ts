import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { createTorrent, parseMetainfo, Session } from "../../mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function capture(): { io: Parameters<typeof main>[1]; out: () => string; err: () => string } {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const text = (chunks: Uint8Array[]) =>
    new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  return {
    io: {
      stdout: new WritableStream({ write: (c) => void out.push(c) }),
      stderr: new WritableStream({ write: (c) => void err.push(c) }),
      isTerminal: false,
    },
    out: () => text(out),
    err: () => text(err),
  };
}

async function withSeed(
  fn: (dir: string, torrentPath: string, port: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-dl-" });
  try {
    await Deno.mkdir(join(dir, "seed", "payload", "sub"), { recursive: true });
    const a = new Uint8Array(700_000).map((_, i) => (i * 31 + 7) & 0xff);
    await Deno.writeFile(join(dir, "seed", "payload", "sub", "a.bin"), a);
    await Deno.writeFile(join(dir, "seed", "payload", "empty"), new Uint8Array());
    const made = await createTorrent(join(dir, "seed", "payload"), {
      pieceLength: 32768,
      creationDate: null,
    });
    const torrentPath = join(dir, "payload.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    await using seeder = new Session({ downloadDir: join(dir, "seed"), bind: "127.0.0.1" });
    await seeder.add(parseMetainfo(made.torrent));
    await fn(dir, torrentPath, seeder.port);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli download with a user selector module fetches every byte and exits 0", async () => {
  await withSeed(async (dir, torrentPath, port) => {
    const { io, err } = capture();
    const code = await main([
      "download",
      torrentPath,
      "-o",
      join(dir, "out"),
      "--peer",
      `127.0.0.1:${port}`,
      "--bind",
      "127.0.0.1",
      "--selector",
      join(ROOT, "fixtures/plugins/lowest_first.ts"),
    ], io);
    assert.equal(code, 0, err());
    assert.match(err(), /Complete: 22\/22 pieces verified/);
    assert.deepEqual(
      await Deno.readFile(join(dir, "out", "payload", "sub", "a.bin")),
      await Deno.readFile(join(dir, "seed", "payload", "sub", "a.bin")),
    );
    assert.equal((await Deno.stat(join(dir, "out", "payload", "empty"))).size, 0);
  });
});

Deno.test("cli download reports a selector module that exports no selector, naming it", async () => {
  await withSeed(async (dir, torrentPath, port) => {
    const bad = join(dir, "bad_selector.ts");
    await Deno.writeTextFile(bad, "export const answer = 42;\n");
    const { io, err } = capture();
    const code = await main([
      "download",
      torrentPath,
      "-o",
      join(dir, "out"),
      "--peer",
      `127.0.0.1:${port}`,
      "--selector",
      bad,
    ], io);
    assert.equal(code, 1);
    assert.match(err(), /Plugin '.*bad_selector\.ts' failed: the module exports no PieceSelector/);
    assert.doesNotMatch(err(), /\n\s+at /, "no stack trace for a plugin error");
  });
});

Deno.test("cli seed refuses a magnet link clearly, and download a missing torrent file, with exit 1", async () => {
  // (download takes magnet links: tests/unit/select_files_test.ts and tests/interop/magnet_test.ts)
  const { io, err } = capture();
  assert.equal(await main(["seed", "magnet:?xt=urn:btih:" + "a".repeat(40), "."], io), 1);
  assert.match(err(), /Cannot seed a magnet link/);
  const second = capture();
  assert.equal(await main(["download", "/nonexistent/x.torrent"], second.io), 1);
  assert.match(second.err(), /^error: Cannot read \/nonexistent\/x\.torrent: no such file\n$/);
});

Deno.test("cli seed checks the data, serves it, and stops after --seed-time", async () => {
  await withSeed(async (dir, torrentPath) => {
    // A copy: the session of withSeed holds the lock on its folder (one shoal per torrent's data).
    await Deno.mkdir(join(dir, "copy", "payload", "sub"), { recursive: true });
    await Deno.copyFile(
      join(dir, "seed", "payload", "sub", "a.bin"),
      join(dir, "copy", "payload", "sub", "a.bin"),
    );
    await Deno.writeFile(join(dir, "copy", "payload", "empty"), new Uint8Array());
    const { io, err } = capture();
    const code = await main(
      ["seed", torrentPath, join(dir, "copy"), "--bind", "127.0.0.1", "--seed-time", "1", "-q"],
      io,
    );
    assert.equal(code, 0, err());
    assert.match(err(), /Data checked: all 22 pieces present/);
    assert.match(err(), /Stopped seeding \(--seed-time 1 s reached\)/);
  });
});

Deno.test("cli seed-ratio and port values are validated as usage errors", async () => {
  const { io, err } = capture();
  assert.equal(await main(["download", "x.torrent", "--seed-ratio", "abc"], io), 2);
  assert.match(err(), /Invalid --seed-ratio: abc/);
  const second = capture();
  assert.equal(await main(["seed", "x.torrent"], second.io), 2);
  assert.match(second.err(), /Missing argument: <data-dir>/);
});
