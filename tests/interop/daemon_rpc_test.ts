/**
 * The real `transmission-remote` drives `shoal daemon` (a subprocess) over its Transmission
 * RPC: `-a FILE` downloads from a shoal seed session, `-S` stops it, and the stop survives a
 * SIGTERM and a restart on the same state folder (same id, still Stopped); then `-s` starts
 * it again and `-r` removes it. A non-loopback `--rpc-bind` without a password is refused
 * (exit 2). Everything is on 127.0.0.1; every wait has a deadline; the test stops what it
 * started.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseMetainfo, Session } from "../../mod.ts";
import { type LineProcess, startCli } from "./_download_helpers.ts";
import { makeAlbum, parseList, remote, waitRow } from "./_transmission_remote.ts";

/** Starts the daemon and reads its peer and RPC ports from the ready line. */
async function startDaemon(
  args: string[],
): Promise<{ daemon: LineProcess; peerPort: number; rpcPort: number }> {
  const daemon = startCli(args);
  const ready = await daemon.waitForLine((l) => l.includes("shoal daemon ready"), 30_000, "ready");
  const peer = /peer port (\d+)/.exec(ready);
  const rpc = /RPC http:\/\/127\.0\.0\.1:(\d+)\/transmission\/rpc/.exec(ready);
  assert.ok(peer !== null && rpc !== null, `ready line without ports: ${ready}`);
  return { daemon, peerPort: Number(peer[1]), rpcPort: Number(rpc[1]) };
}

Deno.test("transmission-remote adds, stops and starts torrents in shoal daemon, and the stop survives a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_daemon_rpc_" });
  const args = [
    "daemon",
    "--state-dir",
    join(dir, "state"),
    "--download-dir",
    join(dir, "dl"),
    "--port",
    "0",
    "--bind",
    "127.0.0.1",
    "--rpc-port",
    "0",
    "--no-dht",
    "--no-lsd",
  ];
  let daemon: LineProcess | undefined;
  try {
    const seedDir = join(dir, "seed");
    const album = await makeAlbum(seedDir);
    await Deno.writeFile(join(dir, "album.torrent"), album.torrent);
    await using seeder = new Session({
      bind: "127.0.0.1",
      trackers: false,
      lsd: false,
      dht: false,
      downloadDir: seedDir,
    });
    const seed = await seeder.add(parseMetainfo(album.torrent));
    assert.equal(seed.state, "seeding");

    let started = await startDaemon(args);
    daemon = started.daemon;
    const { peerPort } = started;
    let port = started.rpcPort;

    // -a FILE: transmission-remote sends the file's bytes; the seed dials the daemon.
    assert.match(await remote(port, "-a", join(dir, "album.torrent")), /responded: "success"/);
    await waitRow(port, 1, (r) => r.status !== "Verifying", 20_000, "the check to end");
    const done = await waitRow(port, 1, (r) => r.done === "100%", 60_000, "the download to complete", () => {
      if (seed.peers().length === 0) seed.addPeers([`127.0.0.1:${peerPort}`]);
    });
    assert.equal(done.name, "album");
    assert.deepEqual(
      await Deno.readFile(join(dir, "dl", "album", "one.bin")),
      await Deno.readFile(join(seedDir, "album", "one.bin")),
    );

    // -S: stopped, and saved so.
    assert.match(await remote(port, "-t", "1", "-S"), /responded: "success"/);
    await waitRow(port, 1, (r) => r.status === "Stopped", 10_000, "Stopped");

    daemon.kill("SIGTERM");
    assert.equal((await daemon.wait(20_000)).code, 0, daemon.tail());

    started = await startDaemon(args);
    daemon = started.daemon;
    port = started.rpcPort;
    assert.match(daemon.stdoutLines.join("\n"), /1 torrents restored/);
    const again = await waitRow(
      port,
      1,
      (r) => r.status === "Stopped" && r.done === "100%",
      20_000,
      "Stopped again",
    );
    assert.equal(again.name, "album");
    assert.equal(parseList(await remote(port, "-l")).length, 1);

    // -s: seeding again (Idle while no peer wants anything); -r: removed.
    assert.match(await remote(port, "-t", "1", "-s"), /responded: "success"/);
    await waitRow(port, 1, (r) => r.status === "Seeding" || r.status === "Idle", 20_000, "seeding");
    assert.match(await remote(port, "-t", "1", "-r"), /responded: "success"/);
    const deadline = Date.now() + 10_000;
    while (parseList(await remote(port, "-l")).length > 0) {
      assert.ok(Date.now() < deadline, "the torrent is still listed after -r");
      await new Promise((r) => setTimeout(r, 100));
    }
    await Deno.stat(join(dir, "dl", "album", "one.bin")); // -r keeps the data

    daemon.kill("SIGTERM");
    assert.equal((await daemon.wait(20_000)).code, 0, daemon.tail());
  } finally {
    await daemon?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shoal daemon refuses a non-loopback --rpc-bind without a password (exit 2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_daemon_rpc_bind_" });
  let daemon: LineProcess | undefined;
  try {
    daemon = startCli(["daemon", "--state-dir", dir, "--rpc-bind", "0.0.0.0", "--port", "0", "--no-dht"]);
    const status = await daemon.wait(30_000);
    assert.equal(status.code, 2, daemon.tail());
    assert.ok(
      daemon.stderrLines.some((l) => l.includes("--rpc-bind 0.0.0.0") && l.includes("--rpc-password")),
      daemon.tail(),
    );
    assert.ok(!daemon.stdoutLines.some((l) => l.includes("ready")), daemon.tail());
  } finally {
    await daemon?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
