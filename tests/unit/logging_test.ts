import assert from "node:assert/strict";
import { join } from "node:path";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { jsonlLine, jsonlSink } from "../../plugins/logging/jsonl.ts";
import { formatPretty, prettySink } from "../../plugins/logging/pretty.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function rec(partial: Partial<LogRecord> = {}): LogRecord {
  return { time: 0, level: "info", category: "peer", message: "Peer connected", fields: {}, ...partial };
}

// ---------------------------------------------------------------------------------------------
// pretty

Deno.test("formatPretty() prints LEVEL category: message (fields) on one line", () => {
  const line = formatPretty(
    rec({ fields: { torrent: "3f2a9c01d4e5", peer: "127.0.0.1:51413", piece: 7, ok: true, none: null } }),
    { timestamp: "none" },
  );
  assert.equal(
    line,
    "INFO peer: Peer connected (torrent=3f2a9c01d4e5 peer=127.0.0.1:51413 piece=7 ok=true none=null)\n",
  );
  assert.equal(formatPretty(rec({ level: "warn" }), { timestamp: "none" }), "WARN peer: Peer connected\n");
});

Deno.test("formatPretty() shows the local time of day, or ISO time, or none", () => {
  const time = new Date(2024, 4, 1, 14, 3, 27, 512).getTime();
  assert.equal(formatPretty(rec({ time })), "14:03:27.512 INFO peer: Peer connected\n");
  assert.equal(
    formatPretty(rec({ time: 0 }), { timestamp: "iso" }),
    "1970-01-01T00:00:00.000Z INFO peer: Peer connected\n",
  );
  assert.match(formatPretty(rec({ time: Number.NaN })), /^\?\?:\?\?:\?\?\.\?\?\? INFO/);
  assert.match(formatPretty(rec({ time: 1e300 }), { timestamp: "iso" }), /^\?{4}-/);
});

Deno.test("formatPretty() quotes values that are not plain words and keeps plain ones bare", () => {
  const line = formatPretty(
    rec({
      fields: {
        ipv6: "[::1]:6881",
        list: "127.0.0.1:1,127.0.0.1:2",
        word: "Grüße",
        empty: "",
        space: "a b",
        quote: 'say "hi"',
        eq: "k=v",
        back: "C:\\x",
        "odd key": 1,
      },
    }),
    { timestamp: "none" },
  );
  assert.equal(
    line,
    "INFO peer: Peer connected (ipv6=[::1]:6881 list=127.0.0.1:1,127.0.0.1:2 word=Grüße empty= " +
      'space="a b" quote="say \\"hi\\"" eq="k=v" back="C:\\\\x" "odd key"=1)\n',
  );
});

Deno.test("formatPretty() escapes line breaks, terminal escapes and bidi controls", () => {
  const line = formatPretty(
    rec({ message: "one\ntwo\r", fields: { client: "\x1b[2J\u202eevil", sep: "a\u2028b", lone: "\ud800" } }),
    { timestamp: "none" },
  );
  assert.equal(
    line,
    'INFO peer: one\\ntwo\\r (client="\\u001b[2J\\u202eevil" sep="a\\u2028b" lone="\\ud800")\n',
  );
  assert.equal(line.split("\n").length, 2);
});

