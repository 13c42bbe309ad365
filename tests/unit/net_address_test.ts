import assert from "node:assert/strict";
import {
  decodeCompactPeer,
  decodeCompactPeers,
  encodeCompactPeer,
  formatAddress,
  hostOf,
  parseAddress,
  parsePeerAddress,
  tryParseAddress,
  unmapIPv4,
} from "../../lib/net/address.ts";
import { PeerAddressError } from "../../lib/errors.ts";

Deno.test("parseAddress() splits host:port and [v6]:port, loose by default", () => {
  assert.deepEqual(parseAddress("10.0.0.1:6881"), { hostname: "10.0.0.1", port: 6881 });
  assert.deepEqual(parseAddress("[::1]:80"), { hostname: "::1", port: 80 });
  assert.deepEqual(parseAddress("1.2.3:80"), { hostname: "1.2.3", port: 80 }); // loose: shape only
  for (
    const bad of ["no-port", "::1:80", "[::1]80", "[::1", ":80", "a:0", "a:65536", "a:x", "[]:1", "a]b:1"]
  ) {
    assert.throws(() => parseAddress(bad), TypeError, bad);
    assert.equal(tryParseAddress(bad), null, bad);
  }
});

Deno.test("parseAddress({ strict }) checks the host and says what is wrong", () => {
  assert.deepEqual(parseAddress("peer.example:1", { strict: true }), { hostname: "peer.example", port: 1 });
  const cases: [string, RegExp][] = [
    ["1.2.3:80", /not an IPv4 address/],
    ["[nothex]:1", /not an IPv6 address/],
    ["::1:80", /needs brackets/],
    ["a b:1", /not a host name/],
    ["host:99999", /not from 1 to 65535/],
    ["host:x", /not a number/],
    ["host", /no port/],
  ];
  for (const [text, why] of cases) {
    const error = assert.throws(() => parsePeerAddress(text), PeerAddressError);
    void error;
    assert.throws(() => parseAddress(text, { strict: true }), why, text);
    assert.equal(tryParseAddress(text, { strict: true }), null, text);
  }
});

Deno.test("formatAddress(), hostOf() and unmapIPv4() agree with the parser", () => {
  for (const [host, port] of [["10.0.0.1", 1], ["::1", 6881], ["peer.example", 65535]] as const) {
    const text = formatAddress(host, port);
    assert.equal(hostOf(text), host);
    assert.deepEqual(parseAddress(text), { hostname: host, port });
  }
  assert.equal(unmapIPv4("::FFFF:192.0.2.7"), "192.0.2.7");
  assert.equal(unmapIPv4("::1"), "::1");
});

Deno.test("compact peers round-trip for IPv4 and IPv6, port 0 skipped", () => {
  const v4 = encodeCompactPeer("127.0.0.1:6881")!;
  const v6 = encodeCompactPeer("[2001:db8::7]:51413")!;
  assert.equal(v4.length, 6);
  assert.equal(v6.length, 18);
  assert.equal(decodeCompactPeer(v4), "127.0.0.1:6881");
  assert.equal(decodeCompactPeer(v6), "[2001:db8::7]:51413");
  assert.equal(decodeCompactPeer(new Uint8Array([1, 2, 3, 4, 0, 0])), null);
  assert.deepEqual(decodeCompactPeers(new Uint8Array([...v4, 1, 2, 3, 4, 0, 0, ...v4, 9]), 4), [
    "127.0.0.1:6881",
    "127.0.0.1:6881",
  ]);
  for (const bad of ["[1.2.3.4]:1", "::1:1", "example.org:1", "1.2.3.4:0", "1.2.3.4:006881x"]) {
    assert.equal(encodeCompactPeer(bad), null, bad);
  }
});
