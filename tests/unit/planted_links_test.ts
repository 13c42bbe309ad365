/**
 * Symbolic links planted in a shared download folder must never lead shoal to write outside it:
 * the payload (a file link, the torrent's top folder, a nested folder), the resume folder
 * `.shoal`, the resume file, the DHT state and the saved metadata of a magnet link. Each is
 * refused with an error naming the path, and the file outside keeps its bytes and mtime.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { loadDhtState, saveDhtState } from "../../lib/dht/state.ts";
import { formatMagnet } from "../../lib/magnet.ts";
import {
  createTorrent,
  type LogRecord,
  type Metainfo,
  parseMetainfo,
  Session,
  StorageError,
} from "../../mod.ts";

const VICTIM_BYTES = new TextEncoder().encode("precious data the user owns\n");
const OLD_TIME = new Date("2020-01-02T03:04:05Z");

interface Planted {
  /** The download folder, shared with whoever planted the links. */
  out: string;
  /** A folder outside it, holding the victim file. */
  elsewhere: string;
  /** A file outside the download folder that must stay as it is. */
  victim: string;
  /** A seeding session on 127.0.0.1 with the torrent. */
  seeder: Session;
  torrent: Uint8Array;
  meta: Metainfo;
}

/** A two-file torrent `payload/{a.bin,sub/b.bin}` seeded locally, a download folder, and a victim outside it. */
async function withPlanted(fn: (p: Planted) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "shoal-planted-" });
  try {
    const source = join(work, "seed", "payload");
    await Deno.mkdir(join(source, "sub"), { recursive: true });
    await Deno.writeFile(join(source, "a.bin"), new Uint8Array(40_000).map((_, i) => (i * 7 + 3) & 0xff));
    await Deno.writeFile(join(source, "sub", "b.bin"), new Uint8Array(30_000).map((_, i) => (i * 13) & 0xff));
    const made = await createTorrent(source, { pieceLength: 16_384, creationDate: null });
    const out = join(work, "out");
    const elsewhere = join(work, "elsewhere");
    await Deno.mkdir(out);
    await Deno.mkdir(elsewhere);
    const victim = join(elsewhere, "victim");
    await Deno.writeFile(victim, VICTIM_BYTES);
    await Deno.utime(victim, OLD_TIME, OLD_TIME);
    await using seeder = new Session({
      downloadDir: join(work, "seed"),
      bind: "127.0.0.1",
      logSinks: [],
      lsd: false,
    });
    await seeder.add(parseMetainfo(made.torrent));
    await fn({ out, elsewhere, victim, seeder, torrent: made.torrent, meta: parseMetainfo(made.torrent) });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** Every entry below `dir` with its size and mtime, to show nothing was added or changed. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      const info = await Deno.lstat(full);
      out.push(`${full} ${info.size} ${info.mtime?.getTime()}`);
      if (info.isDirectory) await walk(full);
    }
  };
  await walk(dir);
  return out.sort();
}

async function assertVictimUntouched(p: Planted, before: string[]): Promise<void> {
  assert.deepEqual(await Deno.readFile(p.victim), VICTIM_BYTES, "the victim's bytes changed");
  assert.equal(
    (await Deno.stat(p.victim)).mtime?.getTime(),
    OLD_TIME.getTime(),
    "the victim's mtime changed",
  );
  assert.deepEqual(await snapshot(p.elsewhere), before, "something was written outside the download folder");
}

/** Waits for `check` with a deadline. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Adds the torrent to a fresh session on `out`, dialling the seeder, and expects a refusal naming `path`. */
async function assertDownloadRefused(p: Planted, path: string): Promise<void> {
  await using leecher = new Session({ downloadDir: p.out, bind: "127.0.0.1", logSinks: [], lsd: false });
  await assert.rejects(leecher.add(p.meta, { peers: [`127.0.0.1:${p.seeder.port}`] }), (e) => {
    assert.ok(e instanceof StorageError, `expected a StorageError, got ${e}`);
    assert.ok(e.message.includes(path), `the message names ${path}: ${e.message}`);
    assert.match(e.message, /symbolic link/);
    return true;
  });
}

