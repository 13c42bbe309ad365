/**
 * What every Transmission RPC backend does alike: keeping clients' paths inside the allowed
 * folders, free space there, the `session-stats` counters, and refusing `port-test`.
 *
 * @module
 */

import { resolve } from "node:path";
import { freeSpace } from "../../storage/free_space.ts";
import type { RpcSessionStats } from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";
import { insideRoots } from "./session_entry.ts";

/**
 * Checks that a path a client gave is inside the allowed folders.
 *
 * @example
 * ```ts ignore
 * const folder = checkInsideRoots(request.downloadDir, ["/srv/downloads"], "download folder");
 * ```
 *
 * @param path The path.
 * @param roots The allowed folders.
 * @param what What the path is, for the error ("download folder").
 * @returns The path, resolved.
 * @throws {TransmissionRpcError} when it is outside them.
 */
export function checkInsideRoots(path: string, roots: readonly string[], what: string): string {
  if (!insideRoots(path, roots)) {
    throw new TransmissionRpcError(
      `${what} ${JSON.stringify(path)} is outside the folders this server may use (${roots.join(", ")})`,
    );
  }
  return resolve(path);
}

/**
 * Free bytes on the file system of a folder inside the allowed ones.
 *
 * @example
 * ```ts ignore
 * console.log(await freeSpaceInside("/srv/downloads/linux", ["/srv/downloads"]));
 * ```
 *
 * @param path The folder.
 * @param roots The allowed folders.
 * @returns Free bytes.
 */
export async function freeSpaceInside(path: string, roots: readonly string[]): Promise<number> {
  return (await freeSpace(checkInsideRoots(path, roots, "path"))).free;
}

/**
 * `session-stats` of a backend that remembers only the current process.
 *
 * @example
 * ```ts ignore
 * const stats = processStats([{ downloaded: 100, uploaded: 50 }], 1, Date.now() - startedAt);
 * ```
 *
 * @param counts Bytes moved, per torrent (and by removed ones).
 * @param filesAdded Torrents added.
 * @param activeMs Milliseconds since the backend started.
 * @returns The same counters as current and cumulative.
 */
export function processStats(
  counts: Iterable<{ downloaded: number; uploaded: number }>,
  filesAdded: number,
  activeMs: number,
): RpcSessionStats {
  let downloadedBytes = 0;
  let uploadedBytes = 0;
  for (const bytes of counts) {
    downloadedBytes += bytes.downloaded;
    uploadedBytes += bytes.uploaded;
  }
  const current = {
    downloadedBytes,
    uploadedBytes,
    filesAdded,
    sessionCount: 1,
    secondsActive: Math.floor(activeMs / 1000),
  };
  return { current, cumulative: current };
}

/**
 * `port-test`'s answer: shoal cannot test its port from outside.
 *
 * @example
 * ```ts ignore
 * portTest(): Promise<boolean> { return portTestUnsupported(); }
 * ```
 *
 * @returns A rejected promise.
 */
export function portTestUnsupported(): Promise<boolean> {
  return Promise.reject(
    new TransmissionRpcError("port-test is not supported: shoal cannot test its port from outside yet"),
  );
}
