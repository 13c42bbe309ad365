/**
 * Writes the torrent fixtures used by the unit tests (run with `deno task fixtures`):
 *
 * - `fixtures/invalid/NN_name.torrent`: crafted invalid torrents, one rule each, and
 *   `fixtures/invalid/expected.json` mapping each file to the error class and a message
 *   substring it must produce (and the parser options to use, when a limit is tested);
 * - `fixtures/valid/NN_name.torrent`: small valid torrents (single-file, nested multi-file,
 *   pad files, hybrid v1+v2, hostile paths, a non-canonical info dictionary, UTF-8 keys), and
 *   `fixtures/valid/expected.json` with what parsing each must give.
 *
 * The output is deterministic. Expected values are written out by hand here (safe paths) or
 * computed from the bytes written (info-hashes), never by the parser under test.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type BEncodable, encode } from "../lib/bencode.ts";

const textEncoder = new TextEncoder();
const root = new URL("../fixtures/", import.meta.url);

/** Concatenates strings (as Latin-1 bytes, one byte per char) and byte arrays. */
function raw(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) =>
    typeof p === "string" ? Uint8Array.from(p, (c) => c.charCodeAt(0) & 0xff) : p
  );
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function sha1(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `count` deterministic 20-byte piece hashes. */
function hashes(count: number, seed = "piece"): Uint8Array {
  const out = new Uint8Array(count * 20);
  for (let i = 0; i < count; i++) out.set(sha1(`${seed} ${i}`), i * 20);
  return out;
}

/** Binary-string form of bytes, for dictionary keys. */
function binaryKey(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

const ANNOUNCE = "http://127.0.0.1:6969/announce";

function goodInfo(): Record<string, BEncodable> {
  return { name: "file.bin", "piece length": 16384, length: 20000, pieces: hashes(2) };
}

function torrentOf(info: BEncodable, extra: Record<string, BEncodable> = { announce: ANNOUNCE }): Uint8Array {
  return encode({ ...extra, info });
}

function withInfo(change: Record<string, BEncodable | undefined>): Uint8Array {
  const info: Record<string, BEncodable | undefined> = { ...goodInfo(), ...change };
  return torrentOf(info as Record<string, BEncodable>);
}

function multi(files: BEncodable[], pieceCount: number, extra: Record<string, BEncodable> = {}): Uint8Array {
  return torrentOf({ name: "dir", "piece length": 16384, pieces: hashes(pieceCount), files, ...extra });
}

interface InvalidCase {
  name: string;
  bytes: Uint8Array;
  error: "BencodeError" | "MetainfoError";
  message: string;
  options?: { maxFiles?: number; maxPieces?: number; maxPathBytes?: number };
}

const good = torrentOf(goodInfo());

const invalid: InvalidCase[] = [
  // Bencode-level errors.
  {
    name: "truncated",
    bytes: raw(`d8:announce${ANNOUNCE.length}:${ANNOUNCE}4:infod`),
    error: "BencodeError",
    message: "Cut short: the data ends after",
  },
  {
    name: "trailing_garbage",
    bytes: raw(good, "garbage"),
    error: "BencodeError",
    message: "Unexpected data after the end of the value",
  },
  {
    name: "leading_zero_integer",
    bytes: raw("d4:infod6:lengthi020000e4:name1:a12:piece lengthi16384e6:pieces20:", hashes(1), "ee"),
    error: "BencodeError",
    message: "Leading zero in integer",
  },
  {
    name: "leading_zero_string_length",
    bytes: raw("d04:infodee"),
    error: "BencodeError",
    message: "Leading zero in string length",
  },
  {
    name: "nesting_bomb",
    bytes: raw("d4:info", "l".repeat(1500), "e".repeat(1500), "e"),
    error: "BencodeError",
    message: "Nesting deeper than 100 levels",
  },
  {
    name: "length_prefix_beyond_input",
    bytes: raw("d4:info4294967295:xe"),
    error: "BencodeError",
    message: "Cut short: the string at byte",
  },
  {
    name: "duplicate_keys",
    bytes: raw("d4:infod4:name1:ae4:infod4:name1:bee"),
    error: "BencodeError",
    message: "Duplicate dictionary key 'info'",
  },
  { name: "negative_zero", bytes: raw("d1:ai-0e4:infodee"), error: "BencodeError", message: "Negative zero" },
  {
    name: "integer_without_digits",
    bytes: raw("d1:aie4:infodee"),
    error: "BencodeError",
    message: "no digits",
  },
  {
    name: "integer_minus_only",
    bytes: raw("d1:ai-e4:infodee"),
    error: "BencodeError",
    message: "Integer has no digits",
  },
  {
    name: "invalid_byte",
    bytes: raw("d1:ax"),
    error: "BencodeError",
    message: "Unexpected 'x' at byte 4 where a value should start",
  },
  {
    name: "key_not_a_string",
    bytes: raw("di1ei2ee"),
    error: "BencodeError",
    message: "Dictionary key must be a byte string",
  },
  { name: "empty_file", bytes: raw(""), error: "BencodeError", message: "Empty input" },
  // Torrent structure.
  {
    name: "not_a_dictionary",
    bytes: encode(["info"]),
    error: "MetainfoError",
    message: "the top-level value is not a dictionary",
  },
  {
    name: "missing_info",
    bytes: encode({ announce: ANNOUNCE }),
    error: "MetainfoError",
    message: "missing 'info' dictionary",
  },
  {
    name: "info_not_a_dictionary",
    bytes: encode({ info: "x" }),
    error: "MetainfoError",
    message: "'info' is not a dictionary",
  },
  {
    name: "missing_name",
    bytes: withInfo({ name: undefined }),
    error: "MetainfoError",
    message: "missing 'name'",
  },
  {
    name: "name_not_bytes",
    bytes: withInfo({ name: 5 }),
    error: "MetainfoError",
    message: "'name' is not a byte string",
  },
  { name: "empty_name", bytes: withInfo({ name: "" }), error: "MetainfoError", message: "'name' is empty" },
  {
    name: "missing_piece_length",
    bytes: withInfo({ "piece length": undefined }),
    error: "MetainfoError",
    message: "missing 'piece length'",
  },
  {
    name: "piece_length_zero",
    bytes: withInfo({ "piece length": 0 }),
    error: "MetainfoError",
    message: "'piece length' must be positive, got 0",
  },
  {
    name: "piece_length_negative",
    bytes: withInfo({ "piece length": -16384 }),
    error: "MetainfoError",
    message: "'piece length' must be positive, got -16384",
  },
  {
    name: "piece_length_too_large",
    bytes: withInfo({ "piece length": 256 * 1024 * 1024 }),
    error: "MetainfoError",
    message: "'piece length' 268435456 exceeds the maximum of 134217728",
  },
  {
    name: "piece_length_not_integer",
    bytes: withInfo({ "piece length": "16384" }),
    error: "MetainfoError",
    message: "'piece length' is not an integer",
  },
  {
    name: "missing_pieces",
    bytes: withInfo({ pieces: undefined }),
    error: "MetainfoError",
    message: "missing 'pieces'",
  },
  {
    name: "pieces_not_bytes",
    bytes: withInfo({ pieces: [hashes(1), hashes(1)] }),
    error: "MetainfoError",
    message: "'pieces' is not a byte string",
  },
  {
    name: "pieces_not_multiple_of_20",
    bytes: withInfo({ pieces: hashes(2).subarray(0, 39) }),
    error: "MetainfoError",
    message: "'pieces' is 39 bytes long, which is not a multiple of 20",
  },
  {
    name: "pieces_wrong_count",
    bytes: withInfo({ pieces: hashes(3) }),
    error: "MetainfoError",
    message: "'pieces' has 3 hashes but 20000 bytes in pieces of 16384 need 2",
  },
  {
    name: "both_length_and_files",
    bytes: withInfo({ files: [{ length: 20000, path: ["a"] }] }),
    error: "MetainfoError",
    message: "'info' has both 'length' and 'files'",
  },
  {
    name: "neither_length_nor_files",
    bytes: withInfo({ length: undefined }),
    error: "MetainfoError",
    message: "'info' has neither 'length' nor 'files'",
  },
  {
    name: "negative_length",
    bytes: withInfo({ length: -1 }),
    error: "MetainfoError",
    message: "the file has a negative length -1",
  },
  {
    name: "length_not_integer",
    bytes: withInfo({ length: "20000" }),
    error: "MetainfoError",
    message: "the file length is not an integer",
  },
  {
    name: "length_above_2_53",
    bytes: withInfo({ length: 2n ** 53n }),
    error: "MetainfoError",
    message: "the file length 9007199254740992 is too large",
  },
  {
    name: "length_huge_bigint",
    bytes: withInfo({ length: 10n ** 30n }),
    error: "MetainfoError",
    message: "is too large",
  },
  {
    name: "zero_total_length",
    bytes: withInfo({ length: 0, pieces: new Uint8Array(0) }),
    error: "MetainfoError",
    message: "the total length is 0 bytes",
  },
  // Multi-file layout.
  {
    name: "files_not_a_list",
    bytes: withInfo({ length: undefined, files: "a" }),
    error: "MetainfoError",
    message: "'files' is not a list",
  },
  { name: "files_empty", bytes: multi([], 0), error: "MetainfoError", message: "'files' is empty" },
  {
    name: "file_not_a_dictionary",
    bytes: multi(["a"], 1),
    error: "MetainfoError",
    message: "file 0 is not a dictionary",
  },
  {
    name: "file_length_missing",
    bytes: multi([{ path: ["a"] }], 1),
    error: "MetainfoError",
    message: "file 0 has no 'length'",
  },
  {
    name: "file_length_negative",
    bytes: multi([{ length: 5, path: ["a"] }, { length: -5, path: ["b"] }], 1),
    error: "MetainfoError",
    message: "file 1 has a negative length -5",
  },
  {
    name: "file_length_bigint",
    bytes: multi([{ length: 5, path: ["a"] }, { length: 2n ** 64n, path: ["b"] }], 1),
    error: "MetainfoError",
    message: "file 1 length 18446744073709551616 is too large",
  },
  {
    name: "file_path_missing",
    bytes: multi([{ length: 5 }], 1),
    error: "MetainfoError",
    message: "file 0 has no 'path'",
  },
  {
    name: "file_path_not_a_list",
    bytes: multi([{ length: 5, path: "a/b" }], 1),
    error: "MetainfoError",
    message: "file 0 'path' is not a list",
  },
  {
    name: "file_path_empty",
    bytes: multi([{ length: 5, path: [] }], 1),
    error: "MetainfoError",
    message: "file 0 'path' is empty",
  },
  {
    name: "file_path_component_not_bytes",
    bytes: multi([{ length: 5, path: ["a", 5] }], 1),
    error: "MetainfoError",
    message: "file 0 path component 1 is not a byte string",
  },
  {
    name: "total_length_overflow",
    bytes: multi([
      { length: Number.MAX_SAFE_INTEGER, path: ["a"] },
      { length: Number.MAX_SAFE_INTEGER, path: ["b"] },
    ], 1),
    error: "MetainfoError",
    message: "the total length exceeds 2^53 - 1 bytes",
  },
  {
    name: "too_many_files",
    bytes: multi([1, 2, 3, 4].map((i) => ({ length: 1, path: [`f${i}`] })), 1),
    error: "MetainfoError",
    message: "4 files exceed the maximum of 3",
    options: { maxFiles: 3 },
  },
  {
    name: "too_many_pieces",
    bytes: withInfo({ length: 40000, pieces: hashes(3) }),
    error: "MetainfoError",
    message: "3 pieces exceed the maximum of 2",
    options: { maxPieces: 2 },
  },
  // Versions.
  {
    name: "v2_only",
    bytes: torrentOf({
      "file tree": { "a.bin": { "": { length: 5, "pieces root": new Uint8Array(32) } } },
      "meta version": 2,
      name: "a.bin",
      "piece length": 16384,
    }),
    error: "MetainfoError",
    message: "v2-only torrents are not supported yet",
  },
  {
    name: "unsupported_meta_version",
    bytes: withInfo({ "meta version": 3 }),
    error: "MetainfoError",
    message: "unsupported 'meta version' 3",
  },
  // Paths that could not exist on disk, or cost a folder per level: refused at parse time.
  {
    name: "path_200_folders_deep",
    bytes: multi([{ length: 5, path: [...Array.from({ length: 199 }, () => "d"), "f"] }], 1),
    error: "MetainfoError",
    message: "file 0 path has 200 components, more than the 64 allowed",
  },
  {
    name: "path_deep_through_backslashes",
    bytes: multi([{ length: 5, path: ["a", "d\\".repeat(63) + "f"] }], 1),
    error: "MetainfoError",
    message: "file 0 path is 66 levels deep, more than the 64 allowed",
  },
  {
    name: "name_deep_through_slashes",
    bytes: withInfo({ name: "d/".repeat(70) + "f" }),
    error: "MetainfoError",
    message: "the torrent's name is 71 levels deep, more than the 64 allowed",
  },
  {
    name: "path_too_long_for_the_file_system",
    bytes: multi([{ length: 5, path: ["x".repeat(200), "y".repeat(200)] }], 1),
    error: "MetainfoError",
    message: "file 0 path is 405 bytes long, more than the 300 a path may have",
    options: { maxPathBytes: 300 },
  },
];

// Valid torrents. Expected safe paths are written by hand.

interface ValidCase {
  name: string;
  bytes: Uint8Array;
  /** The exact bytes of the info dictionary inside `bytes`. */
  info: Uint8Array;
  expected: Record<string, unknown>;
}

function validCase(
  name: string,
  info: Record<string, BEncodable>,
  extra: Record<string, BEncodable>,
  expected: Record<string, unknown>,
): ValidCase {
  return { name, bytes: torrentOf(info, extra), info: encode(info), expected };
}

// A v2 piece layer of two 32-byte leaves and the Merkle root over them, so that clients that
// check the v2 part (libtorrent does) accept the hybrid fixture too.
const pieceLayer = new Uint8Array(64);
pieceLayer.set(sha256(textEncoder.encode("layer 0")), 0);
pieceLayer.set(sha256(textEncoder.encode("layer 1")), 32);
const piecesRoot = sha256(pieceLayer);

const hostileFiles: { path: string[]; expect: string }[] = [
  { path: ["..", "..", "etc", "passwd"], expect: "evil/etc/passwd" },
  { path: ["C:\\x"], expect: "evil/C_/x" },
  { path: ["CON"], expect: "evil/_CON" },
  { path: ["a\u0000b"], expect: "evil/ab" },
  { path: ["con.txt"], expect: "evil/_con.txt" },
  { path: ["dup.txt"], expect: "evil/dup.txt" },
  { path: ["DUP.TXT"], expect: "evil/DUP.1.TXT" },
  { path: ["a|b?c*.txt. "], expect: "evil/a_b_c_.txt" },
  { path: ["/etc/shadow"], expect: "evil/etc/shadow" },
  { path: ["dir"], expect: "evil/dir" },
  { path: ["dir", "f"], expect: "evil/dir.1/f" },
  { path: [".", "..", "...", " "], expect: "evil/_" },
  { path: ["x".repeat(300) + ".mkv"], expect: "evil/" + "x".repeat(251) + ".mkv" },
  { path: ["evil\u202egnp.exe"], expect: "evil/evilgnp.exe" },
  { path: ["lpt1.tar.gz"], expect: "evil/_lpt1.tar.gz" },
  { path: ["etc", "passwd"], expect: "evil/etc/passwd.1" },
  { path: ["tab\there", "new\nline"], expect: "evil/tabhere/newline" },
];

const valid: ValidCase[] = [
  validCase(
    "single_file",
    { name: "hello.txt", "piece length": 16384, length: 20000, pieces: hashes(2, "hello") },
    { announce: ANNOUNCE, comment: "Hello", "created by": "shoal fixtures", "creation date": 1700000000 },
    {
      name: "hello.txt",
      safePaths: ["hello.txt"],
      pieceCount: 2,
      totalLength: 20000,
      multiFile: false,
      private: false,
      hybrid: false,
      announceList: [[ANNOUNCE]],
      urlList: [],
      comment: "Hello",
      createdBy: "shoal fixtures",
      creationDate: 1700000000,
    },
  ),
  validCase(
    "multi_file_nested",
    {
      name: "album",
      "piece length": 16384,
      pieces: hashes(3, "album"),
      files: [
        { length: 10000, path: ["cd1", "track01.flac"] },
        { length: 20000, path: ["cd1", "track02.flac"] },
        { length: 5000, path: ["cd2", "deep", "x", "track.flac"] },
        { length: 100, path: ["readme.txt"] },
      ],
    },
    {
      announce: "http://ignored.example/announce",
      "announce-list": [
        ["udp://127.0.0.1:6969", "", 5],
        [],
        ["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"],
        "not a tier",
      ],
      "url-list": "http://127.0.0.1:8080/seed/",
    },
    {
      name: "album",
      safePaths: [
        "album/cd1/track01.flac",
        "album/cd1/track02.flac",
        "album/cd2/deep/x/track.flac",
        "album/readme.txt",
      ],
      offsets: [0, 10000, 30000, 35000],
      pieceCount: 3,
      totalLength: 35100,
      multiFile: true,
      announceList: [["udp://127.0.0.1:6969"], ["http://127.0.0.1:6969/announce"]],
      urlList: ["http://127.0.0.1:8080/seed/"],
    },
  ),
  validCase(
    "pad_files",
    {
      name: "padded",
      "piece length": 16384,
      pieces: hashes(3, "padded"),
      private: 1,
      files: [
        { length: 1000, path: ["a.bin"] },
        { attr: "p", length: 15384, path: [".pad", "15384"] },
        { attr: "x", length: 16384, path: ["b.bin"] },
        { length: 100, path: [".pad", "100"] },
        { length: 10, path: ["c.bin"] },
      ],
    },
    { "url-list": ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a", "", 7] },
    {
      name: "padded",
      safePaths: ["padded/a.bin", "padded/.pad/15384", "padded/b.bin", "padded/.pad/100", "padded/c.bin"],
      pads: [false, true, false, true, false],
      offsets: [0, 1000, 16384, 32768, 32868],
      pieceCount: 3,
      totalLength: 32878,
      private: true,
      announceList: [],
      urlList: ["http://127.0.0.1:8080/a"],
    },
  ),
  validCase(
    "hybrid_v1_v2",
    {
      "file tree": { "hybrid.bin": { "": { length: 20000, "pieces root": piecesRoot } } },
      length: 20000,
      "meta version": 2,
      name: "hybrid.bin",
      "piece length": 16384,
      pieces: hashes(2, "hybrid"),
    },
    { announce: ANNOUNCE, "piece layers": new Map([[binaryKey(piecesRoot), pieceLayer]]) },
    { name: "hybrid.bin", safePaths: ["hybrid.bin"], pieceCount: 2, hybrid: true, multiFile: false },
  ),
  validCase(
    "hostile_paths",
    {
      name: "../../evil",
      "piece length": 16384,
      pieces: hashes(1, "evil"),
      files: hostileFiles.map((f, i) => ({ length: i + 1, path: f.path })),
    },
    { announce: ANNOUNCE },
    { name: "../../evil", safePaths: hostileFiles.map((f) => f.expect), pieceCount: 1, multiFile: true },
  ),
];

// An info dictionary whose keys are not sorted: the info-hash must be of these raw bytes.
{
  const info = raw("d4:name5:a.txt12:piece lengthi16384e6:lengthi3e6:pieces20:", hashes(1, "raw"), "e");
  valid.push({
    name: "noncanonical_info",
    bytes: raw("d8:announce", `${ANNOUNCE.length}:${ANNOUNCE}`, "4:info", info, "e"),
    info,
    expected: { name: "a.txt", safePaths: ["a.txt"], pieceCount: 1, totalLength: 3 },
  });
}

// `name.utf-8` and `path.utf-8` win over invalid UTF-8; without them, bad bytes become U+FFFD.
{
  const info = raw(
    "d5:filesl",
    "d6:lengthi5e4:pathl2:x\xffe10:path.utf-8l10:na\xc3\xafve.txtee",
    "d6:lengthi6e4:pathl6:\xc3\x28.txtee",
    "e4:name6:caf\xe9!!10:name.utf-86:caf\xc3\xa9!12:piece lengthi16384e6:pieces20:",
    hashes(1, "utf8"),
    "e",
  );
  valid.push({
    name: "utf8_keys",
    bytes: raw("d4:info", info, "e"),
    info,
    expected: {
      name: "café!",
      paths: [["naïve.txt"], ["\ufffd(.txt"]],
      safePaths: ["café!/naïve.txt", "café!/\ufffd(.txt"],
      pieceCount: 1,
      totalLength: 11,
      announceList: [],
    },
  });
}

async function writeDir(dir: string, files: Map<string, Uint8Array>, expected: Record<string, unknown>) {
  const url = new URL(`${dir}/`, root);
  await Deno.mkdir(url, { recursive: true });
  for await (const entry of Deno.readDir(url)) {
    if (entry.isFile && entry.name.endsWith(".torrent")) await Deno.remove(new URL(entry.name, url));
  }
  for (const [name, bytes] of files) {
    if (bytes.length >= 4096) throw new Error(`Fixture ${dir}/${name} is ${bytes.length} bytes, over 4 KiB`);
    await Deno.writeFile(new URL(name, url), bytes);
  }
  await Deno.writeTextFile(new URL("expected.json", url), JSON.stringify(expected, null, 2) + "\n");
}

function fileName(index: number, name: string): string {
  return `${String(index + 1).padStart(2, "0")}_${name}.torrent`;
}

const invalidFiles = new Map<string, Uint8Array>();
const invalidExpected: Record<string, unknown> = {};
invalid.forEach((c, i) => {
  const file = fileName(i, c.name);
  invalidFiles.set(file, c.bytes);
  invalidExpected[file] = {
    error: c.error,
    message: c.message,
    ...(c.options ? { options: c.options } : {}),
  };
});

// Sanity check: every valid case embeds its info bytes verbatim.
for (const c of valid) {
  if (!binaryKey(c.bytes).includes(binaryKey(c.info))) {
    throw new Error(`Fixture ${c.name} lacks its info bytes`);
  }
}

const validFiles = new Map<string, Uint8Array>();
const validExpected: Record<string, unknown> = {};
valid.forEach((c, i) => {
  const file = fileName(i, c.name);
  validFiles.set(file, c.bytes);
  validExpected[file] = { infoHash: hex(sha1(c.info)), ...c.expected };
});

await writeDir("invalid", invalidFiles, invalidExpected);
await writeDir("valid", validFiles, validExpected);
console.log(
  `Wrote ${invalidFiles.size} invalid and ${validFiles.size} valid torrents under ${root.pathname}`,
);