Deno.test("a download refuses a payload file that is a symbolic link to a file outside the folder", async () => {
  await withPlanted(async (p) => {
    await Deno.mkdir(join(p.out, "payload"));
    await Deno.symlink(p.victim, join(p.out, "payload", "a.bin"));
    const before = await snapshot(p.elsewhere);
    await assertDownloadRefused(p, join(p.out, "payload", "a.bin"));
    await assertVictimUntouched(p, before);
  });
});

Deno.test("a download refuses a torrent's top folder that is a symbolic link to a folder outside", async () => {
  await withPlanted(async (p) => {
    // The victim is named like the torrent's first file, and the rest would be created beside it.
    await Deno.rename(p.victim, join(p.elsewhere, "a.bin"));
    p.victim = join(p.elsewhere, "a.bin");
    await Deno.symlink(p.elsewhere, join(p.out, "payload"));
    const before = await snapshot(p.elsewhere);
    await assertDownloadRefused(p, join(p.out, "payload"));
    await assertVictimUntouched(p, before);
  });
});

Deno.test("a download refuses a nested folder of a multi-file torrent that is a symbolic link outside", async () => {
  await withPlanted(async (p) => {
    await Deno.rename(p.victim, join(p.elsewhere, "b.bin"));
    p.victim = join(p.elsewhere, "b.bin");
    await Deno.mkdir(join(p.out, "payload"));
    await Deno.symlink(p.elsewhere, join(p.out, "payload", "sub"));
    const before = await snapshot(p.elsewhere);
    await assertDownloadRefused(p, join(p.out, "payload", "sub"));
    await assertVictimUntouched(p, before);
  });
});

Deno.test("a download refuses a .shoal resume folder that is a symbolic link outside", async () => {
  await withPlanted(async (p) => {
    await Deno.symlink(p.elsewhere, join(p.out, ".shoal"));
    const before = await snapshot(p.elsewhere);
    await assertDownloadRefused(p, join(p.out, ".shoal"));
    await assertVictimUntouched(p, before);
    assert.equal(await Deno.stat(join(p.out, "payload")).catch(() => null), null, "no payload was written");
  });
});

Deno.test("a resume file that is a symbolic link is not read but replaced, and the download goes on", async () => {
  await withPlanted(async (p) => {
    const link = join(p.out, ".shoal", `${p.meta.infoHashHex}.resume`);
    await Deno.mkdir(join(p.out, ".shoal"));
    await Deno.symlink(p.victim, link);
    const before = await snapshot(p.elsewhere);
    const logs: LogRecord[] = [];
    {
      await using leecher = new Session({
        downloadDir: p.out,
        bind: "127.0.0.1",
        logSinks: [(r) => void logs.push(r)],
        lsd: false,
      });
      const torrent = await leecher.add(p.meta, { peers: [`127.0.0.1:${p.seeder.port}`] });
      await waitFor("the download to complete", () => torrent.state === "seeding");
    }
    const warnings = logs.filter((r) => r.level === "warn").map((r) => r.message);
    assert.ok(
      warnings.some((m) =>
        m.startsWith(`Ignoring resume data: Refusing to read ${link}: it is a symbolic link`)
      ),
      `a warning says the resume link is not read: ${warnings.join(" | ")}`,
    );
    assert.ok((await Deno.lstat(link)).isFile, "the save replaced the link itself with the resume data");
    await assertVictimUntouched(p, before);
  });
});

