/**
 * Run as a subprocess by tests/unit/decode_memory_test.ts: builds `l` + N × `i0e` + `e` (a list
 * of zeros, the cheapest bencode value to write), decodes it one way, and prints the error and
 * how much the peak RSS (VmHWM) grew over the RSS measured just before decoding.
 *
 * Usage: deno run -A tests/_decode_rss_probe.ts <megabytes> <decode|parse|parse-raised>
 */
import { decode } from "../lib/bencode.ts";
import { parseMetainfo } from "../lib/metainfo.ts";

const megabytes = Number(Deno.args[0]);
const mode = Deno.args[1];
const items = Math.floor((megabytes * 1_000_000 - 2) / 3);
const input = new Uint8Array(items * 3 + 2);
input[0] = 0x6c; // 'l'
for (let i = 0; i < items; i++) input.set([0x69, 0x30, 0x65], 1 + i * 3); // "i0e"
input[input.length - 1] = 0x65; // 'e'

function kib(field: "VmRSS" | "VmHWM"): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
}

const before = kib("VmRSS");
let error = "";
try {
  if (mode === "decode") decode(input, { maxBytes: 1 << 30 });
  else if (mode === "parse") parseMetainfo(input);
  else parseMetainfo(input, { maxBytes: 1 << 30 });
  error = "accepted";
} catch (e) {
  error = `${(e as Error).name}: ${(e as Error).message}`;
}
const grownBytes = (kib("VmHWM") - before) * 1024;
console.log(JSON.stringify({ inputBytes: input.length, grownBytes, error }));
