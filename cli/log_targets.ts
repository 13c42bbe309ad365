/**
 * `--log`: where log records go. `pretty` lines on stderr, `jsonl:PATH` files (or stdout), or
 * a user's module exporting a LogSink, contained so that its failures name it.
 *
 * @module
 */

import { resolve } from "node:path";
import { jsonlSink, type LogSink, PluginError, prettySink } from "../mod.ts";
import { type CliIO, UsageError, writeText } from "./common.ts";
import { importUserModule } from "./user_module.ts";

/** One `--log` value, parsed. */
export type LogTarget =
  | {
    /** Human lines on stderr ({@linkcode prettySink}). */
    readonly kind: "pretty";
    /** Show the time of day in front of each line. */
    readonly timestamps: boolean;
  }
  | {
    /** JSON Lines ({@linkcode jsonlSink}). */
    readonly kind: "jsonl";
    /** File to append to, or "-" for stdout. */
    readonly path: string;
  }
  | {
    /** A user module exporting a {@linkcode LogSink}. */
    readonly kind: "module";
    /** Its path, as given. */
    readonly path: string;
  };

/**
 * Where records go without `--log`: stderr lines without timestamps, the format shoal has
 * always printed (`INFO peer: Peer connected (peer=...)`), which scripts may be reading.
 */
export const DEFAULT_LOG: LogTarget = { kind: "pretty", timestamps: false };

/**
 * Parses one `--log` value.
 *
 * @example
 * ```ts ignore
 * parseLogTarget("download", "jsonl:./log.jsonl"); // { kind: "jsonl", path: "./log.jsonl" }
 * ```
 *
 * @param command Command name, for errors.
 * @param spec `pretty`, `jsonl:PATH`, `jsonl:-`, or a module path.
 * @returns The target.
 * @throws {UsageError} for anything else.
 */
export function parseLogTarget(command: string, spec: string): LogTarget {
  if (spec === "pretty") return { kind: "pretty", timestamps: true };
  if (spec === "jsonl" || spec.startsWith("jsonl:")) {
    const path = spec.slice("jsonl:".length);
    if (path === "") {
      throw new UsageError(
        command,
        `Invalid --log: ${spec} (give a file: jsonl:PATH, or jsonl:- for stdout)`,
      );
    }
    return { kind: "jsonl", path };
  }
  if (isModulePath(spec)) return { kind: "module", path: spec };
  throw new UsageError(command, `Unknown --log: ${spec} (pretty, jsonl:PATH, or a path like ./my_sink.ts)`);
}

function isModulePath(spec: string): boolean {
  return spec.includes("/") || spec.includes("\\") || /\.(ts|js|mts|mjs)$/.test(spec);
}

/** Options for {@linkcode openLogSinks}. */
export interface OpenLogSinksOptions {
  /** Erase the progress line (`\r\x1b[K`) before each stderr line. @default {false} */
  clearLine?: boolean;
  /**
   * Prints stderr lines above the live view (`ProgressLine.print`), instead of `clearLine`:
   * the view, peer table included, is erased first and drawn again after.
   */
  print?: (text: string) => void;
}

/** The sinks of a run, and how to finish them. */
export interface OpenedLogSinks {
  /** For the session's logger. */
  readonly sinks: LogSink[];
  /**
   * Records for scripts only: passed to the `jsonl` sinks, whatever `--log-level` says, and
   * not printed on stderr (the periodic `progress` records).
   */
  readonly records: LogSink;
  /** Waits for queued output, then closes every sink that can be closed. Never throws. */
  close(): Promise<void>;
}

/**
 * Builds the sinks `--log` asked for. Text for stderr and stdout goes through `io` (after the
 * writes queued before it), so it interleaves cleanly with the progress line. A module sink
 * is wrapped so that an exception, or a rejected promise from an async sink, names the module
 * and removes only that sink.
 *
 * @example
 * ```ts ignore
 * const logs = await openLogSinks([{ kind: "jsonl", path: "log.jsonl" }], io);
 * // new Session({ ..., logSinks: logs.sinks }) ... then
 * await logs.close();
 * ```
 *
 * @param targets What `--log` asked for.
 * @param io Where stderr and stdout are; `io.cwd` for relative paths.
 * @param options Progress line handling.
 * @returns The sinks.
 * @throws {PluginError} when a file cannot be opened or a module gives no sink (sinks already
 * opened are closed first).
 */
