/**
 * `share --bind 127.0.0.1` prints a magnet link that works as printed (issue 12, item 2): its
 * `x.pe` lists only what the listener serves, so a separate `download <that magnet>` with no
 * `--peer`, no tracker, no DHT and no LSD finds the sharer through `x.pe` alone and gets every
 * byte. (Before, `x.pe` listed the machine's interface addresses, where nothing listened, and
 * the download waited for metadata forever.)
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseMagnet, parseMetainfo } from "../../mod.ts";
import { makePayload, type PayloadFile } from "./_harness.ts";
import { compareDownload, MIB, startCli } from "./_download_helpers.ts";

const SPEC: readonly PayloadFile[] = [
  { path: "one.bin", size: 3 * MIB + 777 },
  { path: "sub/two.bin", size: 1 * MIB - 5 },
];

Deno.test("share --bind 127.0.0.1: the printed magnet link downloads with no other peer source", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-share-magnet-" });
  try {
    const seedDir = join(dir, "seed");
    await makePayload(join(seedDir, "shared"), [...SPEC], 12);
    await using share = startCli([
      "share",
      join(seedDir, "shared"),
      "-o",
      join(dir, "shared.torrent"),
      "--bind",
      "127.0.0.1",
      "--no-dht",
      "--no-lsd",
      "-q",
    ]);
    const line = await share.waitForLine((l) => l.startsWith("Magnet: "), 30_000, "the magnet link");
    const magnet = line.slice("Magnet: ".length);
    const link = parseMagnet(magnet);
    assert.ok(link.peers.length > 0, `the magnet lists no x.pe: ${magnet}`);
    for (const peer of link.peers) {
      assert.match(
        peer,
        /^127\.0\.0\.1:\d+$/,
        `x.pe lists an address the listener does not serve: ${magnet}`,
      );
    }
    const out = join(dir, "out");
    await using download = startCli(["download", magnet, "-o", out, "--no-dht", "--no-lsd", "-q"]);
    const status = await download.wait(60_000);
    assert.equal(status.code, 0, `${download.tail()}\n${share.tail()}`);
    const torrentPath = join(dir, "shared.torrent");
    const metainfo = parseMetainfo(await Deno.readFile(torrentPath));
    const problems = await compareDownload(
      { seedDir, name: "shared", torrentPath, metainfo, spec: SPEC },
      out,
    );
    assert.deepEqual(problems, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
