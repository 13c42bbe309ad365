/**
 * Positional reads and writes that loop until done: one `node:fs/promises` call may move
 * fewer bytes than asked.
 *
 * @module
 */

import type { FileHandle } from "node:fs/promises";

/**
 * Reads into `into` from `position` until it is full or the file ends.
 *
 * @example
 * ```ts
 * import { open } from "node:fs/promises";
 * import { readFully } from "./positional_io.ts";
 * const handle = await open("/etc/hostname");
 * console.log(await readFully(handle, new Uint8Array(4), 0)); // 4, or fewer if the file is shorter
 * await handle.close();
 * ```
 *
 * @param handle An open file.
 * @param into Where the bytes go.
 * @param position File offset of the first byte.
 * @returns How many bytes were read (fewer than `into.length` when the file ends first).
 */
export async function readFully(handle: FileHandle, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Writes all of `data` at `position`, calling `wrote` each time bytes reached the file.
 *
 * @example
 * ```ts ignore
 * import { open } from "node:fs/promises";
 * import { writeFully } from "./positional_io.ts";
 * const handle = await open("/tmp/x.bin", "w");
 * await writeFully(handle, new Uint8Array(16), 0, () => {});
 * await handle.close();
 * ```
 *
 * @param handle A file open for writing.
 * @param data The bytes.
 * @param position File offset of the first byte.
 * @param wrote Called after each write that made progress.
 * @throws the file system's error, or an `Error` when a write makes no progress.
 */
export async function writeFully(
  handle: FileHandle,
  data: Uint8Array,
  position: number,
  wrote: () => void,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`Write made no progress at byte ${position + done}`);
    wrote();
    done += bytesWritten;
  }
}
