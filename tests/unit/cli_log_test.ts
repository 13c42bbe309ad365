import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { createTorrent, type LogRecord, parseMetainfo, Session } from "../../mod.ts";
import { sink as countingFixture } from "../../fixtures/plugins/counting_sink.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PIECES = 80;
const PIECE_LENGTH = 16384;

function capture(
  isTerminal = false,
): { io: Parameters<typeof main>[1]; out: () => string; err: () => string } {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const text = (chunks: Uint8Array[]) =>
    new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  return {
    io: {
      stdout: new WritableStream({ write: (c) => void out.push(c) }),
      stderr: new WritableStream({ write: (c) => void err.push(c) }),
      isTerminal,
    },
    out: () => text(out),
    err: () => text(err),
  };
}

interface Seeded {
  dir: string;
  torrentPath: string;
  port: number;
}

/** A temp folder with an 80-piece torrent, and one shoal session seeding it (one seeder: order is ours). */
async function withSeed(fn: (s: Seeded) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-log-" });
  try {
    await Deno.mkdir(join(dir, "seed"));
    const data = new Uint8Array(PIECES * PIECE_LENGTH - 1000).map((_, i) => (i * 131 + (i >> 9)) & 0xff);
    await Deno.writeFile(join(dir, "seed", "payload.bin"), data);
    const made = await createTorrent(join(dir, "seed", "payload.bin"), {
      pieceLength: PIECE_LENGTH,
      creationDate: null,
    });
    const torrentPath = join(dir, "payload.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    await using seeder = new Session({ downloadDir: join(dir, "seed"), bind: "127.0.0.1" });
    await seeder.add(parseMetainfo(made.torrent));
    await fn({ dir, torrentPath, port: seeder.port });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function downloadArgs(s: Seeded, out: string, ...extra: string[]): string[] {
  return [
    "download",
    s.torrentPath,
    "-o",
    join(s.dir, out),
    "--peer",
    `127.0.0.1:${s.port}`,
    "--bind",
    "127.0.0.1",
    "-q",
    ...extra,
  ];
}

/** Parses a JSONL log line by line, checking each line is a whole LogRecord. */
function parseJsonl(text: string): LogRecord[] {
  assert.ok(text.endsWith("\n"), "the log ends with a complete line");
  const lines = text.slice(0, -1).split("\n");
  return lines.map((line, n) => {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch (error) {
      throw new Error(`line ${n + 1} is not JSON: ${line.slice(0, 200)}`, { cause: error });
    }
    assert.deepEqual(Object.keys(r), ["time", "level", "category", "message", "fields"], `line ${n + 1}`);
    assert.ok(typeof r.time === "number" && Number.isFinite(r.time), `line ${n + 1}: time`);
    assert.ok(["debug", "info", "warn", "error"].includes(r.level as string), `line ${n + 1}: level`);
    assert.equal(typeof r.category, "string", `line ${n + 1}: category`);
    assert.equal(typeof r.message, "string", `line ${n + 1}: message`);
    assert.ok(typeof r.fields === "object" && r.fields !== null && !Array.isArray(r.fields), `line ${n + 1}`);
    for (const v of Object.values(r.fields as object)) {
      assert.ok(
        v === null || ["string", "number", "boolean"].includes(typeof v),
        `line ${n + 1}: field ${v}`,
      );
    }
    return r as unknown as LogRecord;
  });
}

/** The pieces of the "Piece verified" records, in log order. */
function verifiedOrder(records: LogRecord[]): number[] {
  return records.filter((r) => r.category === "storage" && r.message === "Piece verified").map((r) => {
    assert.equal(typeof r.fields.piece, "number");
    return r.fields.piece as number;
  });
}

/** Spearman's rank correlation between download position and piece index (both permutations). */
function spearman(order: number[]): number {
  const n = order.length;
  const ranks = [...order].sort((a, b) => a - b);
  const rankOf = new Map(ranks.map((p, i) => [p, i]));
  let d2 = 0;
  order.forEach((piece, position) => {
    d2 += (position - rankOf.get(piece)!) ** 2;
  });
  return 1 - (6 * d2) / (n * (n * n - 1));
}

async function downloadOrder(s: Seeded, selector: string): Promise<number[]> {
  const log = join(s.dir, `${selector.replace(/\W/g, "_")}.jsonl`);
  const { io, err } = capture();
  const out = `out-${selector.replace(/\W/g, "_")}`;
  const code = await main(
    downloadArgs(s, out, "--selector", selector, "--log", `jsonl:${log}`, "--log-level", "debug"),
    io,
  );
  assert.equal(code, 0, err());
  return verifiedOrder(parseJsonl(await Deno.readTextFile(log)));
}

Deno.test("spearman() is 1 for ascending, -1 for descending, near 0 for a shuffle", () => {
  assert.equal(spearman([0, 1, 2, 3, 4]), 1);
  assert.equal(spearman([4, 3, 2, 1, 0]), -1);
  assert.ok(Math.abs(spearman([2, 0, 4, 1, 3])) < 0.5);
});

// ---------------------------------------------------------------------------------------------
// Acceptance: a JSONL log of a whole download accounts for every verified piece

Deno.test("cli download --log jsonl:PATH --log-level debug writes a log that accounts for every verified piece", async () => {
  await withSeed(async (s) => {
    const log = join(s.dir, "download.jsonl");
    await Deno.writeTextFile(log, ""); // appended to, so an existing (empty) file is fine
    const { io, err } = capture();
    const code = await main(downloadArgs(s, "out", "--log", `jsonl:${log}`, "--log-level", "debug"), io);
    assert.equal(code, 0, err());
    assert.match(err(), new RegExp(`Complete: ${PIECES}/${PIECES} pieces verified`));
    assert.doesNotMatch(err(), /DEBUG|INFO/, "with --log jsonl only, no records go to stderr");
    const records = parseJsonl(await Deno.readTextFile(log));
    const pieces = verifiedOrder(records);
    assert.equal(pieces.length, PIECES, "one Piece verified record per piece, no duplicates");
    assert.deepEqual([...pieces].sort((a, b) => a - b), Array.from({ length: PIECES }, (_, i) => i));
    const verified = records.filter((r) => r.message === "Piece verified");
    for (const r of verified) {
      assert.equal(r.level, "debug");
      assert.match(String(r.fields.peers), /^127\.0\.0\.1:\d+$/, "the one seeder contributed it");
      assert.equal(typeof r.fields.torrent, "string");
    }
    const complete = records.findIndex((r) => r.category === "torrent" && r.message === "Download complete");
    assert.ok(complete > records.indexOf(verified.at(-1)!), "Download complete comes after the last piece");
    assert.ok(records.some((r) => r.category === "peer" && r.message === "Peer connected"));
  });
});

// ---------------------------------------------------------------------------------------------
// Acceptance: a user-style selector from a file changes the order, visible in the log

Deno.test("cli download --selector fixtures/plugins/highest_first.ts fetches from the top, as the log shows", async () => {
  await withSeed(async (s) => {
    const highest = await downloadOrder(s, join(ROOT, "fixtures/plugins/highest_first.ts"));
    const sequential = await downloadOrder(s, "sequential");
    for (const order of [highest, sequential]) assert.equal(new Set(order).size, PIECES);
    const rhoHigh = spearman(highest);
    const rhoSeq = spearman(sequential);
    assert.ok(highest[0]! >= PIECES * 0.9, `first verified piece ${highest[0]} is not in the top 10%`);
    assert.ok(rhoHigh <= -0.9, `highest-first: Spearman ${rhoHigh.toFixed(3)} (order ${highest.join(" ")})`);
    assert.ok(
      sequential[0]! < PIECES * 0.1,
      `first verified piece ${sequential[0]} is not in the bottom 10%`,
    );
    // "Piece verified" follows write completion, which may finish a few pieces out of request order
    // (seen: 0 52 53 54 55 1 2 …, Spearman 0.868); 0.8 is still far from a shuffle (~0) or the reverse (-1).
    assert.ok(rhoSeq >= 0.8, `sequential: Spearman ${rhoSeq.toFixed(3)} (order ${sequential.join(" ")})`);
  });
});

// ---------------------------------------------------------------------------------------------
// Sinks from modules, contained failures

Deno.test("cli --log with a module path loads the user's sink and closes it at the end", async () => {
  await withSeed(async (s) => {
    const before = { total: countingFixture.total, storage: countingFixture.count("storage") };
    const { io, err } = capture();
    const code = await main(
      downloadArgs(
        s,
        "out",
        "--log",
        join(ROOT, "fixtures/plugins/counting_sink.ts"),
        "--log-level",
        "debug",
      ),
      io,
    );
    assert.equal(code, 0, err());
    assert.ok(countingFixture.count("storage") - before.storage >= PIECES, "saw every Piece verified record");
    assert.ok(countingFixture.total > before.total + PIECES);
  });
});

Deno.test("a log sink module that throws is removed, named in the log, and the download completes", async () => {
  await withSeed(async (s) => {
    const thrower = join(s.dir, "throwing_sink.ts");
    await Deno.writeTextFile(
      thrower,
      'export const sink = (record: { message: string }): void => {\n  throw new Error("sink exploded on " + record.message);\n};\n',
    );
    const { io, err } = capture();
    const code = await main(
      downloadArgs(s, "out", "--log", thrower, "--log", "pretty", "--log-level", "info"),
      io,
    );
    assert.equal(code, 0, err());
    assert.match(err(), new RegExp(`Complete: ${PIECES}/${PIECES} pieces verified`));
    assert.match(
      err(),
      /ERROR log: Log sink removed after it threw: PluginError: Plugin '.*throwing_sink\.ts' failed: the log sink threw: sink exploded on /,
    );
    assert.equal(err().match(/Log sink removed/g)?.length, 1, "removed once, not once per record");
    assert.doesNotMatch(err(), / {4}at /, "no stack trace");
  });
});

Deno.test("an async log sink module that rejects is turned off with a message naming it", async () => {
  await withSeed(async (s) => {
    const rejecter = join(s.dir, "async_sink.ts");
    await Deno.writeTextFile(
      rejecter,
      'export async function sink(_record: unknown): Promise<void> {\n  await null;\n  throw new Error("async failure");\n}\n',
    );
    const { io, err } = capture();
    const code = await main(downloadArgs(s, "out", "--log", rejecter, "--log-level", "info"), io);
    assert.equal(code, 0, err());
    assert.match(
      err(),
      /error: Plugin '.*async_sink\.ts' failed: the log sink rejected: async failure; it is turned off\n/,
    );
    assert.equal(err().match(/it is turned off/g)?.length, 1);
  });
});

Deno.test("a log sink module that cannot be used is a PluginError naming it (exit 1, no stack trace)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-log-" });
  try {
    await Deno.writeFile(join(dir, "data.bin"), new Uint8Array(40_000));
    const made = await createTorrent(join(dir, "data.bin"), { pieceLength: 16384, creationDate: null });
    const torrentPath = join(dir, "data.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    const modules: [string, string, RegExp][] = [
      ["nothing.ts", "export const answer = 42;\n", /exports no LogSink/],
      ["broken.ts", "export const = ;\n", /cannot load the module/],
      [
        "factory.ts",
        'export function make() {\n  throw new Error("no config");\n}\n',
        /its factory threw: no config/,
      ],
      ["not_a_sink.ts", "export function make() {\n  return 7;\n}\n", /exports no LogSink/],
      ["missing.ts", "", /cannot load the module/],
    ];
    for (const [name, source, message] of modules) {
      if (source !== "") await Deno.writeTextFile(join(dir, name), source);
      const { io, err } = capture();
      const code = await main(
        ["download", torrentPath, "-o", join(dir, "out"), "--bind", "127.0.0.1", "--log", `./${name}`],
        { ...io!, cwd: dir },
      );
      assert.equal(code, 1, `${name}: ${err()}`);
      assert.match(err(), new RegExp(`Plugin '\\./${name.replace(".", "\\.")}' failed: `), name);
      assert.match(err(), message, name);
      // A syntax error names its own line (`at file:///.../broken.ts:1:14`); shoal's frames never show.
      assert.doesNotMatch(
        err(),
        /at .*\/(cli|lib|plugins)\/\w+\.ts|unexpected failure/,
        `${name}: no stack trace`,
      );
    }
    // A factory of zero arguments returning a sink works.
    await Deno.writeTextFile(
      join(dir, "factory_ok.ts"),
      "export function make() {\n  return (_r: unknown) => {};\n}\n",
    );
    const { io, err } = capture();
    const code = await main([
      "seed",
      torrentPath,
      dir,
      "--bind",
      "127.0.0.1",
      "--seed-time",
      "0",
      "--log",
      "./factory_ok.ts",
    ], {
      ...io!,
      cwd: dir,
    });
    assert.equal(code, 0, err());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// --log values, pretty output, every transfer command

async function withSmallTorrent(fn: (dir: string, torrentPath: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-cli-log-" });
  try {
    await Deno.writeFile(join(dir, "data.bin"), new Uint8Array(40_000).map((_, i) => i & 0xff));
    const made = await createTorrent(join(dir, "data.bin"), { pieceLength: 16384, creationDate: null });
    await Deno.writeFile(join(dir, "data.torrent"), made.torrent);
    await fn(dir, join(dir, "data.torrent"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli --log values are checked as usage errors", async () => {
  for (
    const [value, message] of [
      ["bogus", /Unknown --log: bogus \(pretty, jsonl:PATH, or a path like \.\/my_sink\.ts\)/],
      ["jsonl", /Invalid --log: jsonl \(give a file: jsonl:PATH, or jsonl:- for stdout\)/],
      ["jsonl:", /Invalid --log: jsonl:/],
    ] as const
  ) {
    const { io, err } = capture();
    assert.equal(await main(["seed", "x.torrent", ".", "--log", value], io), 2, err());
    assert.match(err(), message);
  }
});

Deno.test("cli --log jsonl:PATH that cannot be opened is a PluginError naming it", async () => {
  await withSmallTorrent(async (dir, torrentPath) => {
    const { io, err } = capture();
    const code = await main(
      [
        "seed",
        torrentPath,
        dir,
        "--bind",
        "127.0.0.1",
        "--seed-time",
        "0",
        "--log",
        "jsonl:no/such/dir/x.jsonl",
      ],
      { ...io!, cwd: dir },
    );
    assert.equal(code, 1);
    assert.match(err(), /error: Plugin 'jsonl:no\/such\/dir\/x\.jsonl' failed: cannot open the log file: /);
  });
});

Deno.test("cli seed --log jsonl:- writes JSON lines to stdout and nothing else there", async () => {
  await withSmallTorrent(async (dir, torrentPath) => {
    const { io, out, err } = capture();
    const code = await main(
      [
        "seed",
        torrentPath,
        dir,
        "--bind",
        "127.0.0.1",
        "--seed-time",
        "0",
        "-q",
        "--log",
        "jsonl:-",
        "--log-level",
        "info",
      ],
      io,
    );
    assert.equal(code, 0, err());
    const records = parseJsonl(out());
    assert.ok(records.some((r) => r.category === "session" && r.message === "Listening"));
    assert.ok(records.some((r) => r.category === "storage" && r.message === "Checked existing data"));
    assert.doesNotMatch(err(), /INFO/);
  });
});

Deno.test("cli share takes --log too (every command with the transfer options)", async () => {
  await withSmallTorrent(async (dir) => {
    const log = join(dir, "share.jsonl");
    const { io, err } = capture();
    const code = await main(
      [
        "share",
        join(dir, "data.bin"),
        "-o",
        join(dir, "shared.torrent"),
        "--bind",
        "127.0.0.1",
        "--seed-time",
        "0",
        "-q",
        "--log",
        `jsonl:${log}`,
        "--log-level",
        "info",
      ],
      io,
    );
    assert.equal(code, 0, err());
    assert.ok(parseJsonl(await Deno.readTextFile(log)).some((r) => r.message === "Listening"));
  });
});

Deno.test("cli prints records as plain lines by default and with timestamps under --log pretty", async () => {
  await withSmallTorrent(async (dir, torrentPath) => {
    const args = [
      "seed",
      torrentPath,
      dir,
      "--bind",
      "127.0.0.1",
      "--seed-time",
      "0",
      "-q",
      "--log-level",
      "info",
    ];
    const plain = capture();
    assert.equal(await main(args, plain.io), 0, plain.err());
    assert.match(plain.err(), /^INFO session: Listening \(port=\d+ hostname=127\.0\.0\.1\)$/m);
    const pretty = capture();
    assert.equal(await main([...args, "--log", "pretty"], pretty.io), 0, pretty.err());
    assert.match(
      pretty.err(),
      /^\d\d:\d\d:\d\d\.\d{3} INFO session: Listening \(port=\d+ hostname=127\.0\.0\.1\)$/m,
    );
  });
});

Deno.test("cli pretty output on a terminal clears the progress line before each record", async () => {
  await withSmallTorrent(async (dir, torrentPath) => {
    const { io, err } = capture(true);
    const code = await main(
      [
        "seed",
        torrentPath,
        dir,
        "--bind",
        "127.0.0.1",
        "--seed-time",
        "0",
        "--log",
        "pretty",
        "--log-level",
        "info",
      ],
      io,
    );
    assert.equal(code, 0, err());
    // deno-lint-ignore no-control-regex
    const lines = err().split("\n").filter((l) => /session.*Listening/.test(l.replace(/\x1b\[\d+m/g, "")));
    assert.equal(lines.length, 1, err());
    assert.ok(lines[0]!.startsWith("\r\x1b[K"), JSON.stringify(lines[0]));
  });
});

Deno.test("cli --log can be given several times: every sink gets the records", async () => {
  await withSmallTorrent(async (dir, torrentPath) => {
    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    const { io, err } = capture();
    const code = await main(
      [
        "seed",
        torrentPath,
        dir,
        "--bind",
        "127.0.0.1",
        "--seed-time",
        "0",
        "-q",
        "--log",
        `jsonl:${a}`,
        "--log",
        `jsonl:${b}`,
        "--log",
        "pretty",
        "--log-level",
        "info",
      ],
      io,
    );
    assert.equal(code, 0, err());
    const ra = await Deno.readTextFile(a);
    assert.equal(ra, await Deno.readTextFile(b));
    // The same records, but for the progress records that only jsonl sinks get.
    assert.equal(
      parseJsonl(ra).filter((r) => r.category !== "progress").length,
      err().split("\n").filter((l) => /^\d\d:\d\d:\d\d\.\d{3} [A-Z]+ /.test(l)).length,
    );
  });
});
