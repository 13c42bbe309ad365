import assert from "node:assert/strict";
import { type BValue, decode, decodePrefix, encode, keyBytes, spanOf } from "../../lib/bencode.ts";
import { BencodeError } from "../../lib/errors.ts";
import { seededRandom } from "../../lib/net/seeded_random.ts";

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
const ascii = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

function randomBytes(random: () => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => Math.floor(random() * 256));
}

/** A random value of the shape the decoder produces (numbers in the safe range, bigints outside it). */
function randomValue(random: () => number, depth: number): BValue {
  const r = random();
  if (depth > 4 || r < 0.3) {
    const kind = random();
    if (kind < 0.4) return Math.floor((random() - 0.5) * 2 * Number.MAX_SAFE_INTEGER);
    if (kind < 0.5) {
      const big = BigInt(Number.MAX_SAFE_INTEGER) + 1n + BigInt(Math.floor(random() * 1e15)) * 10n ** 20n;
      return random() < 0.5 ? big : -big;
    }
    if (kind < 0.55) return 0;
    return randomBytes(random, Math.floor(random() * 20));
  }
  if (r < 0.65) return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
  const dict = new Map<string, BValue>();
  const size = Math.floor(random() * 5);
  for (let i = 0; i < size; i++) {
    dict.set(ascii(randomBytes(random, Math.floor(random() * 6))), randomValue(random, depth + 1));
  }
  // The decoder gives keys in input order; canonical input has them sorted.
  return new Map([...dict].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/** Asserts that a function throws a BencodeError whose message contains `text`. */
function assertBencodeError(fn: () => unknown, text: string): BencodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BencodeError, `expected a BencodeError, got ${e}`);
    assert.ok(e.message.includes(text), `message '${e.message}' lacks '${text}'`);
    return e;
  }
  assert.fail(`expected a BencodeError containing '${text}'`);
}

Deno.test("decode() and encode() round-trip canonical inputs", () => {
  const inputs = [
    "i0e",
    "i-1e",
    "i42e",
    "i9007199254740991e",
    "i-9007199254740991e",
    "i9007199254740992e",
    "i123456789012345678901234567890e",
    "0:",
    "4:spam",
    "le",
    "de",
    "l4:spami42ee",
    "d3:bar4:spam3:fooi42ee",
    "d0:i1e1:ai2e2:aai3e1:bi4ee",
    "d4:infod6:lengthi5e4:name1:aee",
    "lllleeee",
    "d1:ad1:bd1:cleeee",
  ];
  for (const text of inputs) {
    const bytes = latin1(text);
    assert.equal(ascii(encode(decode(bytes))), text);
    assert.deepEqual(decode(bytes, { strictKeyOrder: true }), decode(bytes));
  }
});

Deno.test("decode() and encode() round-trip random canonical values (seeded)", () => {
  const random = seededRandom(1);
  for (let i = 0; i < 3000; i++) {
    const value = randomValue(random, 0);
    const bytes = encode(value);
    const decoded = decode(bytes, { strictKeyOrder: true });
    assert.deepEqual(decoded, value, `case ${i}`);
    assert.deepEqual(encode(decoded), bytes, `case ${i}`);
  }
});

Deno.test("decode() only ever throws BencodeError on random bytes (seeded)", () => {
  const random = seededRandom(2);
  const alphabet = latin1("ilde0123456789:-e0e1");
  let thrown = 0;
  for (let i = 0; i < 30_000; i++) {
    const length = Math.floor(random() * 40);
    // Mostly bencode's own alphabet, so inputs get past the first byte.
    const bytes = random() < 0.2
      ? randomBytes(random, length)
      : Uint8Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]!);
    try {
      decode(bytes, { maxDepth: 16 });
    } catch (e) {
      assert.ok(e instanceof BencodeError, `input ${JSON.stringify(ascii(bytes))} threw ${e}`);
      thrown++;
    }
  }
  assert.ok(thrown > 20_000);
});

