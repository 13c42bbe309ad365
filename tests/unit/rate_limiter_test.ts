import assert from "node:assert/strict";
import {
  defaultBurst,
  RateLimiter,
  TokenBucket,
  type TokenBucketOptions,
} from "../../lib/peer/rate_limiter.ts";

const KIB = 1024;
const MIB = 1024 * 1024;

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
  readonly tag: string;
}

/** A fake clock with fake one-shot timers; time moves only through `advance`. */
class FakeClock {
  time = 0;
  /** setTimer calls, per tag. */
  readonly created = new Map<string, number>();
  /** Most timers pending at once, per tag. */
  readonly maxPending = new Map<string, number>();
  /** Every delay asked for. */
  readonly delays: number[] = [];
  readonly #timers = new Map<number, FakeTimer>();
  #nextId = 1;

  /** Clock and timer options for one bucket; `tag` tells buckets apart in the counters. */
  options(tag = "bucket"): Pick<TokenBucketOptions, "now" | "setTimer" | "clearTimer"> {
    return {
      now: () => this.time,
      setTimer: (fn, ms) => {
        const id = this.#nextId++;
        this.#timers.set(id, { id, at: this.time + ms, fn, tag });
        this.delays.push(ms);
        this.created.set(tag, (this.created.get(tag) ?? 0) + 1);
        this.maxPending.set(tag, Math.max(this.maxPending.get(tag) ?? 0, this.pending(tag)));
        return id;
      },
      clearTimer: (id) => {
        this.#timers.delete(id as number);
      },
    };
  }

  /** Timers pending now (for one tag, or all). */
  pending(tag?: string): number {
    let n = 0;
    for (const t of this.#timers.values()) if (tag === undefined || t.tag === tag) n++;
    return n;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promise callbacks run. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await settle(); // callers that are about to ask (after a microtask) ask at the current time
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      this.time = Math.max(this.time, next.at);
      this.#timers.delete(next.id);
      next.fn();
      await settle();
    }
    this.time = target;
    await settle();
  }
}

/** Lets pending promise callbacks run (a few dozen microtask turns; no waiting on any clock). */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/** Tracks whether a promise has settled, and how. */
function track(promise: Promise<void>): { done: boolean; error: unknown } {
  const state: { done: boolean; error: unknown } = { done: false, error: undefined };
  promise.then(
    () => (state.done = true),
    (error) => {
      state.done = true;
      state.error = error;
    },
  );
  return state;
}

