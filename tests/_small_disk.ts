/**
 * A small disk for disk-full tests: an 8 MiB tmpfs the test mounts (root only), and a 12 MiB
 * payload (more than it holds) seeded by a shoal session on 127.0.0.1.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent, parseMetainfo, Session } from "../mod.ts";

/** Mounting a tmpfs needs root: elsewhere the tests that need one are skipped (they say so). */
export const CAN_MOUNT: boolean = Deno.uid() === 0;

/**
 * Runs `fn` with a work folder and, inside it, a folder on an 8 MiB tmpfs of its own,
 * unmounted (and the work folder removed) afterwards.
 *
 * @example
 * ```ts ignore
 * await withSmallDisk(async (work, small) => { ... });
 * ```
 */
export async function withSmallDisk(fn: (work: string, small: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "shoal-disk-full-" });
  const small = join(work, "small");
  await Deno.mkdir(small);
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=8m", "tmpfs", small] })
    .output();
  assert.equal(mount.code, 0, `Cannot mount a tmpfs: ${new TextDecoder().decode(mount.stderr)}`);
  try {
    await fn(work, small);
  } finally {
    const umount = await new Deno.Command("umount", { args: [small] }).output();
    // A failed unmount would leave a mount behind: fail the test loudly rather than hide it.
    await Deno.remove(work, { recursive: true });
    assert.equal(umount.code, 0, `Cannot unmount ${small}: ${new TextDecoder().decode(umount.stderr)}`);
  }
}

/** What {@linkcode seed12MiB} started. */
export interface BigSeed {
  /** The .torrent bytes. */
  torrent: Uint8Array;
  /** The same, written to `<work>/big.torrent`. */
  torrentPath: string;
  /** The seeding session (close it). */
  seeder: Session;
}

/**
 * Seeds a 12 MiB file, `payload/big.bin`, in 256 KiB pieces, from `<work>/seed`.
 *
 * @example
 * ```ts ignore
 * const { torrent, seeder } = await seed12MiB(work);
 * ```
 */
export async function seed12MiB(work: string): Promise<BigSeed> {
  const payload = join(work, "seed", "payload");
  await Deno.mkdir(payload, { recursive: true });
  const data = new Uint8Array(12 * 1024 * 1024).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
  await Deno.writeFile(join(payload, "big.bin"), data);
  const made = await createTorrent(payload, { pieceLength: 256 * 1024, creationDate: null });
  const torrentPath = join(work, "big.torrent");
  await Deno.writeFile(torrentPath, made.torrent);
  const seeder = new Session({ downloadDir: join(work, "seed"), bind: "127.0.0.1", logSinks: [] });
  await seeder.add(parseMetainfo(made.torrent));
  return { torrent: made.torrent, torrentPath, seeder };
}
