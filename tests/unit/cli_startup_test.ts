/**
 * What the CLI says and does before a transfer runs (issue 12, items 3 and 8): `seed` given
 * the data folder instead of its parent, or a folder without the data; the warning for a
 * torrent with no way to find peers; "Resuming: N of M pieces verified" and the pieces that
 * failed their check, by number; a magnet link's fetch status and its `--metadata-timeout`;
 * `--seed-time` implying `--seed`; Ctrl+C while seeding exits 130.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { createTorrent, type Metainfo, parseMetainfo } from "../../mod.ts";
import { writeResumeAtomic } from "../../lib/storage/resume.ts";
import { captureIO } from "../_cli_io.ts";

/** Loopback only, nothing found on the network: the tests stay hermetic. */
const LOCAL = ["--bind", "127.0.0.1", "--no-dht", "--no-lsd"];

interface Made {
  dir: string;
  torrentPath: string;
  meta: Metainfo;
}

/** `dir/parent/photos/{a.bin, sub/b.bin}` and `dir/photos.torrent` (no tracker). */
async function withFolderTorrent(fn: (made: Made) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-startup-" });
  try {
    const data = join(dir, "parent", "photos");
    await Deno.mkdir(join(data, "sub"), { recursive: true });
    await Deno.writeFile(join(data, "a.bin"), new Uint8Array(50_000).map((_, i) => (i * 7) & 0xff));
    await Deno.writeFile(join(data, "sub", "b.bin"), new Uint8Array(30_000).map((_, i) => (i * 13) & 0xff));
    const made = await createTorrent(data, { pieceLength: 16384, creationDate: null });
    const torrentPath = join(dir, "photos.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    await fn({ dir, torrentPath, meta: parseMetainfo(made.torrent) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every path below `dir`, sorted (to show that nothing was created). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string, prefix: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = `${prefix}${entry.name}`;
      out.push(path);
      if (entry.isDirectory) await walk(join(at, entry.name), `${path}/`);
    }
  };
  await walk(dir, "");
  return out.sort();
}

/** What {@linkcode run} returns. */
interface Run {
  /** The exit code. */
  code: number;
  /** Everything printed on stdout and stderr. */
  out: string;
  err: string;
  /** True when stderr matched `until` (Ctrl+C was pressed then). */
  matched: boolean;
  /** True when the deadline passed first (Ctrl+C was pressed then). */
  late: boolean;
}

/**
 * Runs `main(args)` in-process; presses Ctrl+C once stderr matches `until`, or when the
 * deadline passes (so a run that would never end cannot hang the test).
 */
