/**
 * Back-off for listener loops (TCP accept, UDP receive): a failure that is not the socket
 * being closed (EMFILE, ENFILE, ENOBUFS, a stray ICMP error) waits a growing delay and
 * retries, so a loop never ends and never spins; the first failure of a spell and then one
 * failure a while are logged as pressure, and the recovery is logged too.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/** Shortest wait after a failed accept or receive, in ms. */
export const MIN_RETRY_DELAY_MS = 10;
/** Longest wait after repeated failures, in ms. */
export const MAX_RETRY_DELAY_MS = 1_000;
/** Least time between two "under pressure" warnings of one loop, in ms. */
export const PRESSURE_LOG_INTERVAL_MS = 10_000;

/**
 * Tells whether an error from `accept` or `receive` means the socket was closed (the loop
 * should end) rather than a passing failure (the loop should retry).
 *
 * @example
 * ```ts
 * import { isClosedSocketError } from "./backoff.ts";
 * console.log(isClosedSocketError(new Deno.errors.BadResource("Listener has been closed"))); // true
 * ```
 *
 * @param error What `accept` or `receive` threw.
 * @returns True for a closed or cancelled socket.
 */
export function isClosedSocketError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** Options of {@linkcode ListenerBackoff}. */
export interface ListenerBackoffOptions {
  /** What is listening, for messages ("Peer listener", "Tracker UDP socket"). */
  name: string;
  /** Log category. */
  category: string;
  /** Where pressure and recovery are logged. */
  logger?: Logger | undefined;
  /** First delay in ms. @default {MIN_RETRY_DELAY_MS} */
  minDelayMs?: number;
  /** Largest delay in ms. @default {MAX_RETRY_DELAY_MS} */
  maxDelayMs?: number;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/**
 * The retry state of one listener loop: exponential delays from `minDelayMs` to `maxDelayMs`,
 * a warning per spell of failures (repeated at most every {@linkcode PRESSURE_LOG_INTERVAL_MS}),
 * an info record when it works again.
 *
 * @example
 * ```ts
 * import { ListenerBackoff } from "./backoff.ts";
 * const backoff = new ListenerBackoff({ name: "Peer listener", category: "session" });
 * console.log(backoff.failed(new Error("Too many open files"))); // 10
 * console.log(backoff.failed(new Error("Too many open files"))); // 20
 * backoff.succeeded();
 * ```
 */
export class ListenerBackoff {
  readonly #options: ListenerBackoffOptions;
  readonly #now: () => number;
  #failures = 0;
  /** Failures since the last warning (which reports them). */
  #unreported = 0;
  #lastWarning = -Infinity;
  #warned = false;

  /**
   * Creates the instance.
   *
   * @param options Name, logger and delays.
   */
  constructor(options: ListenerBackoffOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Failures since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Records a failure and logs it as pressure (rate-limited).
   *
   * @param error The failure.
   * @returns How long to wait before retrying, in ms.
   */
  failed(error: unknown): number {
    this.#failures++;
    this.#unreported++;
    const min = this.#options.minDelayMs ?? MIN_RETRY_DELAY_MS;
    const max = this.#options.maxDelayMs ?? MAX_RETRY_DELAY_MS;
    const delay = Math.min(max, min * 2 ** Math.min(this.#failures - 1, 20));
    const now = this.#now();
    if (now - this.#lastWarning >= PRESSURE_LOG_INTERVAL_MS) {
      this.#lastWarning = now;
      this.#warned = true;
      this.#options.logger?.warn(
        this.#options.category,
        `${this.#options.name} under pressure: ${errorText(error)}; retrying in ${delay} ms`,
        { failures: this.#unreported },
      );
      this.#unreported = 0;
    }
    return delay;
  }

  /** Records a success; logs the recovery after a spell of failures that was logged. */
  succeeded(): void {
    if (this.#failures === 0) return;
    if (this.#warned) {
      this.#options.logger?.info(
        this.#options.category,
        `${this.#options.name} recovered after ${this.#failures} failures in a row`,
      );
    }
    this.#failures = 0;
    this.#warned = false;
  }
}

/**
 * Waits `ms`, or less if `signal` aborts.
 *
 * @example
 * ```ts
 * import { pause } from "./backoff.ts";
 * await pause(5);
 * ```
 *
 * @param ms Milliseconds.
 * @param signal Ends the wait early.
 * @returns A promise that resolves after the wait.
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
