/**
 * `deno task demo`: a full local round trip. Makes a sample payload (nested folders, a
 * zero-byte file, odd sizes), creates its torrent, seeds it from an in-process shoal session
 * on 127.0.0.1, downloads it with `cli.ts download` in a child process, and verifies every
 * byte. Everything lives in a temporary folder that is removed at the end.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTorrent, parseMetainfo, Session } from "../mod.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const work = await Deno.makeTempDir({ prefix: "shoal-demo-" });
const say = (text: string) => console.log(`demo: ${text}`);

try {
  // 1. A sample payload: 24 MiB over a few files, deterministic content.
  const payload = join(work, "seed", "sample");
  const files: [string, number][] = [
    ["video/clip.bin", 20 * 1024 * 1024 + 12345],
    ["docs/readme.txt", 4321],
    ["docs/empty.txt", 0],
    ["data/blob.bin", 4 * 1024 * 1024 - 777],
  ];
  let state = 0x9e3779b9;
  for (const [path, size] of files) {
    await Deno.mkdir(dirname(join(payload, path)), { recursive: true });
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 4) {
      state = (state * 1664525 + 1013904223) >>> 0;
      bytes[i] = state & 0xff;
      if (i + 1 < size) bytes[i + 1] = (state >>> 8) & 0xff;
      if (i + 2 < size) bytes[i + 2] = (state >>> 16) & 0xff;
      if (i + 3 < size) bytes[i + 3] = state >>> 24;
    }
    await Deno.writeFile(join(payload, path), bytes);
  }
  say(`made a payload of ${files.length} files in ${payload}`);

  // 2. Its torrent.
  const created = await createTorrent(payload, { pieceLength: 256 * 1024, comment: "shoal demo" });
  const torrentPath = join(work, "sample.torrent");
  await Deno.writeFile(torrentPath, created.torrent);
  say(`created ${torrentPath}: info-hash ${created.infoHash}, ${created.pieceCount} pieces`);

  // 3. Seed it from an in-process session on loopback.
  await using seeder = new Session({ downloadDir: join(work, "seed"), bind: "127.0.0.1" });
  const seeding = await seeder.add(parseMetainfo(created.torrent));
  say(`seeding on 127.0.0.1:${seeder.port} (${seeding.state})`);

  // 4. Download it with the CLI, in a child process, as a user would.
  const out = join(work, "download");
  say(
    `running: deno run -A cli.ts download sample.torrent -o ${out} --peer 127.0.0.1:${seeder.port} --bind 127.0.0.1`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(root, "cli.ts"),
      "download",
      torrentPath,
      "-o",
      out,
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--bind",
      "127.0.0.1",
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const status = await child.status;
  clearTimeout(timer);
  if (status.code !== 0) throw new Error(`cli.ts download exited with code ${status.code}`);

  // 5. Verify every file, byte for byte.
  for (const [path] of files) {
    const a = await Deno.readFile(join(payload, path));
    const b = await Deno.readFile(join(out, "sample", path));
    const same = createHash("sha1").update(a).digest("hex") === createHash("sha1").update(b).digest("hex");
    if (!same) throw new Error(`Downloaded ${path} differs from the original`);
  }
  say(`verified: all ${files.length} files are identical (the zero-byte one included)`);
} finally {
  await Deno.remove(work, { recursive: true });
}
