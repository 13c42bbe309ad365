/**
 * shoal's createTorrent and libtorrent's create_torrent agree on the info dictionary, and
 * parseMetainfo agrees with libtorrent on the info-hash of torrents made by libtorrent and
 * by transmission-create. Needs /usr/bin/python3 with libtorrent, and transmission-create.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";

const PYTHON = "/usr/bin/python3";
const LT_CREATE = join(dirname(fileURLToPath(import.meta.url)), "lt_create.py");
const TIMEOUT_MS = 60_000;

interface ToolResult {
  success: boolean;
  stdout: string;
  stderr: string;
}

/** Runs a program with a deadline; the child is killed if it outlives it. */
async function runTool(cmd: string, args: string[], timeoutMs = TIMEOUT_MS): Promise<ToolResult> {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch (e) {
      // The child exited between the deadline and the kill: nothing left to stop.
      if (!(e instanceof TypeError)) throw e;
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    if (timedOut) throw new Error(`${cmd} ${args.join(" ")} did not finish within ${timeoutMs} ms`);
    const decoder = new TextDecoder();
    return { success: out.success, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

async function toolWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    return (await runTool(cmd, args, 30_000)).success;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

const haveLibtorrent = await toolWorks(PYTHON, ["-c", "import libtorrent"]);
const haveTransmission = await toolWorks("transmission-create", ["--version"]);
if (!haveLibtorrent) {
  console.error(
    `SKIPPED create agreement tests: ${PYTHON} cannot import libtorrent (apt install python3-libtorrent)`,
  );
}
if (haveLibtorrent && !haveTransmission) {
  console.error("SKIPPED transmission-create agreement test: transmission-create is not installed");
}

async function ltJson(args: string[]): Promise<Record<string, unknown>> {
  const result = await runTool(PYTHON, [LT_CREATE, ...args]);
  if (!result.success) throw new Error(`lt_create.py ${args.join(" ")} failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/** Deterministic pseudo-random bytes (xorshift). */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

interface Payload {
  /** Path of the file or folder, relative to the temp dir. */
  readonly name: string;
  readonly pieceLength: number;
  /** Files to write, relative to the temp dir. */
  readonly files: readonly (readonly [string, number])[];
}

const PAYLOADS: readonly Payload[] = [
  { name: "odd.bin", pieceLength: 32768, files: [["odd.bin", 1_000_003]] },
  {
    name: "nested",
    pieceLength: 16384,
    files: [
      ["nested/a.txt", 12_345],
      ["nested/dir/b.bin", 70_001],
      ["nested/dir/sub/c", 1],
      ["nested/dir/zero", 0],
      ["nested/dir-x", 33_333],
      ["nested/.hidden", 17],
      ["nested/Zed", 5],
      ["nested/empty-first", 0],
    ],
  },
  {
    name: "exact",
    pieceLength: 16384,
    files: [["exact/one", 3 * 16384 + 100], ["exact/two", 3 * 16384 - 100]],
  },
];

async function makePayloads(dir: string): Promise<void> {
  let seed = 1;
  for (const payload of PAYLOADS) {
    for (const [path, size] of payload.files) {
      await Deno.mkdir(dirname(join(dir, path)), { recursive: true });
      await Deno.writeFile(join(dir, path), bytes(size, seed++), { mode: 0o644 });
    }
  }
}

async function withPayloads(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_create_agreement_" });
  try {
    await makePayloads(dir);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "createTorrent() and libtorrent's create_torrent (v1_only) give the same info dictionary",
  ignore: !haveLibtorrent,
  async fn() {
    await withPayloads(async (dir) => {
      for (const payload of PAYLOADS) {
        const path = join(dir, payload.name);
        const ltTorrent = join(dir, `${payload.name}.lt.torrent`);
        const lt = await ltJson(["create", path, String(payload.pieceLength), ltTorrent]);
        assert.equal(lt.walk_matches, true, `libtorrent's own walk of ${payload.name} finds other files`);
        const made = await createTorrent(path, { pieceLength: payload.pieceLength, creationDate: null });
        assert.equal(made.infoHash, lt.info_hash, `info-hash of ${payload.name}`);
        assert.equal(made.pieceCount, lt.num_pieces);
        assert.equal(made.totalLength, lt.total_size);
        const ours = parseMetainfo(made.torrent);
        const theirs = parseMetainfo(await Deno.readFile(ltTorrent));
        assert.deepEqual(ours.infoBytes, theirs.infoBytes, `info dictionary bytes of ${payload.name}`);
        assert.equal(theirs.infoHashHex, lt.info_hash);
      }
    });
  },
});

Deno.test({
  name: "createTorrent() with no piece length picks the same one as libtorrent",
  ignore: !haveLibtorrent,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal_create_agreement_" });
    try {
      // 3 MiB is above libtorrent's 16 KiB threshold (2684355 bytes), so it picks 32 KiB.
      await Deno.writeFile(join(dir, "three"), bytes(3 * 1024 * 1024, 99));
      const made = await createTorrent(join(dir, "three"), { creationDate: null });
      const lt = await ltJson(["create", join(dir, "three"), "0", join(dir, "three.torrent")]);
      assert.equal(made.pieceLength, 32768);
      assert.equal(made.pieceLength, lt.piece_length);
      assert.equal(made.infoHash, lt.info_hash);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "parseMetainfo() reports the same info-hash as libtorrent for torrents made by transmission-create",
  ignore: !haveLibtorrent || !haveTransmission,
  async fn() {
    await withPayloads(async (dir) => {
      for (const payload of PAYLOADS) {
        const out = join(dir, `${payload.name}.tr.torrent`);
        const result = await runTool("transmission-create", [
          "-o",
          out,
          "-s",
          String(payload.pieceLength / 1024),
          join(dir, payload.name),
        ]);
        assert.ok(result.success, `transmission-create failed: ${result.stderr}`);
        const lt = await ltJson(["info", out]);
        const meta = parseMetainfo(await Deno.readFile(out));
        assert.equal(meta.infoHashHex, lt.info_hash, `info-hash of ${payload.name}`);
        assert.equal(meta.pieceLength, lt.piece_length);
        assert.equal(meta.pieceCount, lt.num_pieces);
        assert.equal(meta.totalLength, lt.total_size);
        assert.equal(meta.name, lt.name);
      }
    });
  },
});
