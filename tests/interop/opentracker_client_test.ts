/**
 * The tracker clients against a real tracker: Debian's opentracker on loopback. Two
 * peers announce with different peer ids; the second must get the first's address back,
 * over HTTP and over UDP, directly and through the Announcer.
 *
 * Debian's opentracker is built with a whitelist: it refuses every torrent not listed in
 * the file given with `-w` (a path inside the `-d` directory it chroots to), so the test
 * writes one. opentracker drops privileges to `nobody`, so the directory and file must be
 * readable by others.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Logger } from "../../lib/log.ts";
import { Announcer } from "../../lib/tracker/announcer.ts";
import { httpAnnounce, httpScrape, scrapeUrl } from "../../lib/tracker/http_tracker.ts";
import { type AnnounceRequest, toHex } from "../../lib/tracker/types.ts";
import { UdpTrackerClient } from "../../lib/tracker/udp_tracker.ts";

const OPENTRACKER = "/usr/bin/opentracker";
const HAS_OPENTRACKER = await Deno.stat(OPENTRACKER).then(() => true, () => false);
const READY_MS = 10_000;

/** Info-hashes the tracker accepts (one per test, so tests do not see each other's peers). */
const HASHES = [0x51, 0x52, 0x53, 0x54].map((b) => new Uint8Array(20).fill(b));

interface RunningTracker extends AsyncDisposable {
  port: number;
  http: string;
  udp: string;
  output(): string;
}

/** A port free for both TCP and UDP on 127.0.0.1 at the time of the call. */
function freeTcpUdpPort(): number {
  for (let tries = 0; tries < 50; tries++) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (tcp.addr as Deno.NetAddr).port;
    try {
      const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
      udp.close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    } finally {
      tcp.close();
    }
  }
  throw new Error("Cannot find a port free for both TCP and UDP");
}

async function startOpentracker(): Promise<RunningTracker> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-opentracker-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(join(dir, "whitelist"), HASHES.map(toHex).join("\n") + "\n");
  await Deno.chmod(join(dir, "whitelist"), 0o644);
  const port = freeTcpUdpPort();
  const child = new Deno.Command(OPENTRACKER, {
    args: ["-i", "127.0.0.1", "-p", String(port), "-P", String(port), "-d", dir, "-w", "whitelist"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const drain = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(
      new WritableStream({ write: (chunk) => void (output = (output + decoder.decode(chunk)).slice(-4000)) }),
    );
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch (error) {
      // Already exited: nothing to kill.
      if (!(error instanceof TypeError)) throw error;
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch (error) {
        if (!(error instanceof TypeError)) throw error;
      }
    }, 5000);
    try {
      await child.status;
      await drained;
    } finally {
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    }
  };
  try {
    const deadline = Date.now() + READY_MS;
    for (;;) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
        if (Date.now() > deadline) {
          throw new Error(`opentracker did not listen within ${READY_MS} ms:\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    http: `http://127.0.0.1:${port}/announce`,
    udp: `udp://127.0.0.1:${port}/announce`,
    output: () => output,
    [Symbol.asyncDispose]: stop,
  };
}

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
    await using tracker = await startOpentracker();
    const first = await httpAnnounce(tracker.http, peer(HASHES[0]!, "-SH0100-first", 40001), {
      timeoutMs: 5000,
    });
    assert.ok(first.interval > 0, tracker.output());
    const second = await httpAnnounce(tracker.http, peer(HASHES[0]!, "-SH0100-second", 40002), {
      timeoutMs: 5000,
    });
    assert.ok(second.peers.includes("127.0.0.1:40001"), `peers: ${second.peers.join(", ")}`);
    assert.equal(second.leechers, 2);
    const counts = await httpScrape(scrapeUrl(tracker.http)!, [HASHES[0]!], { timeoutMs: 5000 });
    assert.deepEqual(counts.get(toHex(HASHES[0]!)), { seeders: 0, completed: 0, leechers: 2 });
    const stopped = await httpAnnounce(tracker.http, {
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
    await using tracker = await startOpentracker();
    await using udp = new UdpTrackerClient({ baseTimeoutMs: 2000, maxRetries: 2, hostname: "127.0.0.1" });
    const first = await udp.announce(tracker.udp, peer(HASHES[1]!, "-SH0100-first", 41001));
    assert.ok(first.interval > 0, tracker.output());
    const second = await udp.announce(tracker.udp, peer(HASHES[1]!, "-SH0100-second", 41002));
    assert.ok(second.peers.includes("127.0.0.1:41001"), `peers: ${second.peers.join(", ")}`);
    assert.equal(second.leechers, 2);
    const done = await udp.announce(tracker.udp, {
      ...peer(HASHES[1]!, "-SH0100-second", 41002),
      event: "completed",
      left: 0,
    });
    assert.equal(done.seeders, 1);
    const counts = await udp.scrape(tracker.udp, [HASHES[1]!, HASHES[3]!]);
    assert.deepEqual(counts.get(toHex(HASHES[1]!)), { seeders: 1, completed: 1, leechers: 1 });
    assert.deepEqual(counts.get(toHex(HASHES[3]!)), { seeders: 0, completed: 0, leechers: 0 });
  },
});

Deno.test({
  name: "Two Announcers find each other through opentracker over HTTP and UDP",
  ignore: !HAS_OPENTRACKER,
  async fn() {
    await using tracker = await startOpentracker();
    await using udp = new UdpTrackerClient({ baseTimeoutMs: 2000, maxRetries: 2, hostname: "127.0.0.1" });
    for (const [url, infoHash] of [[tracker.http, HASHES[2]!], [tracker.udp, HASHES[3]!]] as const) {
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
