import assert from "node:assert/strict";
import { join } from "node:path";
import { Session } from "../../mod.ts";
import {
  sessionBackend,
  TransmissionRpcServer,
  type TransmissionRpcServerOptions,
} from "../../lib/rpc/mod.ts";
import { withDeadline } from "../_fake_peer.ts";

// The Transmission RPC endpoint through real HTTP on 127.0.0.1: the handshake, auth, the login
// limit, the Host check, body caps and Transmission's error shape. Each test starts its own
// session and server and stops them.

const LOOPBACK = { bind: "127.0.0.1", trackers: false, lsd: false, dht: false } as const;
const FIXTURE = new URL("../../fixtures/valid/02_multi_file_nested.torrent", import.meta.url);

interface Rig extends AsyncDisposable {
  url: string;
  server: TransmissionRpcServer;
  dir: string;
}

async function rig(options: TransmissionRpcServerOptions = {}): Promise<Rig> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-rpc-" });
  const session = new Session({ ...LOOPBACK, downloadDir: dir });
  const server = new TransmissionRpcServer(sessionBackend(session, { downloadDir: dir }), options);
  const { port } = server.listen();
  return {
    url: `http://127.0.0.1:${port}/transmission/rpc`,
    server,
    dir,
    async [Symbol.asyncDispose]() {
      await server.close();
      await session.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return withDeadline(fetch(url, { method: "POST", body, headers }), 10_000, "an RPC answer");
}

async function call(
  r: Rig,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const response = await post(r.url, text, { "x-transmission-session-id": r.server.sessionId, ...headers });
  assert.equal(response.status, 200);
  return await response.json() as Record<string, unknown>;
}

/** One raw request (fetch does not let a test set Host). */
async function raw(port: number, request: string): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const reader = conn.readable.getReader();
    await withDeadline(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
          const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
          const length = /content-length: (\d+)/i.exec(text)?.[1];
          const head = text.indexOf("\r\n\r\n");
          if (length !== undefined && head >= 0 && text.length >= head + 4 + Number(length)) break;
        }
      })(),
      10_000,
      "a raw answer",
    );
    reader.releaseLock();
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), text };
  } finally {
    conn.close();
  }
}

Deno.test("a request without the session id gets 409 with the id; the retry with it succeeds", async () => {
  await using r = await rig();
  const first = await post(r.url, JSON.stringify({ method: "session-get", tag: 1 }));
  assert.equal(first.status, 409);
  const id = first.headers.get("x-transmission-session-id");
  assert.ok(id !== null && id.length >= 32, "a long random id");
  assert.match(await first.text(), /X-Transmission-Session-Id/);
  const wrong = await post(r.url, "{}", { "x-transmission-session-id": "nope" });
  assert.equal(wrong.status, 409);
  await wrong.body?.cancel();
  const retry = await post(r.url, JSON.stringify({ method: "session-get", tag: 1 }), {
    "x-transmission-session-id": id,
  });
  assert.equal(retry.status, 200);
  const body = await retry.json();
  assert.equal(body.result, "success");
  assert.equal(body.tag, 1);
  assert.equal(body.arguments["rpc-version"], 17);
  assert.equal(body.arguments["rpc-version-minimum"], 14);
  assert.match(body.arguments.version, /\(shoal\)$/);
  assert.equal(body.arguments["download-dir"], r.dir);
  assert.equal(body.arguments["session-id"], id);
});

Deno.test("GET on the RPC path is 405 once the id is right, other paths 404", async () => {
  await using r = await rig();
  const get = await fetch(r.url, { headers: { "x-transmission-session-id": r.server.sessionId } });
  assert.equal(get.status, 405);
  await get.body?.cancel();
  const web = await fetch(r.url.replace("/rpc", "/web/"));
  assert.equal(web.status, 404);
  await web.body?.cancel();
});

Deno.test("with a password, a missing or wrong login gets 401 and WWW-Authenticate; the right one passes", async () => {
  await using r = await rig({ username: "user", password: "pass" });
  const none = await post(r.url, "{}");
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), 'Basic realm="Transmission"');
  await none.body?.cancel();
  const wrong = await post(r.url, "{}", { authorization: `Basic ${btoa("user:bad")}` });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const auth = { authorization: `Basic ${btoa("user:pass")}` };
  const ok = await call(r, { method: "session-stats" }, auth);
  assert.equal(ok.result, "success");
});

