import assert from "node:assert/strict";
import { decodeCompactPeers, encodeCompactPeer } from "../../lib/net/address.ts";
import { httpAnnounce, httpScrape, percentEncodeBytes, scrapeUrl } from "../../lib/tracker/http_tracker.ts";
import { type AnnounceRequest, TrackerError } from "../../lib/tracker/types.ts";
import { bencoded, compact4, deadPort, ScriptedHttpTracker, withDeadline } from "../_scripted_tracker.ts";

/** An info-hash with bytes that must be escaped, and some that must not. */
const INFO_HASH = new Uint8Array([
  0x00,
  0x20,
  0x41,
  0x7e,
  0xff,
  0x2e,
  0x2d,
  0x5f,
  0x25,
  0x26,
  0x3d,
  0x2b,
  0x80,
  0x7a,
  0x30,
  0x39,
  0x3f,
  0x23,
  0x2f,
  0x01,
]);
const INFO_HASH_QUERY = "%00%20A~%FF.-_%25%26%3D%2B%80z09%3F%23%2F%01";
const PEER_ID = new TextEncoder().encode("-SH0100-abc~def.ghi_");

function request(extra: Partial<AnnounceRequest> = {}): AnnounceRequest {
  return {
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 6881,
    uploaded: 10,
    downloaded: 20,
    left: 30,
    key: 0xbeef,
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<TrackerError> {
  const error = await withDeadline(
    promise.then(() => undefined, (e: unknown) => e),
    10_000,
    "the call to fail",
  );
  assert.ok(error instanceof TrackerError, `expected a TrackerError, got ${String(error)}`);
  assert.equal(error.code, "TRACKER");
  return error;
}

Deno.test("percentEncodeBytes() keeps unreserved characters and escapes every other byte", () => {
  assert.equal(percentEncodeBytes(INFO_HASH), INFO_HASH_QUERY);
  assert.equal(percentEncodeBytes(new Uint8Array(0)), "");
});

Deno.test("httpAnnounce() sends every parameter, raw bytes percent-encoded, after the URL's own query", async () => {
  await using tracker = new ScriptedHttpTracker();
  await httpAnnounce(
    `${tracker.announceUrl}?passkey=s3cr3t`,
    request({ event: "started", numwant: 50, trackerId: "T 1\u00ff" }),
  );
  const seen = tracker.requests[0]!;
  assert.equal(seen.path, "/announce");
  assert.equal(
    seen.rawQuery,
    `passkey=s3cr3t&info_hash=${INFO_HASH_QUERY}&peer_id=-SH0100-abc~def.ghi_&port=6881&uploaded=10` +
      "&downloaded=20&left=30&event=started&compact=1&numwant=50&key=0000beef&trackerid=T%201%FF",
  );
  assert.deepEqual(seen.params.get("info_hash"), [INFO_HASH]);
  assert.deepEqual(seen.params.get("peer_id"), [PEER_ID]);
  assert.deepEqual(seen.params.get("trackerid"), [new Uint8Array([0x54, 0x20, 0x31, 0xff])]);
});

Deno.test("httpAnnounce() leaves out event, numwant and trackerid when they are not set", async () => {
  await using tracker = new ScriptedHttpTracker();
  await httpAnnounce(tracker.announceUrl, request({ key: 0xdeadbeef }));
  const seen = tracker.requests[0]!;
  assert.equal(
    seen.rawQuery,
    `info_hash=${INFO_HASH_QUERY}&peer_id=-SH0100-abc~def.ghi_&port=6881&uploaded=10&downloaded=20&left=30` +
      "&compact=1&key=deadbeef",
  );
  assert.equal(seen.params.has("event"), false);
  assert.equal(seen.params.has("trackerid"), false);
});

Deno.test("httpAnnounce() reads compact peers, intervals, tracker id, counts and the warning message", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({
      interval: 1200,
      "min interval": 300,
      "tracker id": "abc",
      complete: 4,
      incomplete: 9,
      "warning message": "Slow down",
      peers: compact4("10.0.0.1:6881", "10.0.0.2:51413", "10.0.0.1:6881"),
    })
  );
  const answer = await httpAnnounce(tracker.announceUrl, request());
  assert.deepEqual(answer, {
    interval: 1200,
    minInterval: 300,
    trackerId: "abc",
    seeders: 4,
    leechers: 9,
    warning: "Slow down",
    peers: ["10.0.0.1:6881", "10.0.0.2:51413"],
  });
});

