/**
 * What every CLI command shares: injectable output streams, argument parsing with clear
 * usage errors, a progress line, size formatting, and turning errors into exit codes.
 *
 * @module
 */

import { ShoalError } from "../mod.ts";
import { type KeySource, terminalKeys } from "./keys.ts";

/** Where a command writes, injected so tests can capture everything it prints. */
export interface CliIO {
  /** Results (info, info-hashes, JSON). */
  readonly stdout: WritableStream<Uint8Array>;
  /** Progress, warnings and errors. */
  readonly stderr: WritableStream<Uint8Array>;
  /** True when stderr is a terminal: progress then redraws one line with `\r`. */
  readonly isTerminal: boolean;
  /** Folder that relative paths are resolved against. @default {Deno.cwd()} */
  readonly cwd?: string;
  /** Aborted when the user interrupts (Ctrl+C). */
  readonly signal?: AbortSignal;
  /** Milliseconds clock for progress throttling. @default {performance.now} */
  readonly now?: () => number;
  /**
   * Reads an environment variable (the config file's location, `SHOAL_*` settings). Without
   * it none is read and no default config file either (tests): {@linkcode defaultIO} sets it.
   */
  readonly env?: (name: string) => string | undefined;
  /** The terminal's size, for the live view. @default {Deno.consoleSize() on a terminal} */
  readonly consoleSize?: () => ConsoleSize;
  /**
   * Keystrokes for the live view (`p` shows or hides the peer table). {@linkcode defaultIO}
   * sets it when stdin and stderr are terminals; without it no key is read.
   */
  readonly keys?: KeySource;
  /** Interrupts the run as Ctrl+C does (aborts `signal`): the live view calls it for a Ctrl+C key. */
  readonly interrupt?: () => void;
}

/** One subcommand of the CLI. */
export interface Command {
  /** One line shown in the command list. */
  readonly summary: string;
  /** Full help text (`shoal <command> --help`). */
  readonly usage: string;
  /**
   * Runs the command.
   *
   * @param args The arguments after the command name.
   * @param io Where to write.
   * @returns The exit code: 0 success, 1 runtime failure, 2 usage error.
   */
  run(args: string[], io: CliIO): Promise<number>;
}

/** Exit code of a successful run. */
export const EXIT_OK = 0;
/** Exit code when the command ran but failed (unreadable file, bad torrent…). */
export const EXIT_FAILURE = 1;
/** Exit code for a usage error (unknown flag, missing argument). */
export const EXIT_USAGE = 2;

/**
 * A mistake in the command line. Printed with a hint to `--help`; exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./common.ts";
 * throw new UsageError("create", "Missing argument: <path>");
 * ```
 */
export class UsageError extends ShoalError {
  /** The command whose usage was wrong, or `undefined` for the top level. */
  readonly command: string | undefined;

  /**
   * @param command The command name (for the `--help` hint), or `undefined`.
   * @param message What is wrong.
   */
  constructor(command: string | undefined, message: string) {
    super("USAGE", message);
    this.command = command;
  }
}

/**
 * The real process's streams.
 *
 * @example
 * ```ts ignore
 * import { defaultIO } from "./common.ts";
 * const io = defaultIO();
 * ```
 *
 * @returns stdout and stderr of the process, and whether stderr is a terminal.
 */
export function defaultIO(): CliIO {
  return {
    stdout: Deno.stdout.writable,
    stderr: Deno.stderr.writable,
    isTerminal: Deno.stderr.isTerminal(),
    env: readEnv,
    ...(Deno.stdin.isTerminal() && Deno.stderr.isTerminal() ? { keys: terminalKeys() } : {}),
  };
}

/** An environment variable; one the process may not read (`--allow-env=…` without it) counts as unset. */
function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw error;
  }
}

const encoder = new TextEncoder();

/**
 * Writes text to a stream, holding its writer only for the write, so several writers can
 * take turns on the same stream.
 *
 * @example
 * ```ts
 * import { writeText } from "./common.ts";
 * await writeText(Deno.stdout.writable, "hello\n");
 * ```
 *
 * @param stream Where to write.
 * @param text What to write (UTF-8 encoded).
 */
