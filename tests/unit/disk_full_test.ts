import assert from "node:assert/strict";
import { DiskFullError, parseMetainfo, Session, StorageError } from "../../mod.ts";
import { CAN_MOUNT, seed12MiB, withSmallDisk } from "../_small_disk.ts";
import type { LogRecord } from "../../mod.ts";

/** Rejects after `ms` so no wait in these tests is unbounded. */
function deadline(ms: number, what: string): { promise: Promise<never>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

Deno.test({
  name: "a download that fills the disk fails with a StorageError and stops cleanly when stopped right after",
  ignore: !CAN_MOUNT,
  sanitizeResources: true,
  sanitizeOps: true,
}, async () => {
  await withSmallDisk(async (work, small) => {
    const { torrent, seeder } = await seed12MiB(work);
    const logs: LogRecord[] = [];
    const leecher = new Session({
      downloadDir: small,
      bind: "127.0.0.1",
      logSinks: [(r) => void logs.push(r)],
      checkFreeSpace: false, // the check before starting would refuse it: fill the disk instead
    });
    try {
      const t = await leecher.add(parseMetainfo(torrent), { peers: [`127.0.0.1:${seeder.port}`] });
      const limit = deadline(30_000, "the download to fail on a full disk");
      try {
        const failure = await Promise.race([t.completed.then(() => null, (e: unknown) => e), limit.promise]);
        assert.ok(failure instanceof DiskFullError, `expected a DiskFullError, got ${failure}`);
        assert.ok(failure instanceof StorageError);
        assert.match(
          failure.message,
          /^Disk full writing \S+big\.bin: the download needs [\d.]+ [KM]iB more, [\d.]+ (B|KiB|MiB) free on \S+small$/,
        );
        assert.ok(failure.needed > 0 && failure.needed <= 12 * 1024 * 1024, `needed ${failure.needed}`);
      } finally {
        limit.clear();
      }
      // The failure already started a shutdown: stopping now must join it, not run a second one.
      const stops = await Promise.allSettled([t.stop(), t.stop(), leecher.close()]);
      for (const s of stops) {
        if (s.status === "rejected") {
          assert.ok(s.reason instanceof StorageError, `stop rejected with ${s.reason}`);
        }
      }
      assert.equal(t.state, "stopped");
      const bad = logs.filter((r) => /Cannot read properties|Cannot shut down cleanly/.test(r.message));
      assert.deepEqual(bad.map((r) => r.message), []);
    } finally {
      await leecher.close();
      await seeder.close();
    }
  });
});

Deno.test({
  name: "a download bigger than the free space is refused before any file is created",
  ignore: !CAN_MOUNT,
  sanitizeResources: true,
  sanitizeOps: true,
}, async () => {
  await withSmallDisk(async (work, small) => {
    const { torrent, seeder } = await seed12MiB(work);
    const leecher = new Session({ downloadDir: small, bind: "127.0.0.1", logSinks: [] });
    try {
      const error = await leecher.add(parseMetainfo(torrent), { peers: [`127.0.0.1:${seeder.port}`] }).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof DiskFullError, `expected a DiskFullError, got ${error}`);
      assert.equal(error.needed, 12 * 1024 * 1024);
      assert.ok(error.free <= 8 * 1024 * 1024 && error.free > 0, `free ${error.free}`);
      assert.equal(
        error.message,
        `Not enough free space for ${small}: the download needs 12.00 MiB more, ` +
          `${(error.free / 1024 / 1024).toFixed(2)} MiB free on ${small}`,
      );
      // Nothing of the payload was created (the lock folder .shoal may be).
      const entries = [...Deno.readDirSync(small)].map((e) => e.name).filter((name) => name !== ".shoal");
      assert.deepEqual(entries, []);
    } finally {
      await leecher.close();
      await seeder.close();
    }
  });
});
