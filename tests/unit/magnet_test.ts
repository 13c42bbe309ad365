import assert from "node:assert/strict";
import { MagnetError } from "../../lib/errors.ts";
import { formatMagnet, type MagnetLink, parseMagnet } from "../../lib/magnet.ts";

const HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
const BASE32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"; // the same 20 bytes, RFC 4648 base32
const BTIH = `xt=urn:btih:${HEX}`;

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

Deno.test("parseMagnet() reads a hex info-hash", () => {
  const link = parseMagnet(`magnet:?${BTIH}`);
  assert.equal(link.infoHashHex, HEX);
  assert.deepEqual(link.infoHash, hexBytes(HEX));
  assert.deepEqual(link.trackers, []);
  assert.deepEqual(link.webSeeds, []);
  assert.deepEqual(link.peers, []);
  assert.ok(!("name" in link));
  assert.ok(!("selectOnly" in link));
  assert.equal(parseMagnet(`magnet:?xt=urn:btih:${HEX.toUpperCase()}`).infoHashHex, HEX);
  assert.equal(parseMagnet(`MAGNET:?XT=URN:BTIH:${HEX}`).infoHashHex, HEX);
});

Deno.test("parseMagnet() reads a base32 info-hash in upper or lower case", () => {
  assert.equal(parseMagnet(`magnet:?xt=urn:btih:${BASE32}`).infoHashHex, HEX);
  assert.equal(parseMagnet(`magnet:?xt=urn:btih:${BASE32.toLowerCase()}`).infoHashHex, HEX);
  assert.equal(
    parseMagnet("magnet:?xt=urn:btih:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT").infoHashHex,
    "000102030405060708090a0b0c0d0e0f10111213",
  );
});

Deno.test("parseMagnet() rejects a missing or malformed btih with a MagnetError", () => {
  const bad = [
    "magnet:?dn=x",
    "magnet:?xt=urn:sha1:abc",
    `magnet:?xt=urn:btih:${HEX.slice(1)}`,
    `magnet:?xt=urn:btih:${HEX}0`,
    `magnet:?xt=urn:btih:${HEX.slice(0, 39)}g`,
    `magnet:?xt=urn:btih:${BASE32.slice(1)}1`,
    "magnet:?xt=urn:btih:",
    "magnet:?",
  ];
  for (const uri of bad) assert.throws(() => parseMagnet(uri), MagnetError, uri);
  assert.throws(() => parseMagnet("magnet:?dn=x"), /no xt=urn:btih: parameter/);
  assert.throws(
    () => parseMagnet(`magnet:?xt=urn:btih:zz`),
    /btih info-hash 'zz' is neither 40 hex nor 32 base32/,
  );
});

Deno.test("parseMagnet() rejects what is not a magnet URI, and overlong URIs", () => {
  for (const uri of ["", "http://x/?xt=urn:btih:" + HEX, HEX, "magnet:" + BTIH]) {
    assert.throws(() => parseMagnet(uri), MagnetError, uri);
  }
  const long = `magnet:?${BTIH}&dn=${"a".repeat(64 * 1024)}`;
  assert.throws(() => parseMagnet(long), /exceed the maximum of 65536/);
});

Deno.test("parseMagnet() says v2-only links are not supported yet, and uses btih when both are given", () => {
  const btmh = "xt=urn:btmh:1220" + "ab".repeat(32);
  assert.throws(() => parseMagnet(`magnet:?${btmh}`), /v2-only links \(xt=urn:btmh:\) are not supported yet/);
  assert.equal(parseMagnet(`magnet:?${btmh}&${BTIH}`).infoHashHex, HEX);
});

Deno.test("parseMagnet() uses the first btih when there are several xt parameters", () => {
  const other = "00".repeat(20);
  assert.equal(parseMagnet(`magnet:?xt.1=urn:btih:${other}&xt.2=urn:btih:${HEX}`).infoHashHex, other);
  assert.equal(parseMagnet(`magnet:?xt=urn:ed2k:abc&${BTIH}&xt=urn:btih:${other}`).infoHashHex, HEX);
});

Deno.test("parseMagnet() percent-decodes values and reads + as a space in dn", () => {
  assert.equal(parseMagnet(`magnet:?${BTIH}&dn=My+File%20Name`).name, "My File Name");
  assert.equal(parseMagnet(`magnet:?${BTIH}&dn=caf%C3%A9%2B1`).name, "café+1");
  assert.equal(parseMagnet(`magnet:?${BTIH}&dn=100%25%zz%`).name, "100%%zz%");
  assert.equal(parseMagnet(`magnet:?${BTIH}&dn=bad%FF`).name, "bad\ufffd");
  assert.equal(parseMagnet(`magnet:?dn=first&${BTIH}&dn=second`).name, "first");
  assert.ok(!("name" in parseMagnet(`magnet:?${BTIH}&dn=`)));
  assert.deepEqual(parseMagnet(`magnet:?${BTIH}&tr=http%3A%2F%2Fa%2Fx%3Fk%3Da+b`).trackers, [
    "http://a/x?k=a+b",
  ]);
});