interface Taker {
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** A simulated peer: asks for `size` bytes again and again until `signal` aborts; counts grants. */
function consumer(
  taker: Taker,
  size: number,
  signal: AbortSignal,
): { bytes: number; stopped: Promise<void> } {
  const state = { bytes: 0, stopped: Promise.resolve() };
  state.stopped = (async () => {
    while (!signal.aborted) {
      try {
        await taker.take(size, signal);
      } catch (error) {
        if (error === signal.reason) return;
        throw error;
      }
      state.bytes += size;
    }
  })();
  return state;
}

async function runConsumers(
  clock: FakeClock,
  takers: readonly Taker[],
  size: number,
  ms: number,
): Promise<number[]> {
  const controller = new AbortController();
  const consumers = takers.map((t) => consumer(t, size, controller.signal));
  await clock.advance(ms);
  const counts = consumers.map((c) => c.bytes);
  controller.abort(new Error("Stop"));
  await Promise.all(consumers.map((c) => c.stopped));
  return counts;
}

function assertWithin(actual: number, expected: number, fraction: number, what: string): void {
  const deviation = Math.abs(actual - expected) / expected;
  assert.ok(
    deviation <= fraction,
    `${what}: ${actual} is ${(deviation * 100).toFixed(2)}% from ${expected} (allowed ${fraction * 100}%)`,
  );
}

Deno.test("defaultBurst() is 100 ms of traffic but at least 64 KiB, and Infinity when unlimited", () => {
  assert.equal(defaultBurst(10 * MIB), MIB);
  assert.equal(defaultBurst(100 * KIB), 64 * KIB);
  assert.equal(defaultBurst(0), Infinity);
  assert.equal(defaultBurst(Infinity), Infinity);
});

Deno.test("TokenBucket rejects a negative or NaN rate, a bad burst and bad request sizes", () => {
  assert.throws(() => new TokenBucket({ rate: -1 }), RangeError);
  assert.throws(() => new TokenBucket({ rate: NaN }), RangeError);
  assert.throws(() => new TokenBucket({ rate: 1000, burst: 0 }), RangeError);
  assert.throws(() => new TokenBucket({ rate: 1000, burst: Infinity }), RangeError);
  const bucket = new TokenBucket({ rate: 1000, ...new FakeClock().options() });
  assert.throws(() => bucket.setRate(-5), RangeError);
  assert.throws(() => bucket.take(-1), RangeError);
  assert.throws(() => bucket.take(NaN), RangeError);
  assert.throws(() => bucket.take(Infinity), RangeError);
  assert.throws(() => bucket.tryTake(-1), RangeError);
  assert.throws(() => bucket.refund(-1), RangeError);
});

Deno.test("An unlimited bucket (rate 0 or Infinity) grants at once without any timer", async () => {
  for (const rate of [0, Infinity]) {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ rate, ...clock.options() });
    assert.equal(bucket.unlimited, true);
    for (let i = 0; i < 1000; i++) {
      const state = track(bucket.take(10 * MIB));
      await Promise.resolve();
      assert.equal(state.done, true, `request ${i} at rate ${rate} should be granted at once`);
    }
    assert.equal(bucket.tryTake(123_456), 123_456);
    assert.equal(clock.created.get("bucket") ?? 0, 0, "no timer was started");
    assert.equal(bucket.waiting, 0);
    assert.equal(bucket.rate, rate);
  }
});

Deno.test("A bucket starts full and makes the next request wait exactly for its tokens", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, ...clock.options() });
  assert.equal(bucket.burst, 64 * KIB);
  assert.equal(bucket.tokens, 64 * KIB);
  await bucket.take(64 * KIB); // the whole burst, at once
  const next = track(bucket.take(16 * KIB)); // needs 250 ms of refill
  await clock.advance(249);
  assert.equal(next.done, false, "granted too early");
  assert.equal(bucket.waiting, 1);
  await clock.advance(1);
  assert.equal(next.done, true, "not granted after 250 ms");
  assert.equal(next.error, undefined);
  assert.equal(bucket.waiting, 0);
  assert.equal(clock.pending(), 0, "no timer left once nobody waits");
});

Deno.test("Over a simulated 20 s at 1 MiB/s the granted bytes are within 2% of 20 MiB, with one timer at a time", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: MIB, ...clock.options() });
  const counts = await runConsumers(clock, [bucket, bucket, bucket, bucket], 16 * KIB, 20_000);
  const granted = counts.reduce((a, b) => a + b, 0);
  assertWithin(granted, 20 * MIB, 0.02, "granted bytes");
  // Never more than the burst plus 20 s of refill.
  assert.ok(granted <= bucket.burst + 20 * MIB, `granted ${granted} exceeds burst + 20 s of tokens`);
  assert.equal(clock.maxPending.get("bucket"), 1, "at most one timer pending at once");
  const grants = granted / (16 * KIB);
  const timers = clock.created.get("bucket") ?? 0;
  assert.ok(timers <= grants + 4, `${timers} timers for ${grants} grants: a busy loop?`);
  assert.ok(clock.delays.every((ms) => ms >= 1), "no zero-delay timers");
  assert.equal(clock.pending(), 0, "aborting every waiter leaves no timer");
});

Deno.test("Five peers asking 16 KiB repeatedly get shares within 20% of each other (FIFO)", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 256 * KIB, ...clock.options() });
  const counts = await runConsumers(clock, [bucket, bucket, bucket, bucket, bucket], 16 * KIB, 20_000);
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  for (const [i, c] of counts.entries()) assertWithin(c, mean, 0.2, `peer ${i}'s share`);
  // FIFO is round robin: nobody is more than one block ahead of anybody else.
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 16 * KIB, `shares ${counts.join(", ")}`);
});

