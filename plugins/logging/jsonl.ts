/**
 * The `jsonl` log sink: one JSON object per line (JSON Lines), to a file, to stdout, or to
 * any writer.
 *
 * Each line is a {@linkcode LogRecord} as JSON, with the same five keys, so
 * `JSON.parse(line)` gives the record back:
 *
 * ```text
 * {"time":1714564407512,"level":"info","category":"peer","message":"Peer connected","fields":{"torrent":"3f2a9c01d4e5","peer":"127.0.0.1:51413","client":"LT2080"}}
 * {"time":1714564407519,"level":"debug","category":"storage","message":"Piece verified","fields":{"torrent":"3f2a9c01d4e5","piece":0,"peers":"127.0.0.1:51413"}}
 * ```
 *
 * `time` is milliseconds since the Unix epoch. Whatever a record holds, it is written as one
 * valid line: JSON escapes line breaks and quotes, lone surrogates are escaped (`\udc00`) so
 * the file is valid UTF-8, and values JSON cannot hold are turned into strings (`NaN`,
 * `Infinity`, a `bigint`) or `null` (a missing `time`).
 *
 * **Writing and closing.** A sink writing to a path opens the file once, in append mode
 * (created if missing), and writes each line at once with a synchronous write: no buffer, no
 * timer, nothing to flush, and the file is complete up to the last record even if the process
 * is killed. Call `close()` (or let `using` do it) to release the file; records that arrive
 * after that are dropped. The sink is itself the {@linkcode LogSink} function, so it can be
 * handed to a logger as is.
 *
 * @example Log everything a session does to a file
 * ```ts ignore
 * import { Session } from "../../mod.ts";
 * import { jsonlSink } from "./jsonl.ts";
 * using log = jsonlSink("./shoal.jsonl");
 * await using session = new Session({ downloadDir: "./downloads", logSinks: [log], logLevel: "debug" });
 * ```
 *
 * @example Read it back, one record per line
 * ```ts ignore
 * for (const line of (await Deno.readTextFile("./shoal.jsonl")).split("\n")) {
 *   if (line === "") continue;
 *   const record = JSON.parse(line);
 *   if (record.message === "Piece verified") console.log(record.fields.piece);
 * }
 * ```
 *
 * @module
 */

import type { LogLevel, LogRecord, LogSink } from "../../lib/types.ts";

/** Where a {@linkcode jsonlSink} writes when it is not given a path. */
export interface JsonlWriter {
  /**
   * Receives one line: a JSON object followed by `\n`. Called once per record, in order.
   *
   * @param line The line.
   */
  write(line: string): void;
  /** Called once by the sink's `close()`, if present. */
  close?(): void;
}

/** Options for {@linkcode jsonlSink}. */
export interface JsonlSinkOptions {
  /** Records below this level are skipped (the logger's own level applies first). @default {"debug"} */
  level?: LogLevel;
}

/**
 * A JSON Lines log sink: call it with a record to write a line; close it when done.
 * `Symbol.dispose` closes it too, for `using`.
 */
