/**
 * Bencode: a strict, bounded decoder and a canonical encoder.
 *
 * Decoded values:
 * - integers become `number`, or `bigint` when outside the safe integer range (never rounded);
 * - byte strings become `Uint8Array` views into the input (copy what you keep);
 * - lists become arrays;
 * - dictionaries become {@linkcode BDict} (a `Map`), whose keys are *binary strings*: one
 *   character per byte (char codes 0-255), so any key, `__proto__` included, is safe and
 *   sorting keys as strings sorts them as raw bytes.
 *
 * The decoder is iterative (no recursion), so deep nesting gives a {@linkcode BencodeError}
 * rather than a stack overflow, and every length prefix is checked against the remaining
 * input before anything is allocated.
 *
 * @module
 */

import { BencodeError } from "./errors.ts";
import { TORRENT_LIMITS } from "./limits.ts";

/** A bencoded dictionary: binary-string keys to values. */
export type BDict = Map<string, BValue>;
/** A bencoded list. */
export type BList = BValue[];
/** Any decoded bencode value. */
export type BValue = number | bigint | Uint8Array | BList | BDict;
/**
 * Any value the encoder accepts: decoded values, plus JS strings (encoded as UTF-8) and
 * plain objects (treated as dictionaries).
 */
export type BEncodable =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BEncodable[]
  | ReadonlyMap<string, BEncodable>
  | { readonly [key: string]: BEncodable | undefined };

/** Limits applied while decoding untrusted input. */
export interface DecodeOptions {
  /** Maximum nesting depth of lists and dictionaries. @default {512} */
  maxDepth?: number;
  /**
   * Maximum number of tokens: values, dictionary keys and list/dictionary ends. Each decoded
   * value takes hundreds of bytes of memory, so this is what bounds the memory of decoding.
   * @default {3_000_000}
   */
  maxTokens?: number;
  /** Maximum input size in bytes. @default {64 * 1024 * 1024} */
  maxBytes?: number;
  /** Reject dictionaries whose keys are not sorted as raw bytes. @default {false} */
  strictKeyOrder?: boolean;
}

/** Byte span `[start, end)` of a value within the decoded input. */
export interface Span {
  /** Offset of the first byte of the value. */
  start: number;
  /** Offset just past the last byte of the value. */
  end: number;
}

const spans = new WeakMap<object, Span>();

/**
 * Returns the raw byte span of a list, dictionary or byte string produced by
 * {@linkcode decode} or {@linkcode decodePrefix}: use it to hash the exact bytes of a
 * value (the info-hash is the SHA-1 of the info dictionary's raw bytes).
 *
 * @example
 * ```ts
 * import { decode, spanOf } from "./bencode.ts";
 * const input = new TextEncoder().encode("d4:infod1:ai1eee");
 * const root = decode(input) as Map<string, unknown>;
 * const span = spanOf(root.get("info") as object)!;
 * console.log(new TextDecoder().decode(input.subarray(span.start, span.end))); // "d1:ai1ee"
 * ```
 *
 * @param value A value returned by the decoder.
 * @returns Its span in the input, or `undefined` for values the decoder did not make.
 */
export function spanOf(value: object): Span | undefined {
  return spans.get(value);
}

const I = 0x69, L = 0x6c, D = 0x64, E = 0x65, COLON = 0x3a, MINUS = 0x2d, ZERO = 0x30, NINE = 0x39;

interface Frame {
  kind: "l" | "d";
  start: number;
  list: BList | undefined;
  dict: BDict | undefined;
  key: string | undefined;
  /** The previous key of a dictionary, for strictKeyOrder (tracked here so checking stays O(1)). */
  lastKey: string | undefined;
}

/**
 * Decodes exactly one bencoded value that must span the whole input.
 *
 * @example
 * ```ts
 * import { decode } from "./bencode.ts";
 * const value = decode(new TextEncoder().encode("d3:cow3:mooe")) as Map<string, Uint8Array>;
 * console.log(new TextDecoder().decode(value.get("cow"))); // "moo"
 * ```
 *
 * @param input The bencoded bytes.
 * @param options Limits.
 * @returns The decoded value.
 * @throws {BencodeError} on malformed input, trailing bytes, or an exceeded limit.
 */
