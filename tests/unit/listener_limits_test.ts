/**
 * The pieces every listener shares (`lib/net/`): the pending-connection gate (per-address
 * refusal, oldest-first eviction at the global cap, the descriptor budget), the budget's
 * reserve, and the accept and receive loops that only end when their socket is closed.
 */

import assert from "node:assert/strict";
import { DescriptorBudget, openFileLimit } from "../../lib/net/descriptor_budget.ts";
import { PendingGate, type PendingTicket } from "../../lib/net/pending_gate.ts";
import { acceptLoop } from "../../lib/net/accept_loop.ts";
import { receiveLoop } from "../../lib/net/receive_loop.ts";
import { ListenerBackoff, MAX_RETRY_DELAY_MS } from "../../lib/net/backoff.ts";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";

Deno.test("the pending gate refuses past the per-address cap and evicts the oldest at the global cap", () => {
  const evicted: string[] = [];
  const gate = new PendingGate({ maxPending: 3, maxPendingPerAddress: 2 });
  const a1 = gate.admit("10.0.0.1", () => evicted.push("a1")) as PendingTicket;
  gate.admit("10.0.0.1", () => evicted.push("a2"));
  assert.equal(gate.admit("10.0.0.1", () => evicted.push("a3")), "address");
  gate.admit("10.0.0.2", () => evicted.push("b1"));
  assert.equal(gate.size, 3);
  gate.admit("10.0.0.3", () => evicted.push("c1"));
  assert.deepEqual(evicted, ["a1"]);
  assert.equal(gate.size, 3);
  a1.release(); // already evicted: no double count
  assert.equal(gate.size, 3);
  // The evicted one freed a place of its address.
  assert.notEqual(typeof gate.admit("10.0.0.1", () => evicted.push("a4")), "string");
  assert.deepEqual(evicted, ["a1", "a2"]);
});

Deno.test("the pending gate takes a descriptor slot per connection and evicts when the budget is full", () => {
  const budget = new DescriptorBudget({ limit: 8, reserve: 4 });
  assert.equal(budget.capacity, 4);
  budget.take(2); // two established connections
  const evicted: number[] = [];
  const gate = new PendingGate({ maxPending: 100, maxPendingPerAddress: 100 }, budget);
  const t1 = gate.admit("h", () => evicted.push(1)) as PendingTicket;
  gate.admit("h", () => evicted.push(2));
  assert.equal(budget.full, true);
  gate.admit("h", () => evicted.push(3));
  assert.deepEqual(evicted, [1]);
  t1.release();
  assert.equal(budget.used, 4);
  budget.take(2); // established connections fill the budget: nothing to evict from the gate once it is empty
  const gate2 = new PendingGate({ maxPending: 10, maxPendingPerAddress: 10 }, budget);
  assert.equal(gate2.admit("x", () => {}), "descriptors");
});

Deno.test("the descriptor budget keeps a reserve and reads the process limit", () => {
  assert.equal(new DescriptorBudget({ limit: 256 }).capacity, 192);
  assert.equal(new DescriptorBudget({ limit: 1024 }).capacity, 960);
  assert.equal(new DescriptorBudget({ limit: 64 }).capacity, 32); // reserve at most half
  assert.equal(new DescriptorBudget({ limit: undefined }).capacity, Infinity);
  if (Deno.build.os === "linux") assert.ok((openFileLimit() ?? 0) > 0);
});

Deno.test("back-off grows to its cap, warns once per spell and logs the recovery", () => {
  const records: LogRecord[] = [];
  let now = 0;
  const backoff = new ListenerBackoff({
    name: "Test listener",
    category: "test",
    logger: new Logger({ level: "debug", sinks: [(r) => records.push(r)] }),
    now: () => now,
  });
  const delays = Array.from({ length: 10 }, () => backoff.failed(new Error("Too many open files")));
  assert.deepEqual(delays.slice(0, 4), [10, 20, 40, 80]);
  assert.equal(delays.at(-1), MAX_RETRY_DELAY_MS);
  assert.equal(records.filter((r) => r.level === "warn").length, 1);
  assert.match(records[0]!.message, /Test listener under pressure: Too many open files/);
  backoff.succeeded();
  assert.match(records.at(-1)!.message, /recovered after 10 failures/);
  now += 1000;
  backoff.failed(new Error("again"));
  assert.equal(records.filter((r) => r.level === "warn").length, 1, "a second warning within 10 s");
});

Deno.test("the accept loop survives a throwing handler and ends when the listener closes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  const loop = acceptLoop(listener, {
    onConnection: (conn) => {
      n++;
      if (n === 1) throw new Error("handler bug");
      conn.close();
    },
  });
  const port = listener.addr.port;
  for (let i = 0; i < 3; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    // The server closes it (the first one through the loop's own cleanup).
    const read = await c.read(new Uint8Array(1));
    assert.equal(read, null);
    c.close();
  }
  assert.equal(n, 3);
  listener.close();
  await loop;
});

Deno.test("the receive loop survives a throwing handler and ends when the socket closes", async () => {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const seen: number[] = [];
  let done!: () => void;
  const twice = new Promise<void>((r) => (done = r));
  const loop = receiveLoop(socket, {
    onPacket: (data) => {
      seen.push(data[0]!);
      if (seen.length === 2) done();
      if (data[0] === 1) throw new Error("handler bug");
    },
  });
  const to = socket.addr as Deno.NetAddr;
  await sender.send(new Uint8Array([1]), to);
  await sender.send(new Uint8Array([2]), to);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    twice,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), 5000))),
  ])
    .finally(() => clearTimeout(timer));
  assert.deepEqual(seen, [1, 2]);
  socket.close();
  sender.close();
  await loop;
});
