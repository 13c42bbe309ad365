/**
 * One host cannot stop a seeder: a `cli.ts seed` runs with a descriptor limit of 256, a
 * hostile host opens more idle connections than that (from 127.0.0.2, or from a thousand
 * loopback addresses), and a libtorrent leecher on 127.0.0.1 still downloads the whole
 * payload, verified, while the seed logs that its listener is under pressure and keeps
 * accepting.
 *
 * Before the fix the accept loop ended at the first EMFILE ("Listener failed: Too many open
 * files"): the leecher's connection was never accepted and these tests timed out.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";
import { hasLibtorrent, runLibtorrentLeecher } from "./_harness.ts";
import { holdConnections } from "./_hold_connections.ts";
import { startSeedCli } from "./_seed_helpers.ts";

const NOFILE = 256;
const lt = await hasLibtorrent();

async function seedSurvives(source: string, count: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-pressure-" });
  try {
    const prepared = await prepareTorrent(dir, {
      spec: [{ path: "a.bin", size: 6 * MIB + 123 }, { path: "b/c.bin", size: 2 * MIB - 7 }],
      seed: 11,
    });
    const seed = await startSeedCli(prepared.torrentPath, prepared.seedDir, {
      wrapper: ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
    });
    const { process: child, port } = seed;
    try {
      await using held = await holdConnections({ port, count, source });
      assert.ok(held.connected + held.failed === count);
      // The seed held out: more connections than it has descriptors were made or tried.
      assert.ok(count > NOFILE);
      const out = join(dir, "leech");
      await runLibtorrentLeecher({
        torrentPath: prepared.torrentPath,
        dataDir: out,
        peers: [`127.0.0.1:${port}`],
        timeoutMs: 60_000,
        enc: "disabled",
      });
      assert.deepEqual(await compareDownload(prepared, out), []);
      const log = child.stderrLines.join("\n");
      assert.match(log, /Peer listener under pressure/, child.tail());
      assert.doesNotMatch(log, /Listener failed/, child.tail());
      assert.equal(child.exited, undefined, "the seed exited");
      // The hostile connections are closed (refused, evicted, or at the handshake deadline).
      const deadline = Date.now() + 20_000;
      while (held.open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert.equal(held.open(), 0, held.tail());
    } finally {
      await child.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "a seed whose descriptors one address tries to exhaust still serves a libtorrent leecher",
  ignore: !lt,
  sanitizeResources: false,
  fn: () => seedSurvives("127.0.0.2", 400),
});

Deno.test({
  name: "a seed flooded with idle connections from a thousand addresses still serves a libtorrent leecher",
  ignore: !lt,
  sanitizeResources: false,
  fn: () => seedSurvives("127.0.1.1-127.0.4.250", 1000),
});