Deno.test("failed logins are limited per address: after N failures even the right password waits (429)", async () => {
  await using r = await rig({
    username: "u",
    password: "p",
    loginLimits: { maxFailures: 3, windowMs: 60_000 },
  });
  for (let i = 0; i < 3; i++) {
    const response = await post(r.url, "{}", { authorization: `Basic ${btoa(`u:guess${i}`)}` });
    assert.equal(response.status, 401);
    await response.body?.cancel();
  }
  const blocked = await post(r.url, "{}", { authorization: `Basic ${btoa("u:p")}` });
  assert.equal(blocked.status, 429);
  assert.ok(Number(blocked.headers.get("retry-after")) > 0);
  await blocked.body?.cancel();
});

Deno.test("the Host check refuses a name not allowed (421) and accepts IPs, localhost and the allow-list", async () => {
  await using r = await rig({ hostAllowList: ["nas.lan"] });
  const port = r.server.addr.port;
  const request = (host: string) =>
    `POST /transmission/rpc HTTP/1.1\r\nHost: ${host}\r\nX-Transmission-Session-Id: ${r.server.sessionId}\r\n` +
    `Content-Length: 24\r\nConnection: close\r\n\r\n{"method":"session-get"}`;
  const evil = await raw(port, request("evil.example:9091"));
  assert.equal(evil.status, 421);
  assert.match(evil.text, /hostname was unrecognized/);
  for (const host of [`127.0.0.1:${port}`, "localhost:9091", "[::1]:9091", "nas.lan:9091", "192.168.1.9"]) {
    assert.equal((await raw(port, request(host))).status, 200, host);
  }
});

Deno.test("the Host check is off when a password is required, as in Transmission", async () => {
  await using r = await rig({ username: "u", password: "p" });
  const answer = await raw(
    r.server.addr.port,
    `POST /transmission/rpc HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Basic ${btoa("u:p")}\r\n` +
      `Content-Length: 2\r\nConnection: close\r\n\r\n{}`,
  );
  assert.equal(answer.status, 409);
});

Deno.test("an oversized body gets 413", async () => {
  await using r = await rig({ limits: { maxBodyBytes: 1024 } });
  const response = await post(r.url, "x".repeat(4096), { "x-transmission-session-id": r.server.sessionId });
  assert.equal(response.status, 413);
  await response.body?.cancel();
});

Deno.test("malformed JSON, unknown methods and bad arguments answer Transmission's error shape", async () => {
  await using r = await rig();
  const cases: [unknown, RegExp][] = [
    ["{bad", /^no method name/],
    ["[1,2]", /^no method name/],
    [{ arguments: {} }, /^no method name$/],
    [{ method: "nope", tag: 5 }, /^method name not recognized$/],
    [{ method: "torrent-get", arguments: { fields: ["id"], ids: "foo" } }, /invalid "ids"/],
    [{ method: "torrent-get", arguments: { fields: ["id"], ids: [1.5] } }, /invalid "ids"/],
    [{ method: "torrent-get", arguments: {} }, /^no fields specified$/],
    [{ method: "torrent-get", arguments: { fields: "id" } }, /"fields" must be a list of strings/],
    [{ method: "torrent-add", arguments: { metainfo: "!!!" } }, /invalid or corrupt torrent file/],
    [
      { method: "torrent-add", arguments: { metainfo: btoa("d4:spam4:eggse") } },
      /invalid or corrupt torrent file/,
    ],
    [{ method: "torrent-add", arguments: { filename: "/etc/passwd" } }, /outside the folders/],
    [{ method: "free-space", arguments: { path: "/etc" } }, /outside the folders/],
    [{ method: "session-set", arguments: { "peer-port": 1 } }, /not supported/],
    [{ method: "session-set", arguments: { "speed-limit-down": "fast" } }, /must be a number/],
    [{ method: "torrent-rename-path", arguments: { ids: [1], path: "a", name: "b" } }, /exactly one torrent/],
    [{ method: "port-test" }, /not supported/],
    [{ method: "torrent-get", arguments: "x" }, /"arguments" must be an object/],
  ];
  for (const [body, expected] of cases) {
    const answer = await call(r, body);
    assert.match(String(answer.result), expected, JSON.stringify(body));
    assert.deepEqual(answer.arguments, {});
  }
  assert.equal((await call(r, { method: "nope", tag: 5 })).tag, 5);
});

