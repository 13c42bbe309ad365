/**
 * A small seeded pseudo-random generator, for everything that must repeat exactly from a
 * seed: the in-memory network's loss and the tests that shuffle or split input at random.
 * Not for anything secret (peer ids, keys and tokens use `crypto.getRandomValues`).
 *
 * @module
 */

/**
 * mulberry32: 32 bits of state, numbers in [0, 1), the same sequence for the same seed.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./seeded_random.ts";
 * const a = seededRandom(7), b = seededRandom(7);
 * console.log(a() === b()); // true
 * ```
 *
 * @param seed Any number; only its low 32 bits count.
 * @returns A function giving the next number each call.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