Deno.test("httpAnnounce() reads dictionary peers (IPv4, IPv6, host names) and skips malformed ones", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({
      interval: 60,
      peers: [
        { ip: "10.0.0.1", port: 6881, "peer id": "x".repeat(20) },
        { ip: "2001:DB8:0:0:0:0:0:1", port: 6882 },
        { ip: "peer.example", port: 6883 },
        { ip: "bad host!", port: 1 },
        { ip: "10.0.0.5", port: 0 },
        { ip: "10.0.0.6" },
        "not a dictionary",
      ],
    })
  );
  const answer = await httpAnnounce(tracker.announceUrl, request());
  assert.deepEqual(answer.peers, ["10.0.0.1:6881", "[2001:db8::1]:6882", "peer.example:6883"]);
  assert.deepEqual(answer.issues, ["Skipped 4 malformed dictionary peers"]);
});

Deno.test("httpAnnounce() reads IPv6 peers from peers6 beside IPv4 peers", async () => {
  const v6 = new Uint8Array([...encodeCompactPeer("[::1]:7000")!, ...encodeCompactPeer("[fe80::2]:7001")!]);
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ interval: 60, peers: compact4("127.0.0.1:7002"), peers6: v6 })
  );
  const answer = await httpAnnounce(tracker.announceUrl, request());
  assert.deepEqual(answer.peers, ["127.0.0.1:7002", "[::1]:7000", "[fe80::2]:7001"]);
  assert.equal(answer.issues, undefined);
});

Deno.test("httpAnnounce() uses the whole entries of a compact list of 6n+3 bytes and reports the rest", async () => {
  const peers = new Uint8Array([...compact4("10.0.0.1:1", "10.0.0.2:2"), 1, 2, 3]);
  await using tracker = new ScriptedHttpTracker(() => bencoded({ interval: 60, peers }));
  const answer = await httpAnnounce(tracker.announceUrl, request());
  assert.deepEqual(answer.peers, ["10.0.0.1:1", "10.0.0.2:2"]);
  assert.deepEqual(answer.issues, [
    "Compact 'peers' of 15 bytes is not a multiple of 6: used 2 peers, ignored 3 trailing bytes",
  ]);
});

Deno.test("httpAnnounce() reports intervals as sent, even 0, negative and huge (the announcer clamps)", async () => {
  for (const [sent, expected] of [[0, 0], [-5, -5], [2n ** 70n, 2 ** 70]] as const) {
    await using tracker = new ScriptedHttpTracker(() => bencoded({ interval: sent, "min interval": sent }));
    const answer = await httpAnnounce(tracker.announceUrl, request());
    assert.equal(answer.interval, expected);
    assert.equal(answer.minInterval, expected);
  }
});

Deno.test("httpAnnounce() keeps going without an interval, noting it", async () => {
  await using tracker = new ScriptedHttpTracker(() => bencoded({ peers: compact4("10.0.0.1:1") }));
  const answer = await httpAnnounce(tracker.announceUrl, request());
  assert.equal(answer.interval, 1800);
  assert.deepEqual(answer.issues, ["Tracker sent no interval: using 1800 s"]);
});

Deno.test("httpAnnounce() deduplicates peers and caps them at maxPeers", async () => {
  const many = Array.from({ length: 30 }, (_, i) => `10.0.1.${i}:1000`);
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ interval: 60, peers: compact4(...many, ...many) })
  );
  const answer = await httpAnnounce(tracker.announceUrl, request(), { maxPeers: 10 });
  assert.deepEqual(answer.peers, many.slice(0, 10));
  assert.deepEqual(answer.issues, ["Tracker sent 30 peers: kept the first 10"]);
});