Deno.test("formatPretty() colours the level only when asked", () => {
  const plain = formatPretty(rec({ level: "error", fields: { a: 1 } }), { timestamp: "none" });
  assert.ok(!plain.includes("\x1b"));
  const coloured = formatPretty(rec({ level: "error", fields: { a: 1 } }), {
    timestamp: "none",
    color: true,
  });
  assert.ok(coloured.startsWith("\x1b[31mERROR\x1b[0m peer: "), JSON.stringify(coloured));
  // deno-lint-ignore no-control-regex
  assert.equal(coloured.replace(/\x1b\[\d+m/g, ""), plain);
});

Deno.test("formatPretty() gives a line even for a record it cannot read", () => {
  const line = formatPretty(null as unknown as LogRecord);
  assert.match(line, /^ERROR log: Unprintable log record: /);
  assert.ok(line.endsWith("\n") && line.split("\n").length === 2);
});

Deno.test("prettySink() writes one line per record and skips records below its level", () => {
  const lines: string[] = [];
  const sink = prettySink({ write: (t) => lines.push(t), level: "warn", timestamp: "none" });
  for (const level of ["debug", "info", "warn", "error"] as const) sink(rec({ level, message: level }));
  assert.deepEqual(lines, ["WARN peer: warn\n", "ERROR peer: error\n"]);
});

Deno.test("prettySink() writes to stderr, without colours when stderr is not a terminal", async () => {
  const code = `
    import { prettySink } from "${join(ROOT, "plugins/logging/pretty.ts")}";
    prettySink()({ time: 0, level: "warn", category: "tracker", message: "Announce failed", fields: { n: 1 } });
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout), "");
  assert.match(
    new TextDecoder().decode(out.stderr),
    /^\d\d:\d\d:\d\d\.\d{3} WARN tracker: Announce failed \(n=1\)\n$/,
  );
});

// ---------------------------------------------------------------------------------------------
// jsonl

Deno.test("jsonlLine() writes the record as one JSON object that parses back to it", () => {
  const r = rec({
    time: 1_714_564_407_512,
    fields: { torrent: "ab", piece: 3, ok: false, x: null, s: 'a "q"\nb' },
  });
  const line = jsonlLine(r);
  assert.ok(line.endsWith("\n"));
  assert.equal(line.indexOf("\n"), line.length - 1);
  assert.deepEqual(JSON.parse(line), r);
  assert.deepEqual(Object.keys(JSON.parse(line)), ["time", "level", "category", "message", "fields"]);
});

Deno.test("jsonlLine() turns values JSON cannot hold into strings and keeps the line valid UTF-8", () => {
  const odd = {
    nan: Number.NaN,
    inf: Number.POSITIVE_INFINITY,
    big: 12345678901234567890n,
    lone: "a\udc00",
  } as unknown as LogRecord["fields"];
  const line = jsonlLine(rec({ time: Number.NaN, fields: odd }));
  const parsed = JSON.parse(line);
  assert.equal(parsed.time, null);
  assert.deepEqual(parsed.fields, {
    nan: "NaN",
    inf: "Infinity",
    big: "12345678901234567890",
    lone: "a\udc00",
  });
  assert.ok(line.includes("\\udc00"), "the lone surrogate is escaped, not written raw");
  assert.ok(!new TextDecoder().decode(new TextEncoder().encode(line)).includes("\ufffd"));
  const proto = JSON.parse(jsonlLine(rec({ fields: Object.fromEntries([["__proto__", "kept"]]) })));
  assert.deepEqual(Object.entries(proto.fields), [["__proto__", "kept"]]);
});

Deno.test("jsonlLine() reads what it can of a broken record and never throws", () => {
  const getter = Object.defineProperty({}, "bad", {
    enumerable: true,
    get: () => {
      throw new Error("nope");
    },
  });
  const parsed = JSON.parse(jsonlLine(rec({ fields: getter as LogRecord["fields"] })));
  assert.deepEqual(parsed.fields, { bad: "<unreadable: Error: nope>" });
  const broken = JSON.parse(jsonlLine(null as unknown as LogRecord));
  assert.equal(broken.level, "error");
  assert.match(broken.message, /^Unwritable log record: /);
});

Deno.test("jsonlSink(path) appends to the file, counts lines, and closes once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-jsonl-" });
  try {
    const path = join(dir, "log.jsonl");
    await Deno.writeTextFile(path, '{"earlier":true}\n');
    const sink = jsonlSink(path);
    sink(rec({ message: "one" }));
    sink(rec({ message: "two", fields: { n: 2 } }));
    assert.equal(sink.lines, 2);
    // Written at once: readable before close.
    const text = await Deno.readTextFile(path);
    assert.deepEqual(text.split("\n"), [
      '{"earlier":true}',
      jsonlLine(rec({ message: "one" })).trim(),
      jsonlLine(rec({ message: "two", fields: { n: 2 } })).trim(),
      "",
    ]);
    sink.close();
    sink.close();
    sink(rec({ message: "after close" }));
    assert.equal(sink.lines, 2);
    assert.equal(await Deno.readTextFile(path), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jsonlSink(path) creates the file, works with using, and skips records below its level", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-jsonl-" });
  try {
    const path = join(dir, "new.jsonl");
    {
      using sink = jsonlSink(path, { level: "info" });
      const log = new Logger({ level: "debug", sinks: [sink] });
      log.debug("peer", "skipped");
      log.child({ torrent: "abc" }).info("storage", "kept", { piece: 1 });
    }
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    assert.equal(lines[0].message, "kept");
    assert.deepEqual(lines[0].fields, { torrent: "abc", piece: 1 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jsonlSink(path) throws when the file cannot be opened", () => {
  assert.throws(() => jsonlSink("/nonexistent-shoal-dir/x/log.jsonl"), Deno.errors.NotFound);
});

Deno.test("jsonlSink(writer) passes whole lines and calls the writer's close()", () => {
  const lines: string[] = [];
  let closed = 0;
  const sink = jsonlSink({ write: (l) => lines.push(l), close: () => closed++ });
  sink(rec());
  sink[Symbol.dispose]();
  sink.close();
  assert.equal(closed, 1);
  assert.deepEqual(lines, [jsonlLine(rec())]);
});

Deno.test('jsonlSink("-") writes to stdout', async () => {
  const code = `
    import { jsonlSink } from "${join(ROOT, "plugins/logging/jsonl.ts")}";
    const sink = jsonlSink("-");
    sink({ time: 1, level: "info", category: "peer", message: "to stdout", fields: { a: "é" } });
    sink.close();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(
    new TextDecoder().decode(out.stdout),
    '{"time":1,"level":"info","category":"peer","message":"to stdout","fields":{"a":"é"}}\n',
  );
});
