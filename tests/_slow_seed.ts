/**
 * A shoal Session seeding one generated file on 127.0.0.1, optionally upload-limited so that a
 * CLI download of it takes a few seconds (live views get redrawn, keys arrive in time).
 *
 * @module
 */

import { join } from "node:path";
import { createTorrent, parseMetainfo, Session } from "../mod.ts";

/** Piece length of the seeded torrent. */
export const SLOW_SEED_PIECE_LENGTH = 32768;

/** What the callback of {@linkcode withSlowSeed} gets. */
export interface SlowSeed {
  /** The .torrent file. */
  readonly torrentPath: string;
  /** The seed's listening port on 127.0.0.1. */
  readonly port: number;
  /** A temporary folder (removed afterwards) for the download. */
  readonly dir: string;
  /**
   * `download` arguments for the torrent from this seed into `dir/<out>`, on 127.0.0.1
   * without DHT or LSD, followed by `extra`.
   */
  downloadArgs(out: string, ...extra: string[]): string[];
}

/**
 * Runs `fn` while a seed serves a file of `pieces` pieces, then stops it and removes the folder.
 *
 * @example
 * ```ts ignore
 * await withSlowSeed({ pieces: 48, uploadLimit: 512 * 1024 }, async (seed) => {
 *   await main(seed.downloadArgs("out"), io);
 * });
 * ```
 *
 * @param options Size in pieces, the seed's upload limit (0: none), a temp folder prefix.
 * @param fn The test.
 */
export async function withSlowSeed(
  options: { pieces: number; uploadLimit: number; prefix?: string },
  fn: (seed: SlowSeed) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "shoal_slow_seed_" });
  try {
    await Deno.mkdir(join(dir, "seed"));
    const data = new Uint8Array(options.pieces * SLOW_SEED_PIECE_LENGTH).map((_, i) =>
      (i * 13 + (i >> 10)) & 0xff
    );
    await Deno.writeFile(join(dir, "seed", "data.bin"), data);
    const made = await createTorrent(join(dir, "seed", "data.bin"), {
      pieceLength: SLOW_SEED_PIECE_LENGTH,
      creationDate: null,
    });
    const torrentPath = join(dir, "data.torrent");
    await Deno.writeFile(torrentPath, made.torrent);
    await using seeder = new Session({
      downloadDir: join(dir, "seed"),
      bind: "127.0.0.1",
      uploadLimit: options.uploadLimit,
      lsd: false,
      logSinks: [],
    });
    await seeder.add(parseMetainfo(made.torrent));
    const port = seeder.port;
    await fn({
      torrentPath,
      port,
      dir,
      downloadArgs: (out, ...extra) => [
        "download",
        torrentPath,
        "-o",
        join(dir, out),
        "--peer",
        `127.0.0.1:${port}`,
        "--bind",
        "127.0.0.1",
        "--no-dht",
        "--no-lsd",
        ...extra,
      ],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
