import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, encode, parseMetainfo, PeerAddressError, Session } from "../../mod.ts";
import { readResume } from "../../lib/storage/resume.ts";
import { CAN_MOUNT, seed12MiB, withSmallDisk } from "../_small_disk.ts";

// The CLI as a user runs it, in a subprocess: every user mistake and expected failure is one
// line, printed once, with the right exit code, and never a stack trace.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
/** No machine config file or SHOAL_* variable reaches these runs. */
const ENV = { XDG_CONFIG_HOME: "/nonexistent/shoal-test-config", NO_COLOR: "1" };
/** Flags that keep a run on 127.0.0.1 and away from the public DHT. */
const LOCAL = ["--no-dht", "--no-lsd", "--bind", "127.0.0.1"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts `deno run -A cli.ts ...args` with stdout and stderr piped. */
function spawnCli(args: string[], cwd: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd,
    env: ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs `deno run -A cli.ts ...args`, killed (and the test failed) after `ms`. */
async function cli(args: string[], options: { cwd: string; ms?: number }): Promise<Run> {
  const child = spawnCli(args, options.cwd);
  const ms = options.ms ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  const output = child.output();
  const first = await Promise.race([output, timeout]);
  clearTimeout(timer);
  if (first === "timeout") {
    child.kill("SIGKILL");
    const late = await output;
    assert.fail(
      `shoal ${args.join(" ")} ran longer than ${ms} ms:\n${new TextDecoder().decode(late.stderr)}`,
    );
  }
  return {
    code: first.code,
    stdout: new TextDecoder().decode(first.stdout),
    stderr: new TextDecoder().decode(first.stderr),
  };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** One `error:` line, nothing that looks like a stack trace, and no log record of the same error. */
function assertOneError(run: Run, message: RegExp): string {
  const errors = lines(run.stderr).filter((line) => line.startsWith("error:"));
  assert.equal(errors.length, 1, `expected one error line:\n${run.stderr}`);
  assert.match(errors[0]!, message);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `a stack trace:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /unexpected failure|^ERROR /m, run.stderr);
  return errors[0]!;
}

async function withDir(fn: (dir: string, torrent: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-errors-" });
  try {
    await Deno.mkdir(join(dir, "data"));
    await Deno.writeFile(join(dir, "data", "a.bin"), new Uint8Array(100_000).map((_, i) => i & 0xff));
    const made = await createTorrent(join(dir, "data", "a.bin"), { pieceLength: 16384, creationDate: null });
    await Deno.writeFile(join(dir, "a.torrent"), made.torrent);
    await fn(dir, join(dir, "a.torrent"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli: a bad --peer or --bind is a usage error: exit 2, one line and the --help hint", async () => {
  await withDir(async (dir) => {
    const cases: [string, RegExp][] = [
      ["garbage", /^error: Invalid --peer 'garbage': no port \(expected HOST:PORT/],
      [
        "127.0.0.1:99999",
        /^error: Invalid --peer '127\.0\.0\.1:99999': the port 99999 is not from 1 to 65535$/,
      ],
      ["1.2.3:abc", /^error: Invalid --peer '1\.2\.3:abc': '1\.2\.3' is not an IPv4 address/],
      [":80", /^error: Invalid --peer ':80': no host before the port/],
      ["[::1]", /^error: Invalid --peer '\[::1\]': no port after the IPv6 address/],
    ];
    for (const [peer, message] of cases) {
      const run = await cli(["download", "a.torrent", "-o", "out", "--peer", peer, ...LOCAL], { cwd: dir });
      assert.equal(run.code, 2, `--peer ${peer}: ${run.stderr}`);
      const all = lines(run.stderr);
      assert.equal(all.length, 2, `--peer ${peer}:\n${run.stderr}`);
      assert.match(all[0]!, message);
      assert.equal(all[1], "Run 'shoal download --help' for usage.");
      assert.doesNotMatch(run.stderr, /^\s+at /m);
    }
    const bind = await cli([
      "download",
      "a.torrent",
      "-o",
      "out",
      "--no-dht",
      "--no-lsd",
      "--bind",
      "bad host",
    ], {
      cwd: dir,
    });
    assert.equal(bind.code, 2, bind.stderr);
    assert.deepEqual(lines(bind.stderr), [
      "error: Invalid --bind 'bad host': not an IP address or a host name (such as 127.0.0.1, ::1 or localhost)",
      "Run 'shoal download --help' for usage.",
    ]);
    // Nothing was started: no download folder.
    assert.equal(await Deno.stat(join(dir, "out")).then(() => true, () => false), false);
  });
});

Deno.test("Session.add() refuses a bad peer address with a PeerAddressError before starting", async () => {
  await withDir(async (dir, torrent) => {
    await using session = new Session({ downloadDir: join(dir, "out"), bind: "127.0.0.1", logSinks: [] });
    const meta = parseMetainfo(await Deno.readFile(torrent));
    for (const peer of ["garbage", "127.0.0.1:99999", "1.2.3:80", "[::1]"]) {
      const error = await session.add(meta, { peers: [peer] }).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof PeerAddressError, `${peer}: ${error}`);
      assert.equal(error.address, peer);
      assert.match(error.message, new RegExp(`^Invalid peer address '${peer.replace(/[[\].]/g, "\\$&")}': `));
    }
    assert.equal(session.torrents.length, 0);
    // What the check lets through is dialled: a name, an IPv4 and a bracketed IPv6 address.
    const ok = await session.add(meta, { peers: ["localhost:6881", "127.0.0.1:1", "[::1]:6881"] });
    assert.equal(ok.metainfo.infoHashHex, meta.infoHashHex);
    assert.throws(() => ok.addPeers(["1.2.3:abc"]), PeerAddressError);
  });
});

Deno.test("cli: --bind to an address this machine lacks, or a port in use, is one line with exit 1", async () => {
  await withDir(async (dir) => {
    const missing = await cli([
      "download",
      "a.torrent",
      "-o",
      "out",
      "--no-dht",
      "--no-lsd",
      "--bind",
      "192.0.2.1",
    ], {
      cwd: dir,
    });
    assert.equal(missing.code, 1, missing.stderr);
    assertOneError(missing, /^error: Cannot listen on 192\.0\.2\.1: this machine has no such address$/);

    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = taken.addr.port;
    const busy = await cli(["download", "a.torrent", "-o", "out", ...LOCAL, "--port", String(port)], {
      cwd: dir,
    });
    assert.equal(busy.code, 1, busy.stderr);
    assertOneError(
      busy,
      new RegExp(`^error: Cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use$`),
    );
  });
});

Deno.test("cli: a truncated .torrent gives the same one line in info, download and seed", async () => {
  await withDir(async (dir, torrent) => {
    const bytes = await Deno.readFile(torrent);
    await Deno.writeFile(join(dir, "cut.torrent"), bytes.subarray(0, 150));
    const expected = new RegExp(
      `^error: Not a valid torrent: cut\\.torrent: cut short: the string at byte \\d+ is \\d+ bytes long, ` +
        `but only \\d+ bytes are left$`,
    );
    const seen = new Set<string>();
    for (
      const args of [["info", "cut.torrent"], ["download", "cut.torrent", ...LOCAL], [
        "seed",
        "cut.torrent",
        "data",
        ...LOCAL,
      ]]
    ) {
      const run = await cli(args, { cwd: dir });
      assert.equal(run.code, 1, `${args[0]}: ${run.stderr}`);
      assert.equal(lines(run.stderr).length, 1, `${args[0]}:\n${run.stderr}`);
      seen.add(assertOneError(run, expected));
    }
    assert.equal(seen.size, 1, [...seen].join("\n"));
  });
});

/** A torrent of many one-byte files, so that `info --max-files 0` prints far more than a pipe holds. */
function manyFilesTorrent(count: number): Uint8Array {
  const files = Array.from({ length: count }, (_, i) => ({ length: 1, path: [`file-${i}.txt`] }));
  const pieces = Math.ceil(count / 16384);
  return encode({
    info: { files, name: "many", "piece length": 16384, pieces: new Uint8Array(20 * pieces) },
  });
}

Deno.test("cli: output into a pipe whose reader has left exits 141 and prints nothing", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(join(dir, "many.torrent"), manyFilesTorrent(6000));
    for (const args of [["info", "many.torrent", "--max-files", "0"], ["info", "many.torrent", "--json"]]) {
      const child = spawnCli(args, dir);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      // Like `| head -c 10`: read a few bytes, then close the pipe.
      const reader = child.stdout.getReader();
      const first = await reader.read();
      assert.ok(first.value !== undefined && first.value.length > 0, "no output at all");
      await reader.cancel();
      const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
      clearTimeout(timer);
      assert.equal(status.signal, null, `${args.join(" ")} was killed at the deadline`);
      assert.equal(stderr, "", `${args.join(" ")}`);
      assert.equal(status.code, 141, `${args.join(" ")}`);
    }
    // A download whose stderr is a closed pipe stops at its first line, quietly.
    const child = spawnCli(["download", "many.torrent", "-o", "out", ...LOCAL], dir);
    await child.stderr.cancel();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const [status, stdout] = await Promise.all([child.status, new Response(child.stdout).text()]);
    clearTimeout(timer);
    assert.equal(status.signal, null, "the download was killed at the deadline");
    assert.equal(stdout, "");
    assert.equal(status.code, 141);
  });
});

Deno.test("cli: a download whose output pipe closes while it runs stops soon, saves its resume data, exits 141", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "seed"));
    await Deno.writeFile(
      join(dir, "seed", "big.bin"),
      new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 7) & 0xff),
    );
    const made = await createTorrent(join(dir, "seed", "big.bin"), {
      pieceLength: 65536,
      creationDate: null,
    });
    await Deno.writeFile(join(dir, "big.torrent"), made.torrent);
    await using seeder = new Session({ downloadDir: join(dir, "seed"), bind: "127.0.0.1", logSinks: [] });
    await seeder.add(parseMetainfo(made.torrent));
    // At 256 KiB/s the download would take 16 s; `| head -c 100` on its JSON records.
    const args = ["download", "big.torrent", "-o", "out", "--peer", `127.0.0.1:${seeder.port}`, ...LOCAL];
    const child = spawnCli([...args, "--down-limit", "256k", "--log", "jsonl:-"], dir);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const started = Date.now();
    const reader = child.stdout.getReader();
    const first = await reader.read();
    assert.ok(first.value !== undefined && first.value.length > 0, "no JSON record at all");
    await reader.cancel();
    const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
    clearTimeout(timer);
    assert.equal(status.signal, null, `killed at the deadline:\n${stderr}`);
    assert.equal(status.code, 141, stderr);
    assert.ok(Date.now() - started < 12_000, `ran ${Date.now() - started} ms after its reader left`);
    assert.match(lines(stderr).at(-1)!, /^Interrupted with \d+\/64 pieces: resume data saved$/);
    assert.doesNotMatch(stderr, /^error:|^\s+at /m, stderr);
    const meta = parseMetainfo(made.torrent);
    assert.ok(
      await readResume(join(dir, "out", ".shoal", `${meta.infoHashHex}.resume`), meta),
      "no resume data",
    );
  });
});

Deno.test({
  name:
    "cli: a download that fills the disk says so once, naming the file and the sizes, and keeps its resume data",
  ignore: !CAN_MOUNT,
}, async () => {
  await withSmallDisk(async (work, small) => {
    const { torrentPath, seeder } = await seed12MiB(work);
    try {
      const run = await cli([
        "download",
        torrentPath,
        "-o",
        small,
        "--peer",
        `127.0.0.1:${seeder.port}`,
        ...LOCAL,
        "--no-space-check",
        // Records on stderr (as without --log), and in a file, which keeps every record.
        "--log",
        "pretty",
        "--log",
        `jsonl:${join(work, "log.jsonl")}`,
      ], { cwd: work, ms: 60_000 });
      assert.equal(run.code, 1, run.stderr);
      assertOneError(
        run,
        new RegExp(
          `^error: Disk full writing ${small}/payload/big\\.bin: the download needs [\\d.]+ MiB more, ` +
            `[\\d.]+ (B|KiB) free on ${small}$`,
        ),
      );
      // Said once: no log record of the same failure, no second line about the resume data.
      assert.equal(run.stderr.match(/Disk full|No space left/g)?.length, 1, run.stderr);
      const records = lines(await Deno.readTextFile(join(work, "log.jsonl"))).map((line) => JSON.parse(line));
      const stopped = records.filter((r) =>
        r.level === "error" && /^Torrent stopped: Disk full writing /.test(r.message)
      );
      assert.equal(stopped.length, 1, JSON.stringify(records.filter((r) => r.level === "error")));
      const meta = parseMetainfo(await Deno.readFile(torrentPath));
      const resume = await readResume(join(small, ".shoal", `${meta.infoHashHex}.resume`), meta);
      assert.ok(resume !== null, "no resume data");
      assert.ok(resume.have.some((byte) => byte !== 0), "the resume data lists no verified piece");
    } finally {
      await seeder.close();
    }
  });
});

Deno.test({
  name: "cli: a download bigger than the free space is refused before any file is created",
  ignore: !CAN_MOUNT,
}, async () => {
  await withSmallDisk(async (work, small) => {
    const { torrentPath, seeder } = await seed12MiB(work);
    try {
      const run = await cli([
        "download",
        torrentPath,
        "-o",
        small,
        "--peer",
        `127.0.0.1:${seeder.port}`,
        ...LOCAL,
      ], {
        cwd: work,
        ms: 60_000,
      });
      assert.equal(run.code, 1, run.stderr);
      assertOneError(
        run,
        new RegExp(
          `^error: Not enough free space for ${small}: the download needs 12\\.00 MiB more, [\\d.]+ MiB free on ${small}$`,
        ),
      );
      const created = [...Deno.readDirSync(small)].map((e) => e.name).filter((name) => name !== ".shoal");
      assert.deepEqual(created, []);
    } finally {
      await seeder.close();
    }
  });
});
