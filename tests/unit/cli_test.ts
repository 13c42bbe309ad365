import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { formatBytes, parseSize, printable, ProgressLine } from "../../cli/common.ts";
import { createTorrent, encode } from "../../mod.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function capture(): { stream: WritableStream<Uint8Array>; text: () => string } {
  const chunks: Uint8Array[] = [];
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(chunk.slice());
    },
  });
  const decoder = new TextDecoder();
  return { stream, text: () => chunks.map((c) => decoder.decode(c)).join("") };
}

async function run(args: string[], options: { cwd?: string; isTerminal?: boolean } = {}): Promise<Run> {
  const out = capture();
  const err = capture();
  let clock = 0;
  const code = await main(args, {
    stdout: out.stream,
    stderr: err.stream,
    isTerminal: options.isTerminal ?? false,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    // Every reading of the clock moves it 1 s on, so throttled progress always draws.
    now: () => (clock += 1000),
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /^\s+at /m, `unexpected stack trace in:\n${text}`);
}

async function withPayload(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_cli_test_" });
  try {
    await Deno.mkdir(join(dir, "payload", "sub"), { recursive: true });
    await Deno.writeFile(
      join(dir, "payload", "one.txt"),
      new TextEncoder().encode("hello world\n".repeat(3000)),
    );
    await Deno.writeFile(join(dir, "payload", "sub", "two.bin"), new Uint8Array(50_000).fill(7));
    await Deno.writeFile(join(dir, "payload", "sub", "zero"), new Uint8Array(0));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli --help lists the commands and exits 0; no command prints usage and exits 2", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: shoal <command>/);
  assert.match(help.stdout, /info\s+Show/);
  assert.match(help.stdout, /create\s+Make/);
  const none = await run([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /Usage: shoal <command>/);
});

Deno.test("cli --version prints the version", async () => {
  const result = await run(["--version"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^shoal \d+\.\d+\.\d+\n$/);
});

Deno.test("cli commands print their own help with --help, -h and 'help <command>'", async () => {
  for (const args of [["create", "--help"], ["create", "-h"], ["help", "create"]]) {
    const result = await run(args);
    assert.equal(result.code, 0, args.join(" "));
    assert.match(result.stdout, /^Usage: shoal create <path>/);
  }
  const info = await run(["info", "-h"]);
  assert.equal(info.code, 0);
  assert.match(info.stdout, /^Usage: shoal info/);
});

Deno.test("cli rejects unknown commands and bad flags with exit code 2 and no stack trace", async () => {
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /Unknown command: frobnicate/],
    [["--frob"], /Unknown option: --frob/],
    [["create", "x", "--bogus"], /Unknown option: --bogus/],
    [["info", "x.torrent", "-z"], /Unknown option: -z/],
    [["create", "x", "-o"], /Option needs a value: -o, --output/],
    [["info", "--json=yes", "x"], /Option takes no value: --json/],
    [["info"], /Missing argument: <torrent-file\|magnet-uri>/],
    [["create"], /Missing argument: <path>/],
    [["create", "a", "b"], /Unexpected argument: b/],
    [["create", "x", "--piece-length", "1000"], /Invalid --piece-length: 1000/],
    [["create", "x", "--piece-length", "lots"], /Invalid --piece-length: lots/],
    [["create", "x", "--tracker", "not a url"], /Invalid tracker URL: not a url/],
  ];
  for (const [args, message] of cases) {
    const result = await run(args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, message);
    assertNoStack(result.stderr);
  }
});

Deno.test("cli create then info shows the torrent, and --json parses", async () => {
  await withPayload(async (dir) => {
    const created = await run([
      "create",
      "payload",
      "-o",
      "out.torrent",
      "--no-date",
      "--tracker",
      "udp://a.example:6969/announce,http://b.example/announce",
      "-t",
      "http://c.example/announce",
      "--web-seed",
      "http://ws.example/payload/",
      "--private",
      "--comment",
      "made in a test",
      "--piece-length",
      "16k",
    ], { cwd: dir });
    assert.equal(created.code, 0, created.stderr);
    const direct = await createTorrent(join(dir, "payload"), {
      pieceLength: 16384,
      creationDate: null,
      private: true,
      comment: "made in a test",
      trackers: [["udp://a.example:6969/announce", "http://b.example/announce"], [
        "http://c.example/announce",
      ]],
      webSeeds: ["http://ws.example/payload/"],
    });
    assert.match(created.stdout, new RegExp(`Info-hash: ${direct.infoHash}\\n$`));
    assert.match(created.stderr, /Hashing: 100%/);
    assert.deepEqual(await Deno.readFile(join(dir, "out.torrent")), direct.torrent);

    const info = await run(["info", "out.torrent"], { cwd: dir });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^Name: +payload$/m);
    assert.match(info.stdout, new RegExp(`^Info-hash: +${direct.infoHash}$`, "m"));
    assert.match(info.stdout, /^Size: +.*\(86000 bytes\)$/m);
    assert.match(info.stdout, /^Pieces: +6 × 16 KiB$/m);
    assert.match(info.stdout, /^Private: +yes$/m);
    assert.match(info.stdout, /^Comment: +made in a test$/m);
    assert.match(info.stdout, /tier 1: udp:\/\/a\.example:6969\/announce\n +http:\/\/b\.example\/announce\n/);
    assert.match(info.stdout, /tier 2: http:\/\/c\.example\/announce/);
    assert.match(info.stdout, /Web seeds:\n {2}http:\/\/ws\.example\/payload\//);
    assert.match(
      info.stdout,
      /Files \(3\):\n {2}0 .*payload\/one\.txt\n {2}1 .*payload\/sub\/two\.bin\n {2}2 +0 B {2}payload\/sub\/zero\n/,
    );
    assert.doesNotMatch(info.stdout, /Created on/);

    const json = await run(["info", "--json", join(dir, "out.torrent")]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout.trim().split("\n").length, 1);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.infoHash, direct.infoHash);
    assert.equal(parsed.name, "payload");
    assert.equal(parsed.totalLength, 86000);
    assert.equal(parsed.pieceLength, 16384);
    assert.equal(parsed.pieceCount, 6);
    assert.equal(parsed.private, true);
    assert.deepEqual(parsed.trackers, [
      ["udp://a.example:6969/announce", "http://b.example/announce"],
      ["http://c.example/announce"],
    ]);
    assert.deepEqual(parsed.webSeeds, ["http://ws.example/payload/"]);
    assert.deepEqual(parsed.files.map((f: { path: string; length: number }) => [f.path, f.length]), [
      ["payload/one.txt", 36000],
      ["payload/sub/two.bin", 50000],
      ["payload/sub/zero", 0],
    ]);
  });
});

