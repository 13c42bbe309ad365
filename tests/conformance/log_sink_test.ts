import assert from "node:assert/strict";
import { join } from "node:path";
import { countingSink } from "../../fixtures/plugins/counting_sink.ts";
import { jsonlSink } from "../../plugins/logging/jsonl.ts";
import { prettySink } from "../../plugins/logging/pretty.ts";
import type { LogRecord } from "../../lib/types.ts";
import { CATEGORIES, LEVELS, LOG_SINK_CHECKS, type LogSinkHarness, logSinkSuite } from "./log_sink_suite.ts";

function capture(): { write: (text: string) => void; read: () => string } {
  let text = "";
  return { write: (t) => void (text += t), read: () => text };
}

logSinkSuite("prettySink()", () => {
  const out = capture();
  return { sink: prettySink({ write: out.write }), output: { format: "lines", read: out.read } };
});

logSinkSuite('prettySink({ color: true, timestamp: "iso" })', () => {
  const out = capture();
  return {
    sink: prettySink({ write: out.write, color: true, timestamp: "iso" }),
    // The sink's own colour codes are the only escapes allowed: strip them before the checks
    // (an escape from a field would be printed as the text "\u001b", which this leaves alone).
    // deno-lint-ignore no-control-regex
    output: { format: "lines", read: () => out.read().replace(/\x1b\[\d+m/g, "") },
  };
});

logSinkSuite('prettySink({ timestamp: "none" })', () => {
  const out = capture();
  return {
    sink: prettySink({ write: out.write, timestamp: "none" }),
    output: { format: "lines", read: out.read },
  };
});

logSinkSuite("jsonlSink(writer)", () => {
  const out = capture();
  const sink = jsonlSink({ write: out.write });
  return { sink, output: { format: "jsonl", read: out.read }, close: () => sink.close() };
});

logSinkSuite("jsonlSink(path)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-jsonl-" });
  const path = join(dir, "log.jsonl");
  const sink = jsonlSink(path);
  return {
    sink,
    output: { format: "jsonl", read: () => Deno.readTextFileSync(path) },
    close: async () => {
      sink.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});

logSinkSuite("countingSink (fixtures/plugins/counting_sink.ts)", () => ({ sink: countingSink() }));

// ---------------------------------------------------------------------------------------------
// The suite can fail: sinks that break the contract in one way each

const check = (name: string) => {
  const run = LOG_SINK_CHECKS[name];
  assert.ok(run, `no check named ${name}`);
  return run;
};

Deno.test("the log sink suite fails a sink that throws on an odd value", async () => {
  const sink = (r: LogRecord) => {
    for (const v of Object.values(r.fields)) {
      if (typeof v === "string" && v.includes("\n")) throw new Error("no");
    }
  };
  await assert.rejects(check("writes fields with odd values safely")(() => ({ sink })), /the sink threw/);
  await check("accepts every level and category")(() => ({ sink }));
});

Deno.test("the log sink suite fails a text sink that lets a newline or an escape through", async () => {
  const make = (escape: (s: string) => string): LogSinkHarness => {
    const out = capture();
    const sink = (r: LogRecord) =>
      out.write(`${r.message} ${Object.values(r.fields).map((v) => escape(String(v))).join(" ")}\n`);
    return { sink, output: { format: "lines", read: out.read } };
  };
  await assert.rejects(check("writes fields with odd values safely")(() => make((s) => s)), /lines/);
  await assert.rejects(
    check("writes fields with odd values safely")(() => make((s) => s.replace(/[\r\n]/g, " "))),
    /raw control character/,
  );
});

Deno.test("the log sink suite fails a JSONL sink whose lines do not give the record back", async () => {
  const out = capture();
  const sink = (r: LogRecord) => out.write(JSON.stringify({ ...r, level: "info" }) + "\n");
  await assert.rejects(
    check("accepts every level and category")(() => ({ sink, output: { format: "jsonl", read: out.read } })),
    /does not give the record back/,
  );
});

Deno.test("the log sink suite fails a sink that changes the record or throws on weird input", async () => {
  const mutating = (r: LogRecord) => void ((r.fields as Record<string, unknown>).seen = true);
  await assert.rejects(check("does not change the records it is given")(() => ({ sink: mutating })));
  const naive = (r: LogRecord) => void r.message.toUpperCase();
  await assert.rejects(check("never throws on weird input")(() => ({ sink: naive })), /the sink threw/);
  const removed = (r: LogRecord) => {
    if (r.level === "error") throw new Error("errors are not my job");
  };
  await assert.rejects(check("stays attached behind a Logger")(() => ({ sink: removed })));
});

Deno.test("countingSink from fixtures/plugins counts every level and category it is given", () => {
  const sink = countingSink();
  for (const level of LEVELS) {
    for (const category of CATEGORIES) sink({ time: 0, level, category, message: "m", fields: {} });
  }
  assert.equal(sink.total, LEVELS.length * CATEGORIES.length);
  assert.equal(sink.count("warn"), CATEGORIES.length);
  assert.equal(sink.count("storage"), LEVELS.length);
  assert.match(sink.summary(), /^40 records: 10 debug, 10 info, 10 warn, 10 error; 4 peer, /);
});
