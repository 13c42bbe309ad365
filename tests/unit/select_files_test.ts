import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { Bitfield } from "../../lib/bitfield.ts";
import { createTorrent } from "../../lib/create.ts";
import { parseFileSelection, piecesFor, selectOnly, wantedBytes } from "../../lib/file_priority.ts";
import { formatMagnet, parseMagnet } from "../../lib/magnet.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import { BaseSession } from "../../lib/session.ts";
import type { Metainfo, TorrentFile } from "../../lib/types.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { withDeadline } from "../_fake_peer.ts";

// File selection: priorities → pieces, a session downloading only some files (BEP 53 `so` and
// `selectFiles`), and the CLI's `--files` and magnet `so=`.

const PIECE = 16384;

/**
 * Five files over 7 pieces of 16 KiB (the last one short):
 *   0 "a.bin" 20000 bytes: pieces 0-1 (shares piece 1)
 *   1 "b.bin" 10000 bytes: piece 1 only
 *   2 "bz-empty"  0 bytes: no piece
 *   3 "c.bin" 40000 bytes: pieces 1-4
 *   4 "d.bin" 30000 bytes: pieces 4-6 (shares piece 4)
 */
const SPEC: readonly { name: string; size: number }[] = [
  { name: "a.bin", size: 20000 },
  { name: "b.bin", size: 10000 },
  { name: "bz-empty", size: 0 },
  { name: "c.bin", size: 40000 },
  { name: "d.bin", size: 30000 },
];

function bytesOf(index: number, size: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => ((i * 131 + index * 71 + 1) % 251) + 1); // never 0
}

/** A metainfo of the SPEC layout, without data (for the pure functions). */
function layout(extra: Partial<TorrentFile>[] = []): Metainfo {
  let offset = 0;
  const files: TorrentFile[] = [
    ...SPEC.map((f): Partial<TorrentFile> => ({ path: [f.name], length: f.size })),
    ...extra,
  ].map(
    (f) => {
      const path = f.path ?? ["x"];
      const file = {
        path,
        safePath: `p/${path.join("/")}`,
        length: f.length ?? 0,
        offset,
        pad: f.pad ?? false,
      };
      offset += file.length;
      return file;
    },
  );
  return {
    infoHash: new Uint8Array(20),
    infoHashHex: "00".repeat(20),
    infoBytes: new Uint8Array(),
    name: "p",
    pieceLength: PIECE,
    pieceCount: Math.ceil(offset / PIECE),
    pieceHashes: new Uint8Array(Math.ceil(offset / PIECE) * 20),
    totalLength: offset,
    files,
    multiFile: true,
    announceList: [],
    urlList: [],
    private: false,
    hybrid: false,
  };
}

Deno.test("piecesFor() wants the pieces of the kept files, shared boundary pieces included", () => {
  const meta = layout();
  assert.equal(meta.pieceCount, 7);
  const { wanted, high } = piecesFor(meta, selectOnly(5, [0, 4]));
  assert.deepEqual([...wanted!], [0, 1, 4, 5, 6]);
  assert.equal(high, null);
  // Only skipping the empty file changes no piece; nothing skipped → null (all wanted).
  assert.deepEqual(piecesFor(meta, ["normal", "normal", "skip", "normal", "normal"]).wanted?.count(), 7);
  assert.deepEqual(piecesFor(meta, []), { wanted: null, high: null });
  const raised = piecesFor(meta, ["normal", "high", "normal", "normal", "normal"]);
  assert.equal(raised.wanted, null);
  assert.deepEqual([...raised.high!], [1]);
});

Deno.test("piecesFor() never wants a piece for a pad file alone", () => {
  const meta = layout([{ path: [".pad", "1"], length: 14688, pad: true }, { path: ["e.bin"], length: 100 }]);
  // The pad file fills piece 6 up to its end; e.bin starts piece 7.
  const { wanted } = piecesFor(meta, ["skip", "skip", "skip", "skip", "skip", "normal", "normal"]);
  assert.deepEqual([...wanted!], [7]);
});

Deno.test("selectOnly() ignores indices past the last file", () => {
  assert.deepEqual(selectOnly(3, [0, 2, 7]), ["normal", "skip", "normal"]);
});

Deno.test("parseFileSelection() reads indices and ranges, and rejects the rest", () => {
  assert.deepEqual(parseFileSelection("0,2-3"), [0, 2, 3]);
  assert.deepEqual(parseFileSelection(" 5 , 1-2,2"), [1, 2, 5]);
  assert.throws(() => parseFileSelection("1,,2"), /'' is not an index or a range/);
  assert.throws(() => parseFileSelection("3-1"), /backwards/);
  assert.throws(() => parseFileSelection("a"), /not an index/);
  assert.throws(() => parseFileSelection("0-9", 5), /exceeds 5/);
});