Deno.test("cli create writes <name>.torrent in the current folder and refuses to overwrite without --force", async () => {
  await withPayload(async (dir) => {
    const first = await run(["create", "payload"], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    const written = await Deno.readFile(join(dir, "payload.torrent"));
    const again = await run(["create", "payload"], { cwd: dir });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /the file exists \(use --force to overwrite it\)/);
    assertNoStack(again.stderr);
    assert.deepEqual(await Deno.readFile(join(dir, "payload.torrent")), written);
    const forced = await run(["create", "payload", "--force", "--name", "other", "-o", "payload.torrent"], {
      cwd: dir,
    });
    assert.equal(forced.code, 0, forced.stderr);
    const info = await run(["info", "--json", "payload.torrent"], { cwd: dir });
    assert.equal(JSON.parse(info.stdout).name, "other");
  });
});

Deno.test("cli create draws progress with \\r on a terminal and plain lines otherwise", async () => {
  await withPayload(async (dir) => {
    const terminal = await run(["create", "payload", "-o", "t.torrent"], { cwd: dir, isTerminal: true });
    assert.equal(terminal.code, 0, terminal.stderr);
    assert.match(terminal.stderr, /^\rHashing: 100% .*\n$/);
    const plain = await run(["create", "payload", "-o", "p.torrent"], { cwd: dir });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /^Hashing: 100% .*\n$/);
    assert.doesNotMatch(plain.stderr, /\r/);
  });
});

