/**
 * Transfer rate measurement over a short sliding window.
 *
 * @module
 */

/**
 * Measures bytes per second over the last few seconds, in one-second buckets.
 *
 * @example
 * ```ts
 * import { RateMeter } from "./rate.ts";
 * const meter = new RateMeter(5);
 * meter.add(1000, 0);
 * meter.add(1000, 1500);
 * console.log(meter.rate(2000)); // 1000 (2000 bytes over the 2 s seen so far)
 * ```
 */
export class RateMeter {
  readonly #window: number;
  readonly #buckets: Float64Array;
  #head = -1; // index (second) of the newest bucket
  #start = -1; // first second ever seen
  #total = 0;

  /** @param windowSeconds Length of the window. */
  constructor(windowSeconds = 5) {
    this.#window = windowSeconds;
    this.#buckets = new Float64Array(windowSeconds);
  }

  /** Total bytes ever added. */
  get total(): number {
    return this.#total;
  }

  #advance(second: number): void {
    if (this.#head < 0) {
      this.#head = second;
      this.#start = second;
      return;
    }
    if (second <= this.#head) return;
    const steps = Math.min(second - this.#head, this.#window);
    for (let k = 1; k <= steps; k++) this.#buckets[(this.#head + k) % this.#window] = 0;
    this.#head = second;
  }

  /**
   * Records bytes transferred.
   *
   * @param bytes Number of bytes.
   * @param now Current time in milliseconds.
   */
  add(bytes: number, now: number): void {
    const second = Math.floor(now / 1000);
    this.#advance(second);
    this.#buckets[second % this.#window]! += bytes;
    this.#total += bytes;
  }

  /**
   * Bytes per second over the window (or over the time seen, if shorter).
   *
   * @param now Current time in milliseconds.
   * @returns The rate.
   */
  rate(now: number): number {
    if (this.#head < 0) return 0;
    const second = Math.floor(now / 1000);
    this.#advance(second);
    let sum = 0;
    for (let i = 0; i < this.#window; i++) sum += this.#buckets[i]!;
    const elapsed = Math.min(this.#window, Math.max(1, now / 1000 - this.#start));
    return sum / elapsed;
  }
}