Deno.test("wantedBytes() measures the wanted pieces, the short last piece included", () => {
  const meta = layout();
  const { wanted } = piecesFor(meta, selectOnly(5, [4]));
  const have = new Bitfield(7);
  have.set(6);
  const w = wantedBytes(meta, wanted, have);
  assert.equal(w.pieces, 3);
  assert.equal(w.total, 2 * PIECE + (100000 - 6 * PIECE));
  assert.equal(w.done, 100000 - 6 * PIECE);
  assert.equal(w.donePieces, 1);
});

// ---------------------------------------------------------------------------------------------
// A real download

interface Seeded extends AsyncDisposable {
  dir: string;
  meta: Metainfo;
  torrentPath: string;
  address: string;
}

async function seed(): Promise<Seeded> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_select_" });
  await Deno.mkdir(join(dir, "seed", "p"), { recursive: true });
  for (const [i, f] of SPEC.entries()) {
    await Deno.writeFile(join(dir, "seed", "p", f.name), bytesOf(i, f.size));
  }
  const created = await createTorrent(join(dir, "seed", "p"), { pieceLength: PIECE, creationDate: null });
  const meta = parseMetainfo(created.torrent);
  // createTorrent sorts files by path: check the layout is the one the comments describe.
  assert.deepEqual(meta.files.map((f) => f.path.join("/")), SPEC.map((f) => f.name));
  const torrentPath = join(dir, "p.torrent");
  await Deno.writeFile(torrentPath, created.torrent);
  const seeder = new BaseSession({
    downloadDir: join(dir, "seed"),
    bind: "127.0.0.1",
    selector: rarestFirst(),
    trackers: false,
  });
  await seeder.add(meta);
  return {
    dir,
    meta,
    torrentPath,
    address: `127.0.0.1:${seeder.port}`,
    async [Symbol.asyncDispose]() {
      await seeder.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Checks a download of files 0 and 4 only: what must and must not be on disk. */
async function assertOnlyZeroAndFour(out: string): Promise<void> {
  assert.deepEqual(await Deno.readFile(join(out, "p", "a.bin")), bytesOf(0, 20000));
  assert.deepEqual(await Deno.readFile(join(out, "p", "d.bin")), bytesOf(4, 30000));
  assert.equal(await exists(join(out, "p", "bz-empty")), false, "a skipped zero-byte file is not created");
  // c.bin shares pieces 1 and 4 with kept files: it may hold those bytes, and nothing else.
  if (await exists(join(out, "p", "c.bin"))) {
    const c = await Deno.readFile(join(out, "p", "c.bin"));
    const middle = c.subarray(2 * PIECE - 30000, Math.min(c.length, 4 * PIECE - 30000));
    assert.ok(middle.every((b) => b === 0), "bytes of pieces 2-3 (skipped) were written");
  }
}

Deno.test("a session downloads only the selected files, and is done when their pieces are verified", async () => {
  await using s = await seed();
  await using leecher = new BaseSession({
    downloadDir: join(s.dir, "out"),
    bind: "127.0.0.1",
    selector: rarestFirst(),
    trackers: false,
  });
  const torrent = await leecher.add(s.meta, { peers: [s.address], selectFiles: [0, 4] });
  await withDeadline(torrent.completed, 20_000, "the selected files");
  const stats = torrent.stats();
  assert.equal(stats.done, true);
  assert.equal(stats.wantedPieces, 5);
  assert.equal(stats.percent, 100);
  assert.equal(torrent.state, "seeding");
  assert.deepEqual([2, 3].map((i) => torrent.have.get(i)), [false, false], "pieces of skipped files only");
  assert.deepEqual(torrent.filePriorities, ["normal", "skip", "skip", "skip", "normal"]);
  await assertOnlyZeroAndFour(join(s.dir, "out"));

  // Selecting the rest afterwards resumes the download.
  torrent.setFilePriority([1, 2, 3], "normal");
  assert.equal(torrent.state, "downloading");
  await withDeadline(
    new Promise<void>((resolve) => {
      const check = () => torrent.stats().done && torrent.state === "seeding" ? resolve() : undefined;
      torrent.addEventListener("done", check);
      torrent.addEventListener("progress", check);
      check();
    }),
    20_000,
    "the rest of the torrent",
  );
  assert.ok(torrent.have.isComplete());
  for (const [i, f] of SPEC.entries()) {
    if (f.size > 0) {
      assert.deepEqual(await Deno.readFile(join(s.dir, "out", "p", f.name)), bytesOf(i, f.size));
    }
  }
  assert.throws(() => torrent.setFilePriority(9, "skip"), RangeError);
});

Deno.test("a magnet link's so= selects the files of the download", async () => {
  await using s = await seed();
  await using leecher = new BaseSession({
    downloadDir: join(s.dir, "out"),
    bind: "127.0.0.1",
    selector: rarestFirst(),
    trackers: false,
  });
  const uri = formatMagnet({
    ...parseMagnet(`magnet:?xt=urn:btih:${s.meta.infoHashHex}`),
    peers: [s.address],
    selectOnly: [0, 4],
  });
  const torrent = await leecher.add(uri, { metadataTimeoutMs: 20_000 });
  await withDeadline(torrent.completed, 20_000, "the selected files");
  assert.equal(torrent.stats().wantedPieces, 5);
  await assertOnlyZeroAndFour(join(s.dir, "out"));
});

// ---------------------------------------------------------------------------------------------
// CLI

function capture(): { io: Parameters<typeof main>[1]; out: () => string; err: () => string } {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const text = (chunks: Uint8Array[]) =>
    new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  return {
    io: {
      stdout: new WritableStream({ write: (c) => void out.push(c) }),
      stderr: new WritableStream({ write: (c) => void err.push(c) }),
      isTerminal: false,
    },
    out: () => text(out),
    err: () => text(err),
  };
}

Deno.test("cli download --files 0,4 fetches only those files of a .torrent", async () => {
  await using s = await seed();
  const { io, err } = capture();
  const code = await main([
    "download",
    s.torrentPath,
    "-o",
    join(s.dir, "out"),
    "--peer",
    s.address,
    "--bind",
    "127.0.0.1",
    "--files",
    "0,4",
    "-q",
  ], io);
  assert.equal(code, 0, err());
  assert.match(err(), /Complete: 5\/5 wanted pieces verified \(5\/7 in all\)/);
  await assertOnlyZeroAndFour(join(s.dir, "out"));
});

Deno.test("cli download takes a magnet link, fetches its metadata and honours so=", async () => {
  await using s = await seed();
  const uri = `magnet:?xt=urn:btih:${s.meta.infoHashHex}&dn=p&x.pe=${s.address}&so=0,4`;
  const { io, err } = capture();
  const code = await main(["download", uri, "-o", join(s.dir, "out"), "--bind", "127.0.0.1", "-q"], io);
  assert.equal(code, 0, err());
  assert.match(err(), /Fetching metadata for p \(/);
  assert.match(err(), /Downloading p \(/);
  assert.match(err(), /Complete: 5\/5 wanted pieces verified/);
  await assertOnlyZeroAndFour(join(s.dir, "out"));
  assert.ok(await exists(join(s.dir, "out", ".shoal", `${s.meta.infoHashHex}.torrent`)), "metadata saved");
});

Deno.test("cli download --files overrides so=, and rejects an index past the last file", async () => {
  await using s = await seed();
  const bad = capture();
  assert.equal(await main(["download", s.torrentPath, "--files", "0,9"], bad.io), 2);
  assert.match(bad.err(), /Invalid --files: the torrent has files 0 to 4, not 9/);
  const junk = capture();
  assert.equal(await main(["download", s.torrentPath, "--files", "x"], junk.io), 2);
  assert.match(junk.err(), /Invalid --files/);
  const uri = `magnet:?xt=urn:btih:${s.meta.infoHashHex}&x.pe=${s.address}&so=1-3`;
  const { io, err } = capture();
  const code = await main([
    "download",
    uri,
    "-o",
    join(s.dir, "out"),
    "--bind",
    "127.0.0.1",
    "--files",
    "0,4",
    "-q",
  ], io);
  assert.equal(code, 0, err());
  await assertOnlyZeroAndFour(join(s.dir, "out"));
});

Deno.test("cli info numbers the files as --files takes them, and shows a magnet's selection", async () => {
  await using s = await seed();
  const { io, out, err } = capture();
  assert.equal(await main(["info", s.torrentPath], io), 0, err());
  assert.match(
    out(),
    /Files \(5\):\n {2}0 .*p\/a\.bin\n {2}1 .*p\/b\.bin\n {2}2 .*p\/bz-empty\n {2}3 .*\n {2}4 .*p\/d\.bin\n/,
  );
  const json = capture();
  assert.equal(await main(["info", "--json", s.torrentPath], json.io), 0);
  assert.deepEqual(JSON.parse(json.out()).files.map((f: { index: number }) => f.index), [0, 1, 2, 3, 4]);
  const magnet = capture();
  assert.equal(await main(["info", `magnet:?xt=urn:btih:${s.meta.infoHashHex}&so=0,2-4,7`], magnet.io), 0);
  assert.match(magnet.out(), /^Select only: +files 0,2-4,7$/m);
});