export function decode(input: Uint8Array, options: DecodeOptions = {}): BValue {
  const { value, end } = decodePrefix(input, options);
  if (end !== input.length) {
    throw new BencodeError(
      `Unexpected data after the end of the value: it ends at byte ${end} of ${input.length}`,
      end,
    );
  }
  return value;
}

/**
 * Decodes one bencoded value at the start of the input and reports where it ended, for
 * messages that carry raw bytes after a bencoded header (BEP 9 metadata pieces).
 *
 * @example
 * ```ts
 * import { decodePrefix } from "./bencode.ts";
 * const { value, end } = decodePrefix(new TextEncoder().encode("i42eRAW"));
 * console.log(value, end); // 42 4
 * ```
 *
 * @param input The bytes.
 * @param options Limits.
 * @returns The value and the offset just past it.
 * @throws {BencodeError} on malformed input or an exceeded limit.
 */
export function decodePrefix(input: Uint8Array, options: DecodeOptions = {}): { value: BValue; end: number } {
  const maxDepth = options.maxDepth ?? 512;
  const maxTokens = options.maxTokens ?? TORRENT_LIMITS.maxTokens;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const strictKeyOrder = options.strictKeyOrder ?? false;
  if (input.length > maxBytes) {
    throw new BencodeError(`Input of ${input.length} bytes exceeds the limit of ${maxBytes} bytes`, 0);
  }
  const n = input.length;
  let pos = 0;
  let tokens = 0;
  const stack: Frame[] = [];
  let result: BValue | undefined;
  let done = false;

  const cutShort = () => `Cut short: the data ends after ${bytes(n)}`;

  const readLength = (): number => {
    // <length>:  with no leading zeros (except "0") and no sign.
    const start = pos;
    let len = 0;
    let digits = 0;
    while (pos < n) {
      const c = input[pos]!;
      if (c === COLON) break;
      if (c < ZERO || c > NINE) {
        throw new BencodeError(
          `Unexpected ${describeByte(c)} at byte ${pos} in the length of a string (digits, then ':')`,
          pos,
        );
      }
      if (digits === 1 && input[start] === ZERO) {
        throw new BencodeError(`Leading zero in string length at byte ${start}`, start);
      }
      len = len * 10 + (c - ZERO);
      digits++;
      if (len > n) {
        throw new BencodeError(
          `Cut short: the string at byte ${start} is longer than the ${bytes(n - start)} left`,
          start,
        );
      }
      pos++;
    }
    if (pos >= n) throw new BencodeError(`${cutShort()}, inside the length of a string`, pos);
    if (digits === 0) throw new BencodeError(`String length missing at byte ${start}`, start);
    pos++; // colon
    if (len > n - pos) {
      throw new BencodeError(
        `Cut short: the string at byte ${start} is ${bytes(len)} long, but only ${bytes(n - pos)} ${
          n - pos === 1 ? "is" : "are"
        } left`,
        start,
      );
    }
    return len;
  };

  const readInt = (): number | bigint => {
    const start = pos;
    pos++; // 'i'
    let neg = false;
    if (input[pos] === MINUS) {
      neg = true;
      pos++;
    }
    const digitsStart = pos;
    while (pos < n && input[pos]! >= ZERO && input[pos]! <= NINE) pos++;
    if (pos >= n) throw new BencodeError(`${cutShort()}, inside an integer`, pos);
    if (input[pos] !== E) {
      throw new BencodeError(
        `Unexpected ${describeByte(input[pos]!)} at byte ${pos} in an integer (i, digits, then e)`,
        pos,
      );
    }
    const digits = pos - digitsStart;
    if (digits === 0) throw new BencodeError(`Integer has no digits at byte ${start}`, start);
    if (input[digitsStart] === ZERO && (digits > 1 || neg)) {
      throw new BencodeError(
        `${neg ? "Negative zero is not allowed" : "Leading zero in integer"} at byte ${start}`,
        start,
      );
    }
    pos++; // 'e'
    if (digits <= 15) {
      let v = 0;
      for (let i = digitsStart; i < digitsStart + digits; i++) v = v * 10 + (input[i]! - ZERO);
      return neg ? -v : v;
    }
    if (digits > 4096) throw new BencodeError(`Integer has too many digits at byte ${start}`, start);
    let text = "";
    for (let i = digitsStart; i < digitsStart + digits; i++) text += String.fromCharCode(input[i]!);
    const big = BigInt(text);
    const value = neg ? -big : big;
    if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      return Number(value);
    }
    return value;
  };

  const emit = (value: BValue, start: number): void => {
    if (typeof value === "object") spans.set(value, { start, end: pos });
    const top = stack[stack.length - 1];
    if (top === undefined) {
      result = value;
      done = true;
      return;
    }
    if (top.kind === "l") {
      top.list!.push(value);
      return;
    }
    // Dictionary: we are at a value position (keys are handled in the loop).
    top.dict!.set(top.key!, value);
    top.key = undefined;
  };

  while (!done) {
    if (pos >= n) {
      const top = stack[stack.length - 1];
      throw new BencodeError(
        n === 0
          ? "Empty input: there is no bencoded value"
          : `${cutShort()}, inside ${top?.kind === "l" ? "a list" : "a dictionary"} that starts at byte ${
            top?.start ?? 0
          }`,
        pos,
      );
    }
    if (++tokens > maxTokens) {
      throw new BencodeError(
        `Input has more than ${maxTokens} values (bencode tokens) by byte ${pos}; refused before ` +
          "decoding the rest",
        pos,
      );
    }
    const top = stack[stack.length - 1];
    const c = input[pos]!;
    if (top?.kind === "d" && top.key === undefined) {
      // Expecting a key or the end of the dictionary.
      if (c === E) {
        pos++;
        stack.pop();
        emit(top.dict!, top.start);
        continue;
      }
      if (c < ZERO || c > NINE) {
        throw new BencodeError(
          `Dictionary key must be a byte string, like 4:name, but byte ${pos} is ${describeByte(c)}`,
          pos,
        );
      }
      const keyStart = pos;
      const len = readLength();
      let key = "";
      for (let i = pos; i < pos + len; i++) key += String.fromCharCode(input[i]!);
      pos += len;
      const dict = top.dict!;
      if (dict.has(key)) {
        throw new BencodeError(`Duplicate dictionary key '${printable(key)}' at byte ${keyStart}`, keyStart);
      }
      if (strictKeyOrder && top.lastKey !== undefined && key < top.lastKey) {
        throw new BencodeError(
          `Dictionary key '${printable(key)}' is out of order at byte ${keyStart}`,
          keyStart,
        );
      }
      top.key = key;
      top.lastKey = key;
      continue;
    }
    if (c === E) {
      if (top?.kind === "l") {
        pos++;
        stack.pop();
        emit(top.list!, top.start);
        continue;
      }
      throw new BencodeError(
        top?.kind === "d"
          ? `Unexpected end marker 'e' at byte ${pos}: the dictionary key before it has no value`
          : `Unexpected end marker 'e' at byte ${pos}: no list or dictionary is open`,
        pos,
      );
    }
    const start = pos;
    if (c === I) {
      emit(readInt(), start);
    } else if (c === L || c === D) {
      if (stack.length >= maxDepth) {
        throw new BencodeError(`Nesting deeper than ${maxDepth} levels at byte ${pos}`, pos);
      }
      pos++;
      stack.push(
        c === L
          ? { kind: "l", start, list: [], dict: undefined, key: undefined, lastKey: undefined }
          : { kind: "d", start, list: undefined, dict: new Map(), key: undefined, lastKey: undefined },
      );
    } else if (c >= ZERO && c <= NINE) {
      const len = readLength();
      const bytes = input.subarray(pos, pos + len);
      pos += len;
      emit(bytes, start);
    } else {
      throw new BencodeError(
        `Unexpected ${describeByte(c)} at byte ${pos} where a value should start ` +
          "(a bencoded value starts with d, l, i or a digit)",
        pos,
      );
    }
  }
  return { value: result!, end: pos };
}