Deno.test("A small request arriving while a big one waits queues behind it (no jumping the queue)", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options() });
  await bucket.take(64 * KIB); // empty
  const order: string[] = [];
  const big = bucket.take(64 * KIB).then(() => void order.push("big"));
  await clock.advance(500); // 32 KiB there: enough for a small request, not for the big one
  const small = bucket.take(4 * KIB).then(() => void order.push("small"));
  await settle();
  assert.deepEqual(order, [], "the small request jumped the queue");
  assert.equal(bucket.waiting, 2);
  await clock.advance(500);
  await big;
  assert.deepEqual(order, ["big"]);
  await clock.advance(62); // 4 KiB at 64 KiB/s: 62.5 ms after the big grant
  assert.deepEqual(order, ["big"]);
  await clock.advance(1);
  await small;
  assert.deepEqual(order, ["big", "small"]);
  assert.equal(clock.pending(), 0);
});

Deno.test("A bucket left idle fills up to its burst only", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 100 * KIB, ...clock.options() });
  await bucket.take(100 * KIB);
  await clock.advance(60_000);
  assert.equal(bucket.tokens, 100 * KIB);
  assert.equal(bucket.tryTake(10 * MIB), 100 * KIB, "an idle minute lets only the burst through at once");
  const next = track(bucket.take(64 * KIB));
  await clock.advance(999);
  assert.equal(next.done, false);
  await clock.advance(1);
  assert.equal(next.done, true);
});

Deno.test("A request larger than the burst is granted whole when the bucket is full and leaves it in debt", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options() });
  const big = track(bucket.take(MIB));
  await Promise.resolve();
  assert.equal(big.done, true, "a full bucket grants a request of any size");
  assert.equal(bucket.tokens, 64 * KIB - MIB, "the balance is in debt by the excess");
  assert.equal(bucket.tryTake(16 * KIB), 0, "nothing to take while in debt");
  // The next 16 KiB waits for the debt to be paid back, then for its own tokens: (1 MiB - 64 KiB + 16 KiB) / 64 KiB/s.
  const next = track(bucket.take(16 * KIB));
  await clock.advance(15_249);
  assert.equal(next.done, false, "granted before the debt was paid back");
  await clock.advance(1);
  assert.equal(next.done, true);
  // A big request waits for a full bucket when it is not full.
  const again = track(bucket.take(MIB));
  await clock.advance(999);
  assert.equal(again.done, false);
  await clock.advance(1);
  assert.equal(again.done, true, "granted once the bucket is full (64 KiB at 64 KiB/s: 1 s)");
});

Deno.test("With requests larger than the burst, granted bytes equal burst + rate × time − balance at every moment", async () => {
  const clock = new FakeClock();
  const rate = 128 * KIB;
  const burst = 64 * KIB;
  const size = 256 * KIB;
  const bucket = new TokenBucket({ rate, burst, ...clock.options() });
  const controller = new AbortController();
  const peers = [consumer(bucket, size, controller.signal), consumer(bucket, size, controller.signal)];
  for (let second = 1; second <= 100; second++) {
    await clock.advance(1000);
    const granted = peers[0]!.bytes + peers[1]!.bytes;
    const balance = bucket.tokens;
    assert.ok(Math.abs(granted - (burst + rate * clock.time / 1000 - balance)) < 1, `at ${second} s`);
    assert.ok(balance >= burst - size - 1e-6 && balance <= burst, `balance ${balance} at ${second} s`);
  }
  const granted = peers[0]!.bytes + peers[1]!.bytes;
  assertWithin(granted, 100 * rate, 0.02, "granted bytes over 100 s");
  assertWithin(peers[0]!.bytes, peers[1]!.bytes, 0.05, "the two peers' shares");
  controller.abort(new Error("Stop"));
  await Promise.all(peers.map((p) => p.stopped));
  assert.equal(clock.pending(), 0);
});

