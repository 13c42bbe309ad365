import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type BEncodable, decode, encode } from "../../lib/bencode.ts";
import { BencodeError, MetainfoError } from "../../lib/errors.ts";
import { encodeTorrent, parseMetainfo, pieceSize } from "../../lib/metainfo.ts";

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));

function sha1Hex(data: Uint8Array): string {
  return createHash("sha1").update(data).digest("hex");
}

function hashes(count: number): Uint8Array {
  const out = new Uint8Array(count * 20);
  for (let i = 0; i < out.length; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

function single(extraInfo: Record<string, BEncodable> = {}, extraRoot: Record<string, BEncodable> = {}) {
  return encode({
    ...extraRoot,
    info: { name: "file.bin", "piece length": 16384, length: 40000, pieces: hashes(3), ...extraInfo },
  });
}

function multi(files: BEncodable[], pieces: number, extraInfo: Record<string, BEncodable> = {}) {
  return encode({
    info: { name: "dir", "piece length": 16384, pieces: hashes(pieces), files, ...extraInfo },
  });
}

Deno.test("parseMetainfo() reads a single-file torrent", () => {
  const meta = parseMetainfo(single({}, {
    announce: "http://t.example/announce",
    comment: "hi",
    "created by": "me",
    "creation date": 1234,
  }));
  assert.equal(meta.name, "file.bin");
  assert.equal(meta.pieceLength, 16384);
  assert.equal(meta.pieceCount, 3);
  assert.equal(meta.totalLength, 40000);
  assert.equal(meta.multiFile, false);
  assert.equal(meta.hybrid, false);
  assert.equal(meta.private, false);
  assert.deepEqual(meta.pieceHashes, hashes(3));
  assert.deepEqual(meta.files, [{
    path: ["file.bin"],
    safePath: "file.bin",
    length: 40000,
    offset: 0,
    pad: false,
  }]);
  assert.deepEqual(meta.announceList, [["http://t.example/announce"]]);
  assert.deepEqual(meta.urlList, []);
  assert.equal(meta.comment, "hi");
  assert.equal(meta.createdBy, "me");
  assert.equal(meta.creationDate, 1234);
});

Deno.test("parseMetainfo() leaves optional fields out when the torrent lacks them", () => {
  const meta = parseMetainfo(single({}, { "creation date": "yesterday", comment: 5 }));
  assert.ok(!("comment" in meta));
  assert.ok(!("createdBy" in meta));
  assert.ok(!("creationDate" in meta));
  assert.deepEqual(meta.announceList, []);
});

Deno.test("parseMetainfo() hashes the raw info bytes, not a re-encoding", () => {
  // Keys out of order: a canonical re-encoding would sort them and change the hash.
  const info = latin1("d4:name1:a6:lengthi3e12:piece lengthi16384e6:pieces20:" + "x".repeat(20) + "e");
  const torrent = new Uint8Array([...latin1("d4:info"), ...info, ...latin1("e")]);
  const meta = parseMetainfo(torrent);
  assert.equal(meta.infoHashHex, sha1Hex(info));
  assert.deepEqual(meta.infoBytes, info);
  assert.notEqual(meta.infoHashHex, sha1Hex(encode(decode(info) as Map<string, BEncodable>)));
  assert.equal(meta.infoHash.length, 20);
  assert.equal(meta.infoHash.constructor, Uint8Array);
});

Deno.test("parseMetainfo() copies its input", () => {
  const bytes = single();
  const meta = parseMetainfo(bytes);
  const before = meta.infoHashHex;
  const infoCopy = meta.infoBytes.slice();
  const piecesCopy = meta.pieceHashes.slice();
  assert.notEqual(meta.infoBytes.buffer, bytes.buffer);
  assert.notEqual(meta.pieceHashes.buffer, bytes.buffer);
  // Only the info dictionary is kept, and the piece hashes are a view of it.
  assert.equal(meta.infoBytes.buffer.byteLength, meta.infoBytes.length);
  assert.equal(meta.pieceHashes.buffer, meta.infoBytes.buffer);
  bytes.fill(0);
  assert.deepEqual(meta.infoBytes, infoCopy);
  assert.deepEqual(meta.pieceHashes, piecesCopy);
  assert.equal(sha1Hex(meta.infoBytes), before);
});

Deno.test("parseMetainfo() lays out multi-file torrents with offsets and safe paths", () => {
  const meta = parseMetainfo(multi([
    { length: 10, path: ["a", "b.txt"] },
    { length: 0, path: ["empty"] },
    { length: 20000, path: ["c"] },
  ], 2));
  assert.equal(meta.multiFile, true);
  assert.equal(meta.totalLength, 20010);
  assert.deepEqual(meta.files.map((f) => [f.path, f.safePath, f.offset, f.length]), [
    [["a", "b.txt"], "dir/a/b.txt", 0, 10],
    [["empty"], "dir/empty", 10, 0],
    [["c"], "dir/c", 10, 20000],
  ]);
});

Deno.test("parseMetainfo() sanitises and deduplicates hostile paths", () => {
  const meta = parseMetainfo(encode({
    info: {
      name: "../..",
      "piece length": 16384,
      pieces: hashes(1),
      files: [
        { length: 1, path: ["..", "..", "etc", "passwd"] },
        { length: 1, path: [".."] },
        { length: 1, path: ["ETC", "PASSWD"] },
        { length: 1, path: ["nul"] },
      ],
    },
  }));
  assert.equal(meta.name, "../..");
  assert.deepEqual(meta.files.map((f) => f.safePath), ["_/etc/passwd", "_/_", "_/etc/PASSWD.1", "_/_nul"]);
  assert.deepEqual(meta.files[0]!.path, ["..", "..", "etc", "passwd"]);
});

Deno.test("parseMetainfo() prefers name.utf-8 and path.utf-8 and replaces invalid UTF-8", () => {
  const meta = parseMetainfo(encode({
    info: {
      name: latin1("caf\xe9"),
      "name.utf-8": "café",
      "piece length": 16384,
      pieces: hashes(1),
      files: [
        { length: 1, path: [latin1("\xff")], "path.utf-8": ["ok.txt"] },
        { length: 1, path: [latin1("bad\xff\xfe")] },
        { length: 1, path: ["fallback"], "path.utf-8": [5] },
      ],
    },
  }));
  assert.equal(meta.name, "café");
  assert.deepEqual(meta.files.map((f) => f.path), [["ok.txt"], ["bad\ufffd\ufffd"], ["fallback"]]);
  const plain = parseMetainfo(single({ name: latin1("caf\xe9") }));
  assert.equal(plain.name, "caf\ufffd");
});

Deno.test("parseMetainfo() prefers a valid announce-list, dropping junk entries, empty tiers and duplicates", () => {
  const meta = parseMetainfo(single({}, {
    announce: "http://fallback/announce",
    "announce-list": [
      ["udp://a:1", "", "udp://a:1", 7, " udp://b:2 "],
      [],
      "not a tier",
      ["udp://a:1"],
      ["http://c/announce"],
    ],
  }));
  assert.deepEqual(meta.announceList, [["udp://a:1", "udp://b:2"], ["http://c/announce"]]);
});

Deno.test("parseMetainfo() falls back to announce when announce-list is empty or invalid", () => {
  for (const list of [[], [[]], [[""]], "udp://x", 5, [[5]]]) {
    const meta = parseMetainfo(single({}, { announce: "http://fallback/announce", "announce-list": list }));
    assert.deepEqual(meta.announceList, [["http://fallback/announce"]], JSON.stringify(list));
  }
});

Deno.test("parseMetainfo() reads url-list as a string or a list", () => {
  assert.deepEqual(parseMetainfo(single({}, { "url-list": "http://ws/" })).urlList, ["http://ws/"]);
  assert.deepEqual(
    parseMetainfo(single({}, { "url-list": ["http://a/", "", 5, "http://a/", "http://b/"] })).urlList,
    ["http://a/", "http://b/"],
  );
  assert.deepEqual(parseMetainfo(single({}, { "url-list": 5 })).urlList, []);
});

Deno.test("parseMetainfo() reads the private flag only when it is 1", () => {
  assert.equal(parseMetainfo(single({ private: 1 })).private, true);
  assert.equal(parseMetainfo(single({ private: 0 })).private, false);
  assert.equal(parseMetainfo(single({ private: "1" })).private, false);
});

Deno.test("parseMetainfo() recognises pad files by attr and by .pad paths", () => {
  const meta = parseMetainfo(multi([
    { length: 100, path: ["a"] },
    { attr: "p", length: 16284, path: ["whatever"] },
    { attr: "xh", length: 100, path: ["b"] },
    { length: 16284, path: [".pad", "16284"] },
    { length: 10, path: ["_____padding_file_0_"] },
    { length: 10, path: ["c"] },
  ], 3));
  assert.deepEqual(meta.files.map((f) => f.pad), [false, true, false, true, true, false]);
});

Deno.test("parseMetainfo() does not let pad files take names from real files", () => {
  const meta = parseMetainfo(multi([
    { attr: "p", length: 5, path: ["a"] },
    { length: 5, path: ["a"] },
  ], 1));
  assert.deepEqual(meta.files.map((f) => f.safePath), ["dir/a", "dir/a"]);
  assert.deepEqual(meta.files.map((f) => f.pad), [true, false]);
});

Deno.test("parseMetainfo() loads the v1 part of a hybrid torrent", () => {
  const meta = parseMetainfo(single({
    "meta version": 2,
    "file tree": { "file.bin": { "": { length: 40000, "pieces root": new Uint8Array(32) } } },
  }));
  assert.equal(meta.hybrid, true);
  assert.equal(meta.pieceCount, 3);
});

Deno.test("parseMetainfo() rejects v2-only torrents with a clear error", () => {
  const torrent = encode({
    info: {
      "file tree": { "a": { "": { length: 5, "pieces root": new Uint8Array(32) } } },
      "meta version": 2,
      name: "a",
      "piece length": 16384,
    },
  });
  assert.throws(
    () => parseMetainfo(torrent),
    new MetainfoError("Invalid torrent: v2-only torrents are not supported yet"),
  );
});

Deno.test("parseMetainfo() accepts any positive piece length up to the maximum", () => {
  const odd = parseMetainfo(
    encode({ info: { name: "a", "piece length": 3, length: 10, pieces: hashes(4) } }),
  );
  assert.equal(odd.pieceCount, 4);
  assert.equal(pieceSize(odd, 3), 1);
  const big = parseMetainfo(
    encode({ info: { name: "a", "piece length": 128 * 1024 * 1024, length: 1, pieces: hashes(1) } }),
  );
  assert.equal(big.pieceLength, 128 * 1024 * 1024);
  assert.throws(
    () => parseMetainfo(single(), { maxPieceLength: 8192 }),
    /'piece length' 16384 exceeds the maximum of 8192/,
  );
});

Deno.test("parseMetainfo() counts pieces against the total length exactly", () => {
  const exact = encode({ info: { name: "a", "piece length": 16384, length: 32768, pieces: hashes(2) } });
  assert.equal(parseMetainfo(exact).pieceCount, 2);
  const short = encode({ info: { name: "a", "piece length": 16384, length: 32769, pieces: hashes(2) } });
  assert.throws(
    () => parseMetainfo(short),
    /'pieces' has 2 hashes but 32769 bytes in pieces of 16384 need 3/,
  );
});

Deno.test("parseMetainfo() reports bencode errors as BencodeError and size limits apply", () => {
  assert.throws(() => parseMetainfo(latin1("d4:info")), BencodeError);
  assert.throws(() => parseMetainfo(single(), { maxBytes: 50 }), BencodeError);
});

Deno.test("parseMetainfo() handles many files", () => {
  const files = Array.from({ length: 20_000 }, (_, i) => ({ length: 1, path: ["d" + (i % 100), `f${i}`] }));
  const meta = parseMetainfo(multi(files, 2));
  assert.equal(meta.files.length, 20_000);
  assert.equal(meta.files[19_999]!.offset, 19_999);
  assert.equal(meta.files[19_999]!.safePath, "dir/d99/f19999");
});

Deno.test("pieceSize() gives the full size for every piece but the last", () => {
  const meta = parseMetainfo(single());
  assert.deepEqual([0, 1, 2].map((i) => pieceSize(meta, i)), [16384, 16384, 40000 - 32768]);
  for (const bad of [-1, 3, 1.5, NaN]) assert.throws(() => pieceSize(meta, bad), RangeError);
});

Deno.test("encodeTorrent() keeps the info bytes verbatim and writes the extras", () => {
  const info = latin1("d6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces20:" + "y".repeat(20) + "e");
  const torrent = encodeTorrent(info, {
    announceList: [[], ["udp://a:1", "udp://b:2"], ["http://c/"]],
    urlList: ["http://ws/"],
    comment: "c",
    createdBy: "shoal",
    creationDate: 99,
  });
  const meta = parseMetainfo(torrent);
  assert.equal(meta.infoHashHex, sha1Hex(info));
  assert.deepEqual(meta.announceList, [["udp://a:1", "udp://b:2"], ["http://c/"]]);
  assert.deepEqual(meta.urlList, ["http://ws/"]);
  assert.equal(meta.comment, "c");
  assert.equal(meta.createdBy, "shoal");
  assert.equal(meta.creationDate, 99);
  // The outer dictionary is canonical: decoding with strict key order succeeds.
  const root = decode(torrent, { strictKeyOrder: true }) as Map<string, unknown>;
  assert.equal(new TextDecoder().decode(root.get("announce") as Uint8Array), "udp://a:1");
  assert.throws(() => encodeTorrent(latin1("i1e")), MetainfoError);
  assert.throws(() => encodeTorrent(latin1("d")), MetainfoError);
});

Deno.test("parseMetainfo() takes up to 0x200000 pieces by default, as libtorrent, and refuses one more", () => {
  const at = (pieces: number) =>
    encode({ info: { name: "a", "piece length": 16384, length: pieces * 16384, pieces: hashes(pieces) } });
  assert.equal(parseMetainfo(at(0x200000)).pieceCount, 0x200000);
  assert.throws(
    () => parseMetainfo(at(0x200001)),
    (e: unknown) =>
      e instanceof MetainfoError &&
      e.message === "Invalid torrent: 2097153 pieces exceed the maximum of 2097152",
  );
});

Deno.test("parseMetainfo() takes paths 64 levels deep and up to 4095 bytes, and refuses deeper or longer ones", () => {
  // 64 levels with the torrent's folder: "dir" and 63 components.
  const deep = (levels: number) => Array.from({ length: levels - 1 }, (_, i) => `d${i}`);
  assert.equal(
    parseMetainfo(multi([{ length: 1, path: deep(64) }], 1)).files[0]!.safePath.split("/").length,
    64,
  );
  assert.throws(
    () => parseMetainfo(multi([{ length: 1, path: deep(65) }], 1)),
    /file 0 path is 65 levels deep, more than the 64 allowed/,
  );
  // "dir", 16 components of 250 bytes and a last one, with 17 slashes: 4020 bytes plus the last.
  const long = (
    last: number,
  ) => [...Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(250, "x")), "y".repeat(last)];
  const fits = parseMetainfo(multi([{ length: 1, path: long(75) }], 1)).files[0]!.safePath;
  assert.equal(new TextEncoder().encode(fits).length, 4095);
  assert.throws(
    () => parseMetainfo(multi([{ length: 1, path: long(76) }], 1)),
    /file 0 path is 4096 bytes long, more than the 4095 a path may have/,
  );
});
