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

/**
 * Joins byte arrays into one new array (the one part itself when there is only one).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 * console.log(concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])])); // Uint8Array(3) [1, 2, 3]
 * ```
 *
 * @param parts The arrays, in order.
 * @returns Their bytes, one after the other.
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const p of parts) length += p.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Lower-case hex of bytes, two digits a byte.
 *
 * @example
 * ```ts
 * import { toHex } from "./bytes.ts";
 * console.log(toHex(new Uint8Array([0, 255]))); // "00ff"
 * ```
 *
 * @param bytes The bytes.
 * @returns The hex text.
 */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!];
  return s;
}

/**
 * Bytes of hex text (either case), two digits a byte.
 *
 * @example
 * ```ts
 * import { fromHex } from "./bytes.ts";
 * console.log(fromHex("00ff")); // Uint8Array(2) [0, 255]
 * ```
 *
 * @param text An even number of hex digits.
 * @returns The bytes.
 * @throws {SyntaxError} when the text is not an even number of hex digits.
 */
export function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(text)) {
    throw new SyntaxError(
      `Cannot decode hex: '${
        text.length > 80 ? text.slice(0, 80) + "…" : text
      }' is not an even number of hex digits`,
    );
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Bytes as a latin1 string, one character a byte: for text protocols read byte for byte
 * (HTTP heads, LSD announces) and for compact map keys of binary ids.
 *
 * @example
 * ```ts
 * import { latin1 } from "./bytes.ts";
 * console.log(latin1(new Uint8Array([0x68, 0x69, 0xe9]))); // "hié"
 * ```
 *
 * @param bytes The bytes.
 * @returns One character (U+0000 to U+00FF) for each byte.
 */
export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
}
