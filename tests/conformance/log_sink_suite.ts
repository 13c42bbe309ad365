/**
 * The conformance suite every {@linkcode LogSink} must pass: the shipped ones (`pretty`,
 * `jsonl`) and any user-style sink. A sink is called synchronously from whatever component is
 * logging, so it must take every record it can be given without throwing (the logger would
 * remove it) and without changing it (the same record goes to every sink). A sink that writes
 * text must keep one record to one line whatever the fields hold, so nothing a peer sends can
 * forge a log line or drive a terminal.
 *
 * ```ts ignore
 * import { logSinkSuite } from "./log_sink_suite.ts";
 * logSinkSuite("mySink()", () => ({ sink: mySink() }));
 * ```
 *
 * Each check is also exported on its own ({@linkcode LOG_SINK_CHECKS}), so a test can show
 * that the suite fails for a sink that breaks the contract.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import type { LogLevel, LogRecord, LogSink } from "../../lib/types.ts";

/** What a sink under test comes with. */
export interface LogSinkHarness {
  /** The sink. */
  readonly sink: LogSink;
  /**
   * What the sink wrote so far, when it writes text. `"lines"`: one human line per record;
   * `"jsonl"`: one JSON object per line, which must give the record back.
   */
  readonly output?: { readonly format: "lines" | "jsonl"; read(): string };
  /** Closes the sink and removes what it created. After it, the sink must still not throw. */
  close?(): void | Promise<void>;
}

/** Every level. */
export const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** The categories the core uses, and one a plugin might invent. */
export const CATEGORIES: readonly string[] = [
  "peer",
  "swarm",
  "storage",
  "torrent",
  "tracker",
  "choker",
  "plugin",
  "session",
  "log",
  "my-plugin/ünïcode",
];

/** Field values that are legal by the type but hard to print. */
export const ODD_FIELDS: readonly Readonly<Record<string, string | number | boolean | null>>[] = [
  { empty: "", space: "a b", quote: 'say "hi"', single: "it's", backslash: "C:\\dir\\file" },
  { newline: "line one\nline two", crlf: "a\r\nb", tab: "a\tb", nul: "a\u0000b", bell: "\u0007" },
  { escape: "\x1b[31mred\x1b[0m", osc: "\x1b]0;title\x07", del: "\u007f", c1: "\u009b31m" },
  { separators: "a\u2028b\u2029c", bidi: "\u202eevil\u202c", isolate: "\u2066x\u2069" },
  { emoji: "🐟🌊", cjk: "漢字", rtl: "שלום", combining: "e\u0301", zwj: "👩‍👩‍👧" },
  { loneHigh: "a\ud800b", loneLow: "\udc00", reversed: "\udc00\ud800" },
  { equals: "k=v", parens: "(x)", brackets: "[::1]:6881", json: '{"a":[1,2]}', percent: "100%" },
  { long: "x".repeat(100_000) },
  { zero: 0, negativeZero: -0, big: Number.MAX_SAFE_INTEGER, tiny: 5e-324, neg: -1.5 },
  { nan: Number.NaN, inf: Number.POSITIVE_INFINITY, negInf: Number.NEGATIVE_INFINITY },
  { yes: true, no: false, nothing: null },
  { "key with space": 1, "key=eq": 2, 'key"quote': 3, "key\nnewline": 4, "": 5, "🔑": 6 },
  Object.fromEntries([["__proto__", "proto"], ["constructor", "c"], ["toString", "t"]]),
];

function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

function circular(): object {
  const a: Record<string, unknown> = { name: "a" };
  a.self = a;
  return a;
}

/**
 * Records no well-typed caller sends, but a buggy plugin or a cast might: a sink must not
 * throw on them either.
 *
 * @returns Fresh weird records (some hold revoked proxies, so they are built per call).
 */
export function weirdRecords(): unknown[] {
  const base = { time: 1, level: "info", category: "peer", message: "m", fields: {} };
  const throwingGetter = Object.defineProperty({}, "bad", {
    enumerable: true,
    get() {
      throw new Error("getter threw");
    },
  });
  const badToString = {
    toString: () => {
      throw new Error("toString threw");
    },
  };
  return [
    null,
    undefined,
    {},
    { ...base, fields: null },
    { ...base, fields: undefined },
    { ...base, fields: "not an object" },
    { ...base, fields: [1, 2, 3] },
    { ...base, fields: revokedProxy() },
    { ...base, fields: throwingGetter },
    { ...base, fields: Object.create(null) },
    { ...base, level: "fatal" },
    { ...base, level: undefined },
    { ...base, level: 42 },
    { ...base, category: null },
    { ...base, category: Symbol("cat") },
    { ...base, message: undefined },
    { ...base, message: { text: "object" } },
    { ...base, message: badToString },
    { ...base, message: Object.create(null) },
    { ...base, time: Number.NaN },
    { ...base, time: "yesterday" },
    { ...base, time: 1e300 },
    { ...base, time: -1 },
    {
      ...base,
      fields: {
        big: 10n,
        sym: Symbol("s"),
        fn: () => 1,
        undef: undefined,
        obj: { a: 1 },
        arr: [1, "two"],
        date: new Date(0),
        circular: circular(),
        nullProto: Object.create(null),
        badToString,
        revoked: revokedProxy(),
        error: new Error("inner\nerror"),
      },
    },
  ];
}

