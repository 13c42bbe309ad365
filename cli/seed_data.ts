/**
 * Before `seed` touches anything: is the torrent's data where the user said? A folder given
 * one level too deep (the data folder itself instead of the folder holding it) is caught and
 * the right folder suggested, and data that is not there at all is refused, so `seed` never
 * creates `photos/photos/` or a `.shoal` folder inside the user's data.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { type Metainfo, ShoalError } from "../mod.ts";

/** Most files looked for (a torrent of many files is judged by its first ones). */
const MAX_FILES_LOOKED_AT = 64;

/**
 * Checks that some of a torrent's files exist below `dir` (partly present data is fine: the
 * missing pieces are downloaded first).
 *
 * @example
 * ```ts ignore
 * import { checkSeedData } from "./seed_data.ts";
 * await checkSeedData(metainfo, "/home/me/photos"); // throws: "did you mean /home/me?"
 * ```
 *
 * @param meta The torrent.
 * @param dir The folder the user gave, absolute.
 * @throws {ShoalError} (code `NOT_FOUND`) when none of the files is there: "data not found at
 * DIR/NAME; did you mean PARENT?" when `dir` itself holds the data, else a message saying there
 * is nothing to seed.
 */
export async function checkSeedData(meta: Metainfo, dir: string): Promise<void> {
  const files = meta.files.filter((f) => !f.pad).slice(0, MAX_FILES_LOOKED_AT);
  if (files.length === 0) return;
  const root = files[0]!.safePath.split("/")[0]!;
  for (const file of files) {
    if (await exists(join(dir, file.safePath))) return;
  }
  const expected = join(dir, root);
  if (await holdsTheData(meta, dir, root, files.map((f) => f.safePath))) {
    throw new ShoalError("NOT_FOUND", `data not found at ${expected}; did you mean ${dirname(dir)}?`);
  }
  throw new ShoalError(
    "NOT_FOUND",
    `data not found at ${expected}: nothing to seed (give the folder that holds ${root}, ` +
      `or download it with 'shoal download <torrent> -o ${dir}')`,
  );
}

/** Whether `dir` is the torrent's file or folder itself (the user gave one level too deep). */
async function holdsTheData(meta: Metainfo, dir: string, root: string, paths: string[]): Promise<boolean> {
  if (!meta.multiFile) return basename(dir) === root && await isFile(dir);
  if (basename(dir) === root && await exists(dir)) return true;
  for (const path of paths) {
    if (await exists(join(dir, path.slice(root.length + 1)))) return true;
  }
  return false;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return false;
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return false;
    throw error;
  }
}
