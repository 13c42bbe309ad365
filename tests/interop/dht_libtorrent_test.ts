/**
 * A small DHT on loopback (three shoal DhtNodes, the shoal session's own node and a libtorrent
 * session with its DHT on, bootstrapped from each other) finds peers with no tracker at all:
 *
 * - shoal finds a libtorrent seed's address through the DHT, then downloads from it, given the
 *   .torrent and no peers, and given a magnet link with only `xt=`;
 * - a libtorrent leecher given the .torrent and no peers finds a shoal seed through the DHT
 *   and downloads from it.
 *
 * Trackers, local service discovery and peer exchange are off on every side, so the DHT is the
 * only way the peers can meet.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DhtNode } from "../../lib/dht/node.ts";
import { Logger } from "../../lib/log.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import type { LogRecord } from "../../lib/types.ts";
import { Session } from "../../mod.ts";
import {
  filesEqual,
  hasLibtorrent,
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  startLibtorrentSeeder,
  withTimeout,
} from "./_harness.ts";

const LT = await hasLibtorrent();
const SIZE = 3 * 1024 * 1024 + 12_345;

/** Starts `count` shoal nodes on 127.0.0.1, each bootstrapped from the first. */
async function startNodes(count: number): Promise<DhtNode[]> {
  const nodes: DhtNode[] = [];
  try {
    const first = new DhtNode({ hostname: "127.0.0.1" });
    nodes.push(first);
    const port = await first.start();
    for (let i = 1; i < count; i++) {
      const node = new DhtNode({ hostname: "127.0.0.1", bootstrap: [`127.0.0.1:${port}`] });
      nodes.push(node);
      await node.start();
      await node.ready;
    }
    return nodes;
  } catch (error) {
    await Promise.all(nodes.map((n) => n.close()));
    throw error;
  }
}

