import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageError } from "../../lib/errors.ts";
import { FileStorage } from "../../lib/storage/file_storage.ts";
import { makeTorrent } from "../_test_torrent.ts";

/** A relative path of `bytes` UTF-8 bytes, in components of at most 200 bytes. */
function pathOf(bytes: number): string {
  const parts: string[] = [];
  let left = bytes;
  while (left > 0) {
    const size = Math.min(200, left - (parts.length > 0 ? 1 : 0));
    parts.push("p".repeat(size));
    left -= size + (parts.length > 1 ? 1 : 0);
  }
  return parts.join("/");
}

Deno.test("FileStorage refuses at open a file whose absolute path is longer than Linux can open", async () => {
  const root = await Deno.makeTempDir({ prefix: "shoal-path-limits-" });
  try {
    // root + "/" + relative = 4096 bytes: one more than PATH_MAX allows.
    const relative = pathOf(4096 - root.length - 1);
    assert.equal(join(root, relative).length, 4096);
    const { meta } = makeTorrent([{ path: relative, length: 1000 }], 16_384);
    await assert.rejects(
      FileStorage.open(root, meta),
      (e: unknown) =>
        e instanceof StorageError &&
        e.message.includes("its path would be 4096 bytes long, more than the 4095 Linux can open"),
    );
    // Nothing was created.
    assert.deepEqual([...Deno.readDirSync(root)], []);
    // One byte shorter fits, and a write to it works.
    const { meta: fits } = makeTorrent([{ path: pathOf(4095 - root.length - 1), length: 1000 }], 16_384);
    const storage = await FileStorage.open(root, fits);
    await storage.write(0, 0, new Uint8Array(1000));
    await storage.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
