/**
 * The tracker clients against a real tracker: Debian's opentracker on loopback. Two
 * peers announce with different peer ids; the second must get the first's address back,
 * over HTTP and over UDP, directly and through the Announcer.
 *
 * Debian's opentracker is built with a whitelist: it refuses every torrent not listed in
 * the file given with `-w`; `startOpentracker()` (in `_trackers.ts`) writes one and waits
 * until opentracker has loaded it.
 */

import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { Announcer } from "../../lib/tracker/announcer.ts";
import { httpAnnounce, httpScrape, scrapeUrl } from "../../lib/tracker/http_tracker.ts";
import type { AnnounceRequest } from "../../lib/tracker/types.ts";
import { toHex } from "../../lib/net/bytes.ts";
import { UdpTrackerClient } from "../../lib/tracker/udp_tracker.ts";
import { hasOpentracker, startOpentracker } from "./_trackers.ts";

const HAS_OPENTRACKER = await hasOpentracker();

/** Info-hashes the tracker accepts (one per test, so tests do not see each other's peers). */
const HASHES = [0x51, 0x52, 0x53, 0x54].map((b) => new Uint8Array(20).fill(b));

function peer(infoHash: Uint8Array, id: string, port: number): AnnounceRequest {
  return {
    infoHash,
    peerId: new TextEncoder().encode(id.padEnd(20, "-")),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    event: "started",
    numwant: 50,
    key: port,
  };
}

Deno.test({
  name: "httpAnnounce() and httpScrape() work against opentracker",
  ignore: !HAS_OPENTRACKER,
  async fn() {
    await using tracker = await startOpentracker({ infoHashes: HASHES });
    const first = await httpAnnounce(tracker.httpUrl, peer(HASHES[0]!, "-SH0100-first", 40001), {
      timeoutMs: 5000,
    });
    assert.ok(first.interval > 0, tracker.output());
    const second = await httpAnnounce(tracker.httpUrl, peer(HASHES[0]!, "-SH0100-second", 40002), {
      timeoutMs: 5000,
    });
    assert.ok(second.peers.includes("127.0.0.1:40001"), `peers: ${second.peers.join(", ")}`);
    assert.equal(second.leechers, 2);
    const counts = await httpScrape(scrapeUrl(tracker.httpUrl)!, [HASHES[0]!], { timeoutMs: 5000 });
    assert.deepEqual(counts.get(toHex(HASHES[0]!)), { seeders: 0, completed: 0, leechers: 2 });
    const stopped = await httpAnnounce(tracker.httpUrl, {
      ...peer(HASHES[0]!, "-SH0100-first", 40001),
      event: "stopped",
    });
    assert.ok(!stopped.peers.includes("127.0.0.1:40001"));
  },
});

Deno.test({
  name: "UdpTrackerClient announces and scrapes against opentracker",
  ignore: !HAS_OPENTRACKER,
  async fn() {
    await using tracker = await startOpentracker({ infoHashes: HASHES });
    await using udp = new UdpTrackerClient({ baseTimeoutMs: 2000, maxRetries: 2, hostname: "127.0.0.1" });
    const first = await udp.announce(tracker.udpUrl, peer(HASHES[1]!, "-SH0100-first", 41001));
    assert.ok(first.interval > 0, tracker.output());
    const second = await udp.announce(tracker.udpUrl, peer(HASHES[1]!, "-SH0100-second", 41002));
    assert.ok(second.peers.includes("127.0.0.1:41001"), `peers: ${second.peers.join(", ")}`);
    assert.equal(second.leechers, 2);
    const done = await udp.announce(tracker.udpUrl, {
      ...peer(HASHES[1]!, "-SH0100-second", 41002),
      event: "completed",
      left: 0,
    });
    assert.equal(done.seeders, 1);
    const counts = await udp.scrape(tracker.udpUrl, [HASHES[1]!, HASHES[3]!]);
    assert.deepEqual(counts.get(toHex(HASHES[1]!)), { seeders: 1, completed: 1, leechers: 1 });
    assert.deepEqual(counts.get(toHex(HASHES[3]!)), { seeders: 0, completed: 0, leechers: 0 });
  },
});

Deno.test({
  name: "Two Announcers find each other through opentracker over HTTP and UDP",
  ignore: !HAS_OPENTRACKER,
  async fn() {
    await using tracker = await startOpentracker({ infoHashes: HASHES });
    await using udp = new UdpTrackerClient({ baseTimeoutMs: 2000, maxRetries: 2, hostname: "127.0.0.1" });
    for (const [url, infoHash] of [[tracker.httpUrl, HASHES[2]!], [tracker.udpUrl, HASHES[3]!]] as const) {
      const found: string[] = [];
      const make = (id: string, port: number, onPeers: (peers: string[]) => void) =>
        new Announcer({
          tiers: [[url]],
          infoHash,
          peerId: new TextEncoder().encode(id.padEnd(20, "-")),
          port,
          stats: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
          onPeers,
          logger: new Logger(),
          udp,
        });
      const first = make("-SH0100-one", 42001, () => {});
      const second = make("-SH0100-two", 42002, (peers) => found.push(...peers));
      try {
        first.start();
        const deadline = Date.now() + 10_000;
        while (first.status()[0]?.state !== "working") {
          assert.ok(Date.now() < deadline, `first announce: ${JSON.stringify(first.status())}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        second.start();
        while (!found.includes("127.0.0.1:42001")) {
          assert.ok(Date.now() < deadline, `second announce: ${JSON.stringify(second.status())} ${found}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await Promise.all([first.stop(), second.stop()]);
      }
    }
  },
});