/** Looks up from `node` until `peer` is found; returns the first lookup that found it. */
async function lookupUntil(node: DhtNode, infoHash: Uint8Array, peer: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let tries = 0;
  for (;;) {
    tries++;
    const result = await node.lookup(infoHash);
    if (result.peers.includes(peer)) return { ...result, tries };
    if (Date.now() > deadline) {
      throw new Deno.errors.TimedOut(`No DHT lookup found ${peer} in ${timeoutMs} ms (${tries} tries)`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function makeFixture(dir: string) {
  const data = join(dir, "data");
  await Deno.mkdir(data);
  await makePayload(data, [{ path: "payload.bin", size: SIZE }], 42);
  const torrentPath = join(dir, "payload.torrent");
  const made = await makeTorrentWithLibtorrent(join(data, "payload.bin"), torrentPath, 64 * 1024);
  const metainfo = parseMetainfo(await Deno.readFile(torrentPath));
  assert.equal(metainfo.infoHashHex, made.infoHash);
  assert.equal(metainfo.announceList.length, 0, "the torrent names no tracker");
  return { data, torrentPath, metainfo };
}

function sessionFor(downloadDir: string, bootstrap: string, records: LogRecord[]): Session {
  return new Session({
    downloadDir,
    bind: "127.0.0.1",
    trackers: false,
    lsd: false,
    pex: false,
    dht: { bootstrap: [bootstrap], port: 0 },
    logger: new Logger({ level: "info", sinks: [(r) => records.push(r)] }),
  });
}

Deno.test({
  name:
    "shoal finds a libtorrent seed through the DHT and downloads from it, from a .torrent and a bare magnet",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-dht-lt-" });
    const nodes = await startNodes(3);
    try {
      const { data, torrentPath, metainfo } = await makeFixture(dir);
      const seeder = await startLibtorrentSeeder({
        torrentPath,
        dataDir: data,
        dhtBootstrap: [`127.0.0.1:${nodes[0]!.port}`],
      });
      try {
        const seedAddress = `127.0.0.1:${seeder.port}`;
        // 1. The lookup finds the libtorrent seed's address.
        const found = await lookupUntil(nodes[2]!, metainfo.infoHash, seedAddress, 60_000);
        console.log(
          `DHT lookup found the libtorrent seed: ${found.ms} ms, ${found.queried} queried, ` +
            `${found.responded} answered, ${nodes[2]!.nodeCount} nodes in the table, try ${found.tries}`,
        );

        // 2. A .torrent with no peers and no trackers completes through DHT peers.
        const records: LogRecord[] = [];
        {
          await using session = sessionFor(join(dir, "out1"), `127.0.0.1:${nodes[1]!.port}`, records);
          const started = performance.now();
          const torrent = await session.add(await Deno.readFile(torrentPath));
          await withTimeout(torrent.completed, 60_000, "download through DHT peers");
          const seconds = (performance.now() - started) / 1000;
          assert.ok(await filesEqual(join(data, "payload.bin"), join(dir, "out1", "payload.bin")));
          const lookup = records.find((r) => r.message === "DHT lookup done" && Number(r.fields.peers) > 0);
          assert.ok(lookup, "a DHT lookup found peers");
          assert.ok(Number(lookup.fields.nodes) >= 3, `nodes ${lookup.fields.nodes}`);
          assert.ok(
            records.some((r) => r.message === "Peer connected" && r.fields.peer === seedAddress),
            "connected to the seed the DHT named",
          );
          assert.equal(session.dht?.status(metainfo.infoHashHex)?.peersFound, 1);
          console.log(
            `.torrent via DHT: ${(SIZE / 1048576).toFixed(1)} MiB in ${seconds.toFixed(2)} s; ` +
              `lookup ${lookup.fields.ms} ms, ${lookup.fields.nodes} nodes, ${lookup.fields.peers} peers`,
          );
        }

        // 3. A magnet link with only xt= does the same (metadata from the seed, BEP 9).
        records.length = 0;
        {
          await using session = sessionFor(join(dir, "out2"), `127.0.0.1:${nodes[2]!.port}`, records);
          const started = performance.now();
          const torrent = await session.add(`magnet:?xt=urn:btih:${metainfo.infoHashHex}`, {
            signal: AbortSignal.timeout(60_000),
          });
          await withTimeout(torrent.completed, 60_000, "magnet download through DHT peers");
          const seconds = (performance.now() - started) / 1000;
          assert.ok(await filesEqual(join(data, "payload.bin"), join(dir, "out2", "payload.bin")));
          assert.ok(records.some((r) => r.message === "DHT lookup done" && Number(r.fields.peers) > 0));
          console.log(
            `bare magnet via DHT: metadata and ${(SIZE / 1048576).toFixed(1)} MiB in ${seconds.toFixed(2)} s`,
          );
        }
      } finally {
        await seeder.stop();
      }
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "libtorrent finds a shoal seed through the DHT and downloads from it",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-dht-lt-" });
    const nodes = await startNodes(3);
    try {
      const { data, torrentPath, metainfo } = await makeFixture(dir);
      const records: LogRecord[] = [];
      await using session = sessionFor(data, `127.0.0.1:${nodes[0]!.port}`, records);
      const torrent = await session.add(await Deno.readFile(torrentPath));
      assert.equal(torrent.state, "seeding");
      const seedAddress = `127.0.0.1:${session.port}`;
      // The seed's announce reached the DHT.
      const found = await lookupUntil(nodes[2]!, metainfo.infoHash, seedAddress, 30_000);
      // The node may store the announce a moment before the seed's lookup logs its outcome.
      const announced = () =>
        records.some((r) => r.message === "DHT lookup done" && Number(r.fields.announced) > 0);
      for (const deadline = Date.now() + 10_000; !announced() && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(announced(), "the seed logged no lookup that announced to a node");

      const out = join(dir, "out");
      const result = await runLibtorrentLeecher({
        torrentPath,
        dataDir: out,
        peers: [],
        dhtBootstrap: [`127.0.0.1:${nodes[1]!.port}`],
        timeoutMs: 90_000,
      });
      assert.equal(result.bytes, SIZE);
      assert.ok(await filesEqual(join(data, "payload.bin"), join(out, "payload.bin")));
      assert.ok(torrent.stats().uploaded >= SIZE, "the bytes came from the shoal seed");
      console.log(
        `libtorrent via DHT from shoal: ${(SIZE / 1048576).toFixed(1)} MiB in ${
          result.seconds.toFixed(2)
        } s ` +
          `(DHT lookup included); shoal seed visible after ${found.tries} lookup(s)`,
      );
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
