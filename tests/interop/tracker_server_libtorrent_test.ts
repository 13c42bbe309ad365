import assert from "node:assert/strict";
import { join } from "node:path";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { TrackerServer } from "../../lib/tracker/server.ts";
import {
  filesEqual,
  hasLibtorrent,
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "./_harness.ts";

// Two libtorrent sessions, a seeder and a leecher, that are told about no peer at all: they
// can only find each other through shoal's built-in tracker, named in the torrent. Run once
// with the HTTP announce URL and once with the UDP one.

const PAYLOAD_SIZE = 3 * 1024 * 1024 + 12345;
const PIECE_LENGTH = 64 * 1024;
const ignore = !(await hasLibtorrent());

for (const protocol of ["http", "udp"] as const) {
  Deno.test({
    name:
      `a libtorrent leecher finds a libtorrent seeder only through the built-in ${protocol.toUpperCase()} tracker`,
    ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `shoal_tracker_lt_${protocol}_` });
      const records: LogRecord[] = [];
      const tracker = new TrackerServer({
        logger: new Logger({ level: "debug", sinks: [(r) => records.push(r)] }),
        bind: "127.0.0.1",
        http: protocol === "http",
        udp: protocol === "udp",
        interval: 60,
        minInterval: 5,
      });
      try {
        await tracker.start();
        const url = tracker.announceUrls[protocol];
        assert.ok(url !== undefined);
        const seedDir = join(dir, "seed");
        const leechDir = join(dir, "leech");
        await Deno.mkdir(leechDir);
        await makePayload(seedDir, [{ path: "payload.bin", size: PAYLOAD_SIZE }], 42);
        const torrentPath = join(dir, "payload.torrent");
        const made = await makeTorrentWithLibtorrent(
          join(seedDir, "payload.bin"),
          torrentPath,
          PIECE_LENGTH,
          {
            trackers: [url],
          },
        );

        await using _seeder = await startLibtorrentSeeder({ torrentPath, dataDir: seedDir });
        const result = await runLibtorrentLeecher({
          torrentPath,
          dataDir: leechDir,
          peers: [],
          timeoutMs: 120_000,
        });
        assert.equal(result.bytes, PAYLOAD_SIZE);
        assert.ok(
          await filesEqual(join(seedDir, "payload.bin"), join(leechDir, "payload.bin")),
          "same bytes",
        );

        const stats = tracker.stats();
        assert.ok(stats.announces >= 2, `announces: ${JSON.stringify(stats)}`);
        assert.equal(stats.torrents, 1);
        assert.equal(stats.errors, 0, `errors: ${JSON.stringify(stats)}`);
        // Both sessions announced this torrent, each from its own listen port.
        const announces = records.filter((r) => r.message === `${protocol.toUpperCase()} announce`);
        assert.ok(announces.every((r) => r.fields.torrent === made.infoHash), "announced info-hash");
        const peers = new Set(announces.map((r) => r.fields.peer));
        assert.ok(peers.size >= 2, `announcing peers: ${[...peers].join(", ")}`);
      } finally {
        await tracker.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