export function writeText(stream: WritableStream<Uint8Array>, text: string): Promise<void> {
  // Writes to one stream wait for each other: a second getWriter() while the first write is
  // in progress would throw "The stream is already locked" (log records and status lines race).
  const previous = pendingWrites.get(stream) ?? Promise.resolve();
  const next = previous.catch(() => {/* that write's error went to its own caller */}).then(async () => {
    const writer = stream.getWriter();
    try {
      await writer.write(encoder.encode(text));
    } finally {
      writer.releaseLock();
    }
  });
  pendingWrites.set(stream, next);
  return next;
}

const pendingWrites = new WeakMap<WritableStream<Uint8Array>, Promise<void>>();

/**
 * Runs `parseArgs` (strict) and turns its errors into {@linkcode UsageError}s with short
 * messages such as `Unknown option: --foo`.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { withUsageErrors } from "./common.ts";
 * const { values } = withUsageErrors("info", () =>
 *   parseArgs({ args: ["--json"], strict: true, options: { json: { type: "boolean" } } }));
 * console.log(values.json); // true
 * ```
 *
 * @param command The command name, for the error's `--help` hint.
 * @param parse A call to `parseArgs`.
 * @returns What `parse` returns.
 * @throws {UsageError} when `parse` rejects the arguments.
 */
export function withUsageErrors<T>(command: string | undefined, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (!(e instanceof TypeError) || typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) throw e;
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(command, `Unknown option: ${quoted ?? e.message}`);
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      throw new UsageError(command, `Unexpected argument: ${quoted ?? e.message}`);
    }
    if (/argument missing|ambiguous/.test(e.message)) {
      throw new UsageError(command, `Option needs a value: ${quoted ?? e.message}`);
    }
    if (/does not take an argument/.test(e.message)) {
      throw new UsageError(command, `Option takes no value: ${quoted ?? e.message}`);
    }
    throw new UsageError(command, e.message.split("\n")[0] ?? e.message);
  }
}

/**
 * Parses a size such as `262144`, `256k`, `256KiB`, `1m`, `4MiB` or `1g`. Units are binary
 * (k = 1024).
 *
 * @example
 * ```ts
 * import { parseSize } from "./common.ts";
 * console.log(parseSize("256k")); // 262144
 * ```
 *
 * @param text The size as typed.
 * @returns The number of bytes, or `undefined` when `text` is not a size.
 */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(text);
  if (m === null) return undefined;
  const unit = m[2]?.toLowerCase();
  const scale = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1;
  const value = Number(m[1]) * scale;
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Formats a byte count for people: `0 B`, `512 B`, `1.50 KiB`, `2.00 GiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./common.ts";
 * console.log(formatBytes(1536)); // "1.50 KiB"
 * ```
 *
 * @param bytes A byte count.
 * @returns The count with a binary unit.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  // Whole numbers of a unit (piece lengths) print without decimals: "512 KiB".
  return Number.isInteger(value) ? `${value} ${units[i]}` : `${value.toFixed(2)} ${units[i]}`;
}

/**
 * Makes text from an untrusted source (a torrent, a magnet link) safe to print on a
 * terminal: control characters (C0, DEL, C1) and bidirectional overrides are shown as
 * `\u{…}` escapes instead of being interpreted.
 *
 * @example
 * ```ts
 * import { printable } from "./common.ts";
 * console.log(printable("evil\u001b[2Jname")); // "evil\u{1b}[2Jname"
 * ```
 *
 * @param text Untrusted text.
 * @returns The text with control characters escaped.
 */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    return `\\u{${c.charCodeAt(0).toString(16)}}`;
  });
}

/** Options of {@linkcode ProgressLine}. */
export interface ProgressLineOptions {
  /**
   * Minimum milliseconds between two updates on a terminal.
   *
   * @default {100}
   */
  terminalInterval?: number;
  /**
   * Minimum milliseconds between two plain lines when stderr is not a terminal.
   *
   * @default {2000}
   */
  plainInterval?: number;
  /**
   * Minimum milliseconds between two blocks (the lines below the status line, such as the
   * peer table) when stderr is not a terminal.
   *
   * @default {10000}
   */
  plainBlockInterval?: number;
}