function bytes(count: number): string {
  return count === 1 ? "1 byte" : `${count} bytes`;
}

/** A byte for a message: `'{'` for printable ASCII, `byte 0x00` otherwise. */
function describeByte(c: number): string {
  return c > 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, "0")}`;
}

function printable(key: string): string {
  // deno-lint-ignore no-control-regex
  return key.length > 64 ? key.slice(0, 64) + "…" : key.replace(/[\x00-\x1f\x7f-\xff]/g, "?");
}

const textEncoder = new TextEncoder();

/**
 * Encodes a value canonically: dictionary keys sorted as raw bytes, integers in shortest
 * form. Dictionary keys are binary strings (one char per byte); string values are UTF-8.
 *
 * @example
 * ```ts
 * import { encode } from "./bencode.ts";
 * const bytes = encode({ spam: ["a", "b"], cow: "moo" });
 * console.log(new TextDecoder().decode(bytes)); // "d3:cow3:moo4:spaml1:a1:bee"
 * ```
 *
 * @param value The value to encode. `undefined` dictionary entries are skipped.
 * @returns The bencoded bytes.
 * @throws {TypeError} for values bencode cannot represent (non-integer numbers, keys with
 * characters above U+00FF, cycles).
 */
export function encode(value: BEncodable): Uint8Array {
  const out = new ByteWriter();
  encodeInto(value, out, 0);
  return out.finish();
}

function encodeInto(value: BEncodable, out: ByteWriter, depth: number): void {
  // Well below the depth at which V8 overflows its stack (about 6 000 frames of encodeInto).
  if (depth > 1_000) throw new TypeError("Cannot encode value: nesting deeper than 1000 levels, or cyclic");
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError(`Cannot encode ${value}: not a safe integer`);
    out.ascii(`i${value}e`);
  } else if (typeof value === "bigint") {
    out.ascii(`i${value}e`);
  } else if (typeof value === "string") {
    const bytes = textEncoder.encode(value);
    out.ascii(`${bytes.length}:`);
    out.bytes(bytes);
  } else if (value instanceof Uint8Array) {
    out.ascii(`${value.length}:`);
    out.bytes(value);
  } else if (Array.isArray(value)) {
    out.ascii("l");
    for (const item of value as readonly BEncodable[]) encodeInto(item, out, depth + 1);
    out.ascii("e");
  } else {
    const entries: [string, BEncodable][] = [];
    if (value instanceof Map) {
      for (const [k, v] of value as ReadonlyMap<string, BEncodable>) entries.push([k, v]);
    } else {
      for (const k of Object.keys(value)) {
        const v = (value as { readonly [key: string]: BEncodable | undefined })[k];
        if (v !== undefined) entries.push([k, v]);
      }
    }
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    out.ascii("d");
    for (const [k, v] of entries) {
      out.ascii(`${k.length}:`);
      out.binary(k);
      encodeInto(v, out, depth + 1);
    }
    out.ascii("e");
  }
}

/** A growable byte buffer used by the encoder. */
class ByteWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #reserve(extra: number): void {
    if (this.#len + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  ascii(text: string): void {
    this.#reserve(text.length);
    for (let i = 0; i < text.length; i++) this.#buf[this.#len++] = text.charCodeAt(i);
  }

  binary(text: string): void {
    this.#reserve(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0xff) {
        throw new TypeError("Cannot encode dictionary key: keys are binary strings (chars 0-255)");
      }
      this.#buf[this.#len++] = c;
    }
  }

  bytes(data: Uint8Array): void {
    this.#reserve(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/**
 * Converts a binary-string dictionary key back to its bytes.
 *
 * @example
 * ```ts
 * import { keyBytes } from "./bencode.ts";
 * console.log(keyBytes("ab")); // Uint8Array [97, 98]
 * ```
 *
 * @param key A key as found in a {@linkcode BDict}.
 * @returns Its raw bytes.
 */
export function keyBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i) & 0xff;
  return out;
}
