/**
 * The hardened HTTP/1.1 server (`lib/http/server.ts`), driven over real loopback sockets
 * with hand-written bytes: parsing at every split, the head and body caps, the deadlines,
 * keep-alive and pipelining, malformed requests, handler failures, streamed bodies, clients
 * that go away, and the connection caps.
 */

import assert from "node:assert/strict";
import { HttpServer, type HttpServerOptions } from "../../lib/http/server.ts";
import type { HttpHandler } from "../../lib/http/server.ts";
import { DescriptorBudget } from "../../lib/net/descriptor_budget.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** An echo handler: method, path, body. */
const echo: HttpHandler = async (request) => {
  const url = new URL(request.url);
  const body = request.body ? await request.text() : "";
  return new Response(`${request.method} ${url.pathname}${url.search} [${body}]`, {
    headers: { "x-test": "yes" },
  });
};

function start(
  handler: HttpHandler = echo,
  options: HttpServerOptions = {},
): { server: HttpServer; port: number } {
  const server = new HttpServer(handler, {
    hostname: "127.0.0.1",
    descriptorBudget: new DescriptorBudget({ limit: undefined }),
    ...options,
  });
  return { server, port: server.listen().port };
}

/** A parsed response. */
interface Parsed {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** A raw client: writes bytes, parses responses, sees the close. */
class RawClient {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #closed = false;
  #reader: ReadableStreamDefaultReader<Uint8Array>;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    conn.setNoDelay(true);
    this.#reader = conn.readable.getReader();
  }

