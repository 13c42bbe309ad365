/**
 * {@linkcode Bitfield}: one bit per piece, most significant bit first, as in the
 * `bitfield` wire message (BEP 3): piece 0 is the high bit of byte 0.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** Number of set bits in each byte value. */
const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;

function popcount(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) n += POPCOUNT[bytes[i]!]!;
  return n;
}

/** Mask of the spare (unused) low bits of the last byte for a given size, 0 when there are none. */
function spareMask(size: number): number {
  const used = size & 7;
  return used === 0 ? 0 : 0xff >> used;
}

/**
 * A fixed-size set of piece indices, stored MSB-first as on the wire. The number of set
 * bits is maintained on every change, so {@linkcode Bitfield.count} and
 * {@linkcode Bitfield.isComplete} are O(1).
 *
 * @example
 * ```ts
 * import { Bitfield } from "./bitfield.ts";
 * const have = new Bitfield(10);
 * have.set(0);
 * have.set(9);
 * console.log(have.count(), [...have]); // 2 [ 0, 9 ]
 * console.log(have.toBytes()); // Uint8Array(2) [128, 64]
 * ```
 */
export class Bitfield {
  /** Number of bits (pieces). */
  readonly size: number;
  #bytes: Uint8Array;
  #count: number;

  /**
   * Creates a bitfield of `size` bits, all clear, or copied from `bytes`.
   *
   * @param size Number of bits.
   * @param bytes Initial contents (copied): exactly `ceil(size / 8)` bytes with the spare bits clear.
   * @throws {RangeError} when `size` is not a non-negative integer, or `bytes` has the wrong length or
   *   spare bits set.
   */
  constructor(size: number, bytes?: Uint8Array) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`Invalid bitfield size: ${size}`);
    this.size = size;
    const length = Math.ceil(size / 8);
    if (bytes === undefined) {
      this.#bytes = new Uint8Array(length);
      this.#count = 0;
      return;
    }
    const problem = checkBytes(bytes, size);
    if (problem !== undefined) throw new RangeError(`Invalid bitfield: ${problem}`);
    this.#bytes = bytes.slice();
    this.#count = popcount(this.#bytes);
  }

  /**
   * Builds a bitfield from the payload of a peer's `bitfield` message, checking it
   * strictly.
   *
   * @example
   * ```ts
   * import { Bitfield } from "./bitfield.ts";
   * const bits = Bitfield.fromWire(new Uint8Array([0b1010_0000]), 3);
   * console.log(bits.get(0), bits.get(1), bits.get(2)); // true false true
   * ```
   *
   * @param bytes The payload (copied).
   * @param size Number of pieces in the torrent.
   * @returns The bitfield.
   * @throws {ProtocolError} when the payload is not `ceil(size / 8)` bytes long or a spare bit is set.
   */
  static fromWire(bytes: Uint8Array, size: number): Bitfield {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`Invalid bitfield size: ${size}`);
    const problem = checkBytes(bytes, size);
    if (problem !== undefined) throw new ProtocolError(`Invalid bitfield message: ${problem}`);
    return new Bitfield(size, bytes);
  }

  /**
   * Tells whether bit `i` is set.
   *
   * @param i A piece index in `[0, size)`.
   * @returns True when the bit is set.
   * @throws {RangeError} when `i` is out of range.
   */
  get(i: number): boolean {
    this.#check(i);
    return (this.#bytes[i >>> 3]! & (0x80 >>> (i & 7))) !== 0;
  }

  /**
   * Sets bit `i`.
   *
   * @param i A piece index in `[0, size)`.
   * @throws {RangeError} when `i` is out of range.
   */
  set(i: number): void {
    this.#check(i);
    const index = i >>> 3;
    const mask = 0x80 >>> (i & 7);
    const byte = this.#bytes[index]!;
    if ((byte & mask) === 0) {
      this.#bytes[index] = byte | mask;
      this.#count++;
    }
  }

  /**
   * Clears bit `i`.
   *
   * @param i A piece index in `[0, size)`.
   * @throws {RangeError} when `i` is out of range.
   */
  clear(i: number): void {
    this.#check(i);
    const index = i >>> 3;
    const mask = 0x80 >>> (i & 7);
    const byte = this.#bytes[index]!;
    if ((byte & mask) !== 0) {
      this.#bytes[index] = byte & ~mask;
      this.#count--;
    }
  }

  /**
   * Returns the number of set bits, in O(1).
   *
   * @returns How many bits are set.
   */
  count(): number {
    return this.#count;
  }

  /**
   * Tells whether every bit is set (true for a zero-size bitfield).
   *
   * @returns True when `count() === size`.
   */
  isComplete(): boolean {
    return this.#count === this.size;
  }

  /**
   * Tells whether no bit is set.
   *
   * @returns True when `count() === 0`.
   */
  isEmpty(): boolean {
    return this.#count === 0;
  }

  /** Sets every bit (spare bits stay clear). */
  setAll(): void {
    this.#bytes.fill(0xff);
    const mask = spareMask(this.size);
    if (mask !== 0) this.#bytes[this.#bytes.length - 1] = 0xff & ~mask;
    this.#count = this.size;
  }

  /** Clears every bit. */
  clearAll(): void {
    this.#bytes.fill(0);
    this.#count = 0;
  }

  /**
   * Returns a copy of the bytes, ready to send as a `bitfield` message payload.
   *
   * @returns `ceil(size / 8)` bytes, spare bits clear.
   */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /**
   * Iterates over the indices of set bits in increasing order. Changing the bitfield
   * while iterating is allowed; each byte is read when the iteration reaches it.
   *
   * @returns An iterator of piece indices.
   */
  *[Symbol.iterator](): IterableIterator<number> {
    const bytes = this.#bytes;
    for (let index = 0; index < bytes.length; index++) {
      const byte = bytes[index]!;
      if (byte === 0) continue;
      const base = index << 3;
      for (let bit = 0; bit < 8; bit++) {
        if ((byte & (0x80 >>> bit)) !== 0) yield base + bit;
      }
    }
  }

  #check(i: number): void {
    if (!(i >= 0 && i < this.size && Number.isInteger(i))) {
      throw new RangeError(`Bit index ${i} is out of range [0, ${this.size})`);
    }
  }
}

/** Returns what is wrong with `bytes` as a bitfield of `size` bits, or `undefined`. */
function checkBytes(bytes: Uint8Array, size: number): string | undefined {
  const length = Math.ceil(size / 8);
  if (bytes.length !== length) return `length ${bytes.length}, expected ${length} for ${size} pieces`;
  const mask = spareMask(size);
  if (mask !== 0 && (bytes[length - 1]! & mask) !== 0) return `spare bits after piece ${size - 1} are set`;
  return undefined;
}
