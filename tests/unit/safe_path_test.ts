import assert from "node:assert/strict";
import { posix } from "node:path";
import { StorageError } from "../../lib/errors.ts";
import { dedupePaths, resolveInside, safeRelativePath } from "../../lib/safe_path.ts";
import { seededRandom } from "../../lib/net/seeded_random.ts";

const utf8 = new TextEncoder();
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/i;

/** Asserts everything a safe relative path promises. */
function assertSafe(path: string, context: string): void {
  assert.ok(path.length > 0, `empty path for ${context}`);
  assert.ok(!path.startsWith("/"), `absolute path ${JSON.stringify(path)} for ${context}`);
  assert.equal(posix.normalize(path), path, `path ${JSON.stringify(path)} is not normalised (${context})`);
  for (const part of path.split("/")) {
    const where = `component ${JSON.stringify(part)} of ${JSON.stringify(path)} (${context})`;
    assert.ok(part.length > 0, `empty ${where}`);
    assert.ok(part !== "." && part !== "..", `dot ${where}`);
    assert.ok(!part.includes("\\"), `backslash in ${where}`);
    assert.ok(!CONTROL.test(part), `control character in ${where}`);
    assert.ok(!/[<>:"|?*]/.test(part), `Windows-illegal character in ${where}`);
    assert.ok(!/[. ]$/.test(part), `trailing dot or space in ${where}`);
    assert.ok(part.isWellFormed(), `lone surrogate in ${where}`);
    const base = part.split(".")[0]!.replace(/ +$/, "");
    assert.ok(!RESERVED.test(base), `reserved name ${where}`);
    assert.ok(utf8.encode(part).length <= 255, `over 255 bytes: ${where}`);
  }
  const full = resolveInside("/srv/downloads", path);
  assert.ok(full.startsWith("/srv/downloads/"), `${full} is outside the root (${context})`);
}

const ATOMS = [
  "..",
  ".",
  "",
  "/",
  "\\",
  "\u0000",
  "\u0007",
  "\n",
  "\u007f",
  "\u0085",
  "\u202e",
  " ",
  "...",
  "C:",
  "c:\\",
  "//",
  "CON",
  "con",
  "nul.txt",
  "COM1",
  "lpt9.tar.gz",
  "CONOUT$",
  "aux ",
  "Com¹",
  "<",
  ">",
  ":",
  '"',
  "|",
  "?",
  "*",
  "a",
  "file.txt",
  "é",
  "日本",
  "😀",
  "\u0301",
  "\ud800",
  "\udfff",
  "x".repeat(300),
  "é".repeat(200),
  "😀".repeat(100),
  ".mkv",
  "." + "e".repeat(40),
  "~",
  "-",
];

function randomComponent(random: () => number): string {
  let s = "";
  const parts = Math.floor(random() * 5);
  for (let i = 0; i < parts; i++) {
    if (random() < 0.75) {
      s += ATOMS[Math.floor(random() * ATOMS.length)]!;
    } else {
      s += String.fromCharCode(Math.floor(random() * 0x10000));
    }
  }
  return s;
}

function randomComponents(random: () => number): string[] {
  const n = Math.floor(random() * 7);
  return Array.from({ length: n }, () => randomComponent(random));
}

Deno.test("safeRelativePath() never leaves the root and never yields an empty component (seeded property)", () => {
  const random = seededRandom(0x5afe);
  for (let i = 0; i < 20_000; i++) {
    const components = randomComponents(random);
    const path = safeRelativePath(components);
    assertSafe(path, `case ${i}: ${JSON.stringify(components)}`);
  }
});

Deno.test("dedupePaths() keeps safe paths safe and collision-free (seeded property)", () => {
  const random = seededRandom(0xdedbee);
  for (let round = 0; round < 300; round++) {
    const paths = Array.from({ length: 1 + Math.floor(random() * 25) }, () => {
      // Few short names so collisions are frequent.
      const depth = 1 + Math.floor(random() * 3);
      const names = ["a", "A", "b", "B.txt", "b.TXT", "b.txt", "c", "b.1.txt", "x".repeat(260) + ".txt"];
      return safeRelativePath(
        Array.from({ length: depth }, () => names[Math.floor(random() * names.length)]!),
      );
    });
    const out = dedupePaths(paths);
    assert.equal(out.length, paths.length);
    assert.deepEqual(dedupePaths(paths), out, "not deterministic");
    const files = new Set<string>();
    const dirs = new Set<string>();
    for (const p of out) {
      assertSafe(p, `round ${round}`);
      const key = p.toLowerCase();
      assert.ok(!files.has(key), `duplicate file ${p} in ${JSON.stringify(out)}`);
      files.add(key);
      const parts = key.split("/");
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
    }
    for (const d of dirs) {
      assert.ok(!files.has(d), `${d} is both a file and a directory in ${JSON.stringify(out)}`);
    }
  }
});

Deno.test("safeRelativePath() drops dot components and absolute prefixes", () => {
  assert.equal(safeRelativePath(["..", "..", "etc", "passwd"]), "etc/passwd");
  assert.equal(safeRelativePath(["../../etc/passwd"]), "etc/passwd");
  assert.equal(safeRelativePath(["/etc/passwd"]), "etc/passwd");
  assert.equal(safeRelativePath(["a", ".", "", "b"]), "a/b");
  assert.equal(safeRelativePath(["a/../../b"]), "a/b");
  assert.equal(safeRelativePath([".."]), "_");
  assert.equal(safeRelativePath([]), "_");
  assert.equal(safeRelativePath(["...", ". .", " "]), "_");
});

Deno.test("safeRelativePath() treats backslashes as separators and neutralises drive letters", () => {
  assert.equal(safeRelativePath(["C:\\Windows\\System32"]), "C_/Windows/System32");
  assert.equal(safeRelativePath(["..\\..\\x"]), "x");
  assert.equal(safeRelativePath(["\\\\server\\share"]), "server/share");
});

Deno.test("safeRelativePath() removes control characters and replaces characters Windows forbids", () => {
  assert.equal(safeRelativePath(["a\u0000b"]), "ab");
  assert.equal(safeRelativePath(["tab\there\r\n"]), "tabhere");
  assert.equal(safeRelativePath(['a<b>c:d"e|f?g*h']), "a_b_c_d_e_f_g_h");
  assert.equal(safeRelativePath(["photo\u202egpj.exe"]), "photogpj.exe");
  assert.equal(safeRelativePath(["\u0000"]), "_");
});

Deno.test("safeRelativePath() renames reserved Windows device names, with or without extension", () => {
  assert.equal(safeRelativePath(["CON"]), "_CON");
  assert.equal(safeRelativePath(["con.txt"]), "_con.txt");
  assert.equal(safeRelativePath(["Nul.tar.gz"]), "_Nul.tar.gz");
  assert.equal(safeRelativePath(["COM1", "LPT9"]), "_COM1/_LPT9");
  assert.equal(safeRelativePath(["aux "]), "_aux");
  assert.equal(safeRelativePath(["PRN .txt"]), "_PRN .txt");
  assert.equal(safeRelativePath(["CONSOLE", "COM10", "xcon"]), "CONSOLE/COM10/xcon");
});

Deno.test("safeRelativePath() trims trailing dots and spaces", () => {
  assert.equal(safeRelativePath(["name. . ."]), "name");
  assert.equal(safeRelativePath(["dir ", "file.txt."]), "dir/file.txt");
  assert.equal(safeRelativePath([" lead"]), " lead");
});

Deno.test("safeRelativePath() caps components at 255 UTF-8 bytes and keeps the extension", () => {
  const long = safeRelativePath(["a".repeat(400) + ".flac"]);
  assert.equal(long, "a".repeat(250) + ".flac");
  const accents = safeRelativePath(["é".repeat(200)]);
  assert.equal(accents, "é".repeat(127)); // 254 bytes: a 2-byte character does not fit in the last byte
  const emoji = safeRelativePath(["😀".repeat(100) + ".txt"]);
  assert.equal(emoji, "😀".repeat(62) + ".txt"); // 248 + 4 bytes
  const longExtension = safeRelativePath(["a." + "b".repeat(300)]);
  assert.equal(longExtension, "a." + "b".repeat(253));
  assert.equal(safeRelativePath(["a".repeat(300)], { maxComponentBytes: 100 }), "a".repeat(100));
});

Deno.test("safeRelativePath() uses the placeholder option and rejects unsafe placeholders", () => {
  assert.equal(safeRelativePath([".."], { placeholder: "unnamed" }), "unnamed");
  for (const placeholder of ["../x", "a/b", "a\\b", "..", "", "CON", "a."]) {
    assert.throws(() => safeRelativePath([".."], { placeholder }), TypeError, placeholder);
  }
  assert.throws(() => safeRelativePath(["a"], { maxComponentBytes: 10 }), RangeError);
});

Deno.test("safeRelativePath() replaces lone surrogates", () => {
  assert.equal(safeRelativePath(["a\ud800b"]), "a\ufffdb");
});

Deno.test("dedupePaths() suffixes case-insensitive duplicates before the extension", () => {
  assert.deepEqual(dedupePaths(["a.txt", "A.TXT", "a.txt", "b"]), ["a.txt", "A.1.TXT", "a.2.txt", "b"]);
  assert.deepEqual(dedupePaths(["Café", "cafe\u0301"]), ["Café", "cafe\u0301.1"]);
});

Deno.test("dedupePaths() separates a file from a directory of the same name", () => {
  assert.deepEqual(dedupePaths(["d", "d/f", "D/g"]), ["d", "d.1/f", "d.1/g"]);
  assert.deepEqual(dedupePaths(["d/f", "d", "D"]), ["d/f", "d.1", "D.2"]);
  assert.deepEqual(dedupePaths(["x/y.txt", "X/Y.txt/z"]), ["x/y.txt", "x/Y.txt.1/z"]);
});

Deno.test("dedupePaths() merges directories that differ only in case into the first spelling", () => {
  assert.deepEqual(dedupePaths(["Music/a.mp3", "music/b.mp3"]), ["Music/a.mp3", "Music/b.mp3"]);
});

Deno.test("dedupePaths() keeps suffixed names within the component size limit", () => {
  const name = "n".repeat(251) + ".txt";
  const [first, second] = dedupePaths([name, name]);
  assert.equal(first, name);
  assert.equal(second, "n".repeat(249) + ".1.txt");
  assert.equal(utf8.encode(second).length, 255);
});

Deno.test("dedupePaths() is linear in path depth", () => {
  // 20 000 levels: a quadratic implementation would build 200 million characters of keys.
  const deep = Array.from({ length: 20_000 }, (_, i) => `d${i}`).join("/");
  const out = dedupePaths([deep, deep]);
  assert.ok(out[1]!.endsWith(".1"));
});

Deno.test("resolveInside() joins paths inside the root", () => {
  assert.equal(resolveInside("/srv/dl", "a/b.txt"), "/srv/dl/a/b.txt");
  assert.equal(resolveInside("/srv/dl/", "..foo"), "/srv/dl/..foo");
  assert.equal(resolveInside("/srv/dl", "a/../b"), "/srv/dl/b");
});

Deno.test("resolveInside() throws StorageError for paths that leave the root", () => {
  for (const bad of ["..", "../x", "a/../../x", "/etc/passwd", "", ".", "a/..", "x\u0000y", "../dl2/x"]) {
    assert.throws(() => resolveInside("/srv/dl", bad), StorageError, JSON.stringify(bad));
  }
});