Deno.test("httpAnnounce() rejects a body that is not bencode, saying how it starts", async () => {
  await using tracker = new ScriptedHttpTracker(() => new Response("<html><body>Welcome</body></html>"));
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.match(error.message, /^Tracker announce answer is not bencode \(starts with "<html><body>Welcome/);
  assert.equal(error.retryable, true);
  assert.equal(error.gone, false);
});

Deno.test("httpAnnounce() rejects bencode that is not a dictionary", async () => {
  await using tracker = new ScriptedHttpTracker(() => bencoded(["list"]));
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(error.message, "Tracker announce answer is not a dictionary");
});

Deno.test("httpAnnounce() turns a failure reason into a retryable TrackerError with the reason", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ "failure reason": "Torrent not registered" })
  );
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(error.message, "Tracker refused the announce: Torrent not registered");
  assert.equal(error.retryable, true);
});

Deno.test("httpAnnounce() makes a failure reason with 'retry in: never' not retryable", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    bencoded({ "failure reason": "Banned client\u0007", "retry in": "never" })
  );
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(error.message, "Tracker refused the announce: Banned client ");
  assert.equal(error.retryable, false);
});

Deno.test("httpAnnounce() marks the tracker gone on HTTP 410", async () => {
  await using tracker = new ScriptedHttpTracker(() => new Response("moved away", { status: 410 }));
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(error.gone, true);
  assert.equal(error.retryable, false);
  assert.match(error.message, /HTTP 410/);
});

Deno.test("httpAnnounce() reports other statuses, with a failure reason when the body has one", async () => {
  await using tracker = new ScriptedHttpTracker(() => new Response("oops", { status: 503 }));
  const error = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(error.message, "Tracker answered HTTP 503 Service Unavailable");
  assert.equal(error.retryable, true);
  assert.equal(error.gone, false);
  tracker.script = () => bencoded({ "failure reason": "Unknown passkey" }, 403);
  const second = await rejection(httpAnnounce(tracker.announceUrl, request()));
  assert.equal(second.message, "Tracker answered HTTP 403 Forbidden: Unknown passkey");
});

Deno.test("httpAnnounce() cuts an endless body at the size cap", async () => {
  let sent = 0;
  await using tracker = new ScriptedHttpTracker(() =>
    new Response(
      new ReadableStream<Uint8Array<ArrayBuffer>>({
        pull(controller) {
          sent += 65536;
          controller.enqueue(new Uint8Array(65536).fill(0x31));
        },
      }),
    )
  );
  const error = await rejection(httpAnnounce(tracker.announceUrl, request(), { maxBodyBytes: 1024 * 1024 }));
  assert.equal(error.message, "Tracker answer exceeds the limit of 1048576 bytes");
  assert.ok(sent < 64 * 1024 * 1024, `the server should stop being read (it sent ${sent} bytes)`);
});

Deno.test("httpAnnounce() rejects a declared Content-Length above the cap without reading it", async () => {
  await using tracker = new ScriptedHttpTracker(() =>
    new Response(new Uint8Array(5000), { headers: { "content-length": "5000" } })
  );
  const error = await rejection(httpAnnounce(tracker.announceUrl, request(), { maxBodyBytes: 4096 }));
  assert.equal(error.message, "Tracker answer of 5000 bytes exceeds the limit of 4096");
});

Deno.test("httpAnnounce() gives up after timeoutMs when the tracker does not answer", async () => {
  await using tracker = new ScriptedHttpTracker(() => "hang");
  const error = await rejection(httpAnnounce(tracker.announceUrl, request(), { timeoutMs: 100 }));
  assert.equal(error.message, "Tracker did not answer the announce within 100 ms");
  assert.equal(error.retryable, true);
});

Deno.test("httpAnnounce() rejects with the caller's abort reason", async () => {
  await using tracker = new ScriptedHttpTracker(() => "hang");
  const controller = new AbortController();
  const call = httpAnnounce(tracker.announceUrl, request(), { signal: controller.signal });
  await tracker.waitForRequests(1);
  const reason = new Error("Shutting down");
  controller.abort(reason);
  await assert.rejects(withDeadline(call, 5000, "the abort"), (e) => e === reason);
});

Deno.test("httpAnnounce() reports a tracker that refuses connections as retryable", async () => {
  const error = await rejection(httpAnnounce(`http://127.0.0.1:${deadPort()}/announce`, request()));
  assert.match(error.message, /^Cannot reach tracker for announce: /);
  assert.equal(error.retryable, true);
});