async function run(args: string[], until?: RegExp, timeoutMs = 15_000): Promise<Run> {
  const controller = new AbortController();
  const { io, out, err } = captureIO({ signal: controller.signal });
  const running = main(args, io);
  const deadline = Date.now() + timeoutMs;
  let matched = false;
  let exited = false;
  running.finally(() => (exited = true));
  while (!exited && Date.now() < deadline) {
    if (until !== undefined && until.test(err())) {
      matched = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const late = !exited && !matched;
  controller.abort(new DOMException("Interrupted", "AbortError"));
  const code = await running;
  return { code, out: out(), err: err(), matched: matched || (until?.test(err()) ?? false), late };
}

Deno.test("cli seed given the data folder itself suggests its parent and creates nothing", async () => {
  await withFolderTorrent(async ({ dir, torrentPath }) => {
    const before = await tree(dir);
    const given = join(dir, "parent", "photos");
    const { code, err } = await run(["seed", torrentPath, given, ...LOCAL]);
    assert.equal(code, 1, err);
    assert.equal(
      err,
      `error: data not found at ${join(given, "photos")}; did you mean ${join(dir, "parent")}?\n`,
    );
    assert.deepEqual(await tree(dir), before, "no folder and no .shoal were created");
  });
});

Deno.test("cli seed given a single-file torrent's file itself suggests its folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-startup-" });
  try {
    await Deno.mkdir(join(dir, "music"));
    await Deno.writeFile(join(dir, "music", "song.bin"), new Uint8Array(40_000).fill(3));
    const made = await createTorrent(join(dir, "music", "song.bin"), {
      pieceLength: 16384,
      creationDate: null,
    });
    await Deno.writeFile(join(dir, "song.torrent"), made.torrent);
    const before = await tree(dir);
    const given = join(dir, "music", "song.bin");
    const { code, err } = await run(["seed", join(dir, "song.torrent"), given, ...LOCAL]);
    assert.equal(code, 1, err);
    assert.match(err, new RegExp(`did you mean ${join(dir, "music").replaceAll("/", "\\/")}\\?\\n$`));
    assert.deepEqual(await tree(dir), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli seed of a folder without the data refuses instead of becoming a download", async () => {
  await withFolderTorrent(async ({ dir, torrentPath }) => {
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    const { code, err } = await run(["seed", torrentPath, empty, ...LOCAL]);
    assert.equal(code, 1, err);
    assert.match(err, /^error: data not found at .*\/empty\/photos: nothing to seed \(/);
    assert.doesNotMatch(err, /did you mean/);
    assert.deepEqual(await tree(empty), [], "nothing was created in the folder");
  });
});

Deno.test("cli download warns at once when the torrent has no way to find peers", async () => {
  await withFolderTorrent(async ({ dir, torrentPath }) => {
    const out = join(dir, "out");
    const result = await run(["download", torrentPath, "-o", out, ...LOCAL], /warning: no way/);
    assert.ok(result.matched, result.err);
    assert.match(
      result.err,
      /^warning: no way to find peers: this torrent has no trackers, DHT and LSD are off and no --peer was given \(add --peer HOST:PORT or --tracker URL\)$/m,
    );
    assert.equal(result.code, 130, result.err);
    // A peer to dial is a way: no warning.
    const withPeer = await run(
      ["download", torrentPath, "-o", out, ...LOCAL, "--peer", "127.0.0.1:9"],
      /^Listening on port/m,
    );
    assert.ok(withPeer.matched, withPeer.err);
    assert.doesNotMatch(withPeer.err, /no way to find peers/);
  });
});

Deno.test("cli seed names the pieces resume data claimed that failed their check", async () => {
  await withFolderTorrent(async ({ dir, torrentPath, meta }) => {
    const data = join(dir, "parent");
    // Resume data that claims every piece, for files whose time has changed since: all are
    // checked again, and the two damaged below fail.
    const have = new Uint8Array(Math.ceil(meta.pieceCount / 8));
    for (let i = 0; i < meta.pieceCount; i++) have[i >> 3]! |= 0x80 >> (i & 7);
    await writeResumeAtomic(join(data, ".shoal", `${meta.infoHashHex}.resume`), {
      version: 1,
      infoHash: meta.infoHashHex,
      pieceCount: meta.pieceCount,
      have,
      files: meta.files.map((f) => ({ size: f.length, mtimeMs: 1000 })),
      savedAt: Date.now(),
    }, { root: data });
    const file = await Deno.open(join(data, "photos", "a.bin"), { write: true });
    for (const piece of [1, 2]) {
      await file.seek(piece * 16384 + 100, Deno.SeekMode.Start);
      await file.write(new Uint8Array([0xde, 0xad]));
    }
    file.close();
    const result = await run(["seed", torrentPath, data, ...LOCAL], /failed their check/);
    assert.ok(result.matched, result.err);
    assert.match(
      result.err,
      new RegExp(
        `^Resuming: ${
          meta.pieceCount - 2
        } of ${meta.pieceCount} pieces verified \\(0 from resume data, ${meta.pieceCount} checked\\)$`,
        "m",
      ),
    );
    assert.match(result.err, /^2 pieces failed their check and will be downloaded again: 1, 2$/m);
    assert.equal(result.code, 130, result.err);
  });
});

Deno.test("cli Ctrl+C while seeding exits 130, as during the check", async () => {
  await withFolderTorrent(async ({ dir, torrentPath }) => {
    const result = await run(["seed", torrentPath, join(dir, "parent"), ...LOCAL, "-q"], /^Data checked/m);
    assert.ok(result.matched, result.err);
    assert.equal(result.code, 130, result.err);
    assert.match(result.err, /Stopped seeding \(interrupted\)/);
  });
});

Deno.test("cli download --seed-time implies --seed, and the help says so", async () => {
  const help = captureIO();
  assert.equal(await main(["download", "--help"], help.io), 0);
  assert.match(help.out(), /--seed-ratio R .*\n.*implies --seed/);
  assert.match(help.out(), /--seed-time T .*\n.*implies --seed/);
  await withFolderTorrent(async ({ dir, torrentPath }) => {
    // The data is complete already: the download is done at once, then seeds for 1 s.
    const { code, err, late } = await run([
      "download",
      torrentPath,
      "-o",
      join(dir, "parent"),
      ...LOCAL,
      "--seed-time",
      "1",
    ]);
    assert.ok(!late, err);
    assert.equal(code, 0, err);
    assert.match(err, /Stopped seeding \(--seed-time 1 s reached\)/);
  });
});

Deno.test("cli download of a magnet link shows the fetch and gives up at --metadata-timeout", async () => {
  // A port where nothing listens: the one x.pe peer refuses every connection.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-startup-" });
  try {
    const magnet = `magnet:?xt=urn:btih:${"ab".repeat(20)}&dn=nothing&x.pe=127.0.0.1:${port}`;
    const started = performance.now();
    const { code, err: text } = await run([
      "download",
      magnet,
      "-o",
      dir,
      ...LOCAL,
      "--metadata-timeout",
      "3s",
    ]);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(code, 1, text);
    assert.ok(seconds >= 2.9 && seconds < 10, `gave up after ${seconds.toFixed(1)} s`);
    const status = text.search(/^Fetching metadata: tried \d+ peers?, 0 connected, 0 offering it$/m);
    const error = text.indexOf(
      "error: No metadata after 3s: tried 1 peer, 0 connected; DHT off (add --peer or a tracker)\n",
    );
    assert.ok(status >= 0, `no fetch status line:\n${text}`);
    assert.ok(error > status, `no timeout message after the status:\n${text}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
