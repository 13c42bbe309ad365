/**
 * One shoal at a time per torrent's data: a second process downloading the same torrent into
 * the same folder exits 1 with one line naming the first, and writes nothing; a process killed
 * with SIGKILL leaves no lock behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { DownloadLock, downloadLockPath } from "../../lib/storage/folder_lock.ts";
import { createTorrent, parseMetainfo, ShoalError, StorageError } from "../../mod.ts";
import { HERMETIC_ENV } from "../_cli_io.ts";

const CLI = fromFileUrl(new URL("../../cli.ts", import.meta.url));

/** A torrent file (no tracker, no peer: a download of it waits) and an empty download folder. */
async function withTorrent(fn: (work: string, torrentPath: string, infoHashHex: string) => Promise<void>) {
  const work = await Deno.makeTempDir({ prefix: "shoal-lock-" });
  try {
    await Deno.mkdir(join(work, "src", "payload"), { recursive: true });
    await Deno.writeFile(join(work, "src", "payload", "a.bin"), new Uint8Array(50_000).fill(9));
    const made = await createTorrent(join(work, "src", "payload"), {
      pieceLength: 16_384,
      creationDate: null,
    });
    await Deno.writeFile(join(work, "payload.torrent"), made.torrent);
    await fn(work, join(work, "payload.torrent"), parseMetainfo(made.torrent).infoHashHex);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The CLI's arguments for a download that stays on loopback (the DHT is on, bootstrapping nowhere). */
function downloadArgs(torrentPath: string, out: string): string[] {
  return ["run", "-A", CLI, "download", torrentPath, "-o", out, "--bind", "127.0.0.1", "--no-lsd", "-q"]
    .concat(
      ["--dht-bootstrap", "127.0.0.1:9"],
    );
}

function download(torrentPath: string, out: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: downloadArgs(torrentPath, out),
    env: { ...HERMETIC_ENV },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Waits until the lock file names `pid`, with a deadline. */
async function waitForLockHolder(lockPath: string, pid: number, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const text = await Deno.readTextFile(lockPath).catch(() => "");
    if (text.trim() === String(pid)) return;
    if (Date.now() > end) {
      throw new Error(`Timed out after ${ms} ms waiting for pid ${pid} to hold ${lockPath}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every entry below `dir` with size and mtime. */
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

/** Stops a child this test started, by its own handle, and waits for it. */
async function stop(child: Deno.ChildProcess, signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
  try {
    child.kill(signal);
  } catch (error) {
    // Already exited: its status is collected below all the same.
    if (!(error instanceof TypeError)) throw error;
  }
  const [status] = await Promise.all([child.status, child.stdout.cancel(), child.stderr.cancel()]);
  return status;
}

Deno.test("a second shoal download of the same torrent into the same folder exits 1 naming the first and writes nothing", async () => {
  await withTorrent(async (work, torrentPath, infoHashHex) => {
    const out = join(work, "out");
    const lockPath = downloadLockPath(out, undefined, infoHashHex).path;
    const first = download(torrentPath, out);
    try {
      await waitForLockHolder(lockPath, first.pid);
      // Started: it saved its first resume data (the next save waits for progress or its exit).
      const resumePath = lockPath.replace(/\.lock$/, ".resume");
      const end = Date.now() + 30_000;
      while ((await Deno.stat(resumePath).catch(() => null)) === null) {
        if (Date.now() > end) throw new Error(`Timed out waiting for ${resumePath}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = await snapshot(out);
      const second = await new Deno.Command(Deno.execPath(), {
        args: downloadArgs(torrentPath, out),
        env: { ...HERMETIC_ENV },
        stdin: "null",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const stderr = new TextDecoder().decode(second.stderr);
      assert.equal(second.code, 1, stderr);
      const lines = stderr.trimEnd().split("\n");
      assert.match(lines[0]!, /^Downloading payload /);
      assert.deepEqual(lines.slice(1), [
        `error: shoal is already using ${out} for payload (pid ${first.pid})`,
      ]);
      assert.deepEqual(await snapshot(out), before, "the second process wrote nothing");
    } finally {
      await stop(first);
    }
  });
});

Deno.test("a download killed with SIGKILL does not block the next start in the same folder", async () => {
  await withTorrent(async (work, torrentPath, infoHashHex) => {
    const out = join(work, "out");
    const lockPath = downloadLockPath(out, undefined, infoHashHex).path;
    const first = download(torrentPath, out);
    try {
      await waitForLockHolder(lockPath, first.pid);
    } finally {
      assert.equal((await stop(first, "SIGKILL")).signal, "SIGKILL");
    }
    const next = download(torrentPath, out);
    try {
      await waitForLockHolder(lockPath, next.pid);
    } finally {
      await stop(next);
    }
  });
});

Deno.test("DownloadLock refuses a second holder in the same process until the first releases", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-lock-" });
  try {
    const { root, path } = downloadLockPath(dir, undefined, "ab".repeat(20));
    const names = { folder: dir, torrent: "album" };
    const lock = await DownloadLock.acquire(root, path, names);
    const expected = `shoal is already using ${dir} for album (pid ${Deno.pid})`;
    await assert.rejects(DownloadLock.acquire(root, path, names), (e) => {
      assert.ok(e instanceof ShoalError);
      assert.equal(e.code, "IN_USE");
      assert.equal(e.message, expected);
      return true;
    });
    await assert.rejects(
      DownloadLock.check(root, path, names),
      new RegExp(expected.replace(/[()]/g, "\\$&")),
    );
    await lock.release();
    await DownloadLock.check(root, path, names);
    const again = await DownloadLock.acquire(root, path, names);
    await again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DownloadLock refuses a lock file that is a symbolic link, and writes nothing through it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-lock-" });
  try {
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "keep me");
    const out = join(dir, "out");
    const { root, path } = downloadLockPath(out, undefined, "cd".repeat(20));
    await Deno.mkdir(join(out, ".shoal"), { recursive: true });
    await Deno.symlink(victim, path);
    await assert.rejects(DownloadLock.acquire(root, path, { folder: out, torrent: "x" }), (e) => {
      assert.ok(e instanceof StorageError);
      assert.match(e.message, /symbolic link/);
      return true;
    });
    assert.equal(await Deno.readTextFile(victim), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
