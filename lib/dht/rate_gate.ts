/**
 * Non-blocking rate limits for the DHT: a token bucket that says yes or no at once (a UDP
 * packet over the limit is dropped, never queued), and a bounded map of them keyed by source.
 *
 * @module
 */

/** Options for {@linkcode RateGate}. */
export interface RateGateOptions {
  /** Units per second refilled. */
  rate: number;
  /** Bucket size: units that may pass at once after a quiet spell. */
  burst: number;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/**
 * A token bucket that grants or refuses at once.
 *
 * @example
 * ```ts
 * import { RateGate } from "./rate_gate.ts";
 * const gate = new RateGate({ rate: 1, burst: 2, now: () => 0 });
 * console.log(gate.take(1), gate.take(1), gate.take(1)); // true true false
 * ```
 */
export class RateGate {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /**
   * Creates a full bucket.
   *
   * @param options Rate, burst and clock.
   */
  constructor(options: RateGateOptions) {
    this.#rate = options.rate;
    this.#burst = options.burst;
    this.#now = options.now ?? Date.now;
    this.#tokens = options.burst;
    this.#at = this.#now();
  }

  /**
   * Takes `n` units if the bucket holds them.
   *
   * @param n Units wanted.
   * @returns True when granted.
   */
  take(n = 1): boolean {
    this.#refill();
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** True when the bucket is full again (the entry can be forgotten). */
  get idle(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }

  #refill(): void {
    const now = this.#now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    }
    this.#at = now;
  }
}

/** Options for {@linkcode RateGates}. */
export interface RateGatesOptions extends RateGateOptions {
  /** Most sources tracked; when full, idle entries are dropped, then the oldest. @default {10_000} */
  maxSources?: number;
}

/**
 * One {@linkcode RateGate} per source (an IP address), with a bounded number of sources.
 *
 * @example
 * ```ts
 * import { RateGates } from "./rate_gate.ts";
 * const gates = new RateGates({ rate: 1, burst: 1, now: () => 0 });
 * console.log(gates.take("10.0.0.1"), gates.take("10.0.0.1"), gates.take("10.0.0.2")); // true false true
 * ```
 */
export class RateGates {
  readonly #options: RateGatesOptions;
  readonly #gates = new Map<string, RateGate>();

  /**
   * Creates the instance.
   *
   * @param options Per-source rate and burst, clock, cap on sources.
   */
  constructor(options: RateGatesOptions) {
    this.#options = options;
  }

  /** Sources tracked now. */
  get size(): number {
    return this.#gates.size;
  }

  /**
   * Takes `n` units from a source's bucket.
   *
   * @param source The source key.
   * @param n Units wanted.
   * @returns True when granted.
   */
  take(source: string, n = 1): boolean {
    let gate = this.#gates.get(source);
    if (gate === undefined) {
      const max = this.#options.maxSources ?? 10_000;
      if (this.#gates.size >= max) {
        for (const [key, g] of this.#gates) if (g.idle) this.#gates.delete(key);
        // Still full: forget the oldest sources (a full bucket is what they get back).
        for (const key of this.#gates.keys()) {
          if (this.#gates.size < max) break;
          this.#gates.delete(key);
        }
      }
      gate = new RateGate(this.#options);
      this.#gates.set(source, gate);
    }
    return gate.take(n);
  }
}