Deno.test("decode() only ever throws BencodeError on mutated valid inputs (seeded)", () => {
  const random = seededRandom(3);
  for (let i = 0; i < 5000; i++) {
    const bytes = encode(randomValue(random, 0)).slice();
    const mutations = 1 + Math.floor(random() * 3);
    for (let m = 0; m < mutations && bytes.length > 0; m++) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    const cut = random() < 0.3 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
    for (const strictKeyOrder of [false, true]) {
      try {
        decode(cut, { strictKeyOrder });
      } catch (e) {
        assert.ok(e instanceof BencodeError, `input ${JSON.stringify(ascii(cut))} threw ${e}`);
      }
    }
  }
});

Deno.test("decode() rejects 100 000 levels of nesting with a depth error", () => {
  const bomb = latin1("l".repeat(100_000) + "e".repeat(100_000));
  assertBencodeError(() => decode(bomb), "Nesting deeper than 512 levels");
  const dictBomb = latin1("d1:a".repeat(100_000) + "i0e" + "e".repeat(100_000));
  assertBencodeError(() => decode(dictBomb), "Nesting deeper than 512 levels");
  // The decoder does not recurse: with the limit lifted, deep input decodes without a stack overflow.
  let value = decode(bomb, { maxDepth: 200_000 });
  for (let i = 1; i < 100_000; i++) value = (value as BValue[])[0]!;
  assert.deepEqual(value, []);
});

Deno.test("decode() rejects a length prefix larger than the input without allocating it", () => {
  const e = assertBencodeError(
    () => decode(latin1("4294967295:x")),
    "Cut short: the string at byte 0 is longer than the 12 bytes left",
  );
  assert.equal(e.offset, 0);
  assertBencodeError(() => decode(latin1("99999999999999999999999999:x")), "Cut short: the string at byte 0");
  assertBencodeError(
    () => decode(latin1("5:abcd")),
    "Cut short: the string at byte 0 is 5 bytes long, but only 4 bytes are left",
  );
  assertBencodeError(
    () => decode(latin1("l1:a5:ae")),
    "Cut short: the string at byte 4 is 5 bytes long, but only 2 bytes are left",
  );
});

Deno.test("decode() rejects leading zeros, negative zero and integers without digits", () => {
  assertBencodeError(() => decode(latin1("i03e")), "Leading zero in integer");
  assertBencodeError(() => decode(latin1("i00e")), "Leading zero in integer");
  assertBencodeError(() => decode(latin1("i-03e")), "Negative zero");
  assertBencodeError(() => decode(latin1("i-0e")), "Negative zero is not allowed");
  assertBencodeError(() => decode(latin1("i-e")), "Integer has no digits");
  assertBencodeError(() => decode(latin1("ie")), "Integer has no digits");
  assertBencodeError(() => decode(latin1("i1.5e")), "Unexpected '.' at byte 2 in an integer");
  assertBencodeError(() => decode(latin1("i+1e")), "Unexpected '+' at byte 1 in an integer");
  assertBencodeError(() => decode(latin1("i1")), "Cut short: the data ends after 2 bytes, inside an integer");
  assertBencodeError(() => decode(latin1("03:abc")), "Leading zero in string length");
  assertBencodeError(() => decode(latin1("-1:a")), "Unexpected '-' at byte 0 where a value should start");
  assertBencodeError(() => decode(latin1("i" + "9".repeat(5000) + "e")), "Integer has too many digits");
  assert.equal(decode(latin1("0:")).constructor, Uint8Array);
});

Deno.test("decode() returns integers outside the safe range as exact bigints", () => {
  assert.equal(decode(latin1("i9007199254740991e")), Number.MAX_SAFE_INTEGER);
  assert.equal(decode(latin1("i9007199254740992e")), 9007199254740992n);
  assert.equal(decode(latin1("i-9007199254740993e")), -9007199254740993n);
  assert.equal(decode(latin1("i123456789012345678901234567890e")), 123456789012345678901234567890n);
  assert.equal(ascii(encode(2n ** 64n)), "i18446744073709551616e");
  assert.equal(ascii(encode(-0)), "i0e");
  assert.throws(() => encode(1.5), TypeError);
});

