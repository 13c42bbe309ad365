/**
 * shoal (the library, in-process) downloads one torrent from three different seeders
 * at once: libtorrent, Transmission and another shoal session. Blocks must arrive
 * from all three, proven with `torrent.peers()` snapshots.
 *
 * Transmission unchokes a new peer only at its next rechoke (up to about 10 s), then
 * answers requests in bursts about every 500 ms; the other two serve over 100 MiB/s on
 * loopback and would finish the torrent before Transmission's first burst. So the
 * leecher dials Transmission first, waits (with a deadline) for its first blocks, then
 * adds the other two seeders. From then on the snapshots must show all three unchoking
 * us with requests in flight to each at the same moment. Nothing is rate-limited.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type PeerInfo, Session } from "../../mod.ts";
import {
  hasLibtorrent,
  hasTransmission,
  type PayloadFile,
  startLibtorrentSeeder,
  startTransmissionSeeder,
} from "./_harness.ts";
import { compareDownload, MIB, prepareTorrent } from "./_download_helpers.ts";

const READY = (await hasTransmission()) && (await hasLibtorrent());

/** 128 MiB, so the other two need most of a second: Transmission often sends again meanwhile. */
const PAYLOAD: PayloadFile[] = [
  { path: "a/one.bin", size: 80 * MIB + 4_321 },
  { path: "a/b/empty.txt", size: 0 },
  { path: "c/two.bin", size: 48 * MIB - 4_321 + 99 },
];

/** Polls `check` every 50 ms until it returns true, with a deadline. */
async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Deno.errors.TimedOut(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  name: "a download takes blocks from a libtorrent, a Transmission and a shoal seeder at once",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-dl-multi-" });
    const stack = new AsyncDisposableStack();
    try {
      const prepared = await prepareTorrent(dir, { seed: 13, spec: PAYLOAD });
      const meta = prepared.metainfo;
      const lt = await startLibtorrentSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
      });
      stack.defer(() => lt.stop());
      const tr = await startTransmissionSeeder({
        torrentPath: prepared.torrentPath,
        dataDir: prepared.seedDir,
        readyTimeoutMs: 120_000,
      });
      stack.defer(() => tr.stop());
      // The shoal seeder reads the same data folder (its resume data goes in its own folder).
      // Every peer here is 127.0.0.1 and Transmission keeps one connection per address: peer
      // exchange or local discovery would make the shoal seed dial Transmission too, and
      // Transmission would then drop the leecher. This test is about three seeders, so both are off.
      const quiet = { bind: "127.0.0.1", pex: false, lsd: false } as const;
      const seedSession = new Session({ downloadDir: prepared.seedDir, ...quiet });
      stack.defer(() => seedSession.close());
      const seeding = await seedSession.add(meta, { resumeDir: join(dir, "seed-resume") });
      assert.equal(seeding.state, "seeding");

      const leechSession = new Session({ downloadDir: join(dir, "out"), ...quiet });
      stack.defer(() => leechSession.close());
      const trAddress = `127.0.0.1:${tr.port}`;
      const ltAddress = `127.0.0.1:${lt.port}`;
      const shoalAddress = `127.0.0.1:${seedSession.port}`;
      const torrent = await leechSession.add(meta, { peers: [trAddress] });

      // Largest `downloaded` seen per peer, from snapshots on every verified piece and every
      // 20 ms (a seed's connection is closed once we are complete, so the last snapshot counts).
      const most = new Map<string, number>();
      let allUnchoking = 0;
      let allRequested = 0;
      const snapshot = (): PeerInfo[] => {
        const peers = torrent.peers();
        for (const p of peers) most.set(p.address, Math.max(most.get(p.address) ?? 0, p.downloaded));
        const serving = peers.filter((p) => !p.flags.peerChoking).map((p) => p.address);
        if ([trAddress, ltAddress, shoalAddress].every((a) => serving.includes(a))) allUnchoking++;
        const asked = peers.filter((p) => !p.flags.peerChoking && p.outstanding > 0).map((p) => p.address);
        if ([trAddress, ltAddress, shoalAddress].every((a) => asked.includes(a))) allRequested++;
        return peers;
      };
      torrent.addEventListener("piece-verified", snapshot);
      const timer = setInterval(snapshot, 20);
      stack.defer(() => clearInterval(timer));

      await until(
        () => snapshot().some((p) => p.address === trAddress && p.downloaded > 0),
        60_000,
        "Transmission unchokes the leecher and sends its first blocks",
      );
      const atJoin = new Map(most);
      const joined = performance.now();
      // The shoal seed joins next and must deliver before libtorrent joins: libtorrent alone can
      // serve the whole payload on loopback in under a second, before another seed is unchoked.
      torrent.addPeers([shoalAddress]);
      await until(
        () => snapshot().some((p) => p.address === shoalAddress && p.downloaded > 0),
        60_000,
        "the shoal seed sends its first blocks",
      );
      torrent.addPeers([ltAddress]);
      let timeout: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        torrent.completed,
        new Promise((_, reject) => {
          timeout = setTimeout(() => reject(new Deno.errors.TimedOut("Timed out: download")), 120_000);
        }),
      ]).finally(() => clearTimeout(timeout));
      const seconds = (performance.now() - joined) / 1000;
      snapshot();

      const rows = [trAddress, ltAddress, shoalAddress].map((address, i) => ({
        seeder: ["Transmission", "libtorrent", "shoal"][i]!,
        address,
        beforeJoinMiB: ((atJoin.get(address) ?? 0) / MIB).toFixed(2),
        afterJoinMiB: (((most.get(address) ?? 0) - (atJoin.get(address) ?? 0)) / MIB).toFixed(2),
        totalMiB: ((most.get(address) ?? 0) / MIB).toFixed(2),
      }));
      console.log(
        `after the join: ${seconds.toFixed(2)} s to finish; snapshots with all three unchoking us: ` +
          `${allUnchoking}, also with requests in flight to each: ${allRequested}; blocks per seeder:`,
      );
      console.table(rows);
      for (const address of [trAddress, ltAddress, shoalAddress]) {
        assert((most.get(address) ?? 0) > 0, `no blocks from ${address}: ${JSON.stringify(rows)}`);
      }
      assert(allRequested > 0, "the three seeders never served us at the same time");
      const stats = torrent.stats();
      assert.equal(stats.completedPieces, meta.pieceCount);
      assert.deepEqual(await compareDownload(prepared, join(dir, "out")), []);
    } finally {
      await stack.disposeAsync();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