Deno.test("torrent-add, torrent-get (objects, table, recently-active), torrent-set and torrent-remove", async () => {
  await using r = await rig();
  const metainfo = (await Deno.readFile(FIXTURE)).toBase64();
  const added = await call(r, { method: "torrent-add", arguments: { metainfo, paused: true } });
  assert.equal(added.result, "success");
  const entry =
    (added.arguments as Record<string, { id: number; name: string; hashString: string }>)["torrent-added"]!;
  assert.equal(entry.name, "album");
  assert.match(entry.hashString, /^[0-9a-f]{40}$/);
  const duplicate = await call(r, { method: "torrent-add", arguments: { metainfo } });
  assert.deepEqual((duplicate.arguments as Record<string, unknown>)["torrent-duplicate"], entry);

  const get = await call(r, {
    method: "torrent-get",
    arguments: {
      ids: [entry.hashString],
      fields: ["id", "name", "totalSize", "files", "wanted", "priorities"],
    },
  });
  const [torrent] = (get.arguments as { torrents: Record<string, unknown>[] }).torrents;
  assert.equal(torrent!.id, entry.id);
  assert.equal(torrent!.totalSize, 35_100);
  assert.equal((torrent!.files as unknown[]).length, 4);
  assert.deepEqual(torrent!.wanted, [1, 1, 1, 1]);

  const table = await call(r, {
    method: "torrent-get",
    arguments: { fields: ["id", "name"], format: "table" },
  });
  assert.deepEqual((table.arguments as { torrents: unknown[] }).torrents, [["id", "name"], [
    entry.id,
    "album",
  ]]);

  const set = await call(r, {
    method: "torrent-set",
    arguments: { ids: entry.id, "files-unwanted": [1], "priority-high": [0], labels: ["music"] },
  });
  assert.equal(set.result, "success");
  const after = await call(r, {
    method: "torrent-get",
    arguments: { ids: entry.id, fields: ["wanted", "priorities", "labels", "sizeWhenDone"] },
  });
  assert.deepEqual((after.arguments as { torrents: unknown[] }).torrents, [
    { wanted: [1, 0, 1, 1], priorities: [1, 0, 0, 0], labels: ["music"], sizeWhenDone: 15_100 },
  ]);
  const badFile = await call(r, { method: "torrent-set", arguments: { ids: entry.id, "files-wanted": [9] } });
  assert.match(String(badFile.result), /has no file 9/);

  assert.equal(
    (await call(r, { method: "torrent-remove", arguments: { ids: [entry.id] } })).result,
    "success",
  );
  const recent = await call(r, {
    method: "torrent-get",
    arguments: { ids: "recently-active", fields: ["id"] },
  });
  assert.deepEqual(recent.arguments, { torrents: [], removed: [entry.id] });
});

Deno.test("free-space answers inside the download folder", async () => {
  await using r = await rig();
  const answer = await call(r, { method: "free-space", arguments: { path: join(r.dir, "sub") } });
  assert.equal(answer.result, "success");
  assert.ok(((answer.arguments as Record<string, number>)["size-bytes"] ?? 0) > 0);
});

Deno.test("10 000 malformed or oversized requests leave the server answering and its memory bounded", async () => {
  await using r = await rig({ limits: { maxBodyBytes: 4096 } });
  const id = r.server.sessionId;
  const bodies = [
    "{",
    "null",
    '{"method":1}',
    '{"method":"torrent-get","arguments":{"fields":["id"],"ids":[{}]}}',
    '{"method":"torrent-set","arguments":{"ids":"x"}}',
    "[".repeat(3000),
    "x".repeat(8192),
    '{"method":"session-set","arguments":{"encryption":"none"}}',
  ];
  const rssBefore = Deno.memoryUsage().rss;
  const started = Date.now();
  let next = 0;
  const statuses = new Map<number, number>();
  const worker = async () => {
    while (next < 10_000 && Date.now() - started < 60_000) {
      const body = bodies[next++ % bodies.length]!;
      const response = await fetch(r.url, {
        method: "POST",
        body,
        headers: { "x-transmission-session-id": id },
      });
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      await response.body?.cancel();
    }
  };
  await withDeadline(Promise.all([worker(), worker(), worker(), worker()]), 90_000, "10 000 requests");
  assert.ok(next >= 10_000, `sent ${next} requests`);
  assert.deepEqual([...statuses.keys()].sort(), [200, 413], JSON.stringify([...statuses]));
  const ok = await call(r, { method: "session-get", arguments: { fields: ["version"] } });
  assert.equal(ok.result, "success");
  const grown = Deno.memoryUsage().rss - rssBefore;
  assert.ok(grown < 200 * 1024 * 1024, `RSS grew by ${grown} bytes`);
  assert.equal(r.server.http.stats.handlerErrors, 0);
});
