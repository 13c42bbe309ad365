/**
 * Structured logging: components emit {@linkcode LogRecord}s to a {@linkcode Logger},
 * which fans them out to sinks. The library never configures global logging: with no
 * sinks, records go nowhere.
 *
 * @module
 */

import type { LogLevel, LogRecord, LogSink } from "./types.ts";

/** Numeric order of {@linkcode LogLevel}s, for filtering. */
export const LOG_LEVELS: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Options for {@linkcode Logger}. */
export interface LoggerOptions {
  /** Records below this level are dropped before reaching sinks. @default {"info"} */
  level?: LogLevel;
  /** Initial sinks. @default {[]} */
  sinks?: LogSink[];
  /** Clock, for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * Fans log records out to sinks.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const seen: string[] = [];
 * const log = new Logger({ level: "debug", sinks: [(r) => seen.push(r.message)] });
 * log.info("peer", "Connected", { peer: "127.0.0.1:6881" });
 * console.log(seen); // ["Connected"]
 * ```
 */
export class Logger {
  #sinks: LogSink[];
  #min: number;
  #now: () => number;
  #base: Readonly<Record<string, string | number | boolean | null>>;

  /**
   * Creates the instance.
   *
   * @param options Level, sinks and clock.
   */
  constructor(options: LoggerOptions = {}) {
    this.#sinks = [...(options.sinks ?? [])];
    this.#min = LOG_LEVELS[options.level ?? "info"];
    this.#now = options.now ?? Date.now;
    this.#base = {};
  }

  /**
   * Returns a logger sharing this one's sinks that adds `fields` to every record.
   *
   * @param fields Fields to add (e.g. `{ torrent: "ab12..." }`).
   * @returns The child logger.
   */
  child(fields: Readonly<Record<string, string | number | boolean | null>>): Logger {
    const child = new Logger({ now: this.#now });
    child.#sinks = this.#sinks;
    child.#min = this.#min;
    child.#base = { ...this.#base, ...fields };
    return child;
  }

  /**
   * Adds a sink.
   *
   * @param sink The sink.
   */
  addSink(sink: LogSink): void {
    this.#sinks.push(sink);
  }

  /**
   * True when records of this level would reach a sink (skip building costly messages otherwise).
   *
   * @param level The level to test.
   * @returns Whether it is enabled.
   */
  enabled(level: LogLevel): boolean {
    return this.#sinks.length > 0 && LOG_LEVELS[level] >= this.#min;
  }

  /**
   * Emits a record.
   *
   * @param level Severity.
   * @param category Component.
   * @param message Message.
   * @param fields Details.
   */
  log(
    level: LogLevel,
    category: string,
    message: string,
    fields: Readonly<Record<string, string | number | boolean | null>> = {},
  ): void {
    if (!this.enabled(level)) return;
    const record: LogRecord = {
      time: this.#now(),
      level,
      category,
      message,
      fields: { ...this.#base, ...fields },
    };
    for (const sink of [...this.#sinks]) {
      try {
        const result: unknown = sink(record);
        // An async sink's rejection must not become an unhandled rejection (which ends a Deno process).
        if (result instanceof Promise) result.catch((error) => this.#remove(sink, error));
      } catch (error) {
        this.#remove(sink, error);
      }
    }
  }

  #remove(sink: LogSink, error: unknown): void {
    const index = this.#sinks.indexOf(sink);
    if (index < 0) return;
    this.#sinks.splice(index, 1);
    this.log("error", "log", `Log sink removed after it threw: ${String(error)}`);
  }

  /** Emits a debug record. @param category Component. @param message Message. @param fields Details. */
  debug(
    category: string,
    message: string,
    fields?: Readonly<Record<string, string | number | boolean | null>>,
  ): void {
    this.log("debug", category, message, fields);
  }

  /** Emits an info record. @param category Component. @param message Message. @param fields Details. */
  info(
    category: string,
    message: string,
    fields?: Readonly<Record<string, string | number | boolean | null>>,
  ): void {
    this.log("info", category, message, fields);
  }

  /** Emits a warning record. @param category Component. @param message Message. @param fields Details. */
  warn(
    category: string,
    message: string,
    fields?: Readonly<Record<string, string | number | boolean | null>>,
  ): void {
    this.log("warn", category, message, fields);
  }

  /** Emits an error record. @param category Component. @param message Message. @param fields Details. */
  error(
    category: string,
    message: string,
    fields?: Readonly<Record<string, string | number | boolean | null>>,
  ): void {
    this.log("error", category, message, fields);
  }
}