/** Columns and rows of a terminal. */
export interface ConsoleSize {
  /** Characters per line. */
  readonly columns: number;
  /** Lines. */
  readonly rows: number;
}

/**
 * The size of the terminal the live view draws on: `io.consoleSize()` when given, else
 * `Deno.consoleSize()` when stderr is a terminal, else `$COLUMNS` (when `io.env` reads it) by
 * 24 rows, else 80 by 24.
 *
 * @example
 * ```ts
 * import { consoleSize } from "./common.ts";
 * const size = consoleSize({ stdout: new WritableStream(), stderr: new WritableStream(), isTerminal: false });
 * console.log(size); // { columns: 80, rows: 24 }
 * ```
 *
 * @param io Where the view is drawn.
 * @returns The size (at least 20 columns and 2 rows).
 */
export function consoleSize(io: CliIO): ConsoleSize {
  let size: ConsoleSize | undefined = io.consoleSize?.();
  if (size === undefined && io.isTerminal) {
    try {
      size = Deno.consoleSize();
    } catch (error) {
      // Not a terminal after all (stderr redirected while isTerminal was computed): fall back.
      if (!(error instanceof Error)) throw error;
    }
  }
  if (size === undefined) {
    const columns = Number(io.env?.("COLUMNS"));
    size = { columns: Number.isInteger(columns) && columns > 0 ? columns : 80, rows: 24 };
  }
  return { columns: Math.max(20, size.columns), rows: Math.max(2, size.rows) };
}

/**
 * A progress display on stderr. On a terminal: a status line, and optionally a block of lines
 * below it (the peer table), redrawn in place — back to the status line's start (`\r`, cursor
 * up), each line cut to the width and cleared to its end (`\x1b[K`), leftovers below erased
 * (`\x1b[J`) — so nothing wraps and a redraw never adds a line. Otherwise (logs, pipes): a
 * plain line now and then, and the block every `plainBlockInterval`. Updates are throttled
 * with `io.now`; writes are queued, so `update()` can be called from synchronous callbacks.
 *
 * @example
 * ```ts
 * import { ProgressLine } from "./common.ts";
 * const progress = new ProgressLine({ stdout: Deno.stdout.writable, stderr: Deno.stderr.writable, isTerminal: false });
 * progress.update("Hashing 50%");
 * await progress.done("Hashing 100%");
 * ```
 */
export class ProgressLine {
  #io: CliIO;
  #now: () => number;
  #interval: number;
  #blockInterval: number;
  #last = -Infinity;
  #lastBlock = -Infinity;
  /** Lines drawn below the status line (the cursor is at the end of the last of them). */
  #below = 0;
  #drawn = false;
  #view: { text: string; block: readonly string[] } | undefined;
  #chain: Promise<void> = Promise.resolve();
  #error: unknown = undefined;

  /**
   * @param io Where to draw (`stderr`), whether it is a terminal, its size, and the clock.
   * @param options Throttling intervals.
   */
  constructor(io: CliIO, options: ProgressLineOptions = {}) {
    this.#io = io;
    this.#now = io.now ?? (() => performance.now());
    this.#interval = io.isTerminal ? (options.terminalInterval ?? 100) : (options.plainInterval ?? 2000);
    this.#blockInterval = options.plainBlockInterval ?? 10_000;
  }

