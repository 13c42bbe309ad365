import assert from "node:assert/strict";
import { encode } from "../../lib/bencode.ts";
import {
  decodeCompactNodes,
  decodeKrpc,
  encodeCompactNodes,
  encodeKrpc,
  KrpcDecodeError,
  type KrpcMessage,
} from "../../lib/dht/krpc.ts";
import {
  bep42NodeId,
  commonPrefixBits,
  compareDistance,
  crc32c,
  isBep42Exempt,
  isValidBep42,
  randomIdWithPrefix,
} from "../../lib/dht/node_id.ts";

const te = new TextEncoder();
const id = (fill: number) => new Uint8Array(20).fill(fill);
const t = te.encode("aa");

function rejects(input: Uint8Array | string, pattern: RegExp, kind?: string): KrpcDecodeError {
  const bytes = typeof input === "string" ? te.encode(input) : input;
  try {
    decodeKrpc(bytes);
  } catch (error) {
    assert.ok(error instanceof KrpcDecodeError, `expected KrpcDecodeError, got ${error}`);
    assert.match(error.message, pattern);
    if (kind !== undefined) assert.equal(error.kind, kind);
    return error;
  }
  assert.fail(`decodeKrpc accepted ${typeof input === "string" ? input : "bytes"}`);
}

Deno.test("decodeKrpc() reads the BEP 5 ping example", () => {
  const m = decodeKrpc(te.encode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"));
  assert.equal(m.y, "q");
  assert.ok(m.y === "q" && m.q === "ping");
  assert.deepEqual(m.t, t);
  assert.equal(
    new TextDecoder().decode(m.y === "q" && m.q === "ping" ? m.id : undefined),
    "abcdefghij0123456789",
  );
});

Deno.test("encodeKrpc() and decodeKrpc() round-trip every message kind", () => {
  const nodes = [{ id: id(3), address: "10.0.0.1:6881" }, { id: id(4), address: "127.0.0.1:1" }];
  const messages: KrpcMessage[] = [
    { y: "q", t, q: "ping", id: id(1) },
    { y: "q", t, q: "find_node", id: id(1), target: id(2) },
    { y: "q", t, q: "get_peers", id: id(1), infoHash: id(2) },
    {
      y: "q",
      t,
      q: "announce_peer",
      id: id(1),
      infoHash: id(2),
      port: 6881,
      token: te.encode("tok"),
      impliedPort: true,
    },
    { y: "q", t, q: "ping", id: id(1), readOnly: true },
    { y: "r", t, id: id(5) },
    { y: "r", t, id: id(5), nodes, token: te.encode("xyz"), values: ["1.2.3.4:5", "5.6.7.8:65535"] },
    { y: "e", t, code: 203, message: "Protocol Error" },
  ];
  for (const message of messages) assert.deepEqual(decodeKrpc(encodeKrpc(message)), message);
});

Deno.test("encodeKrpc() adds the version and the requester's address (BEP 42 ip)", () => {
  const bytes = encodeKrpc({ y: "r", t, id: id(5) }, { version: te.encode("SH10"), ip: "1.2.3.4:258" });
  const m = decodeKrpc(bytes);
  assert.ok(m.y === "r");
  assert.equal(m.ip, "1.2.3.4:258");
  assert.ok(new TextDecoder().decode(bytes).includes("1:v4:SH10"));
});

Deno.test("decodeKrpc() ignores unknown keys", () => {
  const m = decodeKrpc(
    encode({ t, y: "q", q: "get_peers", a: { id: id(1), info_hash: id(2), want: ["n4"] }, zz: 1 }),
  );
  assert.ok(m.y === "q" && m.q === "get_peers");
});

Deno.test("decodeKrpc() reports an unknown method as such", () => {
  const m = decodeKrpc(encode({ t, y: "q", q: "vote", a: { id: id(1) } }));
  assert.deepEqual(m, { y: "q", t, q: "unknown", method: "vote" });
});

Deno.test("decodeKrpc() rejects input that is not one bencoded dictionary", () => {
  rejects("i42e", /not a dictionary/, "unknown");
  rejects("l1:ae", /not a dictionary/);
  rejects("d1:t2:aa", /Invalid KRPC message/);
  rejects("garbage", /Invalid KRPC message/);
  rejects(new Uint8Array(9000).fill(0x6c), /exceeds the limit/);
  rejects("d1:ad1:ad1:ad1:ad1:ai1eeeeee1:t2:aa1:y1:qe", /Nesting deeper/);
});

Deno.test("decodeKrpc() rejects a missing or invalid transaction id, without one to answer", () => {
  assert.equal(rejects("d1:y1:qe", /no transaction id/).transactionId, null);
  assert.equal(rejects("d1:ti1e1:y1:qe", /not a string of 1 to 16/).transactionId, null);
  assert.equal(rejects("d1:t0:1:y1:qe", /not a string of 1 to 16/).transactionId, null);
  assert.equal(rejects(`d1:t17:${"x".repeat(17)}1:y1:qe`, /not a string/).transactionId, null);
});

Deno.test("decodeKrpc() rejects a missing or invalid message type, keeping the transaction id", () => {
  const missing = rejects("d1:t2:aae", /no message type/, "unknown");
  assert.deepEqual(missing.transactionId, t);
  rejects("d1:t2:aa1:y1:xe", /not q, r or e/, "unknown");
  rejects("d1:t2:aa1:yi1ee", /not q, r or e/, "unknown");
});

Deno.test("decodeKrpc() rejects queries with invalid arguments", () => {
  rejects(encode({ t, y: "q", q: "ping" }), /arguments 'a' are not a dictionary/, "query");
  rejects(encode({ t, y: "q", q: "ping", a: { id: new Uint8Array(19) } }), /'id' is not a 20-byte string/);
  rejects(encode({ t, y: "q", q: "find_node", a: { id: id(1) } }), /'target'/);
  rejects(
    encode({ t, y: "q", q: "get_peers", a: { id: id(1), info_hash: new Uint8Array(21) } }),
    /'info_hash'/,
  );
  rejects(encode({ t, y: "q", q: 5, a: { id: id(1) } }), /method 'q'/);
  const announce = (extra: Record<string, unknown>) =>
    encode({ t, y: "q", q: "announce_peer", a: { id: id(1), info_hash: id(2), ...extra } as never });
  rejects(announce({ port: 1 }), /'token'/);
  rejects(announce({ port: 1, token: new Uint8Array(65) }), /'token'/);
  rejects(announce({ token: te.encode("k") }), /no 'port'/);
  rejects(announce({ port: 70000, token: te.encode("k") }), /'port' is not an integer/);
  rejects(announce({ port: -1, token: te.encode("k") }), /'port'/);
  rejects(announce({ port: 1, token: te.encode("k"), implied_port: 2 }), /implied_port/);
  const implied = decodeKrpc(announce({ token: te.encode("k"), implied_port: 1 }));
  assert.ok(implied.y === "q" && implied.q === "announce_peer" && implied.impliedPort && implied.port === 0);
});

Deno.test("decodeKrpc() rejects node lists that are not whole 26-byte entries", () => {
  rejects(
    encode({ t, y: "r", r: { id: id(1), nodes: new Uint8Array(25) } }),
    /not a multiple of 26/,
    "response",
  );
  rejects(encode({ t, y: "r", r: { id: id(1), nodes: new Uint8Array(27) } }), /not a multiple of 26/);
  rejects(encode({ t, y: "r", r: { id: id(1), nodes: [new Uint8Array(26)] } }), /'nodes' is not a string/);
  rejects(encode({ t, y: "r", r: { id: id(1), nodes: new Uint8Array(26 * 65) } }), /too many entries/);
});

Deno.test("decodeKrpc() rejects peer values that are not 6-byte compact peers, skipping IPv6 ones", () => {
  rejects(encode({ t, y: "r", r: { id: id(1), values: [new Uint8Array(5)] } }), /is 5 bytes, not 6/);
  rejects(encode({ t, y: "r", r: { id: id(1), values: new Uint8Array(6) } }), /'values' is not a list/);
  rejects(encode({ t, y: "r", r: { id: id(1), values: [1] } }), /not a string/);
  const m = decodeKrpc(
    encode({
      t,
      y: "r",
      r: { id: id(1), values: [new Uint8Array(18), new Uint8Array([1, 2, 3, 4, 0, 80])] },
    }),
  );
  assert.ok(m.y === "r");
  assert.deepEqual(m.values, ["1.2.3.4:80"]);
});

Deno.test("decodeKrpc() rejects responses without a valid id and malformed errors", () => {
  rejects(encode({ t, y: "r", r: {} }), /'id' is not a 20-byte string/, "response");
  rejects(encode({ t, y: "r" }), /'r' is not a dictionary/);
  rejects(encode({ t, y: "r", r: { id: id(1), token: "" } }), /'token'/);
  rejects(encode({ t, y: "e", e: [201] }), /\[code, message\]/, "error");
  rejects(encode({ t, y: "e", e: ["x", "y"] }), /code is not an integer/);
  rejects(encode({ t, y: "e", e: [201, 5] }), /message is not a string/);
});

Deno.test("decodeCompactNodes() skips port 0; encodeCompactNodes() leaves out non-IPv4 nodes", () => {
  const bytes = encodeCompactNodes([
    { id: id(1), address: "10.0.0.1:1" },
    { id: id(2), address: "[::1]:5" },
    { id: id(3), address: "10.0.0.3:65535" },
  ]);
  assert.equal(bytes.length, 52);
  assert.deepEqual(decodeCompactNodes(bytes).map((n) => n.address), ["10.0.0.1:1", "10.0.0.3:65535"]);
  const zero = new Uint8Array(26);
  zero.set([10, 0, 0, 1, 0, 0], 20);
  assert.deepEqual(decodeCompactNodes(zero), []);
});

Deno.test("crc32c() matches the Castagnoli check value", () => {
  assert.equal(crc32c(te.encode("123456789")), 0xe3069283);
});

Deno.test("bep42NodeId() matches the BEP 42 test vectors", () => {
  const vectors: [string, number, string][] = [
    ["124.31.75.21", 1, "5fbfbf"],
    ["21.75.31.124", 86, "5a3ce9"],
    ["65.23.51.170", 22, "a5d432"],
    ["84.124.73.14", 65, "1b0321"],
    ["43.213.53.83", 90, "e56f6c"],
  ];
  for (const [text, rand, prefix] of vectors) {
    const ip = new Uint8Array(text.split(".").map(Number));
    const random = new Uint8Array(20);
    random[19] = rand;
    const nodeId = bep42NodeId(ip, random);
    const want = parseInt(prefix, 16);
    assert.equal(nodeId[0], want >> 16, text);
    assert.equal(nodeId[1], (want >> 8) & 0xff, text);
    assert.equal(nodeId[2]! & 0xf8, want & 0xf8, text);
    assert.equal(nodeId[19], rand);
    assert.ok(isValidBep42(nodeId, ip));
    const other = nodeId.slice();
    other[0]! ^= 1;
    assert.ok(!isValidBep42(other, ip));
  }
});

Deno.test("BEP 42 exempts loopback and private addresses", () => {
  for (const ip of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1"]) {
    assert.ok(isBep42Exempt(new Uint8Array(ip.split(".").map(Number))), ip);
    assert.ok(isValidBep42(new Uint8Array(20), new Uint8Array(ip.split(".").map(Number))), ip);
  }
  assert.ok(!isBep42Exempt(new Uint8Array([8, 8, 8, 8])));
  assert.ok(!isBep42Exempt(new Uint8Array([172, 32, 0, 1])));
});

Deno.test("randomIdWithPrefix() shares exactly the asked number of leading bits", () => {
  const base = new Uint8Array(20).map((_, i) => i * 37);
  for (let bits = 0; bits < 160; bits++) {
    assert.equal(commonPrefixBits(base, randomIdWithPrefix(base, bits)), bits);
  }
  assert.equal(commonPrefixBits(base, randomIdWithPrefix(base, 160)), 160);
});

Deno.test("compareDistance() orders ids by XOR distance to the target", () => {
  const target = id(0x0f);
  assert.equal(compareDistance(target, id(0x0e), id(0x1f)), -1);
  assert.equal(compareDistance(target, id(0xff), id(0x0e)), 1);
  assert.equal(compareDistance(target, id(1), id(1)), 0);
});