Deno.test("parseMagnet() keeps valid trackers, drops malformed ones and duplicates", () => {
  const trackers = [
    "udp://127.0.0.1:6969",
    "http://tracker.example/announce",
    "https://tracker.example/announce",
    "wss://tracker.example",
    "udp://127.0.0.1:6969",
    "ftp://tracker.example",
    "javascript:alert(1)",
    "not a url",
    "",
    "http://",
    "file:///etc/passwd",
  ];
  const uri = `magnet:?${BTIH}&` + trackers.map((t, i) => `tr.${i}=${encodeURIComponent(t)}`).join("&");
  assert.deepEqual(parseMagnet(uri).trackers, trackers.slice(0, 4));
});

Deno.test("parseMagnet() keeps http(s) web seeds only", () => {
  const uri = `magnet:?${BTIH}&ws=http%3A%2F%2Fa%2Ff&ws=https://b/f&ws=udp://c:1&ws=http://a/f&ws=%%%`;
  assert.deepEqual(parseMagnet(uri).webSeeds, ["http://a/f", "https://b/f"]);
});

Deno.test("parseMagnet() caps trackers, web seeds and peers", () => {
  let uri = `magnet:?${BTIH}`;
  for (let i = 0; i < 300; i++) {
    uri += `&tr=udp://t${i}.example:1&ws=http://w${i}.example/&x.pe=10.0.${i >> 8}.${i & 255}:1`;
  }
  const link = parseMagnet(uri);
  assert.equal(link.trackers.length, 100);
  assert.equal(link.webSeeds.length, 50);
  assert.equal(link.peers.length, 200);
  assert.equal(link.trackers[99], "udp://t99.example:1");
});

Deno.test("parseMagnet() normalises x.pe peers and drops malformed ones", () => {
  const peers = [
    "1.2.3.4:6881",
    "[::1]:6881",
    "[0:0:0:0:0:0:0:1]:6881",
    "[2001:DB8::1]:51413",
    "Example.COM:80",
    "::1:6881",
    "1.2.3.4",
    "1.2.3.4:0",
    "1.2.3.4:65536",
    "1.2.3.4:-1",
    "a b:1",
    "[::1]",
    "[::1]6881",
    "[fe80::1%eth0]:1",
    "[nothex]:1",
    "user@host:1",
    "host:1/path",
    ":1",
  ];
  const uri = `magnet:?${BTIH}&` + peers.map((p) => `x.pe=${encodeURIComponent(p)}`).join("&");
  assert.deepEqual(parseMagnet(uri).peers, [
    "1.2.3.4:6881",
    "[::1]:6881",
    "[2001:db8::1]:51413",
    "example.com:80",
  ]);
});

Deno.test("parseMagnet() reads BEP 53 so ranges, skipping malformed entries", () => {
  assert.deepEqual(parseMagnet(`magnet:?${BTIH}&so=0,2,4-6`).selectOnly, [0, 2, 4, 5, 6]);
  assert.deepEqual(parseMagnet(`magnet:?${BTIH}&so=6,1-2,x,5-3,-1,2-,1`).selectOnly, [1, 2, 6]);
  assert.ok(!("selectOnly" in parseMagnet(`magnet:?${BTIH}&so=x`)));
  assert.deepEqual(parseMagnet(`magnet:?${BTIH}&so=3%2C4`).selectOnly, [3, 4]);
});

Deno.test("parseMagnet() caps so ranges", () => {
  const huge = parseMagnet(`magnet:?${BTIH}&so=0-9999999`).selectOnly!;
  assert.equal(huge.length, 100_000);
  assert.equal(huge[99_999], 99_999);
  // Many overlapping ranges cost no more than one.
  const overlapping = parseMagnet(`magnet:?${BTIH}&so=` + Array(5000).fill("0-99998").join(",")).selectOnly!;
  assert.equal(overlapping.length, 99_999);
  assert.equal(parseMagnet(`magnet:?${BTIH}&so=999999-2000000`).selectOnly!.length, 1);
  assert.ok(!("selectOnly" in parseMagnet(`magnet:?${BTIH}&so=1000000`)));
});

Deno.test("parseMagnet() ignores a fragment and unknown parameters", () => {
  const link = parseMagnet(`magnet:?${BTIH}&xl=123&kt=a+b&dn=x#dn=y`);
  assert.equal(link.name, "x");
});

Deno.test("formatMagnet() round-trips through parseMagnet()", () => {
  const links: MagnetLink[] = [
    { infoHash: hexBytes(HEX), infoHashHex: HEX, trackers: [], webSeeds: [], peers: [] },
    {
      infoHash: hexBytes(HEX),
      infoHashHex: HEX,
      name: "a & b + c = 100% #1 café 😀 ?x",
      trackers: ["udp://127.0.0.1:6969", "http://t.example/announce?passkey=a&b=c+d", "wss://t.example/"],
      webSeeds: ["http://ws.example/files/a%20b/"],
      peers: ["1.2.3.4:6881", "[::1]:51413", "example.com:80"],
      selectOnly: [0, 2, 3, 4, 9],
    },
  ];
  for (const link of links) {
    const uri = formatMagnet(link);
    assert.deepEqual(parseMagnet(uri), link, uri);
  }
  assert.equal(
    formatMagnet(links[1]!).split("&so=")[1],
    "0,2-4,9",
  );
});

Deno.test("formatMagnet() rejects an info-hash that is not 20 bytes", () => {
  assert.throws(
    () =>
      formatMagnet({ infoHash: new Uint8Array(19), infoHashHex: "", trackers: [], webSeeds: [], peers: [] }),
    MagnetError,
  );
});
