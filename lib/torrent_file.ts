/**
 * {@linkcode readTorrentFile}: reads a `.torrent` file from disk with its size capped, so a
 * huge file, a device such as `/dev/zero` or an endless pipe is refused instead of read whole.
 *
 * @module
 */

import { MetainfoError } from "./errors.ts";
import { TORRENT_LIMITS } from "./limits.ts";
import { concatBytes } from "./net/bytes.ts";

/** Options of {@linkcode readTorrentFile}. */
export interface ReadTorrentFileOptions {
  /** Largest file accepted, in bytes. @default {TORRENT_LIMITS.maxBytes} (64 MiB) */
  maxBytes?: number;
}

/**
 * Reads a `.torrent` file, refusing it once it is larger than `maxBytes`: the size is checked
 * before reading, and reading stops one byte past the limit (a file that grows, or has no size,
 * such as a pipe, is caught too). Parse the result with `parseMetainfo`.
 *
 * @example
 * ```ts ignore
 * import { parseMetainfo, readTorrentFile } from "@shoal/shoal";
 * const meta = parseMetainfo(await readTorrentFile("ubuntu.torrent"));
 * console.log(meta.name);
 * ```
 *
 * @param path The file.
 * @param options Size limit.
 * @returns Its bytes.
 * @throws {MetainfoError} when the file is larger than `maxBytes`.
 * @throws {Deno.errors.NotFound} (and the other `Deno.errors`) when it cannot be read.
 */
export async function readTorrentFile(
  path: string,
  options: ReadTorrentFileOptions = {},
): Promise<Uint8Array> {
  const maxBytes = options.maxBytes ?? TORRENT_LIMITS.maxBytes;
  const tooBig = (size: number | undefined) =>
    new MetainfoError(
      `Cannot read ${path}: ${
        size === undefined ? `it has more than ${maxBytes} bytes` : `it is ${size} bytes long`
      }, more than a .torrent file may have (${maxBytes} bytes)`,
    );
  using file = await Deno.open(path, { read: true });
  const info = await file.stat();
  if (info.isDirectory) throw new Deno.errors.IsADirectory(`Is a directory: ${path}`);
  if (info.isFile && info.size > maxBytes) throw tooBig(info.size);
  // Read in chunks whatever stat said, stopping past the limit: devices and pipes report size 0,
  // and a file may grow while it is read.
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const chunk = new Uint8Array(Math.min(CHUNK, maxBytes + 1 - length));
    const n = await file.read(chunk);
    if (n === null) break;
    chunks.push(chunk.subarray(0, n));
    length += n;
    if (length > maxBytes) throw tooBig(undefined);
  }
  return concatBytes(chunks);
}

const CHUNK = 1024 * 1024;
