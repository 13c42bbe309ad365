/**
 * The `pretty` log sink: one human-readable line per record, to stderr by default.
 *
 * ```text
 * 14:03:27.512 INFO peer: Peer connected (torrent=3f2a9c01d4e5 peer=127.0.0.1:51413 client=LT2080)
 * 14:03:29.046 WARN storage: Piece failed its hash check (torrent=3f2a9c01d4e5 piece=17 peers=127.0.0.1:51413)
 * ```
 *
 * The line is `[time ]LEVEL category: message[ (key=value ...)]`. Whatever a record holds, it
 * prints as exactly one line: line breaks, tabs, ANSI escapes and other control or bidi
 * characters in the message, keys and values are shown escaped (`\n`, `\u001b`), and a field
 * key or value that is not a plain word (it has spaces, quotes, `=`, parentheses...) is printed
 * in double quotes, JSON-style. An empty string prints as nothing (`key=`). Nothing a peer sends
 * (a client name, an error text) can forge a line or drive the terminal.
 *
 * @example Log a session's warnings to stderr
 * ```ts ignore
 * import { Session } from "../../mod.ts";
 * import { prettySink } from "./pretty.ts";
 * await using session = new Session({ downloadDir: "./downloads", logSinks: [prettySink()], logLevel: "warn" });
 * ```
 *
 * @module
 */

import type { LogLevel, LogRecord, LogSink } from "../../lib/types.ts";

/** How {@linkcode prettySink} shows a record's time. */
export type PrettyTimestamp = "time" | "iso" | "none";

/** Options for {@linkcode prettySink}. */
export interface PrettySinkOptions {
  /**
   * Receives each formatted line, newline included; one call per record. Must not throw
   * (an exception goes to the logger, which removes the sink).
   *
   * @default a synchronous write to stderr
   */
  write?: (text: string) => void;
  /**
   * Colour the level, time and field names with ANSI escapes.
   *
   * @default {true} when writing to stderr, stderr is a terminal and `NO_COLOR` is not set;
   * {false} with a custom `write`
   */
  color?: boolean;
  /** Records below this level are skipped (the logger's own level applies first). @default {"debug"} */
  level?: LogLevel;
  /**
   * The time in front of each line: `"time"` is the local time of day (`14:03:27.512`),
   * `"iso"` the UTC date and time (`2024-05-01T12:03:27.512Z`), `"none"` leaves it out.
   *
   * @default {"time"}
   */
  timestamp?: PrettyTimestamp;
}

/** What {@linkcode formatPretty} needs: the display options of {@linkcode PrettySinkOptions}. */
export type PrettyFormatOptions = Pick<PrettySinkOptions, "color" | "timestamp">;

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

const COLORS: Readonly<Record<string, string>> = {
  debug: "\x1b[90m",
  info: "\x1b[36m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
};
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/**
 * Creates a sink that prints each record as one human-readable line.
 *
 * @example Capture the lines instead of printing them
 * ```ts
 * import { prettySink } from "./pretty.ts";
 * const lines: string[] = [];
 * const sink = prettySink({ write: (text) => lines.push(text), timestamp: "none" });
 * sink({ time: 0, level: "warn", category: "storage", message: "Piece failed", fields: { piece: 7 } });
 * console.log(lines[0]); // "WARN storage: Piece failed (piece=7)\n"
 * ```
 *
 * @example Only warnings and errors, to stderr with timestamps
 * ```ts
 * import { Logger } from "../../lib/log.ts";
 * import { prettySink } from "./pretty.ts";
 * const log = new Logger({ level: "debug", sinks: [prettySink({ level: "warn" })] });
 * log.debug("peer", "Not printed");
 * log.warn("tracker", "Announce failed", { tracker: "udp://tracker.example:6969" });
 * ```
 *
 * @param options Where to write, colours, the lowest level shown, the timestamp style.
 * @returns The sink.
 */