  /** The terminal's size now (see {@linkcode consoleSize}), to fit what is drawn. */
  get size(): ConsoleSize {
    return consoleSize(this.#io);
  }

  /**
   * Shows `text` (and `block` below it) unless the last update was too recent.
   *
   * @param text The new progress text (one line).
   * @param block Lines to show below it (on a terminal, at most the rows left).
   * @param force Draw even if the last update was recent (after a key press).
   */
  update(text: string, block: readonly string[] = [], force = false): void {
    const now = this.#now();
    if (!force && now - this.#last < this.#interval) return;
    this.#last = now;
    this.#draw(text, block, now);
  }

  /**
   * Prints text above the live view (a log record): the view is erased, the text written, and
   * the view drawn again below it.
   *
   * @param text Whole lines, each ending in a line break.
   */
  print(text: string): void {
    if (!this.#io.isTerminal) {
      this.#queue(text);
      return;
    }
    if (!this.#drawn) {
      this.#queue(`\r\x1b[K${text}`);
      return;
    }
    const view = this.#view;
    this.#queue(this.#erase() + text);
    this.#drawn = false;
    this.#below = 0;
    if (view !== undefined) this.#draw(view.text, view.block, this.#now(), false);
  }

  /**
   * Shows the final text (always, without a block), ends the line and waits for every queued
   * write.
   *
   * @param text The final progress text, or nothing to just end the line.
   * @throws the error of a failed write to stderr, if any.
   */
  async done(text?: string): Promise<void> {
    if (text !== undefined) this.#draw(text, [], this.#now());
    else if (this.#io.isTerminal && this.#below > 0 && this.#view !== undefined) {
      this.#draw(this.#view.text, [], this.#now());
    }
    if (this.#io.isTerminal && this.#drawn) this.#queue("\n");
    this.#drawn = false;
    this.#below = 0;
    this.#view = undefined;
    await this.#chain;
    if (this.#error !== undefined) throw this.#error;
  }

  #draw(text: string, block: readonly string[], now: number, remember = true): void {
    if (remember) this.#view = { text, block };
    if (!this.#io.isTerminal) {
      let out = `${text}\n`;
      if (block.length > 0 && now - this.#lastBlock >= this.#blockInterval) {
        this.#lastBlock = now;
        out += block.map((line) => `${line}\n`).join("");
      }
      this.#queue(out);
      return;
    }
    const { columns, rows } = this.size;
    const fit = (line: string) => line.length < columns ? line : line.slice(0, columns - 1);
    const shown = block.slice(0, rows - 1);
    let out = this.#erase(false) + fit(text) + "\x1b[K";
    for (const line of shown) out += `\n${fit(line)}\x1b[K`;
    if (shown.length < this.#below) out += "\x1b[J";
    this.#queue(out);
    this.#drawn = true;
    this.#below = shown.length;
  }

  /** Moves back to the start of the status line; with `clear`, erases the view too. */
  #erase(clear = true): string {
    if (!this.#drawn) return clear ? "" : "\r";
    return "\r" + (this.#below > 0 ? `\x1b[${this.#below}A` : "") + (clear ? "\x1b[J" : "");
  }

  #queue(text: string): void {
    this.#chain = this.#chain.then(() => writeText(this.#io.stderr, text)).catch((e: unknown) => {
      this.#error ??= e;
    });
  }
}

/**
 * Exit code when output went to a pipe whose reader left (`shoal info x | head -c 10`): 141,
 * 128 + SIGPIPE, what the shell reports for a Unix tool killed by SIGPIPE.
 */
export const EXIT_BROKEN_PIPE = 141;

/** Exit code when the user interrupted (Ctrl+C, SIGTERM): 128 + SIGINT. */
export const EXIT_INTERRUPTED = 130;

/**
 * Whether an error means that the reader of our stdout or stderr went away (a closed pipe).
 *
 * @example
 * ```ts
 * import { isBrokenPipe } from "./common.ts";
 * console.log(isBrokenPipe(new Deno.errors.BrokenPipe("Broken pipe (os error 32)"))); // true
 * ```
 *
 * @param error What was thrown.
 * @returns True for `Deno.errors.BrokenPipe` (also as the `cause` of another error).
 */
export function isBrokenPipe(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof Deno.errors.BrokenPipe) return true;
  }
  return false;
}

