/**
 * Hostile input to a DHT node on loopback: a raw UDP socket sends what a broken or
 * malicious node would, and the test checks each is ignored or answered with the right
 * error, nothing is stored or added that should not be, the limits hold and the node keeps
 * serving. "No answer" is checked without sleeping: a socket's datagrams are handled in
 * order, so the first answer after junk must be the answer to a valid ping sent after it.
 */

import assert from "node:assert/strict";
import { type BEncodable, encode } from "../../lib/bencode.ts";
import { decodeKrpc, encodeKrpc, type KrpcMessage, type KrpcResponse } from "../../lib/dht/krpc.ts";
import { DhtNode, type DhtNodeOptions } from "../../lib/dht/node.ts";

const te = new TextEncoder();
const DEADLINE_MS = 5000;

class RawSocket {
  readonly conn: Deno.DatagramConn;
  readonly id = crypto.getRandomValues(new Uint8Array(20));
  readonly #queue: { data: Uint8Array; port: number }[] = [];
  #wake: (() => void) | undefined;
  readonly #loop: Promise<void>;

  constructor(hostname = "127.0.0.1") {
    const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.conn = conn;
    this.#loop = (async () => {
      try {
        for (;;) {
          const [data, from] = await conn.receive();
          this.#queue.push({ data, port: (from as Deno.NetAddr).port });
          this.#wake?.();
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource) && !(error instanceof Deno.errors.Interrupted)) {
          throw error;
        }
      }
    })();
  }

  get address(): string {
    const addr = this.conn.addr as Deno.NetAddr;
    return `${addr.hostname}:${addr.port}`;
  }

  async send(bytes: Uint8Array | string, port: number): Promise<void> {
    await this.conn.send(typeof bytes === "string" ? te.encode(bytes) : bytes, {
      transport: "udp",
      hostname: "127.0.0.1",
      port,
    });
  }

  /**
   * The next datagram (with its sender port), or a timeout error. Queries are skipped unless
   * `queries` is set: the node pings back whoever queries it, and those pings go unanswered.
   */
  async next(queries = false): Promise<{ message: KrpcMessage; raw: Uint8Array; port: number }> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      while (this.#queue.length === 0) {
        if (Date.now() > deadline) throw new Deno.errors.TimedOut("No datagram within the deadline");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      const { data, port } = this.#queue.shift()!;
      const message = decodeKrpc(data);
      if (message.y !== "q" || queries) return { message, raw: data, port };
    }
  }

  /** Pings the node and returns the first datagram that comes back (which must be the pong). */
  async pingFirst(port: number, tid = "zz"): Promise<KrpcMessage> {
    await this.send(encodeKrpc({ y: "q", t: te.encode(tid), q: "ping", id: this.id }), port);
    const { message } = await this.next();
    return message;
  }

  async close(): Promise<void> {
    this.conn.close();
    await this.#loop;
  }
}