Deno.test("httpAnnounce() accepts only http: and https: URLs", async () => {
  for (const url of ["udp://127.0.0.1:1/announce", "ftp://127.0.0.1/announce", "not a url"]) {
    const error = await rejection(httpAnnounce(url, request()));
    assert.equal(error.retryable, false, url);
    assert.match(
      error.message,
      /^(Unsupported tracker URL scheme for HTTP announce: |Invalid tracker URL: )/,
    );
  }
});

Deno.test("scrapeUrl() follows the BEP 48 rule", () => {
  const cases: [string, string | null][] = [
    ["http://t.example/announce", "http://t.example/scrape"],
    ["http://t.example/x/announce", "http://t.example/x/scrape"],
    ["http://t.example/announce.php", "http://t.example/scrape.php"],
    ["http://t.example/announce?x2%0644", "http://t.example/scrape?x2%0644"],
    ["https://t.example:8443/p/announce?a=b/announce", "https://t.example:8443/p/scrape?a=b/announce"],
    ["http://t.example/a", null],
    ["http://t.example/announce?x=2/4", "http://t.example/scrape?x=2/4"],
    ["http://t.example/x%064announce", null],
    ["http://t.example/x/announce/", null],
    ["http://announce", null],
    ["udp://t.example:80/announce", null],
  ];
  for (const [announce, scrape] of cases) assert.equal(scrapeUrl(announce), scrape, announce);
});

Deno.test("httpScrape() asks for every info-hash and returns the counts by hex", async () => {
  const other = new Uint8Array(20).fill(0xab);
  const unasked = new Uint8Array(20).fill(0xcd);
  const files = new Map<string, Map<string, number>>([
    [String.fromCharCode(...INFO_HASH), new Map([["complete", 3], ["downloaded", 10], ["incomplete", 2]])],
    [String.fromCharCode(...other), new Map([["complete", 0], ["downloaded", 1], ["incomplete", 7]])],
    [String.fromCharCode(...unasked), new Map([["complete", 9], ["downloaded", 9], ["incomplete", 9]])],
  ]);
  await using tracker = new ScriptedHttpTracker(() => bencoded({ files }));
  const counts = await httpScrape(scrapeUrl(tracker.announceUrl)!, [INFO_HASH, other]);
  const seen = tracker.requests[0]!;
  assert.equal(seen.path, "/scrape");
  assert.equal(seen.rawQuery, `info_hash=${INFO_HASH_QUERY}&info_hash=${"%AB".repeat(20)}`);
  assert.deepEqual(
    counts,
    new Map([
      ["0020417eff2e2d5f25263d2b807a30393f232f01", { seeders: 3, completed: 10, leechers: 2 }],
      ["ab".repeat(20), { seeders: 0, completed: 1, leechers: 7 }],
    ]),
  );
});

Deno.test("httpScrape() rejects an answer without a files dictionary", async () => {
  await using tracker = new ScriptedHttpTracker(() => bencoded({ interval: 5 }));
  const error = await rejection(httpScrape(scrapeUrl(tracker.announceUrl)!, [INFO_HASH]));
  assert.equal(error.message, "Tracker scrape answer has no 'files' dictionary");
});

Deno.test("compact peers decode and encode back (IPv4 and IPv6)", () => {
  assert.deepEqual(decodeCompactPeers(compact4("1.2.3.4:5", "255.255.255.255:65535"), 4), [
    "1.2.3.4:5",
    "255.255.255.255:65535",
  ]);
  for (const address of ["1.2.3.4:5", "[::1]:80", "[2001:db8::1:0:0:1]:1", "[1:2:3:4:5:6:7:8]:9"]) {
    const entry = encodeCompactPeer(address)!;
    assert.deepEqual(decodeCompactPeers(entry, entry.length === 6 ? 4 : 6), [address]);
  }
  for (
    const bad of [
      "1.2.3.4",
      "1.2.3.4:0",
      "1.2.3.4:65536",
      "01.2.3.4:5",
      "host:5",
      "[::1:5",
      "::1:5",
      "[1::2::3]:4",
    ]
  ) {
    assert.equal(encodeCompactPeer(bad), null, bad);
  }
});