export async function openLogSinks(
  targets: readonly LogTarget[],
  io: CliIO,
  options: OpenLogSinksOptions = {},
): Promise<OpenedLogSinks> {
  const cwd = io.cwd ?? Deno.cwd();
  const sinks: LogSink[] = [];
  const jsonl: LogSink[] = [];
  const closers: { name: string; close: () => unknown }[] = [];
  let chain = Promise.resolve();
  const queue = (stream: WritableStream<Uint8Array>, text: string) => {
    chain = chain.then(() => writeText(stream, text)).catch(() => {/* output gone: nothing to tell */});
  };
  const close = async () => {
    await chain;
    for (const { name, close } of closers.splice(0)) {
      try {
        await close();
      } catch (error) {
        await writeText(io.stderr, `warning: Log sink '${name}' failed to close: ${describe(error)}\n`)
          .catch(() => {/* stderr gone */});
      }
    }
    await chain;
  };
  try {
    for (const target of targets) {
      if (target.kind === "pretty") {
        const clear = options.clearLine === true ? "\r\x1b[K" : "";
        const print = options.print;
        const pretty = prettySink({
          write: print === undefined ? (text) => queue(io.stderr, clear + text) : (text) => {
            // After what was queued before (a module sink's report), as queue() does.
            chain = chain.then(() => print(text));
          },
          color: io.isTerminal && !Deno.noColor,
          timestamp: target.timestamps ? "time" : "none",
        });
        sinks.push(withoutReportedFailure(pretty));
      } else if (target.kind === "jsonl") {
        const name = `jsonl:${target.path}`;
        let sink;
        try {
          sink = target.path === "-"
            ? jsonlSink({ write: (line) => queue(io.stdout, line) })
            : jsonlSink(resolve(cwd, target.path));
        } catch (error) {
          throw new PluginError(name, `cannot open the log file: ${describe(error)}`, { cause: error });
        }
        sinks.push(sink);
        jsonl.push(sink);
        closers.push({ name, close: () => sink.close() });
      } else {
        const loaded = await loadLogSink(target.path, cwd);
        sinks.push(containSink(target.path, loaded.sink, (text) => queue(io.stderr, text)));
        if (loaded.close) closers.push({ name: target.path, close: loaded.close });
      }
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { sinks, records: (record) => jsonl.forEach((sink) => sink(record)), close };
}

/**
 * Leaves out of a stderr sink the record of a torrent's fatal error that also rejects its
 * `completed` (`completed: "rejected"`): the command reports that error itself, as its one
 * `error:` line. Files and modules get every record.
 */
function withoutReportedFailure(sink: LogSink): LogSink {
  return (record) => {
    if (record.level === "error" && record.fields.completed === "rejected") return;
    sink(record);
  };
}

/** What {@linkcode loadLogSink} found in a module. */
export interface LoadedLogSink {
  /** The sink. */
  readonly sink: LogSink;
  /** Its `close()`, `Symbol.asyncDispose` or `Symbol.dispose`, bound, if it has one. */
  readonly close?: () => unknown;
}

/**
 * Loads a user's log sink module. A sink is a function of one argument (the record). The
 * export named `sink` is tried first, then the default export, then every other export;
 * failing a function of one argument, a function of none is called as a factory (and awaited)
 * and must return one.
 *
 * @example
 * ```ts ignore
 * const { sink, close } = await loadLogSink("./fixtures/plugins/counting_sink.ts", Deno.cwd());
 * ```
 *
 * @param spec The module path, as given on the command line.
 * @param cwd Folder a relative path is resolved against.
 * @returns The sink, and how to close it.
 * @throws {PluginError} naming the module, when it cannot be loaded, its factory throws, or it
 * exports no sink.
 */
export async function loadLogSink(spec: string, cwd: string): Promise<LoadedLogSink> {
  const module = await importUserModule(spec, cwd);
  const candidates = [module.sink, module.default, ...Object.values(module)].filter(
    (value): value is (...args: unknown[]) => unknown => typeof value === "function" && !isClass(value),
  );
  let sink = candidates.find((fn) => fn.length === 1);
  if (sink === undefined) {
    const factory = candidates.find((fn) => fn.length === 0);
    if (factory !== undefined) {
      let made: unknown;
      try {
        made = await factory();
      } catch (error) {
        throw new PluginError(spec, `its factory threw: ${describe(error)}`, { cause: error });
      }
      if (typeof made === "function") sink = made as (...args: unknown[]) => unknown;
    }
  }
  if (sink === undefined) {
    throw new PluginError(
      spec,
      "the module exports no LogSink (a function taking a log record, or a factory returning one)",
    );
  }
  const owner = sink as unknown as Partial<
    Record<"close" | typeof Symbol.asyncDispose | typeof Symbol.dispose, unknown>
  >;
  const method = [owner.close, owner[Symbol.asyncDispose], owner[Symbol.dispose]].find((m) =>
    typeof m === "function"
  ) as ((this: unknown) => unknown) | undefined;
  const found = sink;
  return { sink: found as LogSink, ...(method ? { close: () => method.call(found) } : {}) };
}

/**
 * Wraps a user's sink: an exception is rethrown as a {@linkcode PluginError} naming it (the
 * logger then removes the sink and reports that), and a rejected promise from an async sink
 * turns the sink off and is reported on stderr instead of crashing the process.
 */
function containSink(name: string, sink: LogSink, report: (text: string) => void): LogSink {
  let failed = false;
  const fail = (how: string, error: unknown) =>
    new PluginError(name, `${how}: ${describe(error)}`, { cause: error });
  return (record) => {
    if (failed) return;
    let result: unknown;
    try {
      result = (sink as (record: unknown) => unknown)(record);
    } catch (error) {
      failed = true;
      throw fail("the log sink threw", error);
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
      (result as PromiseLike<unknown>).then(undefined, (error: unknown) => {
        if (failed) return;
        failed = true;
        report(`error: ${fail("the log sink rejected", error).message}; it is turned off\n`);
      });
    }
  };
}

function isClass(fn: unknown): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
