/**
 * Data changed under a running seed never reaches a peer. A libtorrent leecher downloads a
 * two-file torrent from `cli.ts seed` (rate-limited, so the change lands mid-transfer); once it
 * has a few pieces, bytes of pieces it lacks are changed in one file and the other file is cut
 * to half its size. The leecher must see no hash failure (libtorrent's own counters and
 * alerts), must get every piece that did not change, and must not be disconnected; the seed
 * must log each changed piece it refused, naming the file.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { hasLibtorrent, makePayload, makeTorrentWithLibtorrent } from "./_harness.ts";
import { LineProcess } from "./_download_helpers.ts";
import { droppedByShoal, startSeedCli } from "./_seed_helpers.ts";

const LT = await hasLibtorrent();
const MIB = 1024 * 1024;
const PIECE = 256 * 1024;
const WATCHER = fileURLToPath(new URL("./lt_watch_leech.py", import.meta.url));

interface Snapshot {
  pieces: number[];
  hash_failures: number;
  failed_bytes: number;
  peers: number;
  downloaded: number;
  disconnects: { peer: string; reason: string }[];
}

/** The latest progress (or the report) the watcher printed. */
function latest(leecher: LineProcess, event = "progress"): Snapshot | undefined {
  for (let i = leecher.stdoutLines.length - 1; i >= 0; i--) {
    const line = leecher.stdoutLines[i]!;
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line) as { event: string } & Snapshot;
    if (e.event === event) return e;
  }
  return undefined;
}

async function waitUntil(what: string, timeoutMs: number, ok: () => boolean): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (ok()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`gave up waiting for ${what} after ${timeoutMs} ms`);
  return false;
}

async function flipByte(path: string, at: number): Promise<void> {
  const file = await Deno.open(path, { read: true, write: true });
  try {
    const one = new Uint8Array(1);
    await file.seek(at, Deno.SeekMode.Start);
    assert.equal(await file.read(one), 1);
    one[0]! ^= 0xff;
    await file.seek(at, Deno.SeekMode.Start);
    assert.equal(await file.write(one), 1);
  } finally {
    file.close();
  }
}