Deno.test("setRate() down while a request waits makes it wait for the new rate", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: MIB, ...clock.options() });
  await bucket.take(bucket.burst); // empty
  const waiter = track(bucket.take(64 * KIB)); // 62.5 ms at 1 MiB/s
  bucket.setRate(64 * KIB); // now 1 s
  assert.equal(bucket.rate, 64 * KIB);
  assert.equal(bucket.burst, 64 * KIB, "the default burst follows the rate");
  await clock.advance(999);
  assert.equal(waiter.done, false, "granted at the old rate");
  await clock.advance(1);
  assert.equal(waiter.done, true);
  assert.equal(clock.maxPending.get("bucket"), 1);
});

Deno.test("setRate() up while a request waits grants it sooner, counting the tokens accrued so far", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: KIB, ...clock.options() });
  await bucket.take(bucket.burst);
  const waiter = track(bucket.take(16 * KIB)); // 16 s at 1 KiB/s
  await clock.advance(1000); // 1 KiB accrued
  bucket.setRate(MIB); // the other 15 KiB take 14.65 ms
  await clock.advance(14);
  assert.equal(waiter.done, false);
  await clock.advance(1);
  assert.equal(waiter.done, true, "not granted at the new rate");
  assert.equal(clock.maxPending.get("bucket"), 1);
});

Deno.test("setRate() to unlimited grants every waiter at once, in order, and stops the timer", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: KIB, ...clock.options() });
  await bucket.take(bucket.burst);
  const order: number[] = [];
  const waiters = [0, 1, 2].map((i) => bucket.take(32 * KIB).then(() => void order.push(i)));
  assert.equal(bucket.waiting, 3);
  assert.equal(clock.pending(), 1);
  bucket.setRate(0);
  assert.equal(bucket.waiting, 0);
  assert.equal(clock.pending(), 0, "timer cleared");
  await Promise.all(waiters);
  assert.deepEqual(order, [0, 1, 2]);
});

Deno.test("setRate() from unlimited starts the bucket full and limits from then on", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: Infinity, ...clock.options() });
  await bucket.take(100 * MIB);
  await clock.advance(5000);
  bucket.setRate(64 * KIB);
  assert.equal(bucket.unlimited, false);
  assert.equal(bucket.tokens, 64 * KIB);
  await bucket.take(64 * KIB);
  const next = track(bucket.take(16 * KIB));
  await clock.advance(249);
  assert.equal(next.done, false);
  await clock.advance(1);
  assert.equal(next.done, true);
});

Deno.test("Aborting a waiter rejects it only; the others keep their order and no tokens are lost", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options() });
  await bucket.take(64 * KIB);
  const controllers = [new AbortController(), new AbortController(), new AbortController()];
  const states = controllers.map((c) => track(bucket.take(64 * KIB, c.signal)));
  const reason = new Error("Peer gone");
  controllers[1]!.abort(reason);
  await settle();
  assert.equal(states[1]!.done, true);
  assert.equal(states[1]!.error, reason, "rejects with the signal's reason");
  assert.equal(bucket.waiting, 2);
  await clock.advance(1000);
  assert.equal(states[0]!.done, true);
  assert.equal(states[0]!.error, undefined);
  assert.equal(states[2]!.done, false);
  await clock.advance(1000);
  assert.equal(states[2]!.done, true, "the third is served at 2 s, not 3 s: the aborted one took nothing");
  assert.equal(states[2]!.error, undefined);
});

