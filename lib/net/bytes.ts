/**
 * Byte helpers used across the protocol code: equality, concatenation, hex.
 *
 * @module
 */

/**
 * Compares two byte arrays.
 *
 * @example
 * ```ts
 * import { equalBytes } from "./bytes.ts";
 * console.log(equalBytes(new Uint8Array([1]), new Uint8Array([1]))); // true
 * ```
 *
 * @param a First.
 * @param b Second.
 * @returns True when equal.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