  static async open(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  async #fill(deadline: number): Promise<boolean> {
    if (this.#closed) return false;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("Timed out waiting for the server");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left)));
    const result = await Promise.race([this.#reader.read().catch(() => ({ done: true as const })), timeout]);
    clearTimeout(timer);
    if (result === "timeout") throw new Error("Timed out waiting for the server");
    if (result.done) {
      this.#closed = true;
      return false;
    }
    const next = new Uint8Array(this.#buffer.length + result.value.length);
    next.set(this.#buffer);
    next.set(result.value, this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  /** Reads one response (Content-Length, chunked, or up to the close). */
  async response(timeoutMs = 5_000, head = false): Promise<Parsed> {
    const deadline = Date.now() + timeoutMs;
    let headEnd: number;
    while ((headEnd = dec.decode(this.#buffer).indexOf("\r\n\r\n")) < 0) {
      if (!(await this.#fill(deadline))) {
        throw new Error(`Closed before a response: ${dec.decode(this.#buffer)}`);
      }
    }
    const lines = dec.decode(this.#buffer.subarray(0, headEnd)).split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
    }
    let rest = this.#buffer.subarray(headEnd + 4);
    let body = "";
    if (head) {
      // A HEAD answer has no body, whatever its headers say.
    } else if (headers.has("content-length")) {
      const n = Number(headers.get("content-length"));
      while (rest.length < n) {
        this.#buffer = rest;
        if (!(await this.#fill(deadline))) throw new Error("Closed inside a body");
        rest = this.#buffer;
      }
      body = dec.decode(rest.subarray(0, n));
      rest = rest.subarray(n);
    } else if (headers.get("transfer-encoding") === "chunked") {
      for (;;) {
        let line: number;
        while ((line = rest.indexOf(10)) < 0) {
          this.#buffer = rest;
          if (!(await this.#fill(deadline))) throw new Error("Closed inside a chunk size");
          rest = this.#buffer;
        }
        const size = parseInt(dec.decode(rest.subarray(0, line)), 16);
        while (rest.length < line + 1 + size + 2) {
          this.#buffer = rest;
          if (!(await this.#fill(deadline))) throw new Error("Closed inside a chunk");
          rest = this.#buffer;
        }
        body += dec.decode(rest.subarray(line + 1, line + 1 + size));
        rest = rest.subarray(line + 1 + size + 2);
        if (size === 0) break;
      }
    } else if (status !== 204 && status !== 304) {
      this.#buffer = rest;
      while (await this.#fill(deadline));
      rest = this.#buffer;
      body = dec.decode(rest);
      rest = new Uint8Array(0);
    }
    this.#buffer = rest;
    return { status, headers, body };
  }

  /** Resolves true once the server has closed the connection (false at the deadline). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    try {
      while (await this.#fill(deadline));
      return true;
    } catch (error) {
      if ((error as Error).message.startsWith("Timed out")) return false;
      throw error;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch (error) {
      // The server may have closed it first.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

Deno.test("a request split at every byte is parsed the same as one sent whole", async () => {
  const { server, port } = start();
  try {
    const request = "POST /p?q=%01 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello";
    for (let split = 1; split < request.length; split++) {
      const client = await RawClient.open(port);
      try {
        await client.send(request.slice(0, split));
        await sleep(2);
        await client.send(request.slice(split));
        const r = await client.response();
        assert.deepEqual([r.status, r.body], [200, "POST /p?q=%01 [hello]"], `split at ${split}`);
      } finally {
        client.close();
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("a chunked request body is decoded, split anywhere", async () => {
  const { server, port } = start();
  try {
    const request = "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
    for (const split of [10, 60, 64, 70, 75, request.length - 1]) {
      const client = await RawClient.open(port);
      try {
        await client.send(request.slice(0, split));
        await sleep(2);
        await client.send(request.slice(split));
        assert.deepEqual((await client.response()).body, "PUT /c [abcde]");
      } finally {
        client.close();
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("a request head over the byte cap gets 431 and the connection is closed", async () => {
  const { server, port } = start(echo, { limits: { maxHeaderBytes: 1024 } });
  const client = await RawClient.open(port);
  try {
    await client.send(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`);
    const r = await client.response();
    assert.deepEqual(r.status, 431);
    assert.deepEqual(r.headers.get("connection"), "close");
    assert(await client.closedWithin(2_000));
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("a head that never ends is cut at the byte cap with 431 (not buffered without bound)", async () => {
  const { server, port } = start(echo, { limits: { maxHeaderBytes: 1024 } });
  const client = await RawClient.open(port);
  try {
    await client.send("GET / HTTP/1.1\r\nX-Long: ");
    for (let i = 0; i < 10; i++) await client.send("b".repeat(200));
    assert.deepEqual((await client.response()).status, 431);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("too many header fields get 431", async () => {
  const { server, port } = start(echo, { limits: { maxHeaderCount: 10 } });
  const client = await RawClient.open(port);
  try {
    const fields = Array.from({ length: 11 }, (_, i) => `X-${i}: v\r\n`).join("");
    await client.send(`GET / HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
    assert.deepEqual((await client.response()).status, 431);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("a half-sent request is answered 408 and closed at the header deadline", async () => {
  const { server, port } = start(echo, { limits: { headerTimeoutMs: 300 } });
  const half = await RawClient.open(port);
  const silent = await RawClient.open(port);
  try {
    const started = Date.now();
    await half.send("GET /announce HTTP/1.1\r\nHost: x\r\nUser-Agent: slow");
    const r = await half.response(3_000);
    assert.deepEqual(r.status, 408);
    assert(await half.closedWithin(2_000));
    const waited = Date.now() - started;
    assert(waited >= 250 && waited < 2_000, `closed after ${waited} ms`);
    // A connection that never sent a byte is closed without an answer.
    assert(await silent.closedWithin(2_000));
    assert.deepEqual(server.stats.connections, 0);
    assert(server.stats.timeouts >= 2);
  } finally {
    half.close();
    silent.close();
    await server.close();
  }
});

Deno.test("a slow body is cut at the body deadline with 408", async () => {
  const { server, port } = start(echo, { limits: { bodyTimeoutMs: 300 } });
  const client = await RawClient.open(port);
  try {
    await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    assert.deepEqual((await client.response(3_000)).status, 408);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("a body over the cap gets 413, by Content-Length or chunked", async () => {
  let called = 0;
  const { server, port } = start((r) => {
    called++;
    return echo(r, undefined as never);
  }, { limits: { maxBodyBytes: 100 } });
  try {
    const a = await RawClient.open(port);
    await a.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    assert.deepEqual((await a.response()).status, 413);
    a.close();
    const b = await RawClient.open(port);
    await b.send(
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n${"x".repeat(64)}\r\n`,
    );
    await b.send(`40\r\n${"y".repeat(64)}\r\n0\r\n\r\n`);
    assert.deepEqual((await b.response()).status, 413);
    b.close();
    const c = await RawClient.open(port);
    await c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${"z".repeat(100)}`);
    assert.deepEqual((await c.response()).status, 200);
    c.close();
    assert.deepEqual(called, 1);
  } finally {
    await server.close();
  }
});

Deno.test("keep-alive serves several requests on one connection, then the idle deadline closes it", async () => {
  const { server, port } = start(echo, { limits: { idleTimeoutMs: 300 } });
  const client = await RawClient.open(port);
  try {
    for (const path of ["/1", "/2", "/3"]) {
      await client.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await client.response();
      assert.deepEqual(r.body, `GET ${path} []`);
      assert.deepEqual(r.headers.get("connection"), undefined);
    }
    assert.deepEqual(server.stats.connections, 1);
    assert(await client.closedWithin(2_000), "idle connection was not closed");
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("pipelined requests are answered in order", async () => {
  const { server, port } = start(async (request) => {
    const path = new URL(request.url).pathname;
    // The first takes longest: answers must still come in request order.
    await sleep(path === "/a" ? 50 : 0);
    return new Response(path);
  });
  const client = await RawClient.open(port);
  try {
    await client.send(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    const bodies = [];
    for (let i = 0; i < 4; i++) bodies.push((await client.response()).body);
    assert.deepEqual(bodies, ["/a", "/b", "/c", "/d"]);
    assert(await client.closedWithin(2_000));
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("the per-connection request cap closes the connection after the last one", async () => {
  const { server, port } = start(echo, { limits: { maxRequestsPerConnection: 2 } });
  const client = await RawClient.open(port);
  try {
    await client.send(
      "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
    );
    assert.deepEqual((await client.response()).headers.get("connection"), undefined);
    assert.deepEqual((await client.response()).headers.get("connection"), "close");
    assert(await client.closedWithin(2_000));
    assert.deepEqual(server.stats.requests, 2);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("malformed requests get 400 (or 501, 505) and never reach the handler", async () => {
  let called = 0;
  const { server, port } = start(() => {
    called++;
    return new Response("no");
  });
  const cases: [string, number][] = [
    ["GET /\r\n\r\n", 400],
    ["GET  / HTTP/1.1\r\n\r\n", 400],
    ["G@T / HTTP/1.1\r\n\r\n", 400],
    ["GET / FOO/1.1\r\n\r\n", 400],
    ["GET / HTTP/2.0\r\n\r\n", 505],
    ["GET /a b HTTP/1.1\r\n\r\n", 400],
    ["GET \x01 HTTP/1.1\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400],
    ["POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501],
    ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400],
    ["GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400],
    ["GET * HTTP/1.1\r\n\r\n", 400],
  ];
  try {
    for (const [request, status] of cases) {
      const client = await RawClient.open(port);
      try {
        await client.send(request);
        const r = await client.response();
        assert.deepEqual(r.status, status, JSON.stringify(request));
        assert(await client.closedWithin(2_000), `not closed after ${JSON.stringify(request)}`);
      } finally {
        client.close();
      }
    }
    assert.deepEqual(called, 0);
    // Still serving.
    const ok = await fetch(`http://127.0.0.1:${port}/`);
    assert.deepEqual(await ok.text(), "no");
  } finally {
    await server.close();
  }
});

Deno.test("a handler that throws gets a 500 and the server keeps serving", async () => {
  const { server, port } = start((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/throw") throw new Error("boom");
    if (path === "/reject") return Promise.reject(new Error("async boom"));
    if (path === "/not-a-response") return "text" as unknown as Response;
    return new Response("fine");
  });
  const client = await RawClient.open(port);
  try {
    for (const path of ["/throw", "/reject", "/not-a-response", "/ok"]) {
      await client.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await client.response();
      assert.deepEqual(r.status, path === "/ok" ? 200 : 500, path);
    }
    assert.deepEqual(server.stats.handlerErrors, 3);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("a streaming response body is sent chunked as it comes (Server-Sent Events)", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { server, port } = start(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(enc.encode("data: first\n\n"));
          await released;
          controller.enqueue(enc.encode("data: second\n\n"));
          controller.close();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    )
  );
  try {
    const response = await fetch(`http://127.0.0.1:${port}/events`);
    assert.deepEqual(response.headers.get("transfer-encoding"), "chunked");
    assert.deepEqual(response.headers.get("content-type"), "text/event-stream");
    const reader = response.body!.getReader();
    // The first event arrives while the handler's stream is still open.
    const first = await reader.read();
    assert.deepEqual(dec.decode(first.value), "data: first\n\n");
    release();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += dec.decode(value);
    }
    assert.deepEqual(rest, "data: second\n\n");
    // A fixed body goes out with a length instead.
    const fixed = await RawClient.open(port);
    await fixed.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    fixed.close();
  } finally {
    await server.close();
  }
});

Deno.test("a fixed body gets Content-Length; HEAD gets headers only; HTTP/1.0 is answered and closed", async () => {
  const { server, port } = start(() => new Response("twelve bytes", { headers: { "content-length": "12" } }));
  try {
    const a = await RawClient.open(port);
    await a.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    const got = await a.response();
    assert.deepEqual([got.headers.get("content-length"), got.body], ["12", "twelve bytes"]);
    const head = await a.response(5_000, true);
    assert.deepEqual([head.status, head.headers.get("content-length"), head.body], [200, "12", ""]);
    a.close();
    const b = await RawClient.open(port);
    await b.send("GET / HTTP/1.0\r\n\r\n");
    const old = await b.response();
    assert.deepEqual([old.status, old.headers.get("connection"), old.body], [200, "close", "twelve bytes"]);
    assert(await b.closedWithin(2_000));
    b.close();
  } finally {
    await server.close();
  }
});

Deno.test("a client that disconnects mid-response aborts the request and cancels the body", async () => {
  let cancelled!: () => void;
  const wasCancelled = new Promise<void>((r) => (cancelled = r));
  let aborted!: () => void;
  const wasAborted = new Promise<void>((r) => (aborted = r));
  const { server, port } = start((request) => {
    request.signal.addEventListener("abort", () => aborted(), { once: true });
    let n = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          await sleep(10);
          controller.enqueue(enc.encode(`data: ${n++}\n\n`));
        },
        cancel() {
          cancelled();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  const client = await RawClient.open(port);
  try {
    await client.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    await client.closedWithin(100); // read a little of the stream
    client.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("not cancelled within 5 s")), 5_000);
    });
    await Promise.race([Promise.all([wasCancelled, wasAborted]), deadline]).finally(() =>
      clearTimeout(timer)
    );
    // And the server still serves.
    assert.deepEqual(
      await fetch(`http://127.0.0.1:${port}/`).then((r) => r.body?.cancel(), () => "failed"),
      undefined,
    );
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("connections past the per-address cap are refused; at the global cap the oldest waiting one is evicted", async () => {
  const { server, port } = start(echo, { limits: { maxConnectionsPerAddress: 3, maxConnections: 100 } });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 3; i++) clients.push(await RawClient.open(port));
    const fourth = await RawClient.open(port);
    clients.push(fourth);
    assert(await fourth.closedWithin(2_000), "the fourth connection from one address was not refused");
    await clients[0]!.send("GET /still HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.deepEqual((await clients[0]!.response()).body, "GET /still []");
    assert(server.stats.refused >= 1);
  } finally {
    for (const c of clients) c.close();
    await server.close();
  }
  const global = start(echo, { limits: { maxConnections: 3 } });
  const held: RawClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      held.push(await RawClient.open(global.port));
      await sleep(20); // admission order is connection order
    }
    const newest = await RawClient.open(global.port);
    held.push(newest);
    assert(await held[0]!.closedWithin(2_000), "the oldest waiting connection was not evicted");
    await newest.send("GET /new HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.deepEqual((await newest.response()).body, "GET /new []");
    assert.deepEqual(global.server.stats.evicted, 1);
  } finally {
    for (const c of held) c.close();
    await global.server.close();
  }
});

Deno.test("a connection being answered is not evicted; with none waiting a new one is refused", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { server, port } = start(async () => {
    await released;
    return new Response("done");
  }, { limits: { maxConnections: 1 } });
  const busy = await RawClient.open(port);
  try {
    await busy.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await sleep(50);
    const extra = await RawClient.open(port);
    assert(await extra.closedWithin(2_000), "the new connection was not refused");
    extra.close();
    release();
    assert.deepEqual((await busy.response()).body, "done");
  } finally {
    busy.close();
    await server.close();
  }
});

Deno.test("close() ends streaming answers and waits for every connection", async () => {
  const { server, port } = start(() =>
    new Response(new ReadableStream({ pull: () => sleep(20) }), {
      headers: { "content-type": "text/event-stream" },
    })
  );
  const client = await RawClient.open(port);
  try {
    await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await sleep(50);
    await server.close();
    assert.deepEqual(server.stats.connections, 0);
    assert(await client.closedWithin(2_000));
  } finally {
    client.close();
  }
  assert.match(String(server.stats.requests), /^1$/);
});