Deno.test("Aborting the head waiter re-times the next, and aborting all leaves no timer or waiter", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options() });
  await bucket.take(64 * KIB);
  const first = new AbortController();
  const second = new AbortController();
  const a = track(bucket.take(64 * KIB, first.signal));
  const b = track(bucket.take(16 * KIB, second.signal));
  await clock.advance(200);
  first.abort(new Error("Gone"));
  await clock.advance(49); // 16 KiB needs 250 ms from the start
  assert.equal(b.done, false);
  await clock.advance(1);
  assert.equal(b.done, true, "the next waiter is granted as soon as its own tokens are there");
  assert.equal(b.error, undefined);
  assert.ok(a.error instanceof Error);
  // Abort everyone: nothing left behind.
  const c = new AbortController();
  const d = track(bucket.take(MIB, c.signal));
  const e = track(bucket.take(MIB, c.signal));
  assert.equal(clock.pending(), 1);
  const tokensBefore = bucket.tokens;
  c.abort(new Error("Closed"));
  await settle();
  assert.ok(d.error instanceof Error && e.error instanceof Error);
  assert.equal(bucket.waiting, 0);
  assert.equal(clock.pending(), 0, "timer cleared");
  assert.equal(bucket.tokens, tokensBefore, "aborted requests took no tokens");
  assert.equal(clock.maxPending.get("bucket"), 1);
});

Deno.test("A request with an already aborted signal rejects at once and takes nothing", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, ...clock.options() });
  const reason = new Error("Already closed");
  const state = track(bucket.take(16 * KIB, AbortSignal.abort(reason)));
  await settle();
  assert.equal(state.error, reason);
  assert.equal(bucket.tokens, 64 * KIB);
  assert.equal(clock.created.get("bucket") ?? 0, 0);
});

Deno.test("Aborting after the grant changes nothing", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, ...clock.options() });
  const controller = new AbortController();
  await bucket.take(16 * KIB, controller.signal);
  controller.abort(new Error("Late"));
  assert.equal(bucket.tokens, 48 * KIB);
});

Deno.test("tryTake() takes what is there without waiting, but never jumps the queue; refund() gives back", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options() });
  assert.equal(bucket.tryTake(10 * KIB), 10 * KIB);
  assert.equal(bucket.tryTake(MIB), 54 * KIB);
  assert.equal(bucket.tryTake(1), 0);
  await clock.advance(500); // 32 KiB
  assert.equal(bucket.tryTake(5000.7), 5000, "whole bytes only");
  bucket.refund(5000);
  const waiter = track(bucket.take(48 * KIB)); // 16 KiB short: 250 ms
  assert.equal(bucket.tryTake(KIB), 0, "someone waits: no jumping the queue");
  bucket.refund(16 * KIB); // gives the waiter its missing tokens
  await settle();
  assert.equal(waiter.done, true);
  assert.equal(clock.pending(), 0);
  bucket.refund(10 * MIB);
  assert.equal(bucket.tokens, 64 * KIB, "refunds stop at the burst");
});

Deno.test("RateLimiter rejects a chain with the same bucket twice; an empty chain is unlimited", async () => {
  const bucket = new TokenBucket({ rate: KIB, ...new FakeClock().options() });
  assert.throws(() => new RateLimiter([bucket, bucket]), TypeError);
  const none = new RateLimiter([]);
  await none.take(MIB);
  assert.equal(none.tryTake(99), 99);
});

Deno.test("RateLimiter charges each bucket once per grant, and the global wait does not waste the torrent's tokens", async () => {
  const clock = new FakeClock();
  const torrent = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options("torrent") });
  const global = new TokenBucket({ rate: 64 * KIB, burst: 64 * KIB, ...clock.options("global") });
  const limiter = new RateLimiter([torrent, global]);
  await limiter.take(64 * KIB);
  assert.equal(torrent.tokens, 0);
  assert.equal(global.tokens, 0);
  // Both buckets refill in parallel: the request is granted after 1 s, not 2 s.
  const next = track(limiter.take(64 * KIB));
  await clock.advance(999);
  assert.equal(next.done, false);
  await clock.advance(1);
  assert.equal(next.done, true);
  assert.equal(torrent.tokens, 0);
  assert.equal(global.tokens, 0);
  assert.equal(clock.pending(), 0);
});