function record(level: LogLevel, category: string, fields: LogRecord["fields"] = {}): LogRecord {
  return deepFreeze({ time: 1_714_564_407_512, level, category, message: `A ${level} record`, fields });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Control characters that must never reach a text log raw (the final `\n` of a line aside). */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/**
 * Calls the sink with each record and checks what it wrote: exactly one line per record for a
 * text sink, no raw control characters, and for JSONL the record back from each line.
 */
function feed(h: LogSinkHarness, records: readonly unknown[], roundTrip: boolean): void {
  for (const r of records) {
    const before = h.output?.read() ?? "";
    try {
      h.sink(r as LogRecord);
    } catch (error) {
      assert.fail(`the sink threw on ${describe(r)}: ${(error as Error).stack ?? error}`);
    }
    if (h.output === undefined) continue;
    const after = h.output.read();
    if (!after.startsWith(before)) assert.fail("the sink rewrote earlier output");
    const added = after.slice(before.length);
    if (!added.endsWith("\n")) {
      assert.fail(`output for ${describe(r)} does not end with a newline: ${JSON.stringify(added)}`);
    }
    const lines = added.slice(0, -1).split("\n");
    if (lines.length !== 1) assert.fail(`one record became ${lines.length} lines: ${JSON.stringify(added)}`);
    const line = lines[0]!;
    if (/\p{Cs}/u.test(line)) assert.fail(`a lone surrogate reached the output: ${JSON.stringify(line)}`);
    if (h.output.format === "lines") {
      const raw = RAW_CONTROL.exec(line);
      if (raw) {
        assert.fail(
          `raw control character U+${raw[0].charCodeAt(0).toString(16)} in ${JSON.stringify(line)}`,
        );
      }
    } else {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line);
      } catch (error) {
        assert.fail(`not a JSON line: ${line.slice(0, 200)}: ${error}`);
      }
      assert.deepEqual(Object.keys(parsed).sort(), ["category", "fields", "level", "message", "time"]);
      assert.equal(typeof parsed.fields, "object");
      if (roundTrip) {
        assert.deepEqual(parsed, jsonView(r as LogRecord), "the line does not give the record back");
      }
    }
  }
}

/** What a JSONL line of `r` parses to: the record, with numbers JSON cannot hold as strings. */
function jsonView(r: LogRecord): unknown {
  const fields = Object.fromEntries(
    Object.entries(r.fields).map(([key, value]) => [
      key,
      typeof value === "number" && !Number.isFinite(value) ? String(value) : Object.is(value, -0) ? 0 : value,
    ]),
  );
  return { time: r.time, level: r.level, category: r.category, message: r.message, fields };
}

function describe(value: unknown): string {
  try {
    return Deno.inspect(value, { depth: 2 }).slice(0, 200);
  } catch (error) {
    return `<uninspectable: ${error}>`;
  }
}

async function withHarness(
  make: () => LogSinkHarness | Promise<LogSinkHarness>,
  fn: (h: LogSinkHarness) => void,
) {
  const h = await make();
  try {
    fn(h);
  } finally {
    await h.close?.();
  }
}

/**
 * The checks, by name. Each takes a factory of harnesses and throws (an assertion error) when
 * the sink breaks the contract.
 */
export const LOG_SINK_CHECKS: Readonly<
  Record<string, (make: () => LogSinkHarness | Promise<LogSinkHarness>) => Promise<void>>
> = {
  "accepts every level and category": (make) =>
    withHarness(make, (h) => {
      feed(h, LEVELS.flatMap((level) => CATEGORIES.map((category) => record(level, category))), true);
      feed(
        h,
        [record("info", "torrent", { torrent: "3f2a9c01d4e5", peer: "127.0.0.1:51413", piece: 7 })],
        true,
      );
    }),
  "writes fields with odd values safely": (make) =>
    withHarness(make, (h) => {
      feed(h, ODD_FIELDS.map((fields) => record("warn", "peer", fields)), true);
      const message = deepFreeze({
        ...record("error", "peer"),
        message: "Peer said:\n\x1b[2Jfake\u2028line\r",
      });
      feed(h, [message], true);
    }),
  "never throws on weird input": (make) =>
    withHarness(make, (h) => {
      feed(h, weirdRecords(), false);
      // and still works afterwards
      feed(h, [record("info", "session", { after: "weird" })], true);
    }),
  "does not change the records it is given": (make) =>
    withHarness(make, (h) => {
      const fields = { piece: 1, peer: "127.0.0.1:1", note: "x" };
      const r = record("debug", "storage", fields);
      const copy = structuredClone({ ...r, fields: { ...r.fields } });
      feed(h, [r, r], true);
      assert.deepEqual({ ...r, fields: { ...r.fields } }, copy);
    }),
  "stays attached behind a Logger": (make) =>
    withHarness(make, (h) => {
      const removed: string[] = [];
      const log = new Logger({
        level: "debug",
        sinks: [h.sink, (r) => void (r.category === "log" && removed.push(r.message))],
      });
      for (const level of LEVELS) {
        for (const fields of ODD_FIELDS) log.log(level, "peer", "Odd fields", fields);
      }
      log.child({ torrent: "ab".repeat(6) }).info("torrent", "Child logger record", { piece: 3 });
      assert.deepEqual(removed, []);
    }),
  "takes records after close without throwing": async (make) => {
    const h = await make();
    await h.close?.();
    for (const level of LEVELS) h.sink(record(level, "session"));
    for (const r of weirdRecords()) h.sink(r as LogRecord);
  },
};

/**
 * Registers the suite for one sink.
 *
 * @param name Test name prefix, e.g. `"prettySink()"`.
 * @param make Builds a fresh harness for each check.
 */
export function logSinkSuite(name: string, make: () => LogSinkHarness | Promise<LogSinkHarness>): void {
  for (const [check, run] of Object.entries(LOG_SINK_CHECKS)) {
    Deno.test(`${name} ${check}`, () => run(make));
  }
}
