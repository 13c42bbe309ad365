/**
 * Node ids: XOR distance helpers and BEP 42 ("DHT security extension") ids bound to an IPv4
 * address.
 *
 * BEP 42 makes the first 21 bits of a node id a CRC32-C of the node's masked external address
 * and 3 random bits `r`, with `r` repeated in the last byte, so a node cannot choose where
 * it sits in the id space. Addresses that are not publicly routable (loopback, private,
 * link-local, CGNAT) are exempt: any id is fine there, and that is what shoal uses on them.
 *
 * @module
 */

import { randomBytes } from "node:crypto";

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC32-C (Castagnoli), as BEP 42 uses it.
 *
 * @example
 * ```ts
 * import { crc32c } from "./node_id.ts";
 * console.log(crc32c(new TextEncoder().encode("123456789")).toString(16)); // "e3069283"
 * ```
 *
 * @param bytes The input.
 * @returns The checksum as an unsigned 32-bit integer.
 */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC32C_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Tells whether BEP 42 exempts an IPv4 address: loopback (127/8), private (10/8,
 * 172.16/12, 192.168/16), link-local (169.254/16), CGNAT (100.64/10) and 0/8.
 *
 * @example
 * ```ts
 * import { isBep42Exempt } from "./node_id.ts";
 * console.log(isBep42Exempt(new Uint8Array([127, 0, 0, 1]))); // true
 * console.log(isBep42Exempt(new Uint8Array([124, 31, 75, 21]))); // false
 * ```
 *
 * @param ip 4 address bytes.
 * @returns True when any node id is acceptable for this address.
 */
export function isBep42Exempt(ip: Uint8Array): boolean {
  const [a = 0, b = 0] = ip;
  return a === 0 || a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) ||
    (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128);
}

function bep42Prefix(ip: Uint8Array, r: number): number {
  const masked = new Uint8Array([(ip[0]! & 0x03) | ((r & 0x07) << 5), ip[1]! & 0x0f, ip[2]! & 0x3f, ip[3]!]);
  return crc32c(masked);
}

/**
 * Makes a BEP 42 node id for a public IPv4 address: 21 bits from the address, 3 random bits,
 * 16 random bytes and the random `r` in the last byte.
 *
 * @example
 * ```ts
 * import { bep42NodeId, isValidBep42 } from "./node_id.ts";
 * const ip = new Uint8Array([124, 31, 75, 21]);
 * console.log(isValidBep42(bep42NodeId(ip), ip)); // true
 * ```
 *
 * @param ip 4 address bytes.
 * @param random 20 random bytes to draw from. @default fresh random bytes
 * @returns The 20-byte id.
 */
export function bep42NodeId(ip: Uint8Array, random: Uint8Array = randomBytes(20)): Uint8Array {
  const id = random.slice(0, 20);
  const r = id[19]! & 0x07;
  const crc = bep42Prefix(ip, r);
  id[0] = crc >>> 24;
  id[1] = (crc >>> 16) & 0xff;
  id[2] = ((crc >>> 8) & 0xf8) | (id[2]! & 0x07);
  return id;
}

/**
 * Checks a node id against BEP 42 for the address it was seen at. Ids of exempt addresses
 * are always valid.
 *
 * @example
 * ```ts
 * import { isValidBep42 } from "./node_id.ts";
 * console.log(isValidBep42(new Uint8Array(20), new Uint8Array([10, 0, 0, 1]))); // true
 * ```
 *
 * @param id The node id.
 * @param ip 4 address bytes.
 * @returns True when the id matches the address (or the address is exempt).
 */
export function isValidBep42(id: Uint8Array, ip: Uint8Array): boolean {
  if (isBep42Exempt(ip)) return true;
  const crc = bep42Prefix(ip, id[19]! & 0x07);
  return id[0] === crc >>> 24 && id[1] === ((crc >>> 16) & 0xff) && (id[2]! & 0xf8) === ((crc >>> 8) & 0xf8);
}

/**
 * XOR distance between two ids, as 20 bytes (compare with {@linkcode compareIds}).
 *
 * @example
 * ```ts
 * import { xorDistance } from "./node_id.ts";
 * console.log(xorDistance(new Uint8Array(20), new Uint8Array(20).fill(1))[0]); // 1
 * ```
 *
 * @param a An id.
 * @param b Another id.
 * @returns `a XOR b`.
 */
export function xorDistance(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(20);
  for (let i = 0; i < 20; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/**
 * Compares two 20-byte values as big-endian numbers.
 *
 * @example
 * ```ts
 * import { compareIds } from "./node_id.ts";
 * console.log(compareIds(new Uint8Array(20), new Uint8Array(20).fill(1))); // -1
 * ```
 *
 * @param a A value.
 * @param b Another value.
 * @returns -1, 0 or 1.
 */
export function compareIds(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 20; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

/**
 * Compares how close two ids are to a target: negative when `a` is closer.
 *
 * @example
 * ```ts
 * import { compareDistance } from "./node_id.ts";
 * const target = new Uint8Array(20);
 * console.log(compareDistance(target, new Uint8Array(20), new Uint8Array(20).fill(1))); // -1
 * ```
 *
 * @param target The target id.
 * @param a An id.
 * @param b Another id.
 * @returns -1, 0 or 1.
 */
export function compareDistance(target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 20; i++) {
    const da = a[i]! ^ target[i]!;
    const db = b[i]! ^ target[i]!;
    if (da !== db) return da < db ? -1 : 1;
  }
  return 0;
}

/**
 * Number of leading bits two ids share (160 when equal).
 *
 * @example
 * ```ts
 * import { commonPrefixBits } from "./node_id.ts";
 * const b = new Uint8Array(20);
 * b[0] = 0x10;
 * console.log(commonPrefixBits(new Uint8Array(20), b)); // 3
 * ```
 *
 * @param a An id.
 * @param b Another id.
 * @returns 0 to 160.
 */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 20; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 160;
}

/**
 * A random id that shares exactly `bits` leading bits with `base` (for refreshing the bucket
 * of ids at that prefix length); `bits` = 160 gives `base` itself.
 *
 * @example
 * ```ts
 * import { commonPrefixBits, randomIdWithPrefix } from "./node_id.ts";
 * const base = new Uint8Array(20);
 * console.log(commonPrefixBits(base, randomIdWithPrefix(base, 5))); // 5
 * ```
 *
 * @param base The id to share a prefix with.
 * @param bits Shared leading bits, 0 to 160.
 * @param random 20 random bytes to draw from. @default fresh random bytes
 * @returns The id.
 */
export function randomIdWithPrefix(
  base: Uint8Array,
  bits: number,
  random: Uint8Array = randomBytes(20),
): Uint8Array {
  if (bits >= 160) return base.slice();
  const id = random.slice(0, 20);
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) id[i] = base[i]!;
  const rest = bits & 7;
  // Keep `rest` bits of base, flip the next one, keep the random tail.
  const keep = (0xff00 >> rest) & 0xff;
  const flip = 0x80 >> rest;
  id[whole] = (base[whole]! & keep) | ((base[whole]! & flip) ^ flip) | (id[whole]! & (flip - 1));
  return id;
}
