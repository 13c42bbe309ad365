/**
 * A rate-limited warning for a listener under pressure (connections refused or evicted at a
 * cap): the first is logged at once, later ones at most every
 * {@linkcode PRESSURE_LOG_INTERVAL_MS} with the number held back in between.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { PRESSURE_LOG_INTERVAL_MS } from "./backoff.ts";

/**
 * Logs "under pressure" warnings at most once per interval.
 *
 * @example
 * ```ts
 * import { PressureLog } from "./pressure_log.ts";
 * const pressure = new PressureLog("session", undefined);
 * pressure.note("Peer listener under pressure: 128 connections wait for a handshake");
 * ```
 */
export class PressureLog {
  readonly #category: string;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  #last = -Infinity;
  #held = 0;

  /**
   * Creates the instance.
   *
   * @param category Log category.
   * @param logger Where to log.
   * @param now Clock in ms.
   */
  constructor(category: string, logger: Logger | undefined, now: () => number = Date.now) {
    this.#category = category;
    this.#logger = logger;
    this.#now = now;
  }

  /**
   * Logs the warning unless one was logged within the interval.
   *
   * @param message The warning.
   * @param fields Details.
   */
  note(message: string, fields: Readonly<Record<string, string | number | boolean | null>> = {}): void {
    const now = this.#now();
    if (now - this.#last < PRESSURE_LOG_INTERVAL_MS) {
      this.#held++;
      return;
    }
    this.#last = now;
    this.#logger?.warn(this.#category, message, { ...fields, since: this.#held });
    this.#held = 0;
  }
}
