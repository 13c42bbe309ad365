import assert from "node:assert/strict";
import { concatBytes, equalBytes, fromHex, latin1, toHex } from "../../lib/net/bytes.ts";
import { abortable } from "../../lib/net/abortable.ts";

Deno.test("toHex() and fromHex() round-trip every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = toHex(all);
  assert.equal(text.slice(0, 6), "000102");
  assert.equal(text.slice(-2), "ff");
  assert.deepEqual(fromHex(text), all);
  assert.deepEqual(fromHex("ABcd"), new Uint8Array([0xab, 0xcd]));
  assert.throws(() => fromHex("abc"), SyntaxError);
  assert.throws(() => fromHex("zz"), SyntaxError);
});

Deno.test("equalBytes() and concatBytes()", () => {
  assert.ok(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
  assert.ok(!equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
  assert.ok(!equalBytes(new Uint8Array([1]), new Uint8Array([1, 2])));
  assert.deepEqual(
    concatBytes([new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])]),
    new Uint8Array([1, 2, 3]),
  );
  const one = new Uint8Array([7]);
  assert.equal(concatBytes([one]), one);
});

Deno.test("abortable() rejects on abort, removes its listener, and hands a late value over", async () => {
  const controller = new AbortController();
  let release!: (v: number) => void;
  const late: number[] = [];
  const waiting = abortable(new Promise<number>((r) => release = r), controller.signal, (v) => late.push(v));
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  release(5);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(late, [5]);
  assert.equal(await abortable(Promise.resolve(1), undefined), 1);
  const already = AbortSignal.abort(new Error("before"));
  await assert.rejects(abortable(Promise.resolve(2), already), /before/);
});

Deno.test("latin1() gives one character a byte, also past its 8 KiB chunks", () => {
  assert.equal(latin1(new Uint8Array([0x47, 0x45, 0x54, 0xff])), "GET\u00ff");
  const long = Uint8Array.from({ length: 20_000 }, (_, i) => i & 0xff);
  const text = latin1(long);
  assert.equal(text.length, 20_000);
  assert.equal(text.charCodeAt(8192), 8192 & 0xff);
  assert.equal(text.charCodeAt(19_999), 19_999 & 0xff);
});