/**
 * Reports an error on stderr, once, as one line, and chooses the exit code: usage errors give
 * 2 and a `--help` hint; shoal's own errors and missing permissions give 1 with just the
 * message; an interruption gives 130; output into a closed pipe gives
 * {@linkcode EXIT_BROKEN_PIPE} and prints nothing (like Unix tools, which SIGPIPE ends
 * silently); anything else (a bug) gives 1 with its stack trace. When stderr itself is gone,
 * the code is returned all the same.
 *
 * @example
 * ```ts
 * import { reportError } from "./common.ts";
 * const code = await reportError(new Error("boom"), {
 *   stdout: new WritableStream(),
 *   stderr: new WritableStream(),
 *   isTerminal: false,
 * });
 * console.log(code); // 1
 * ```
 *
 * @param error What was thrown.
 * @param io Where to write.
 * @returns The exit code.
 */
export async function reportError(error: unknown, io: CliIO): Promise<number> {
  if (isBrokenPipe(error)) return EXIT_BROKEN_PIPE;
  const [text, code] = describeFailure(error);
  try {
    await writeText(io.stderr, text);
  } catch (writeError) {
    if (!isBrokenPipe(writeError)) throw writeError;
    // stderr is a closed pipe: nobody is left to read the message; the exit code still tells.
  }
  return code;
}

function describeFailure(error: unknown): [string, number] {
  if (error instanceof UsageError) {
    const help = error.command === undefined ? "shoal --help" : `shoal ${error.command} --help`;
    return [`error: ${oneLine(error.message)}\nRun '${help}' for usage.\n`, EXIT_USAGE];
  }
  if (error instanceof ShoalError) return [`error: ${oneLine(error.message)}\n`, EXIT_FAILURE];
  if (error instanceof DOMException && error.name === "AbortError") {
    return ["Interrupted\n", EXIT_INTERRUPTED];
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return [`error: ${oneLine(error.message)}\n`, EXIT_FAILURE];
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return [`error: unexpected failure (please report it): ${text}\n`, EXIT_FAILURE];
}

/** A message on one line: line breaks inside it (from a peer, a file name) become spaces. */
function oneLine(message: string): string {
  return message.replace(/\s*[\r\n]+\s*/g, " ");
}

/**
 * Checks the number of positional arguments.
 *
 * @example
 * ```ts
 * import { expectPositionals } from "./common.ts";
 * const [path] = expectPositionals("create", ["./dir"], ["<path>"]);
 * console.log(path); // "./dir"
 * ```
 *
 * @param command The command name, for errors.
 * @param positionals What `parseArgs` found.
 * @param names The names of the expected arguments, for errors.
 * @returns The positionals, exactly `names.length` of them.
 * @throws {UsageError} when there are too few or too many.
 */
export function expectPositionals(command: string, positionals: string[], names: string[]): string[] {
  if (positionals.length < names.length) {
    throw new UsageError(command, `Missing argument: ${names[positionals.length]}`);
  }
  if (positionals.length > names.length) {
    throw new UsageError(command, `Unexpected argument: ${positionals[names.length]}`);
  }
  return positionals;
}

const TRACKER_SCHEMES = ["http:", "https:", "udp:", "wss:"];

/**
 * Parses repeated `--tracker` values into BEP 12 tiers: each value is a tier, and commas
 * separate trackers within one.
 *
 * @example
 * ```ts
 * import { parseTrackerTiers } from "./common.ts";
 * console.log(parseTrackerTiers("create", ["udp://a:1", "http://b/announce,http://c/announce"]));
 * // [["udp://a:1"], ["http://b/announce", "http://c/announce"]]
 * ```
 *
 * @param command The command, for errors.
 * @param values The option's values.
 * @returns The tiers (empty ones dropped).
 * @throws {UsageError} for a value that is not an http, https, udp or wss URL.
 */
export function parseTrackerTiers(command: string, values: readonly string[]): string[][] {
  const tiers = values.map((tier) => tier.split(",").map((u) => u.trim()).filter((u) => u !== ""))
    .filter((tier) => tier.length > 0);
  for (const url of tiers.flat()) {
    if (!URL.canParse(url) || !TRACKER_SCHEMES.includes(new URL(url).protocol)) {
      throw new UsageError(command, `Invalid tracker URL: ${url} (http, https, udp or wss)`);
    }
  }
  return tiers;
}