Deno.test("DHT state through a symbolic link is never read or written through, in the session and directly", async () => {
  await withPlanted(async (p) => {
    const link = join(p.out, ".shoal", "dht.dat");
    await Deno.mkdir(join(p.out, ".shoal"));
    await Deno.symlink(p.victim, link);
    const before = await snapshot(p.elsewhere);
    const logs: LogRecord[] = [];
    {
      await using session = new Session({
        downloadDir: p.out,
        bind: "127.0.0.1",
        logSinks: [(r) => void logs.push(r)],
        lsd: false,
        dht: { bootstrap: [] },
      });
      await session.add(p.meta);
    }
    const warnings = logs.filter((r) => r.level === "warn").map((r) => r.message);
    assert.ok(
      warnings.some((m) => m.includes(`Refusing to read ${link}: it is a symbolic link`)),
      `a warning says the DHT state link is not read: ${warnings.join(" | ")}`,
    );
    assert.ok((await Deno.lstat(link)).isFile, "the save replaced the link itself");
    await assertVictimUntouched(p, before);

    // The functions themselves, with a planted folder link: refused, nothing written outside.
    await Deno.remove(join(p.out, ".shoal"), { recursive: true });
    await Deno.symlink(p.elsewhere, join(p.out, ".shoal"));
    const state = { id: new Uint8Array(20).fill(7), nodes: [] };
    await assert.rejects(saveDhtState(link, state, { root: p.out }), /Refusing to write .*symbolic link/);
    await assert.rejects(loadDhtState(link, { root: p.out }), /symbolic link/);
    await assertVictimUntouched(p, before);
  });
});

Deno.test("saved magnet metadata that is a symbolic link is not read but replaced", async () => {
  await withPlanted(async (p) => {
    const link = join(p.out, ".shoal", `${p.meta.infoHashHex}.torrent`);
    await Deno.mkdir(join(p.out, ".shoal"));
    await Deno.symlink(p.victim, link);
    const before = await snapshot(p.elsewhere);
    const logs: LogRecord[] = [];
    const magnet = formatMagnet({
      infoHash: p.meta.infoHash,
      infoHashHex: p.meta.infoHashHex,
      name: p.meta.name,
      trackers: [],
      webSeeds: [],
      peers: [`127.0.0.1:${p.seeder.port}`],
    });
    {
      await using leecher = new Session({
        downloadDir: p.out,
        bind: "127.0.0.1",
        logSinks: [(r) => void logs.push(r)],
        lsd: false,
      });
      const torrent = await leecher.add(magnet, { metadataTimeoutMs: 15_000 });
      assert.equal(torrent.metainfo.infoHashHex, p.meta.infoHashHex);
    }
    const warnings = logs.filter((r) => r.level === "warn").map((r) => r.message);
    assert.ok(
      warnings.some((m) => m.includes(`Refusing to read ${link}: it is a symbolic link`)),
      `a warning says the metadata link is not read: ${warnings.join(" | ")}`,
    );
    assert.ok((await Deno.lstat(link)).isFile, "the save replaced the link itself with the metadata");
    await assertVictimUntouched(p, before);
  });
});

Deno.test("cli download into a folder with a planted link exits 1 with one line naming it", async () => {
  await withPlanted(async (p) => {
    await Deno.symlink(p.elsewhere, join(p.out, "payload"));
    const torrentPath = join(p.out, "..", "payload.torrent");
    await Deno.writeFile(torrentPath, p.torrent);
    const before = await snapshot(p.elsewhere);
    const err: Uint8Array[] = [];
    const io = {
      stdout: new WritableStream<Uint8Array>(),
      stderr: new WritableStream<Uint8Array>({ write: (c) => void err.push(c) }),
      isTerminal: false,
    };
    const code = await main([
      "download",
      torrentPath,
      "-o",
      p.out,
      "--bind",
      "127.0.0.1",
      "--peer",
      `127.0.0.1:${p.seeder.port}`,
      "--no-dht",
      "--no-lsd",
      "-q",
    ], io);
    const text = new TextDecoder().decode(new Uint8Array(err.flatMap((c) => [...c])));
    assert.equal(code, 1, text);
    const lines = text.trimEnd().split("\n");
    assert.match(lines[0]!, /^Downloading payload /);
    assert.equal(lines.length, 2, `the header, then one line: ${text}`);
    assert.match(
      lines[1]!,
      new RegExp(
        `^error: Refusing to use ${join(p.out, "payload")}: it is a symbolic link to ${p.elsewhere}`,
      ),
    );
    await assertVictimUntouched(p, before);
  });
});
