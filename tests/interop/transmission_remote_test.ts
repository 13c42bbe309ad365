/**
 * The real `transmission-remote` drives shoal through its Transmission RPC endpoint (issue 14):
 * a shoal session with `sessionBackend()` and `TransmissionRpcServer` on 127.0.0.1 leeches
 * from a shoal seed session, and every step is a transmission-remote command whose output is
 * parsed as a user would read it. Every wait has a deadline; the test stops what it started.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { createTorrent, formatMagnet, parseMetainfo, Session } from "../../mod.ts";
import { sessionBackend, TransmissionRpcServer } from "../../lib/rpc/mod.ts";
import { makePayload } from "./_harness.ts";
import { makeAlbum, parseList, remote, waitRow } from "./_transmission_remote.ts";

const LOOPBACK = { bind: "127.0.0.1", trackers: false, lsd: false, dht: false } as const;
const KIB = 1024;

Deno.test("transmission-remote adds, lists, inspects, stops, verifies, limits and removes torrents in shoal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-tr-remote-" });
  try {
    const seedDir = join(dir, "seed");
    await makePayload(join(seedDir, "single"), [{ path: "solo.bin", size: 100 * KIB + 3 }], 4);
    const album = await makeAlbum(seedDir);
    const single = await createTorrent(join(seedDir, "single", "solo.bin"), { pieceLength: 16 * KIB });
    const albumMeta = parseMetainfo(album.torrent);
    const singleMeta = parseMetainfo(single.torrent);
    await Deno.writeFile(join(dir, "album.torrent"), album.torrent);

    // Rate-limited, so that the download lasts long enough for -pi to see the seed.
    await using seeder = new Session({ ...LOOPBACK, downloadDir: seedDir, uploadLimit: 200 * KIB });
    const albumSeed = await seeder.add(albumMeta);
    await seeder.add(singleMeta, { downloadDir: join(seedDir, "single") });
    assert.equal(albumSeed.state, "seeding");

    const leechDir = join(dir, "leech");
    await Deno.mkdir(leechDir);
    await Deno.writeTextFile(join(leechDir, "keep.txt"), "not a torrent's file\n");
    await using leecher = new Session({ ...LOOPBACK, downloadDir: leechDir });
    await using rpc = new TransmissionRpcServer(
      sessionBackend(leecher, { downloadDir: leechDir, roots: [dir], dht: false, lpd: false }),
    );
    const { port } = rpc.listen();

    // -a FILE: added; the seed dials the leecher once its torrent runs.
    assert.match(await remote(port, "-a", join(dir, "album.torrent")), /responded: "success"/);
    await waitRow(port, 1, (r) => r.status !== "Verifying", 20_000, "the check to end");
    albumSeed.addPeers([`127.0.0.1:${leecher.port}`]);
    const peersDeadline = Date.now() + 20_000;
    let peers = "";
    const seedRow = /127\.0\.0\.1\s+D\S*\s+100\.0\s.*shoal/;
    while (!seedRow.test(peers) && Date.now() < peersDeadline) {
      peers = await remote(port, "-t", "1", "-pi");
      if (!seedRow.test(peers)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(peers, seedRow, "-pi shows the seed we download from");
    const done = await waitRow(port, 1, (r) => r.done === "100%", 60_000, "the download to complete");
    assert.equal(done.name, "album");
    assert.equal(done.have, "512.0 kB");
    await waitRow(port, 1, (r) => r.status === "Seeding" || r.status === "Idle", 10_000, "seeding");

    // -t 1 -i, -f, -pi
    const info = await remote(port, "-t", "1", "-i");
    assert.match(info, /Name: album/);
    assert.match(info, new RegExp(`Hash: ${albumMeta.infoHashHex}`));
    assert.match(info, /Percent Done: 100%/);
    assert.match(info, /Total size: 512\.0 kB/);
    assert.match(info, /Location: .*leech/);
    const files = await remote(port, "-t", "1", "-f");
    assert.match(files, /album \(2 files\)/);
    assert.match(files, /0: 100% Normal\s+Yes\s+307\.2 kB\s+album\/one\.bin/);
    assert.match(files, /1: 100% Normal\s+Yes\s+204\.8 kB\s+album\/two\/two\.bin/);

    // -G / -g: file wanted flags
    await remote(port, "-t", "1", "-G", "0");
    assert.match(await remote(port, "-t", "1", "-f"), /0: 100% Normal\s+No\s/);
    await remote(port, "-t", "1", "-g", "0");
    assert.match(await remote(port, "-t", "1", "-f"), /0: 100% Normal\s+Yes\s/);

    // -S / -s: stop and start
    await remote(port, "-t", "1", "-S");
    await waitRow(port, 1, (r) => r.status === "Stopped", 10_000, "stopped");
    assert.equal(leecher.torrents[0]?.state, "paused");
    await remote(port, "-t", "1", "-s");
    await waitRow(port, 1, (r) => r.status === "Seeding" || r.status === "Idle", 10_000, "started again");

    // -v: every piece read again, still complete
    await remote(port, "-t", "1", "-v");
    const verified = await waitRow(
      port,
      1,
      (r) => r.done === "100%" && r.status !== "Verifying",
      30_000,
      "the verify to end",
    );
    assert.notEqual(verified.status, "Stopped");
    assert.equal(
      leecher.torrents.find((t) => t.infoHash === albumMeta.infoHashHex)?.startupCheck?.rechecked,
      16,
    );

    // Session limits, -si, -st
    await remote(port, "-d", "100");
    await remote(port, "-u", "50");
    await remote(port, "-as");
    let session = await remote(port, "-si");
    assert.match(session, /Daemon version: 4\.0\.6 \(shoal\)/);
    assert.match(session, /RPC version: 17/);
    assert.match(session, /Download speed limit: 50 kB\/s/); // the turtle limit while -as is on
    await remote(port, "-AS");
    session = await remote(port, "-si");
    assert.match(session, /Download speed limit: 100 kB\/s/);
    assert.match(session, /Upload speed limit: 50 kB\/s/);
    assert.match(session, new RegExp(`Download directory: ${leechDir}`));
    await remote(port, "-D");
    await remote(port, "-U");
    const stats = await remote(port, "-st");
    assert.match(stats, /Downloaded: 512\.0 kB|Downloaded: 5\d\d\.\d kB/);

    // -a MAGNET: the metadata comes from the seed named by x.pe
    const magnet = formatMagnet({
      infoHash: singleMeta.infoHash,
      infoHashHex: singleMeta.infoHashHex,
      name: "solo.bin",
      trackers: [],
      webSeeds: [],
      peers: [`127.0.0.1:${seeder.port}`],
    });
    assert.match(await remote(port, "-a", magnet), /responded: "success"/);
    const solo = await waitRow(port, 2, (r) => r.done === "100%", 60_000, "the magnet download");
    assert.equal(solo.name, "solo.bin");

    // -r keeps the data; -rad deletes the torrent's files and nothing else
    await remote(port, "-t", "2", "-r");
    assert.ok(existsSync(join(leechDir, "solo.bin")), "-r keeps the data");
    await remote(port, "-t", "1", "-rad");
    const rows = parseList(await remote(port, "-l"));
    assert.deepEqual(rows, []);
    assert.ok(!existsSync(join(leechDir, "album")), "-rad deleted the album folder");
    assert.ok(existsSync(join(leechDir, "keep.txt")), "-rad left other files alone");
    assert.ok(existsSync(join(leechDir, "solo.bin")), "-rad left the other torrent's data alone");
    assert.equal(leecher.torrents.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