Deno.test("decode() stores a __proto__ key as an ordinary Map key", () => {
  const value = decode(latin1("d9:__proto__d1:ai1eee")) as Map<string, BValue>;
  assert.ok(value instanceof Map);
  assert.deepEqual(value.get("__proto__"), new Map([["a", 1]]));
  assert.equal(({} as Record<string, unknown>).a, undefined);
  assert.equal(Object.getPrototypeOf(value), Map.prototype);
  assert.equal(ascii(encode(value)), "d9:__proto__d1:ai1eee");
});

Deno.test("decode() keeps binary keys as one character per byte", () => {
  const value = decode(latin1("d2:\xff\x00i1ee")) as Map<string, BValue>;
  assert.deepEqual([...value.keys()], ["\xff\x00"]);
  assert.deepEqual(keyBytes("\xff\x00"), new Uint8Array([0xff, 0]));
  assert.equal(ascii(encode(value)), "d2:\xff\x00i1ee");
});

Deno.test("spanOf() gives the raw byte span of lists, dictionaries and byte strings", () => {
  const input = latin1("d4:infod1:bi1e1:ai2ee4:listl3:abcee");
  const root = decode(input) as Map<string, BValue>;
  const info = root.get("info") as Map<string, BValue>;
  const list = root.get("list") as BValue[];
  const span = spanOf(info)!;
  // Non-canonical order is kept: the span is the raw bytes, not a re-encoding.
  assert.equal(ascii(input.subarray(span.start, span.end)), "d1:bi1e1:ai2ee");
  assert.equal(ascii(input.subarray(spanOf(list)!.start, spanOf(list)!.end)), "l3:abce");
  const bytes = list[0] as Uint8Array;
  assert.deepEqual(spanOf(bytes), { start: 28, end: 33 });
  assert.equal(ascii(input.subarray(28, 33)), "3:abc");
  assert.deepEqual(spanOf(root), { start: 0, end: input.length });
  assert.equal(spanOf({}), undefined);
});

Deno.test("decode() rejects duplicate keys", () => {
  assertBencodeError(() => decode(latin1("d1:ai1e1:ai2ee")), "Duplicate dictionary key 'a'");
  assertBencodeError(() => decode(latin1("d1:ai1e1:bi1e1:ai2ee")), "Duplicate dictionary key 'a'");
});

Deno.test("decode() enforces key order only with strictKeyOrder", () => {
  const unordered = latin1("d1:bi1e1:ai2ee");
  assert.deepEqual([...(decode(unordered) as Map<string, BValue>).keys()], ["b", "a"]);
  const e = assertBencodeError(
    () => decode(unordered, { strictKeyOrder: true }),
    "Dictionary key 'a' is out of order",
  );
  assert.equal(e.offset, 7);
  // Raw-byte order, not UTF-16 or locale order; nested dictionaries are checked on their own.
  assert.ok(decode(latin1("d1:Ai1e1:ai1e1:\xffi1ee"), { strictKeyOrder: true }));
  assert.ok(decode(latin1("d1:bd1:ai1e1:bi1ee1:cd1:ai1eee"), { strictKeyOrder: true }));
  assertBencodeError(() => decode(latin1("d1:ad1:bi1e1:ai1eee"), { strictKeyOrder: true }), "out of order");
});

Deno.test("decode() checks key order in linear time", () => {
  // 100 000 sorted keys: the former implementation rescanned every key for each new one (minutes).
  let text = "d";
  for (let i = 0; i < 100_000; i++) text += `6:${String(i).padStart(6, "0")}i0e`;
  const value = decode(latin1(text + "e"), { strictKeyOrder: true }) as Map<string, BValue>;
  assert.equal(value.size, 100_000);
});