export interface JsonlSink extends Disposable {
  /**
   * Writes one record as a line (nothing once closed).
   *
   * @param record The record.
   */
  (record: LogRecord): void;
  /** Lines written so far. */
  readonly lines: number;
  /** Releases the file (or calls the writer's `close()`); later records are dropped. Idempotent. */
  close(): void;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Creates a sink that writes one JSON object per record, one per line.
 *
 * @example Capture the lines with a writer
 * ```ts
 * import { jsonlSink } from "./jsonl.ts";
 * const lines: string[] = [];
 * using sink = jsonlSink({ write: (line) => lines.push(line) });
 * sink({ time: 0, level: "info", category: "peer", message: "Hi\n", fields: { peer: "127.0.0.1:6881" } });
 * console.log(lines[0]);
 * // '{"time":0,"level":"info","category":"peer","message":"Hi\\n","fields":{"peer":"127.0.0.1:6881"}}\n'
 * ```
 *
 * @example Append to a file, or write to stdout with "-"
 * ```ts ignore
 * import { jsonlSink } from "./jsonl.ts";
 * const toFile = jsonlSink("./shoal.jsonl");
 * const toStdout = jsonlSink("-");
 * // ... hand them to a Logger or a Session's logSinks, then:
 * toFile.close();
 * ```
 *
 * @param target A file path (appended to, created if missing), `"-"` for stdout, or a
 * {@linkcode JsonlWriter}.
 * @param options The lowest level written.
 * @returns The sink.
 * @throws {Deno.errors.NotFound} (and the other `Deno.openSync` errors) when the file cannot be
 * opened.
 */
export function jsonlSink(target: string | JsonlWriter, options: JsonlSinkOptions = {}): JsonlSink {
  const writer = typeof target === "string" ? (target === "-" ? stdoutWriter() : fileWriter(target)) : target;
  const min = RANK[options.level ?? "debug"] ?? RANK.debug;
  let open = true;
  let lines = 0;
  const close = (): void => {
    if (!open) return;
    open = false;
    writer.close?.();
  };
  const sink: LogSink = (record: LogRecord): void => {
    if (!open) return;
    const rank = RANK[record?.level as LogLevel];
    if (rank !== undefined && rank < min) return;
    writer.write(jsonlLine(record));
    lines++;
  };
  return Object.defineProperties(sink, {
    lines: { get: () => lines, enumerable: true },
    close: { value: close, enumerable: true },
    [Symbol.dispose]: { value: close },
  }) as JsonlSink;
}

/**
 * Turns one record into its JSON line, as {@linkcode jsonlSink} writes it. Never throws:
 * values JSON cannot hold become strings, and a record that cannot be read at all becomes an
 * `error` record saying so.
 *
 * @example
 * ```ts
 * import { jsonlLine } from "./jsonl.ts";
 * const line = jsonlLine({ time: 5, level: "warn", category: "tracker", message: "Bad \"reply\"", fields: {} });
 * console.log(JSON.parse(line).message); // 'Bad "reply"'
 * ```
 *
 * @param record The record.
 * @returns The JSON text followed by `\n`.
 */
export function jsonlLine(record: LogRecord): string {
  try {
    return JSON.stringify({
      time: plainTime(record.time),
      level: plainString(record.level),
      category: plainString(record.category),
      message: plainString(record.message),
      fields: plainFields(record.fields),
    }) + "\n";
  } catch (error) {
    return JSON.stringify({
      time: Date.now(),
      level: "error",
      category: "log",
      message: `Unwritable log record: ${plainString(error)}`,
      fields: {},
    }) + "\n";
  }
}

function plainTime(time: unknown): number | null {
  return typeof time === "number" && Number.isFinite(time) ? time : null;
}

function plainFields(fields: unknown): Record<string, string | number | boolean | null> {
  if (typeof fields !== "object" || fields === null) return {};
  const entries: [string, string | number | boolean | null][] = [];
  for (const key of Object.keys(fields)) {
    let value: unknown;
    try {
      value = (fields as Record<string, unknown>)[key];
    } catch (error) {
      value = `<unreadable: ${plainString(error)}>`;
    }
    entries.push([key, plainValue(value)]);
  }
  // fromEntries defines own properties, so a field named "__proto__" is kept, not turned into a
  // prototype assignment.
  return Object.fromEntries(entries);
}

function plainValue(value: unknown): string | number | boolean | null {
  if (typeof value === "string" || typeof value === "boolean" || value === null) return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  return plainString(value);
}

function plainString(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return String(value);
  } catch (error) {
    // Objects without a usable toString (a null prototype, a throwing toString): name the type.
    return `<${typeof value}${error instanceof Error ? `: ${error.message}` : ""}>`;
  }
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

function fileWriter(path: string): JsonlWriter {
  const file = Deno.openSync(path, { write: true, append: true, create: true });
  return {
    write: (line) => writeAll(file, line),
    close: () => file.close(),
  };
}

function stdoutWriter(): JsonlWriter {
  return { write: (line) => writeAll(Deno.stdout, line) };
}