export function prettySink(options: PrettySinkOptions = {}): LogSink {
  const write = options.write ?? writeStderr;
  const format: PrettyFormatOptions = {
    color: options.color ?? (options.write === undefined && stderrIsColorTerminal()),
    timestamp: options.timestamp ?? "time",
  };
  const min = RANK[options.level ?? "debug"] ?? RANK.debug;
  return (record: LogRecord): void => {
    const rank = RANK[record?.level as LogLevel];
    if (rank !== undefined && rank < min) return;
    write(formatPretty(record, format));
  };
}

/**
 * Formats one record the way {@linkcode prettySink} prints it. Never throws: a record it
 * cannot read at all gives a line saying so.
 *
 * @example
 * ```ts
 * import { formatPretty } from "./pretty.ts";
 * const line = formatPretty(
 *   { time: 0, level: "info", category: "peer", message: "Peer said:\nhi", fields: { client: "my client" } },
 *   { timestamp: "none" },
 * );
 * console.log(line); // 'INFO peer: Peer said:\\nhi (client="my client")\n'
 * ```
 *
 * @param record The record.
 * @param options Colours and timestamp style.
 * @returns One line, ending with `\n`.
 */
export function formatPretty(record: LogRecord, options: PrettyFormatOptions = {}): string {
  try {
    return formatLine(record, options.color ?? false, options.timestamp ?? "time");
  } catch (error) {
    return `ERROR log: Unprintable log record: ${escapeText(safeString(error))}\n`;
  }
}

function formatLine(record: LogRecord, color: boolean, timestamp: PrettyTimestamp): string {
  const level = safeString(record.level);
  const paint = (code: string | undefined, text: string) => (color && code ? code + text + RESET : text);
  const time = timestamp === "none" ? "" : paint(DIM, formatTime(record.time, timestamp)) + " ";
  const head = paint(COLORS[level], escapeText(level.toUpperCase()));
  const fields = formatFields(record.fields, color);
  return `${time}${head} ${escapeText(safeString(record.category))}: ${
    escapeText(safeString(record.message))
  }${fields === "" ? "" : ` (${fields})`}\n`;
}

function formatFields(fields: unknown, color: boolean): string {
  if (typeof fields !== "object" || fields === null) return "";
  const parts: string[] = [];
  for (const key of Object.keys(fields)) {
    let value: unknown;
    try {
      value = (fields as Record<string, unknown>)[key];
    } catch (error) {
      value = `<unreadable: ${safeString(error)}>`;
    }
    const name = quoteIfNeeded(key);
    parts.push(`${color ? DIM + name + "=" + RESET : name + "="}${formatValue(value)}`);
  }
  return parts.join(" ");
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return quoteIfNeeded(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return quoteIfNeeded(safeString(value));
}

/** A plain word: printed as is. Empty strings print as nothing after `=` (`key=`). */
const PLAIN = /^[\p{L}\p{N}_.:/,@+\-#%~[\]]*$/u;

function quoteIfNeeded(text: string): string {
  return PLAIN.test(text) ? text : `"${escapeText(text.replace(/[\\"]/g, "\\$&"))}"`;
}

// C0 and C1 controls, DEL, the line and paragraph separators and bidi overrides, lone surrogates:
// matching control characters is the point here.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/gu;
const SHORT: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeText(text: string): string {
  return text.replace(UNSAFE, (c) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function formatTime(time: unknown, style: PrettyTimestamp): string {
  if (typeof time !== "number" || !Number.isFinite(time) || Math.abs(time) > 8.64e15) {
    return style === "iso" ? "????-??-??T??:??:??.???Z" : "??:??:??.???";
  }
  const date = new Date(time);
  if (style === "iso") return date.toISOString();
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${
    String(date.getMilliseconds()).padStart(3, "0")
  }`;
}

function safeString(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return String(value);
  } catch (error) {
    // A value that cannot be turned into text (a Symbol's description is reachable; a
    // revoked proxy is not): name its type rather than fail the whole line.
    return `<${typeof value}${error instanceof Error ? `: ${error.message}` : ""}>`;
  }
}

function stderrIsColorTerminal(): boolean {
  return Deno.stderr.isTerminal() && !Deno.noColor;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  while (done < bytes.length) done += Deno.stderr.writeSync(bytes.subarray(done));
}
