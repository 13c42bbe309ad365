import assert from "node:assert/strict";

const PROBE = new URL("../_decode_rss_probe.ts", import.meta.url).pathname;

interface Probe {
  inputBytes: number;
  /** How much the peak RSS grew while decoding. */
  grownBytes: number;
  error: string;
}

/** Decodes 120 MB of `i0e` values in a fresh process (so peak RSS is this decode's alone). */
async function probe(mode: "decode" | "parse" | "parse-raised"): Promise<Probe> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--max-old-space-size=3000", PROBE, "120", mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `probe failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text) as Probe;
}

const MB = 1_000_000;

Deno.test("parseMetainfo refuses a 120 MB .torrent of i0e values by its size, before copying or decoding it", async () => {
  const result = await probe("parse");
  assert.match(
    result.error,
    /^BencodeError: Torrent file of 1\d{8} bytes exceeds the limit of 67108864 bytes/,
  );
  assert.ok(result.grownBytes < 16 * MB, `peak RSS grew by ${result.grownBytes / MB} MB`);
});

Deno.test("parseMetainfo with the byte cap raised still stops 120 MB of i0e at 3 000 000 tokens, in bounded memory", async () => {
  const result = await probe("parse-raised");
  assert.match(result.error, /^BencodeError: Input has more than 3000000 values/);
  // The input is copied once (120 MB) and 3 M decoded values add about 90 MB (210 MB measured);
  // decoding it all, as before the token cap, took some 950 MB.
  assert.ok(
    result.grownBytes < 2.5 * result.inputBytes,
    `peak RSS grew by ${result.grownBytes / MB} MB for ${result.inputBytes / MB} MB of input`,
  );
});

Deno.test("decode stops 120 MB of i0e at its default 3 000 000 tokens, growing RSS by less than 1.5 times the input", async () => {
  const result = await probe("decode");
  assert.match(result.error, /^BencodeError: Input has more than 3000000 values/);
  // About 95 MB measured: the array of 3 M numbers as it grows.
  assert.ok(
    result.grownBytes < 1.5 * result.inputBytes,
    `peak RSS grew by ${result.grownBytes / MB} MB for ${result.inputBytes / MB} MB of input`,
  );
});
