import assert from "node:assert/strict";
import { RateMeter } from "../../lib/peer/rate.ts";

Deno.test("RateMeter reports 0 before anything is added", () => {
  const meter = new RateMeter(5);
  assert.equal(meter.rate(0), 0);
  assert.equal(meter.rate(123_456), 0);
  assert.equal(meter.total, 0);
});

Deno.test("RateMeter divides by the time seen so far while the window is not yet full", () => {
  const meter = new RateMeter(5);
  meter.add(1000, 0);
  meter.add(1000, 1500);
  assert.equal(meter.rate(2000), 1000);
  // Less than a second seen counts as one second.
  const fresh = new RateMeter(5);
  fresh.add(5000, 10_000);
  assert.equal(fresh.rate(10_000), 5000);
  assert.equal(fresh.rate(10_500), 5000);
});

Deno.test("RateMeter averages over the full window once it has passed", () => {
  const meter = new RateMeter(5);
  for (let s = 0; s < 20; s++) meter.add(2000, s * 1000);
  assert.equal(meter.rate(19_000), 2000);
  assert.equal(meter.total, 40_000);
});

Deno.test("RateMeter forgets bytes older than the window", () => {
  const meter = new RateMeter(5);
  meter.add(100_000, 0);
  assert.ok(meter.rate(1000) > 0);
  assert.equal(meter.rate(60_000), 0);
  assert.equal(meter.total, 100_000, "total counts every byte ever added");
});

Deno.test("RateMeter slides: a burst leaves the window a second at a time", () => {
  const meter = new RateMeter(3);
  meter.add(3000, 10_000); // second 10
  meter.add(600, 12_000); // second 12
  assert.equal(meter.rate(12_000), 3600 / 2);
  assert.equal(meter.rate(13_000), 600 / 3); // second 10 has left the 3-second window
  assert.equal(meter.rate(15_000), 0);
});

Deno.test("RateMeter skips a gap longer than the window", () => {
  const meter = new RateMeter(5);
  meter.add(1000, 0);
  meter.add(500, 7000);
  assert.equal(meter.rate(7000), 500 / 5);
});

Deno.test("RateMeter adds bytes from the same second together", () => {
  const meter = new RateMeter(1);
  meter.add(10, 5000);
  meter.add(20, 5999);
  assert.equal(meter.rate(5999), 30);
  assert.equal(meter.rate(6000), 0);
});
