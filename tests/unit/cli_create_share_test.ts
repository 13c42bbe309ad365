import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { formatElapsed } from "../../cli/status_view.ts";
import { parseMetainfo, readTorrentFile } from "../../mod.ts";
import { captureIO } from "../_cli_io.ts";

async function withFile(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_create_share_" });
  try {
    await Deno.writeFile(join(dir, "f.bin"), new Uint8Array(100_000).map((_, i) => i & 0xff));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("share --help lists --tracker once, with the meaning share gives it", async () => {
  const { io, out } = captureIO();
  assert.equal(await main(["share", "--help"], io), 0);
  const lines = out().split("\n").filter((line) => line.includes("--tracker"));
  assert.equal(lines.length, 1, out());
  assert.match(lines[0] ?? "", /-t, --tracker URL\s+Put this tracker in the torrent/);
  // The other transferring commands keep the shared meaning.
  const download = captureIO();
  assert.equal(await main(["download", "--help"], download.io), 0);
  assert.match(download.out(), /--tracker URL\s+Also announce to this tracker/);
});

Deno.test("share puts every -t and --tracker value in the torrent", async () => {
  await withFile(async (dir) => {
    const { io, err } = captureIO({ cwd: dir });
    const code = await main([
      "share",
      "f.bin",
      "-t",
      "udp://127.0.0.1:9/a",
      "--tracker",
      "http://127.0.0.1:9/b,http://127.0.0.1:9/c",
      "--seed-time",
      "0",
      "--bind",
      "127.0.0.1",
      "--no-dht",
      "--no-lsd",
      "-q",
    ], io);
    assert.equal(code, 0, err());
    const metainfo = parseMetainfo(await readTorrentFile(join(dir, "f.bin.torrent")));
    assert.deepEqual(metainfo.announceList, [
      ["udp://127.0.0.1:9/a"],
      ["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"],
    ]);
  });
});

Deno.test("create says how long hashing took in milliseconds when it was quick", async () => {
  await withFile(async (dir) => {
    let readings = 0;
    // The first reading is the start; every later one is 12 ms on.
    const { io, out, err } = captureIO({ cwd: dir, now: () => (readings++ === 0 ? 5000 : 5012) });
    assert.equal(await main(["create", "f.bin", "--no-date"], io), 0, err());
    assert.match(out(), /\(hashed in 12 ms\)/);
    assert.doesNotMatch(out(), /0\.0 s/);
  });
});

Deno.test("formatElapsed() keeps a precision that says something", () => {
  assert.equal(formatElapsed(0.2), "under 1 ms");
  assert.equal(formatElapsed(12.4), "12 ms");
  assert.equal(formatElapsed(999.4), "999 ms");
  assert.equal(formatElapsed(999.7), "1.0 s");
  assert.equal(formatElapsed(2449), "2.4 s");
  assert.equal(formatElapsed(59_940), "59.9 s");
  assert.equal(formatElapsed(125_000), "2m05s");
});