Deno.test({
  name: "a libtorrent leecher gets no changed byte from a seed whose files are changed and cut mid-transfer",
  ignore: !LT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal-seed-changed-" });
    try {
      const dataDir = join(dir, "data");
      await makePayload(join(dataDir, "t"), [{ path: "a.bin", size: 6 * MIB }, {
        path: "b.bin",
        size: 6 * MIB,
      }], 5);
      const torrentPath = join(dir, "t.torrent");
      await makeTorrentWithLibtorrent(join(dataDir, "t"), torrentPath, PIECE);
      const meta = parseMetainfo(await Deno.readFile(torrentPath));
      const fileOf = (name: string) => meta.files.find((f) => f.path[f.path.length - 1] === name)!;
      const a = fileOf("a.bin"), b = fileOf("b.bin");
      const original = new Uint8Array(meta.totalLength);
      original.set(await Deno.readFile(join(dataDir, "t", "a.bin")), a.offset);
      original.set(await Deno.readFile(join(dataDir, "t", "b.bin")), b.offset);
      const piecesOf = (f: typeof a) =>
        Array.from({ length: f.length / PIECE }, (_, k) => f.offset / PIECE + k);

      // 12 MiB at 2 MiB/s: about six seconds of transfer, plenty of it after the change.
      const seed = await startSeedCli(torrentPath, dataDir, { args: ["--up-limit", "2m"] });
      const leecher = new LineProcess("libtorrent leecher", "/usr/bin/python3", [
        WATCHER,
        "--torrent",
        torrentPath,
        "--save-path",
        join(dir, "out"),
        "--peer",
        seed.address,
        "--timeout",
        "120",
      ]);
      let report: Snapshot | undefined;
      const damaged = new Set<number>();
      const changed: number[] = [];
      try {
        assert(
          await waitUntil(
            "the leecher's first pieces",
            30_000,
            () => (latest(leecher)?.pieces.length ?? 0) >= 6,
          ),
          leecher.tail(),
        );
        const had = new Set(latest(leecher)!.pieces);
        // Change one byte in each of four pieces of a.bin the leecher lacks, spread over the file.
        const lacking = piecesOf(a).filter((p) => !had.has(p));
        for (let k = 0; k < 4 && lacking.length > 0; k++) {
          const p = lacking.splice(Math.floor((k * lacking.length) / 4), 1)[0]!;
          await flipByte(join(dataDir, "t", "a.bin"), p * PIECE - a.offset + 1234);
          changed.push(p);
          damaged.add(p);
        }
        // Cut b.bin to half: its second half's pieces are gone.
        await Deno.truncate(join(dataDir, "t", "b.bin"), b.length / 2);
        for (const p of piecesOf(b)) if ((p + 1) * PIECE - b.offset > b.length / 2) damaged.add(p);
        console.log(`leecher had ${had.size} pieces; changed ${changed.join(",")}; cut b.bin to half`);

        // Every other piece arrives, and then nothing more for three seconds.
        let count = -1, since = Date.now();
        await waitUntil("the leecher to get every unchanged piece and settle", 60_000, () => {
          const now = latest(leecher);
          if (now === undefined) return false;
          if (now.hash_failures > 0) return true; // failed already: stop waiting
          if (now.pieces.length !== count) [count, since] = [now.pieces.length, Date.now()];
          const all = [...Array(meta.pieceCount).keys()].every((p) =>
            damaged.has(p) || now.pieces.includes(p)
          );
          return all && Date.now() - since >= 3000;
        });
      } finally {
        await leecher.stop();
        report = latest(leecher, "report");
        await seed.interrupt();
      }
      const lines = seed.process.stderrLines;
      assert(report !== undefined, leecher.tail());

      // No byte that changed reached the leecher: libtorrent found no bad piece.
      assert.equal(
        report.hash_failures,
        0,
        `libtorrent failed ${report.hash_failures} pieces (${report.failed_bytes} bytes)\n${leecher.tail(2)}`,
      );
      assert.equal(report.failed_bytes, 0);
      // The seed kept the leecher connected and served it everything that did not change.
      assert.deepEqual(report.disconnects, [], "the leecher saw disconnections");
      assert.deepEqual(droppedByShoal(lines), [], "the seed dropped the leecher");
      const has = new Set(report.pieces);
      const missing = [...Array(meta.pieceCount).keys()].filter((p) => !damaged.has(p) && !has.has(p));
      assert.deepEqual(missing, [], "unchanged pieces the leecher did not get");
      // What the leecher has is the torrent's data (libtorrent verified it; check the bytes too).
      const got = new Uint8Array(meta.totalLength);
      for (const f of [a, b]) {
        const bytes = await Deno.readFile(join(dir, "out", "t", f.path[f.path.length - 1]!));
        got.set(bytes.subarray(0, f.length), f.offset);
      }
      for (const p of has) {
        const at = p * PIECE;
        assert.deepEqual(got.subarray(at, at + PIECE), original.subarray(at, at + PIECE), `piece ${p}`);
      }
      // The seed logged what it refused: each changed piece it was asked for, and the cut file.
      const refused = changed.filter((p) => !has.has(p));
      assert(refused.length > 0, "some changed piece was asked for after the change");
      for (const p of refused) {
        assert(
          lines.some((l) =>
            l.startsWith("WARN storage: ") && l.includes(`Piece ${p} changed on disk (in t/a.bin)`)
          ),
          `no warning for piece ${p}\n${seed.process.tail()}`,
        );
      }
      assert(
        lines.some((l) =>
          l.startsWith("WARN storage: ") && /t\/b\.bin/.test(l) && /no longer on disk/.test(l)
        ),
        `no warning for the cut file\n${seed.process.tail()}`,
      );
      console.log(
        `leecher: ${has.size}/${meta.pieceCount} pieces, 0 hash failures; seed refused ${refused.length} changed ` +
          `and ${[...damaged].filter((p) => !has.has(p)).length - refused.length} cut pieces`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
