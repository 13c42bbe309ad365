import assert from "node:assert/strict";
import { MemoryNetwork } from "../../lib/net/memory_transport.ts";
import { tcpTransport } from "../../lib/net/tcp_transport.ts";
import { bindListener } from "../../lib/net/bind_listener.ts";
import { ShoalError } from "../../lib/errors.ts";
import type { Transport, TransportConnection, TransportListener } from "../../lib/types.ts";

// One contract, run against each transport: TCP on 127.0.0.1 and the in-memory network.
interface Case {
  name: string;
  make(): { dialer: Transport; server: Transport; host: string; unused: string };
}
const CASES: Case[] = [
  {
    name: "tcp",
    make: () => ({
      dialer: tcpTransport(),
      server: tcpTransport(),
      host: "127.0.0.1",
      unused: "127.0.0.1:1",
    }),
  },
  {
    name: "memory",
    make: () => {
      const net = new MemoryNetwork({ seed: 3 });
      return {
        dialer: net.host("10.0.0.1"),
        server: net.host("10.0.0.2"),
        host: "10.0.0.2",
        unused: "10.0.0.9:6881",
      };
    },
  },
];

async function firstAccepted(listener: TransportListener): Promise<TransportConnection> {
  for await (const conn of listener) return conn;
  throw new Error("The listener ended before a connection came");
}

async function readAll(conn: TransportConnection): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of conn.readable) parts.push(chunk.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

for (const c of CASES) {
  Deno.test(`transport ${c.name}: bytes cross in order; close ends the other side's stream`, async () => {
    const { dialer, server, host } = c.make();
    const listener = server.listen({ hostname: host, port: 0 });
    try {
      const accepting = firstAccepted(listener);
      const client = await dialer.connect(`${host}:${listener.port}`, AbortSignal.timeout(5000));
      const accepted = await accepting;
      assert.equal(client.remoteAddress, `${host}:${listener.port}`);
      assert.match(accepted.remoteAddress, /^[\d.]+:\d+$/);
      assert.equal(client.reusableWrites, true);
      const payload = new Uint8Array(200_000).map((_, i) => i * 7);
      const writer = client.writable.getWriter();
      for (let at = 0; at < payload.length; at += 16384) await writer.write(payload.subarray(at, at + 16384));
      writer.releaseLock();
      const reading = readAll(accepted);
      await new Promise((resolve) => setTimeout(resolve, 50));
      client.close();
      assert.deepEqual(await reading, payload);
      accepted.close();
      accepted.close(); // twice: no throw
    } finally {
      listener.close();
    }
  });

  Deno.test(`transport ${c.name}: a dial to nobody is refused; an aborted dial rejects with the reason`, async () => {
    const { dialer, unused, host, server } = c.make();
    await assert.rejects(dialer.connect(unused, AbortSignal.timeout(5000)));
    const listener = server.listen({ hostname: host, port: 0 });
    try {
      const abort = new AbortController();
      abort.abort(new Error("given up"));
      await assert.rejects(dialer.connect(`${host}:${listener.port}`, abort.signal), /given up/);
    } finally {
      listener.close();
    }
  });

  Deno.test(`transport ${c.name}: a port in use is a LISTEN error; a closed listener ends its iteration`, async () => {
    const { server, host } = c.make();
    const listener = server.listen({ hostname: host, port: 0 });
    assert.throws(
      () => bindListener(server, host, listener.port),
      (e) => e instanceof ShoalError && e.code === "LISTEN",
    );
    listener.close();
    assert.equal(await Array.fromAsync(listener).then((a) => a.length), 0);
  });
}

Deno.test("memory transport: latency and bandwidth set the delivery time", async () => {
  const net = new MemoryNetwork({ seed: 1 });
  const a = net.host("10.0.0.1", { latencyMs: 10 });
  const b = net.host("10.0.0.2", { latencyMs: 10, bandwidth: 100_000 });
  const listener = b.listen({ hostname: "::", port: 7000 });
  assert.equal(listener.hostname, "10.0.0.2");
  const started = performance.now();
  const client = await a.connect("10.0.0.2:7000", AbortSignal.timeout(2000));
  assert.ok(performance.now() - started >= 38, "a dial takes one round trip (40 ms)");
  const accepted = await firstAccepted(listener);
  const sent = performance.now();
  const writer = client.writable.getWriter();
  await writer.write(new Uint8Array(20_000)); // 200 ms through b's 100 kB/s link
  writer.releaseLock();
  const reader = accepted.readable.getReader();
  let got = 0;
  while (got < 20_000) got += (await reader.read()).value!.length;
  const took = performance.now() - sent;
  assert.ok(took >= 215, `20 kB arrived after ${took} ms, expected 20 ms crossing + 200 ms`);
  client.close();
  accepted.close();
  listener.close();
  assert.equal(net.openEnds, 0);
});

Deno.test("memory transport: loss stalls a stream (retransmission) but loses no byte, the same way for a seed", async () => {
  async function run(seed: number): Promise<number> {
    const net = new MemoryNetwork({ seed, link: { latencyMs: 1, loss: 0.3 }, retransmitMs: 5 });
    const listener = net.host("10.0.0.2").listen({ hostname: "10.0.0.2", port: 1 });
    const client = await net.host("10.0.0.1").connect("10.0.0.2:1", AbortSignal.timeout(2000));
    const accepted = await firstAccepted(listener);
    const writer = client.writable.getWriter();
    for (let i = 0; i < 40; i++) await writer.write(new Uint8Array([i]));
    writer.releaseLock();
    client.close();
    const bytes = await readAll(accepted);
    assert.deepEqual([...bytes], [...Array(40).keys()]);
    accepted.close();
    listener.close();
    return net.random();
  }
  assert.equal(await run(5), await run(5), "the same seed draws the same losses");
});
