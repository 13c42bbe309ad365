/**
 * Reading the .torrent file named on the command line, with the same messages in every
 * command (`info`, `download`, `seed`): `Cannot read <file>: no such file` when it cannot be
 * read, `Not a valid torrent: <file>: <reason>` when it is not a torrent.
 *
 * @module
 */

import { resolve } from "node:path";
import {
  MagnetError,
  type Metainfo,
  MetainfoError,
  parseMetainfo,
  readTorrentFile,
  ShoalError,
  StorageError,
} from "../mod.ts";

/**
 * Reads and parses a .torrent file named on the command line.
 *
 * @example
 * ```ts ignore
 * import { readTorrentArgument } from "./torrent_argument.ts";
 * const meta = await readTorrentArgument("x.torrent", Deno.cwd());
 * ```
 *
 * @param source The path as typed (a magnet link is refused: commands that take one handle it
 * before calling this).
 * @param cwd Folder a relative path is resolved against.
 * @returns The parsed torrent.
 * @throws {ShoalError} `Cannot read <file>: <why>` (a `StorageError`, or the `MetainfoError` of
 * a file too large to be a torrent), or a `MetainfoError` `Not a valid torrent: <file>: <reason>`.
 */
export async function readTorrentArgument(source: string, cwd: string): Promise<Metainfo> {
  if (/^magnet:/i.test(source)) {
    throw new MagnetError(
      "Cannot seed a magnet link: give the .torrent file (download a magnet link with 'download --seed')",
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await readTorrentFile(resolve(cwd, source));
  } catch (error) {
    if (error instanceof MetainfoError) throw error; // too large: the message names the file and the limit
    throw new StorageError(`Cannot read ${source}: ${describeReadError(error)}`, { cause: error });
  }
  try {
    return parseMetainfo(bytes);
  } catch (error) {
    if (!(error instanceof ShoalError)) throw error;
    throw new MetainfoError(`Not a valid torrent: ${source}: ${reason(error.message)}`, { cause: error });
  }
}

/** "Invalid torrent: missing 'name'" → "missing 'name'"; "Cut short: …" → "cut short: …". */
function reason(message: string): string {
  const text = message.replace(/^Invalid torrent: /, "");
  return /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "is a folder, not a .torrent file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "missing --allow-read permission";
  return error instanceof Error ? error.message : String(error);
}
