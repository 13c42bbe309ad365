import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type MetainfoOptions, parseMetainfo } from "../../lib/metainfo.ts";
import { resolveInside } from "../../lib/safe_path.ts";

const invalidDir = new URL("../../fixtures/invalid/", import.meta.url);
const validDir = new URL("../../fixtures/valid/", import.meta.url);

interface InvalidExpectation {
  error: string;
  message: string;
  options?: MetainfoOptions;
}

interface ValidExpectation {
  infoHash: string;
  name: string;
  safePaths: string[];
  paths?: string[][];
  pads?: boolean[];
  offsets?: number[];
  pieceCount?: number;
  totalLength?: number;
  multiFile?: boolean;
  private?: boolean;
  hybrid?: boolean;
  announceList?: string[][];
  urlList?: string[];
  comment?: string;
  createdBy?: string;
  creationDate?: number;
}

async function readTable<T>(dir: URL): Promise<Record<string, T>> {
  return JSON.parse(await Deno.readTextFile(new URL("expected.json", dir)));
}

async function torrentFiles(dir: URL): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".torrent")) names.push(entry.name);
  }
  return names.sort();
}

Deno.test("every invalid fixture is listed in expected.json and every entry has a file", async () => {
  const table = await readTable<InvalidExpectation>(invalidDir);
  const files = await torrentFiles(invalidDir);
  assert.deepEqual(files, Object.keys(table).sort());
  assert.ok(files.length >= 30, `only ${files.length} invalid fixtures`);
});

Deno.test("every invalid fixture fails with the expected error class and message", async () => {
  const table = await readTable<InvalidExpectation>(invalidDir);
  for (const [file, expected] of Object.entries(table)) {
    const bytes = await Deno.readFile(new URL(file, invalidDir));
    assert.ok(bytes.length < 4096, `${file} is ${bytes.length} bytes`);
    let error: unknown;
    try {
      parseMetainfo(bytes, expected.options);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof Error, `${file} parsed without an error`);
    assert.equal(error.name, expected.error, `${file}: ${error.name}: ${error.message}`);
    assert.equal(error.constructor.name, expected.error, file);
    assert.ok(
      error.message.includes(expected.message),
      `${file}: message '${error.message}' lacks '${expected.message}'`,
    );
    assert.match(error.message, /^[A-Z]/, `${file}: message must start with a capital`);
    assert.doesNotMatch(error.message, /\.$/, `${file}: message must not end with a period`);
  }
});

Deno.test("every valid fixture is listed in expected.json and every entry has a file", async () => {
  const table = await readTable<ValidExpectation>(validDir);
  assert.deepEqual(await torrentFiles(validDir), Object.keys(table).sort());
});

Deno.test("every valid fixture parses to its expected values", async () => {
  const table = await readTable<ValidExpectation>(validDir);
  for (const [file, expected] of Object.entries(table)) {
    const bytes = await Deno.readFile(new URL(file, validDir));
    assert.ok(bytes.length < 4096, `${file} is ${bytes.length} bytes`);
    const meta = parseMetainfo(bytes);
    assert.equal(meta.infoHashHex, expected.infoHash, file);
    assert.equal(createHash("sha1").update(meta.infoBytes).digest("hex"), expected.infoHash, file);
    assert.equal(meta.name, expected.name, file);
    assert.deepEqual(meta.files.map((f) => f.safePath), expected.safePaths, file);
    if (expected.paths) assert.deepEqual(meta.files.map((f) => f.path), expected.paths, file);
    if (expected.pads) assert.deepEqual(meta.files.map((f) => f.pad), expected.pads, file);
    if (expected.offsets) assert.deepEqual(meta.files.map((f) => f.offset), expected.offsets, file);
    const scalars = [
      "pieceCount",
      "totalLength",
      "multiFile",
      "private",
      "hybrid",
      "comment",
      "createdBy",
      "creationDate",
    ] as const;
    for (const key of scalars) {
      if (expected[key] !== undefined) assert.equal(meta[key], expected[key], `${file}: ${key}`);
    }
    if (expected.announceList) assert.deepEqual(meta.announceList, expected.announceList, file);
    if (expected.urlList) assert.deepEqual(meta.urlList, expected.urlList, file);
    // Whatever the torrent says, every file stays inside the download folder.
    for (const f of meta.files) resolveInside("/downloads", f.safePath);
  }
});