Deno.test("RateLimiter refunds the torrent bucket when a request is aborted while waiting for the global one", async () => {
  const clock = new FakeClock();
  const torrent = new TokenBucket({ rate: MIB, ...clock.options("torrent") });
  const global = new TokenBucket({ rate: 16 * KIB, burst: 64 * KIB, ...clock.options("global") });
  const limiter = new RateLimiter([torrent, global]);
  await global.take(64 * KIB); // the global bucket is empty
  const controller = new AbortController();
  const reason = new Error("Peer gone");
  const waiter = track(limiter.take(32 * KIB, controller.signal));
  assert.equal(torrent.tokens, torrent.burst - 32 * KIB, "the torrent bucket granted (reserved)");
  assert.equal(global.waiting, 1);
  assert.equal(torrent.waiting, 0, "the torrent bucket's queue is not held up");
  controller.abort(reason);
  await settle();
  assert.equal(waiter.error, reason);
  assert.equal(torrent.tokens, torrent.burst, "reservation refunded");
  assert.equal(global.waiting, 0);
  assert.equal(clock.pending(), 0, "no timer left");
  assert.equal(global.tokens, 0, "the global bucket was never charged");
});

Deno.test("RateLimiter: peers of two torrents sharing a global limit get equal shares and the global rate holds", async () => {
  const clock = new FakeClock();
  const global = new TokenBucket({ rate: 256 * KIB, ...clock.options("global") });
  const one = new RateLimiter([new TokenBucket({ rate: MIB, ...clock.options("one") }), global]);
  const two = new RateLimiter([new TokenBucket({ rate: MIB, ...clock.options("two") }), global]);
  const counts = await runConsumers(clock, [one, one, one, one, two], 16 * KIB, 20_000);
  const total = counts.reduce((a, b) => a + b, 0);
  assertWithin(total, 20 * 256 * KIB, 0.02, "granted bytes");
  const mean = total / counts.length;
  for (const [i, c] of counts.entries()) assertWithin(c, mean, 0.2, `peer ${i}'s share`);
  for (const tag of ["global", "one", "two"]) assert.ok((clock.maxPending.get(tag) ?? 0) <= 1, tag);
  assert.equal(clock.pending(), 0);
});

Deno.test("RateLimiter: a torrent held to its own limit leaves the rest of the global rate to the others", async () => {
  const clock = new FakeClock();
  const global = new TokenBucket({ rate: 512 * KIB, ...clock.options("global") });
  const slow = new RateLimiter([new TokenBucket({ rate: 64 * KIB, ...clock.options("slow") }), global]);
  const free = new RateLimiter([new TokenBucket({ rate: 0, ...clock.options("free") }), global]);
  const counts = await runConsumers(clock, [slow, slow, free, free], 16 * KIB, 20_000);
  const slowBytes = counts[0]! + counts[1]!;
  const freeBytes = counts[2]! + counts[3]!;
  assertWithin(slowBytes, 20 * 64 * KIB, 0.05, "the limited torrent");
  assertWithin(freeBytes, 20 * (512 - 64) * KIB, 0.05, "the unlimited torrent");
  assertWithin(slowBytes + freeBytes, 20 * 512 * KIB, 0.02, "the global total");
  assert.equal(clock.created.get("free") ?? 0, 0, "the unlimited bucket never starts a timer");
});

Deno.test("RateLimiter: changing the global rate while requests wait in the chain re-evaluates them", async () => {
  const clock = new FakeClock();
  const global = new TokenBucket({ rate: KIB, ...clock.options("global") });
  const torrent = new TokenBucket({ rate: MIB, ...clock.options("torrent") });
  const limiter = new RateLimiter([torrent, global]);
  await global.take(global.burst);
  const waiters = [track(limiter.take(16 * KIB)), track(limiter.take(16 * KIB))];
  assert.equal(global.waiting, 2);
  global.setRate(Infinity);
  await settle();
  assert.ok(waiters.every((w) => w.done && w.error === undefined));
  assert.equal(clock.pending(), 0);
  // And back to limited: the chain obeys the new global limit.
  global.setRate(64 * KIB);
  await limiter.take(64 * KIB);
  const next = track(limiter.take(32 * KIB));
  await clock.advance(499);
  assert.equal(next.done, false);
  await clock.advance(1);
  assert.equal(next.done, true);
});