async function withNode(
  options: DhtNodeOptions,
  use: (node: DhtNode, port: number) => Promise<void>,
): Promise<void> {
  const node = new DhtNode({ hostname: "127.0.0.1", ...options });
  try {
    const port = await node.start();
    await node.ready;
    await use(node, port);
  } finally {
    await node.close();
  }
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Deno.errors.TimedOut(`Timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function query(tid: string, q: string, a: Record<string, BEncodable>): Uint8Array {
  return encode({ t: tid, y: "q", q, a });
}

function assertPong(message: KrpcMessage, tid = "zz"): void {
  assert.equal(message.y, "r", `expected the pong, got ${JSON.stringify(message)}`);
  assert.equal(new TextDecoder().decode(message.t), tid);
}

function assertError(message: KrpcMessage, code: number, tid: string, text?: RegExp): void {
  assert.equal(message.y, "e", `expected error ${code}, got ${JSON.stringify(message)}`);
  assert.ok(message.y === "e");
  assert.equal(message.code, code);
  assert.equal(new TextDecoder().decode(message.t), tid);
  if (text) assert.match(message.message, text);
}

Deno.test("A DHT node drops datagrams that are not dictionaries or carry no transaction id", async () => {
  await withNode({}, async (node, port) => {
    const raw = new RawSocket();
    try {
      for (
        const junk of [
          "i42e",
          "l1:ae",
          "garbage",
          "",
          "d1:y1:qe", // no t
          "d1:ti5e1:y1:q1:q4:pinge", // t not a string
          `d1:t20:${"x".repeat(20)}1:y1:qe`, // t too long
          "d1:ad1:ad1:ad1:ad1:ai1eeeeee1:t2:aa1:y1:qe", // too deep
        ]
      ) await raw.send(junk, port);
      await raw.send(new Uint8Array(9000).fill(0x64), port);
      assertPong(await raw.pingFirst(port));
      assert.ok(node.stats().malformed >= 9);
      assert.equal(node.nodeCount, 0);
    } finally {
      await raw.close();
    }
  });
});

Deno.test("A DHT node answers error 203 to a message with a transaction id but no valid type or arguments", async () => {
  await withNode({}, async (_node, port) => {
    const raw = new RawSocket();
    try {
      await raw.send("d1:t2:t1e", port);
      assertError((await raw.next()).message, 203, "t1");
      await raw.send("d1:t2:t21:y1:xe", port);
      assertError((await raw.next()).message, 203, "t2");
      await raw.send(query("t3", "ping", { id: new Uint8Array(19) }), port);
      assertError((await raw.next()).message, 203, "t3");
      await raw.send(encode({ t: "t4", y: "q", q: "find_node" }), port);
      assertError((await raw.next()).message, 203, "t4");
      await raw.send(query("t5", "get_peers", { id: raw.id, info_hash: "short" }), port);
      assertError((await raw.next()).message, 203, "t5");
    } finally {
      await raw.close();
    }
  });
});

Deno.test("A DHT node answers error 204 to an unknown query", async () => {
  await withNode({}, async (_node, port) => {
    const raw = new RawSocket();
    try {
      await raw.send(query("u1", "vote", { id: raw.id }), port);
      assertError((await raw.next()).message, 204, "u1", /Method Unknown/);
      assertPong(await raw.pingFirst(port));
    } finally {
      await raw.close();
    }
  });
});

Deno.test("A DHT node ignores answers with unknown transaction ids, and adds nobody for them", async () => {
  await withNode({}, async (node, port) => {
    const raw = new RawSocket();
    try {
      for (let i = 0; i < 20; i++) {
        await raw.send(
          encodeKrpc({ y: "r", t: te.encode(`r${i}`), id: raw.id, values: ["10.0.0.1:1"] }),
          port,
        );
        await raw.send(encodeKrpc({ y: "e", t: te.encode(`e${i}`), code: 201, message: "x" }), port);
      }
      assertPong(await raw.pingFirst(port));
      assert.equal(node.stats().unexpected, 40);
      assert.equal(node.nodeCount, 0);
    } finally {
      await raw.close();
    }
  });
});

Deno.test("A DHT node takes an answer only from the address it asked", async () => {
  await withNode({}, async (node, port) => {
    const asked = new RawSocket();
    const other = new RawSocket();
    try {
      assert.ok(node.addNode(asked.address));
      const { message: ping } = await asked.next(true);
      assert.ok(ping.y === "q" && ping.q === "ping");
      await other.send(encodeKrpc({ y: "r", t: ping.t, id: other.id }), port);
      await waitFor("the forged answer to be counted", () => node.stats().unexpected === 1);
      assert.equal(node.nodeCount, 0);
      await asked.send(encodeKrpc({ y: "r", t: ping.t, id: asked.id }), port);
      await waitFor("the real answer to add the node", () => node.nodeCount === 1);
    } finally {
      await asked.close();
      await other.close();
    }
  });
});

Deno.test("A DHT node refuses truncated node lists and bad peer values in lookup answers", async () => {
  await withNode({}, async (node, port) => {
    const fake = new RawSocket();
    try {
      node.addNode(fake.address);
      const { message: ping } = await fake.next(true);
      await fake.send(encodeKrpc({ y: "r", t: ping.t, id: fake.id }), port);
      await waitFor("the fake node to be added", () => node.nodeCount === 1);
      const infoHash = crypto.getRandomValues(new Uint8Array(20));
      const lookup = node.lookup(infoHash);
      const answers: Record<string, BEncodable>[] = [
        { id: fake.id, nodes: new Uint8Array(25), values: [new Uint8Array([10, 0, 0, 1, 0, 80])] },
        { id: fake.id, token: "tk", values: [new Uint8Array([10, 0, 0, 1, 0, 80, 1])] },
      ];
      // The first get_peers gets a truncated node list; nothing else is asked of this node in this lookup.
      const { message: getPeers } = await fake.next(true);
      assert.ok(getPeers.y === "q" && getPeers.q === "get_peers");
      await fake.send(encode({ t: getPeers.t, y: "r", r: answers[0]! }), port);
      const first = await lookup;
      assert.deepEqual(first.peers, []);
      assert.equal(first.responded, 0);
      // The second lookup gets a peer value of 7 bytes.
      const second = node.lookup(infoHash);
      const { message: again } = await fake.next(true);
      assert.ok(again.y === "q");
      await fake.send(encode({ t: again.t, y: "r", r: answers[1]! }), port);
      assert.deepEqual((await second).peers, []);
      assert.ok(node.stats().malformed >= 2);
      assert.equal(node.nodeCount, 1, "a malformed answer is not a time-out: the node stays");
      assertPong(await fake.pingFirst(port));
    } finally {
      await fake.close();
    }
  });
});

Deno.test("A DHT node refuses announce_peer with a bad, foreign or expired token and stores nothing", async () => {
  let time = 1_000_000;
  await withNode({ now: () => time }, async (node, port) => {
    const raw = new RawSocket();
    const elsewhere = new RawSocket("127.0.0.2");
    try {
      const infoHash = crypto.getRandomValues(new Uint8Array(20));
      const announce = (tid: string, token: Uint8Array, extra: Record<string, BEncodable> = {}) =>
        query(tid, "announce_peer", { id: raw.id, info_hash: infoHash, port: 6881, token, ...extra });
      // Made up.
      await raw.send(announce("a1", te.encode("12345678")), port);
      assertError((await raw.next()).message, 203, "a1", /Bad token/);
      // Given to another IP address (127.0.0.2), used from 127.0.0.1.
      await elsewhere.send(query("g1", "get_peers", { id: elsewhere.id, info_hash: infoHash }), port);
      const foreign = (await elsewhere.next()).message as KrpcResponse;
      assert.ok(foreign.token);
      await raw.send(announce("a2", foreign.token), port);
      assertError((await raw.next()).message, 203, "a2", /Bad token/);
      // Our own token, but for a port out of range.
      await raw.send(query("g2", "get_peers", { id: raw.id, info_hash: infoHash }), port);
      const mine = (await raw.next()).message as KrpcResponse;
      await raw.send(announce("a3", mine.token!, { port: 0 }), port);
      assertError((await raw.next()).message, 203, "a3", /Invalid port/);
      // Expired: two rotations (10 minutes) later.
      time += 10 * 60_000 + 1;
      await raw.send(announce("a4", mine.token!), port);
      assertError((await raw.next()).message, 203, "a4", /Bad token/);
      assert.equal(node.stats().storedPeers, 0);
      await raw.send(query("g3", "get_peers", { id: raw.id, info_hash: infoHash }), port);
      const check = (await raw.next()).message as KrpcResponse;
      assert.equal(check.values, undefined, "no peer was stored");
      // A fresh token works: the test can fail.
      await raw.send(announce("a5", check.token!), port);
      assertPong((await raw.next()).message, "a5");
      assert.equal(node.stats().storedPeers, 1);
    } finally {
      await raw.close();
      await elsewhere.close();
    }
  });
});

Deno.test("A DHT node drops a flood from one address beyond its per-source limit and keeps serving others", async () => {
  let time = 1_000_000; // frozen: no refill during the flood
  await withNode({ now: () => time }, async (node, port) => {
    const flooder = new RawSocket();
    const other = new RawSocket();
    try {
      // In rounds of 25, so the kernel's receive buffer never overflows and every datagram counts.
      for (let i = 0; i < 500; i++) {
        await flooder.send(encodeKrpc({ y: "q", t: te.encode(`f${i}`), q: "ping", id: flooder.id }), port);
        if (i % 25 === 24) {
          await waitFor(
            "the flood to be handled",
            () => node.stats().queriesIn + node.stats().rateLimited > i,
          );
        }
      }
      assert.equal(node.stats().queriesIn, 50, "the burst of 50 was answered");
      assert.equal(node.stats().rateLimited, 450);
      assertPong(await other.pingFirst(port), "zz");
      time += 1000; // one second: 20 more
      let answered = 0;
      await flooder.send(encodeKrpc({ y: "q", t: te.encode("last"), q: "ping", id: flooder.id }), port);
      for (;;) {
        const { message } = await flooder.next();
        if (new TextDecoder().decode(message.t) === "last") break;
        answered++;
      }
      assert.equal(answered, 50);
    } finally {
      await flooder.close();
      await other.close();
    }
  });
});

Deno.test("A DHT node caps the info-hashes one address may announce", async () => {
  await withNode({ rateLimits: { perSourceBurst: 10_000 } }, async (node, port) => {
    const raw = new RawSocket();
    try {
      await raw.send(query("g", "get_peers", { id: raw.id, info_hash: new Uint8Array(20) }), port);
      const token = ((await raw.next()).message as KrpcResponse).token!;
      let stored = 0;
      let refused = 0;
      for (let i = 0; i < 100; i++) {
        const infoHash = new Uint8Array(20);
        infoHash[0] = i;
        await raw.send(
          query(`a${i}`, "announce_peer", { id: raw.id, info_hash: infoHash, port: 6881, token }),
          port,
        );
        const { message } = await raw.next();
        if (message.y === "r") stored++;
        else if (message.y === "e" && message.code === 202) refused++;
      }
      assert.equal(stored, 64);
      assert.equal(refused, 36);
      assert.equal(node.stats().infoHashes, 64);
    } finally {
      await raw.close();
    }
  });
});

Deno.test("A DHT node never sends more than its outgoing budget", async () => {
  const time = 1_000_000;
  await withNode(
    { now: () => time, rateLimits: { outgoingBurst: 1000, outgoingBytesPerSecond: 1 } },
    async (node, port) => {
      const sockets = Array.from({ length: 30 }, () => new RawSocket());
      try {
        for (const s of sockets) await s.send(query("fn", "find_node", { id: s.id, target: s.id }), port);
        await waitFor("every query to be handled", () => node.stats().queriesIn === 30);
        const { answersOut, bytesOut, overBudget } = node.stats();
        assert.ok(answersOut > 0 && answersOut < 30, `${answersOut} of 30 answered`);
        assert.ok(overBudget >= 30 - answersOut, "the others were held back");
        assert.ok(bytesOut <= 1000, `${bytesOut} bytes sent`);
      } finally {
        for (const s of sockets) await s.close();
      }
    },
  );
});

Deno.test("A DHT node's answers are not much larger than the queries, get_peers values capped", async () => {
  await withNode({ rateLimits: { perSourceBurst: 10_000 } }, async (node, port) => {
    const raw = new RawSocket();
    const neighbours: DhtNode[] = [];
    try {
      // Fill the table, so find_node answers carry 8 nodes.
      for (let i = 0; i < 10; i++) {
        const n = new DhtNode({ hostname: "127.0.0.1", bootstrap: [`127.0.0.1:${port}`] });
        neighbours.push(n);
        await n.start();
        await n.ready;
      }
      await waitFor("the table to fill", () => node.nodeCount >= 8);
      const infoHash = crypto.getRandomValues(new Uint8Array(20));
      await raw.send(query("g", "get_peers", { id: raw.id, info_hash: infoHash }), port);
      const token = ((await raw.next()).message as KrpcResponse).token!;
      for (let p = 1; p <= 150; p++) {
        await raw.send(
          query(`a${p}`, "announce_peer", { id: raw.id, info_hash: infoHash, port: p, token }),
          port,
        );
        await raw.next();
      }
      assert.equal(node.stats().storedPeers, 150);
      const sizes: Record<string, [number, number]> = {};
      for (
        const [name, q] of [
          ["ping", query("p", "ping", { id: raw.id })],
          ["find_node", query("f", "find_node", { id: raw.id, target: infoHash })],
          ["get_peers", query("g", "get_peers", { id: raw.id, info_hash: infoHash })],
        ] as const
      ) {
        await raw.send(q, port);
        const { message, raw: answer } = await raw.next();
        assert.equal(message.y, "r");
        sizes[name] = [q.length, answer.length];
        if (name === "find_node") assert.equal((message as KrpcResponse).nodes?.length, 8);
        if (name === "get_peers") {
          assert.equal((message as KrpcResponse).values?.length, 50, "values capped at 50");
        }
      }
      assert.ok(sizes.ping![1] <= 2 * sizes.ping![0], `ping ${sizes.ping}`);
      assert.ok(sizes.find_node![1] <= 4 * sizes.find_node![0], `find_node ${sizes.find_node}`);
      assert.ok(sizes.get_peers![1] <= 800, `get_peers ${sizes.get_peers}`);
    } finally {
      await raw.close();
      await Promise.all(neighbours.map((n) => n.close()));
    }
  });
});
