/**
 * Message Stream Encryption against Transmission 3.00 with encryption required: a shoal
 * `Session` under mse `require` downloads from a Transmission seeder and seeds to a
 * Transmission leecher. Transmission only downloads from peers that dial it, so shoal dials
 * in both directions; "required" refuses plaintext, and `require` offers RC4 only, so every
 * byte travels under RC4.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  hasLibtorrent,
  hasTransmission,
  startTransmissionLeecher,
  startTransmissionSeeder,
  withTimeout,
} from "./_harness.ts";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";
import { LoggedSession, recordingMse } from "./_mse_helpers.ts";

// The torrents are made with libtorrent; Transmission is slow on loopback: keep them small.
const READY = (await hasTransmission()) && (await hasLibtorrent());
const SPEC = [
  { path: "clip.bin", size: 3 * MIB + 999 },
  { path: "notes/tiny.txt", size: 4321 },
];

Deno.test({
  name: "a Session under mse require downloads from a Transmission seeder with encryption required",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-tr-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 41 });
      await using seeder = await startTransmissionSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        encryption: "required",
        readyTimeoutMs: 120_000,
      });
      const rec = recordingMse("require");
      const out = join(dir, "out");
      await using session = new LoggedSession(out, rec.plugin);
      const torrent = await session.add(prepared.metainfo, { peers: [`127.0.0.1:${seeder.port}`] });
      await withTimeout(torrent.completed, 180_000, "the encrypted download from Transmission")
        .catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\n${seeder.tail()}`, { cause: e });
        });
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert.ok(rec.outgoing.length >= 1, "no encrypted connection was made");
      assert.deepEqual([...new Set(rec.outgoing)], ["rc4"]);
      assert.ok(
        session.records.some((r) =>
          r.message === "Peer connected" && String(r.fields.client).startsWith("TR")
        ),
        "Transmission never connected",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a Transmission leecher with encryption required downloads from a Session under mse require",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-mse-tr-" });
    try {
      const prepared = await prepareTorrent(dir, { spec: SPEC, seed: 42 });
      const out = join(dir, "out");
      await using leecher = await startTransmissionLeecher({
        torrentPath: prepared.torrentPath,
        dataDir: out,
        encryption: "required",
      });
      const rec = recordingMse("require");
      await using session = new LoggedSession(prepared.seedDir, rec.plugin);
      const seeding = await session.add(prepared.metainfo, { peers: [`127.0.0.1:${leecher.port}`] });
      assert.equal(seeding.state, "seeding");
      await leecher.waitUntilSeeding(180_000);
      assert.deepEqual(await compareDownload(prepared, out), []);
      assert.ok(rec.outgoing.length >= 1, "no encrypted connection was made");
      assert.deepEqual([...new Set(rec.outgoing)], ["rc4"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
