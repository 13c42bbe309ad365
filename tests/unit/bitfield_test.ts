import assert from "node:assert/strict";
import { Bitfield } from "../../lib/bitfield.ts";
import { ProtocolError } from "../../lib/errors.ts";

Deno.test("Bitfield stores bits most significant first, as on the wire", () => {
  const bits = new Bitfield(12);
  bits.set(0);
  bits.set(7);
  bits.set(8);
  bits.set(11);
  assert.deepEqual(bits.toBytes(), new Uint8Array([0b1000_0001, 0b1001_0000]));
  assert.equal(bits.get(0), true);
  assert.equal(bits.get(1), false);
  assert.equal(bits.get(11), true);
});

Deno.test("Bitfield.fromWire() reads a valid payload", () => {
  const bits = Bitfield.fromWire(new Uint8Array([0b1010_0000, 0b0100_0000]), 10);
  assert.equal(bits.size, 10);
  assert.deepEqual([...bits], [0, 2, 9]);
  assert.equal(bits.count(), 3);
  assert.deepEqual([...Bitfield.fromWire(new Uint8Array([0xff]), 8)], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(Bitfield.fromWire(new Uint8Array(0), 0).size, 0);
});

Deno.test("Bitfield.fromWire() rejects a payload of the wrong length", () => {
  for (const [length, size] of [[1, 9], [3, 16], [0, 1], [1, 0]] as const) {
    assert.throws(() => Bitfield.fromWire(new Uint8Array(length), size), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, `${length} bytes for ${size} pieces`);
      assert.match(
        e.message,
        new RegExp(`^Invalid bitfield message: length ${length}, expected \\d+ for ${size} pieces$`),
      );
      return true;
    });
  }
});

Deno.test("Bitfield.fromWire() rejects spare bits that are set", () => {
  assert.throws(() => Bitfield.fromWire(new Uint8Array([0xff, 0b1100_0001]), 10), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Invalid bitfield message: spare bits after piece 9 are set");
    return true;
  });
  assert.throws(() => Bitfield.fromWire(new Uint8Array([0b0010_0000]), 2), ProtocolError);
  // The last valid bit itself is fine.
  assert.equal(Bitfield.fromWire(new Uint8Array([0xff, 0b1100_0000]), 10).count(), 10);
});

Deno.test("The Bitfield constructor copies its bytes and checks them", () => {
  const source = new Uint8Array([0xf0]);
  const bits = new Bitfield(4, source);
  source[0] = 0;
  assert.equal(bits.count(), 4);
  assert.throws(() => new Bitfield(4, new Uint8Array([0xf8])), RangeError);
  assert.throws(() => new Bitfield(4, new Uint8Array(2)), RangeError);
  assert.throws(() => new Bitfield(-1), RangeError);
  assert.throws(() => new Bitfield(1.5), RangeError);
});

Deno.test("Bitfield.count() follows set() and clear(), counting each bit once", () => {
  const bits = new Bitfield(20);
  assert.equal(bits.count(), 0);
  assert.ok(bits.isEmpty());
  bits.set(3);
  bits.set(3);
  bits.set(19);
  assert.equal(bits.count(), 2);
  bits.clear(3);
  bits.clear(3);
  bits.clear(4);
  assert.equal(bits.count(), 1);
  assert.equal(bits.isComplete(), false);
  for (let i = 0; i < 20; i++) bits.set(i);
  assert.equal(bits.count(), 20);
  assert.ok(bits.isComplete());
});

Deno.test("Bitfield.setAll() sets every bit and leaves spare bits clear", () => {
  const bits = new Bitfield(11);
  bits.setAll();
  assert.equal(bits.count(), 11);
  assert.ok(bits.isComplete());
  assert.deepEqual(bits.toBytes(), new Uint8Array([0xff, 0b1110_0000]));
  assert.deepEqual([...bits], Array.from({ length: 11 }, (_, i) => i));
  bits.clearAll();
  assert.equal(bits.count(), 0);
  assert.deepEqual([...bits], []);
  const round = new Bitfield(16);
  round.setAll();
  assert.deepEqual(round.toBytes(), new Uint8Array([0xff, 0xff]));
});

Deno.test("Bitfield iterates over set indices in increasing order", () => {
  const bits = new Bitfield(100);
  const expected = [0, 1, 9, 31, 32, 63, 64, 98, 99];
  for (const i of [...expected].reverse()) bits.set(i);
  assert.deepEqual([...bits], expected);
  assert.deepEqual([...new Bitfield(0)], []);
});

Deno.test("Bitfield count matches a fresh count of a random wire payload", () => {
  let seed = 12345;
  const bytes = new Uint8Array(125);
  for (let i = 0; i < bytes.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    bytes[i] = seed >>> 24;
  }
  bytes[124]! &= 0b1111_0000; // 996 pieces: 4 spare bits
  const bits = Bitfield.fromWire(bytes, 996);
  let expected = 0;
  for (let i = 0; i < 996; i++) if ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) expected++;
  assert.equal(bits.count(), expected);
  assert.equal([...bits].length, expected);
  assert.ok([...bits].every((i) => bits.get(i)));
});

Deno.test("Bitfield.toBytes() returns a copy", () => {
  const bits = new Bitfield(8);
  bits.toBytes()[0] = 0xff;
  assert.equal(bits.count(), 0);
  assert.equal(bits.get(0), false);
});

Deno.test("Bitfield rejects indices out of range", () => {
  const bits = new Bitfield(8);
  for (const i of [-1, 8, 1.5, Number.NaN]) {
    assert.throws(() => bits.get(i), RangeError);
    assert.throws(() => bits.set(i), RangeError);
    assert.throws(() => bits.clear(i), RangeError);
  }
});