Deno.test("decode() rejects trailing data, truncation and stray bytes", () => {
  assertBencodeError(
    () => decode(latin1("i1ei2e")),
    "Unexpected data after the end of the value: it ends at byte 3 of 6",
  );
  assertBencodeError(() => decode(latin1("")), "Empty input: there is no bencoded value");
  assertBencodeError(
    () => decode(latin1("l")),
    "Cut short: the data ends after 1 byte, inside a list that starts at byte 0",
  );
  assertBencodeError(
    () => decode(latin1("d4:infod1:a")),
    "Cut short: the data ends after 11 bytes, inside a dictionary that starts at byte 7",
  );
  assertBencodeError(
    () => decode(latin1("0")),
    "Cut short: the data ends after 1 byte, inside the length of a string",
  );
  assertBencodeError(
    () => decode(latin1("4")),
    "Cut short: the string at byte 0 is longer than the 1 byte left",
  );
  assertBencodeError(
    () => decode(latin1("e")),
    "Unexpected end marker 'e' at byte 0: no list or dictionary is open",
  );
  assertBencodeError(
    () => decode(latin1("d1:ae")),
    "Unexpected end marker 'e' at byte 4: the dictionary key before it has no value",
  );
  assertBencodeError(
    () => decode(latin1("di1ei2ee")),
    "Dictionary key must be a byte string, like 4:name, but byte 1 is 'i'",
  );
  assertBencodeError(() => decode(latin1("dlei1ee")), "Dictionary key must be a byte string");
  assertBencodeError(
    () => decode(latin1("x")),
    "Unexpected 'x' at byte 0 where a value should start (a bencoded value starts with d, l, i or a digit)",
  );
  assertBencodeError(
    () => decode(latin1("\x00")),
    "Unexpected byte 0x00 at byte 0 where a value should start",
  );
  assertBencodeError(() => decode(latin1("4a:spam")), "Unexpected 'a' at byte 1 in the length of a string");
});

Deno.test("decode() applies the size and token limits", () => {
  assertBencodeError(
    () => decode(latin1("4:spam"), { maxBytes: 5 }),
    "Input of 6 bytes exceeds the limit of 5",
  );
  assertBencodeError(() => decode(latin1("li1ei2ei3ee"), { maxTokens: 3 }), "Input has more than 3 values");
  assert.deepEqual(decode(latin1("li1ei2ei3ee"), { maxTokens: 5 }), [1, 2, 3]);
  assertBencodeError(() => decode(latin1("llee"), { maxDepth: 1 }), "Nesting deeper than 1 levels");
});

Deno.test("decodePrefix() stops after one value and reports where", () => {
  const { value, end } = decodePrefix(latin1("d8:msg_typei1e5:piecei0eeRAW DATA"));
  assert.equal(end, 25);
  assert.deepEqual(value, new Map([["msg_type", 1], ["piece", 0]]));
});

Deno.test("decode() returns byte strings as views of the input", () => {
  const input = latin1("l3:abce");
  const bytes = (decode(input) as BValue[])[0] as Uint8Array;
  assert.equal(bytes.buffer, input.buffer);
  assert.equal(ascii(bytes), "abc");
});

Deno.test("encode() sorts dictionary keys as raw bytes and accepts strings, objects and maps", () => {
  assert.equal(ascii(encode({ b: 1, a: "x", c: undefined })), "d1:a1:x1:bi1ee");
  assert.equal(ascii(encode(new Map([["\xff", 1], ["Z", 2], ["a", 3]]))), "d1:Zi2e1:ai3e1:\xffi1ee");
  assert.equal(ascii(encode("é")), "2:\xc3\xa9");
  assert.throws(() => encode(new Map([["\u0100", 1]])), TypeError);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.throws(() => encode(cyclic as never), TypeError);
  const cyclicMap = new Map<string, unknown>();
  cyclicMap.set("self", cyclicMap);
  assert.throws(() => encode(cyclicMap as never), TypeError);
  // Anything the decoder accepts by default (512 levels) encodes again.
  const deep = latin1("l".repeat(512) + "e".repeat(512));
  assert.deepEqual(encode(decode(deep)), deep);
});
