/**
 * BEP 11 peer exchange against libtorrent: shoal knows only peer A, a libtorrent leecher
 * that itself dialled peer B, another libtorrent leecher. A tells shoal about B in a
 * ut_pex message; shoal dials B, and both leechers complete from shoal's seed.
 *
 * Shoal seeds without listening, so it sends no listening port and neither libtorrent peer
 * can dial it: the only way it reaches B is by dialling the address A gave. Its upload is
 * limited so the leechers stay connected to each other (and A keeps B in its peer list)
 * long enough for A's first PEX message, which libtorrent sends within a second or two once
 * it has two peers.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "../../lib/types.ts";
import { Session } from "../../mod.ts";
import {
  freePort,
  hasLibtorrent,
  type LeechResult,
  makePayload,
  makeTorrentWithLibtorrent,
  runLibtorrentLeecher,
  waitForPort,
  withTimeout,
} from "./_harness.ts";

const LT = await hasLibtorrent();
const SIZE = 4 * 1024 * 1024;

/** Resolves when `check` holds (polled), rejects at the deadline. */
async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Deno.errors.TimedOut(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  name: "shoal learns peer B through PEX from libtorrent peer A, dials B, and both complete",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal_pex_lt_" });
    const abort = new AbortController();
    const running: Promise<unknown>[] = [];
    try {
      await makePayload(join(dir, "seed"), [{ path: "pex.bin", size: SIZE }], 23);
      const torrentPath = join(dir, "pex.torrent");
      await makeTorrentWithLibtorrent(join(dir, "seed", "pex.bin"), torrentPath, 64 * 1024);

      // B: an empty libtorrent leecher nobody is told about but A.
      const portB = await freePort();
      const b = runLibtorrentLeecher({
        torrentPath,
        dataDir: join(dir, "b"),
        peers: [],
        port: portB,
        timeoutMs: 90_000,
        signal: abort.signal,
      });
      running.push(b.catch(() => {}));
      await waitForPort(portB, 30_000);

      // A: an empty libtorrent leecher that dials B.
      const portA = await freePort();
      let peersOfA = 0;
      const a = runLibtorrentLeecher({
        torrentPath,
        dataDir: join(dir, "a"),
        peers: [`127.0.0.1:${portB}`],
        port: portA,
        timeoutMs: 90_000,
        signal: abort.signal,
        onProgress: (p) => (peersOfA = p.peers),
      });
      running.push(a.catch(() => {}));
      await until(() => peersOfA >= 1, 30_000, "libtorrent A to connect to libtorrent B");

      // Shoal: a seed that knows only A, and does not listen.
      const logs: LogRecord[] = [];
      await using shoal = new Session({
        downloadDir: join(dir, "seed"),
        bind: "127.0.0.1",
        noListen: true,
        trackers: false,
        lsd: false,
        uploadLimit: 1024 * 1024,
        logLevel: "debug",
        logSinks: [(r) => logs.push(r)],
      });
      const torrent = await shoal.add(await Deno.readFile(torrentPath), { peers: [`127.0.0.1:${portA}`] });
      assert.equal(torrent.state, "seeding");
      const addressB = `127.0.0.1:${portB}`;
      const connected = new Set<string>();
      torrent.addEventListener(
        "peer-connected",
        (e) => connected.add(e.detail.address),
      );

      const learned = () =>
        logs.some((r) =>
          r.category === "pex" && r.message === "Peers from PEX" && r.fields.peer === `127.0.0.1:${portA}` &&
          String(r.fields.peers).split(",").includes(addressB)
        );
      try {
        await until(learned, 30_000, "a PEX message from A naming B");
        await until(() => connected.has(addressB), 30_000, "shoal to connect to B");
      } catch (error) {
        for (const r of logs.filter((r) => r.category !== "choker").slice(-30)) {
          console.error(r.level, r.category, r.message, JSON.stringify(r.fields));
        }
        throw error;
      }
      assert(!logs.some((r) => r.category === "swarm" && /invalid peer address/i.test(r.message)));

      const [doneA, doneB] = await withTimeout(
        Promise.all([a, b]),
        90_000,
        "both libtorrent leechers to complete",
      );
      assert.equal(doneA.bytes, SIZE);
      assert.equal(doneB.bytes, SIZE);
      console.log(
        `PEX: shoal learned B from A and connected; A and B complete (${doneA.seconds.toFixed(1)} s, ` +
          `${doneB.seconds.toFixed(1)} s at 1 MiB/s upload)`,
      );
    } finally {
      abort.abort();
      await Promise.all(running);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "two libtorrent leechers learn each other from shoal's PEX messages and connect",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal_pex_lt_send_" });
    const abort = new AbortController();
    const running: Promise<unknown>[] = [];
    try {
      await makePayload(join(dir, "seed"), [{ path: "pex.bin", size: SIZE }], 29);
      const torrentPath = join(dir, "pex.torrent");
      await makeTorrentWithLibtorrent(join(dir, "seed", "pex.bin"), torrentPath, 64 * 1024);

      // X and Y: empty libtorrent leechers that know nobody.
      const ports = [await freePort(), await freePort()];
      const leechers = ports.map((port, i) =>
        runLibtorrentLeecher({
          torrentPath,
          dataDir: join(dir, `leech${i}`),
          peers: [],
          port,
          timeoutMs: 90_000,
          signal: abort.signal,
        })
      );
      for (const l of leechers) running.push(l.catch(() => {}));
      for (const port of ports) await waitForPort(port, 30_000);

      // Shoal seeds to both (slowly) and tells each about the other.
      const logs: LogRecord[] = [];
      await using shoal = new Session({
        downloadDir: join(dir, "seed"),
        bind: "127.0.0.1",
        noListen: true,
        trackers: false,
        lsd: false,
        uploadLimit: 1024 * 1024,
        logLevel: "debug",
        logSinks: [(r) => logs.push(r)],
      });
      const [x, y] = ports.map((port) => `127.0.0.1:${port}`) as [string, string];
      await shoal.add(await Deno.readFile(torrentPath), { peers: [x, y] });

      const results = await withTimeout(
        Promise.all(leechers),
        90_000,
        "both libtorrent leechers to complete",
      );
      const [doneX, doneY] = results as [LeechResult, LeechResult];
      const sent = logs.filter((r) => r.category === "pex" && r.message === "Sent PEX").map((r) =>
        r.fields.peer
      );
      assert(sent.includes(x) && sent.includes(y), `shoal sent PEX to both: ${JSON.stringify(sent)}`);
      assert(
        doneX.pexPeers.includes(y) || doneY.pexPeers.includes(x),
        `a leecher connected to the other through PEX: X ${JSON.stringify(doneX.pexPeers)}, ` +
          `Y ${JSON.stringify(doneY.pexPeers)}`,
      );
      console.log(
        `PEX from shoal: X learned ${doneX.pexPeers.join(",") || "-"}, Y learned ${
          doneY.pexPeers.join(",") || "-"
        }`,
      );
    } finally {
      abort.abort();
      await Promise.all(running);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
