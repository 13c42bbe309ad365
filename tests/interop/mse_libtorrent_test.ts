/**
 * Message Stream Encryption against libtorrent 2.0.8: a shoal `Session` with the MSE plugin
 * downloads from and seeds to libtorrent with encryption forced (RC4 only, plaintext
 * refused), works with libtorrent in "enabled" mode under `prefer`, and under `disable`
 * never connects to a forced peer, with the reason in its log.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { hasLibtorrent, runLibtorrentLeecher, startLibtorrentSeeder, withTimeout } from "./_harness.ts";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";
import { LoggedSession, recordingMse } from "./_mse_helpers.ts";

const LT = await hasLibtorrent();
const SPEC = [
  { path: "big.bin", size: 12 * MIB + 4321 },
  { path: "sub/small.bin", size: 777_777 },
];

Deno.test({
  name: "a Session under mse require downloads from a libtorrent seeder with encryption forced, over RC4",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 31 });
      await using seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        enc: "forced",
      });
      const rec = recordingMse("require");
      const out = join(dir, "out");
      await using session = new LoggedSession(out, rec.plugin);
      const torrent = await session.add(prepared.metainfo, { peers: [`127.0.0.1:${seeder.port}`] });
      await withTimeout(torrent.completed, 120_000, "the encrypted download");
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert.ok(rec.outgoing.length >= 1, "no encrypted connection was made");
      assert.deepEqual([...new Set(rec.outgoing)], ["rc4"]);
      assert.ok(session.messages(/^Peer connected$/).length >= 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a libtorrent leecher with encryption forced downloads from a Session under mse require, over RC4",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 32 });
      const rec = recordingMse("require");
      await using session = new LoggedSession(prepared.seedDir, rec.plugin);
      const seeding = await session.add(prepared.metainfo);
      assert.equal(seeding.state, "seeding");
      const out = join(dir, "out");
      const result = await runLibtorrentLeecher({
        torrentPath: prepared.torrentPath,
        dataDir: out,
        peers: [session.address],
        enc: "forced",
        timeoutMs: 120_000,
      });
      assert.equal(result.bytes, prepared.metainfo.totalLength);
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert.ok(rec.incoming.length >= 1, "libtorrent's encrypted connection never reached the plugin");
      assert.deepEqual([...new Set(rec.incoming)], ["rc4"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a Session under mse prefer downloads from and seeds to libtorrent in enabled mode",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 33 });
      // Download: shoal dials, tries MSE first (libtorrent "enabled" takes it, and picks the
      // plaintext method when offered both).
      await using seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        enc: "enabled",
      });
      const down = recordingMse("prefer");
      const out = join(dir, "out");
      {
        await using session = new LoggedSession(out, down.plugin);
        const torrent = await session.add(prepared.metainfo, { peers: [`127.0.0.1:${seeder.port}`] });
        await withTimeout(torrent.completed, 120_000, "the download under prefer");
      }
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert.ok(down.outgoing.length >= 1, "prefer did not make an MSE connection first");
      console.log(`prefer -> libtorrent enabled: outgoing methods ${down.outgoing.join(", ")}`);

      // Seed: libtorrent dials shoal with MSE; prefer selects RC4 when it is offered.
      const up = recordingMse("prefer");
      await using seed = new LoggedSession(out, up.plugin);
      assert.equal((await seed.add(prepared.metainfo)).state, "seeding");
      const out2 = join(dir, "out2");
      await runLibtorrentLeecher({
        torrentPath: prepared.torrentPath,
        dataDir: out2,
        peers: [seed.address],
        enc: "enabled",
        timeoutMs: 120_000,
      });
      assert.deepEqual(await compareDownload(prepared, out2), []);
      assert.ok(up.incoming.length >= 1, "libtorrent in enabled mode did not dial with MSE");
      assert.deepEqual([...new Set(up.incoming)], ["rc4"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a Session under mse disable never connects to libtorrent with encryption forced, and logs why",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-lt-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: [{ path: "one.bin", size: 2 * MIB }], seed: 34 });
      // shoal dials the forced seeder in plaintext: libtorrent hangs up at once.
      await using seeder = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        enc: "forced",
      });
      const rec = recordingMse("disable");
      await using leech = new LoggedSession(join(dir, "out"), rec.plugin);
      const torrent = await leech.add(prepared.metainfo, { peers: [`127.0.0.1:${seeder.port}`] });
      const failed = await leech.waitForMessage(/^plaintext connection failed: /, 30_000);
      assert.match(failed, /Connection closed during the handshake after 0 bytes/);
      assert.equal(torrent.stats().completedPieces, 0);
      assert.deepEqual(leech.messages(/^Peer connected$/), []);
      assert.deepEqual(rec.outgoing, [], "disable made an encrypted connection");

      // A forced libtorrent leecher dials a shoal seed under disable: shoal refuses it.
      await using seed = new LoggedSession(prepared.seedDir, rec.plugin);
      assert.equal((await seed.add(prepared.metainfo)).state, "seeding");
      const leeching = runLibtorrentLeecher({
        torrentPath: prepared.torrentPath,
        dataDir: join(dir, "out2"),
        peers: [seed.address],
        enc: "forced",
        timeoutMs: 6_000,
      });
      const refused = await seed.waitForMessage(/^Incoming connection dropped: /, 30_000);
      assert.match(
        refused,
        /Refused an encrypted connection: encryption 'mse-disable' accepts plaintext connections only/,
      );
      await assert.rejects(leeching, /Timed out|timeout/i, "the forced leecher should never finish");
      assert.deepEqual(seed.messages(/^Peer connected$/), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
