/**
 * Proves the interop harness works with the real clients alone, before any
 * shoal code is involved: libtorrent to libtorrent, Transmission answering a
 * handshake, Transmission downloading from a libtorrent seeder that dials it.
 */

import assert from "node:assert/strict";
import {
  filesEqual,
  freePort,
  hasLibtorrent,
  hasTransmission,
  makePayload,
  makeTorrentWithLibtorrent,
  type PayloadFile,
  runLibtorrentLeecher,
  sha1File,
  startLibtorrentSeeder,
  startTransmissionLeecher,
  startTransmissionSeeder,
  waitForFile,
  withTimeout,
} from "./_harness.ts";
import { join } from "node:path";

const LT = await hasLibtorrent();
const TR = await hasTransmission();
const NO_LT = "libtorrent bindings for /usr/bin/python3 are not installed";
const NO_TR = "transmission-cli is not installed";
const KIB = 1024;
const MIB = 1024 * KIB;

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) throw new Error(`Connection closed after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

Deno.test("makePayload() writes the same bytes for the same seed and different bytes otherwise", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-harness-" });
  try {
    const spec: PayloadFile[] = [{ path: "p/x.bin", size: 2 * MIB + 5 }, { path: "p/y/z.bin", size: 1000 }];
    await makePayload(join(dir, "a"), spec, 1);
    await makePayload(join(dir, "b"), spec, 1);
    await makePayload(join(dir, "c"), spec, 2);
    assert.deepEqual((await Deno.stat(join(dir, "a/p/x.bin"))).size, 2 * MIB + 5);
    assert.deepEqual((await Deno.stat(join(dir, "a/p/y/z.bin"))).size, 1000);
    assert(await filesEqual(join(dir, "a/p/x.bin"), join(dir, "b/p/x.bin")));
    assert(!(await filesEqual(join(dir, "a/p/x.bin"), join(dir, "c/p/x.bin"))));
    assert.notEqual(await sha1File(join(dir, "a/p/x.bin")), await sha1File(join(dir, "a/p/y/z.bin")));
    // Each MiB differs from the others, so a block written at the wrong offset is caught.
    const bytes = await Deno.readFile(join(dir, "a/p/x.bin"));
    const first = bytes.subarray(0, 16 * KIB);
    const second = bytes.subarray(MIB, MIB + 16 * KIB);
    assert(first.some((b, i) => b !== second[i]), "first and second MiB start with the same block");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a libtorrent leecher downloads a multi-file torrent from a libtorrent seeder",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-harness-" });
    try {
      const seedDir = join(dir, "seed");
      const leechDir = join(dir, "leech");
      const spec: PayloadFile[] = [
        { path: "multi/a.bin", size: 1536 * KIB },
        { path: "multi/sub/b.bin", size: 2 * MIB - 7 },
        { path: "multi/sub/c.txt", size: 512 * KIB + 7 },
        { path: "multi/d.bin", size: 1 },
      ];
      await makePayload(seedDir, spec, 42);
      const torrentPath = join(dir, "multi.torrent");
      const made = await makeTorrentWithLibtorrent(join(seedDir, "multi"), torrentPath, 64 * KIB);
      assert.deepEqual(made.size, 4 * MIB + 1);
      assert.deepEqual(made.pieces, 65);
      assert.match(made.infoHash, /^[0-9a-f]{40}$/);

      await using seeder = await startLibtorrentSeeder({ torrentPath, dataDir: seedDir });
      assert(seeder.port > 0);
      const progress: number[] = [];
      const result = await runLibtorrentLeecher({
        torrentPath,
        dataDir: leechDir,
        peers: [`127.0.0.1:${seeder.port}`],
        enc: "forced",
        timeoutMs: 60_000,
        onProgress: (p) => progress.push(p.progress),
      });
      assert.deepEqual(result.bytes, 4 * MIB + 1);
      assert(
        result.seconds > 0 && result.cpuSeconds > 0 && result.peakRssBytes > MIB,
        JSON.stringify(result),
      );
      for (const f of spec) {
        assert(await filesEqual(join(seedDir, f.path), join(leechDir, f.path)), `${f.path} differs`);
      }
      await seeder.stop();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "startLibtorrentSeeder() rejects when the data folder does not hold the torrent's data",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-harness-" });
    try {
      await makePayload(join(dir, "data"), [{ path: "one.bin", size: 256 * KIB }], 3);
      const torrentPath = join(dir, "one.torrent");
      await makeTorrentWithLibtorrent(join(dir, "data", "one.bin"), torrentPath, 16 * KIB);
      await Deno.mkdir(join(dir, "empty"));
      await assert.rejects(
        () => startLibtorrentSeeder({ torrentPath, dataDir: join(dir, "empty"), readyTimeoutMs: 30_000 }),
        /data in .* is incomplete/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a Transmission seeder accepts a connection and answers a handshake with the same info-hash",
  ignore: !LT || !TR,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-harness-" });
    try {
      await makePayload(join(dir, "data"), [{ path: "one.bin", size: MIB }], 5);
      const torrentPath = join(dir, "one.torrent");
      const made = await makeTorrentWithLibtorrent(join(dir, "data", "one.bin"), torrentPath, 32 * KIB);
      await using seeder = await startTransmissionSeeder({ torrentPath, dataDir: join(dir, "data") });

      const infoHash = hexToBytes(made.infoHash);
      const handshake = new Uint8Array(68);
      handshake[0] = 19;
      handshake.set(new TextEncoder().encode("BitTorrent protocol"), 1);
      handshake.set(infoHash, 28);
      handshake.set(new TextEncoder().encode("-SH0001-"), 48);
      crypto.getRandomValues(handshake.subarray(56));

      const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
      try {
        await withTimeout(conn.write(handshake), 10_000, "sending the handshake");
        const reply = await withTimeout(readExactly(conn, 68), 10_000, "Transmission's handshake");
        assert.deepEqual(reply.subarray(0, 20), handshake.subarray(0, 20), seeder.tail());
        assert.deepEqual(reply.subarray(28, 48), infoHash);
        assert.deepEqual(
          new TextDecoder().decode(reply.subarray(48, 50)),
          "-T",
          "peer id is not Transmission's",
        );
      } finally {
        conn.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a Transmission leecher downloads from a libtorrent seeder that dials it",
  ignore: !LT || !TR,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-harness-" });
    try {
      const size = 512 * KIB + 3;
      await makePayload(join(dir, "data"), [{ path: "small.bin", size }], 9);
      const torrentPath = join(dir, "small.torrent");
      await makeTorrentWithLibtorrent(join(dir, "data", "small.bin"), torrentPath, 32 * KIB);
      const expected = await sha1File(join(dir, "data", "small.bin"));

      await using leecher = await startTransmissionLeecher({
        torrentPath,
        dataDir: join(dir, "out"),
        port: await freePort(),
        encryption: "tolerated",
      });
      await using _seeder = await startLibtorrentSeeder({
        torrentPath,
        dataDir: join(dir, "data"),
        peers: [`127.0.0.1:${leecher.port}`],
      });
      // Transmission unchokes only at its next rechoke and starts slowly: allow a minute.
      await waitForFile(join(dir, "out", "small.bin"), size, expected, 60_000);
      await leecher.waitUntilSeeding(30_000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (!LT) console.warn(`Skipping libtorrent interop tests: ${NO_LT}`);
if (!TR) console.warn(`Skipping Transmission interop tests: ${NO_TR}`);
