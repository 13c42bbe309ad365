/**
 * Failed logins counted per client address, so a client guessing passwords is refused for a
 * while without its guesses being checked. The table is capped: past `maxClients` the
 * address that failed longest ago is forgotten first.
 *
 * @module
 */

/** Failed logins allowed per address within a window. */
export const MAX_LOGIN_FAILURES = 10;
/** Length of the window, in ms. */
export const LOGIN_WINDOW_MS = 60_000;
/** Most addresses remembered at once. */
export const MAX_LOGIN_CLIENTS = 4096;

/** Options of {@linkcode LoginLimiter}. */
export interface LoginLimiterOptions {
  /** Failures allowed per address in a window. @default {MAX_LOGIN_FAILURES} */
  maxFailures?: number;
  /** The window, ms. @default {LOGIN_WINDOW_MS} */
  windowMs?: number;
  /** Most addresses remembered. @default {MAX_LOGIN_CLIENTS} */
  maxClients?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
}

interface Failures {
  count: number;
  since: number;
}

/**
 * Counts failed logins per address in a fixed window from the first failure.
 *
 * @example
 * ```ts
 * import { LoginLimiter } from "./login_limiter.ts";
 * const limiter = new LoginLimiter({ maxFailures: 2 });
 * limiter.failed("192.0.2.1");
 * limiter.failed("192.0.2.1");
 * console.log(limiter.blockedFor("192.0.2.1") > 0); // true
 * ```
 */
export class LoginLimiter {
  readonly #max: number;
  readonly #window: number;
  readonly #clients: number;
  readonly #now: () => number;
  /** Insertion order is failure order: the first key is the oldest. */
  readonly #table = new Map<string, Failures>();

  /**
   * Creates the limiter.
   *
   * @param options Failures, window, table size, clock.
   */
  constructor(options: LoginLimiterOptions = {}) {
    this.#max = options.maxFailures ?? MAX_LOGIN_FAILURES;
    this.#window = options.windowMs ?? LOGIN_WINDOW_MS;
    this.#clients = options.maxClients ?? MAX_LOGIN_CLIENTS;
    this.#now = options.now ?? Date.now;
    for (
      const [name, value] of [["maxFailures", this.#max], ["windowMs", this.#window], [
        "maxClients",
        this.#clients,
      ]]
    ) {
      if (!(typeof value === "number" && Number.isInteger(value) && value >= 1)) {
        throw new RangeError(`Invalid login limiter option ${name}: ${value}`);
      }
    }
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#table.size;
  }

  /**
   * Ms until the address may try again (0: it may now).
   *
   * @param address The client's address.
   * @returns Ms left of its window when it failed too often, else 0.
   */
  blockedFor(address: string): number {
    const entry = this.#current(address);
    if (entry === undefined || entry.count < this.#max) return 0;
    return entry.since + this.#window - this.#now();
  }

  /**
   * Counts a failed login.
   *
   * @param address The client's address.
   * @returns Failures of the address in its window, this one included.
   */
  failed(address: string): number {
    const entry = this.#current(address) ?? { count: 0, since: this.#now() };
    entry.count++;
    this.#table.delete(address);
    this.#table.set(address, entry);
    while (this.#table.size > this.#clients) {
      const oldest = this.#table.keys().next();
      if (oldest.done) break;
      this.#table.delete(oldest.value);
    }
    return entry.count;
  }

  /**
   * Forgets an address's failures (after it logged in).
   *
   * @param address The client's address.
   */
  succeeded(address: string): void {
    this.#table.delete(address);
  }

  #current(address: string): Failures | undefined {
    const entry = this.#table.get(address);
    if (entry !== undefined && this.#now() - entry.since >= this.#window) {
      this.#table.delete(address);
      return undefined;
    }
    return entry;
  }
}