Deno.test("cli reports missing files, folders and malformed torrents without a stack trace", async () => {
  await withPayload(async (dir) => {
    await Deno.writeTextFile(join(dir, "bad.torrent"), "d4:infoi1ee");
    await Deno.writeTextFile(join(dir, "junk.torrent"), "not bencode at all");
    const cases: [string[], RegExp][] = [
      [["info", "missing.torrent"], /^error: Cannot read missing\.torrent: no such file\n$/],
      [["info", "payload"], /^error: Cannot read payload: is a folder/],
      [["info", "bad.torrent"], /^error: Not a valid torrent: bad\.torrent: 'info' is not a dictionary\n$/],
      [["info", "junk.torrent"], /^error: Not a valid torrent: junk\.torrent: unexpected 'n' at byte 0 /],
      [["info", "magnet:?xt=urn:btih:nothex"], /^error: .*magnet/i],
      [["create", "nowhere"], /^error: Cannot read \S*nowhere: no such file or folder\n$/],
    ];
    for (const [args, message] of cases) {
      const result = await run(args, { cwd: dir });
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assertNoStack(result.stderr);
    }
  });
});

Deno.test("cli info shows a magnet link, as text and as JSON", async () => {
  const hash = "0123456789abcdef0123456789abcdef01234567";
  const uri = `magnet:?xt=urn:btih:${hash}&dn=My%20Show&tr=udp%3A%2F%2Ft.example%3A1337&x.pe=127.0.0.1:6881`;
  const text = await run(["info", uri]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^Name: +My Show$/m);
  assert.match(text.stdout, new RegExp(`^Info-hash: +${hash}$`, "m"));
  assert.match(text.stdout, /Trackers:\n {2}udp:\/\/t\.example:1337\n/);
  assert.match(text.stdout, /Peers:\n {2}127\.0\.0\.1:6881\n/);
  const json = await run(["info", uri, "--json"]);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.type, "magnet");
  assert.equal(parsed.infoHash, hash);
  assert.deepEqual(parsed.trackers, ["udp://t.example:1337"]);
});

Deno.test("cli info caps long file lists and escapes control characters from the torrent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_cli_test_" });
  try {
    const files = Array.from({ length: 5 }, (_, i) => ({ length: 1, path: [`f${i}`] }));
    const torrent = encode({
      comment: "line\u001b[2J",
      info: { files, name: "evil\u001b]0;title\u0007", "piece length": 16384, pieces: new Uint8Array(20) },
    });
    await Deno.writeFile(join(dir, "x.torrent"), torrent);
    const result = await run(["info", "x.torrent", "--max-files", "2"], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /f0\n.*f1\n {2}\.\.\. and 3 more\n$/);
    assert.ok(!result.stdout.includes("\u001b"), "an escape character reached the output");
    assert.match(result.stdout, /^Comment: +line\\u\{1b\}\[2J$/m);
    const all = await run(["info", "x.torrent", "--max-files", "0"], { cwd: dir });
    assert.doesNotMatch(all.stdout, /more/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseSize() accepts plain numbers and binary units, and rejects the rest", () => {
  assert.equal(parseSize("262144"), 262144);
  assert.equal(parseSize("256k"), 262144);
  assert.equal(parseSize("256KiB"), 262144);
  assert.equal(parseSize("1m"), 1048576);
  assert.equal(parseSize("4MB"), 4194304);
  assert.equal(parseSize("1g"), 1073741824);
  assert.equal(parseSize("1.5m"), undefined);
  assert.equal(parseSize("-1"), undefined);
  assert.equal(parseSize("k"), undefined);
});

Deno.test("formatBytes() and printable() format for people", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(524288), "512 KiB");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(printable("a\u202eb\nc"), "a\\u{202e}b\\u{a}c");
});

Deno.test("ProgressLine throttles updates with the injected clock", async () => {
  const out = capture();
  let now = 0;
  const progress = new ProgressLine({
    stdout: new WritableStream(),
    stderr: out.stream,
    isTerminal: false,
    now: () => now,
  }, { plainInterval: 1000 });
  progress.update("a");
  now = 500;
  progress.update("b");
  now = 1000;
  progress.update("c");
  await progress.done("d");
  assert.equal(out.text(), "a\nc\nd\n");
});
