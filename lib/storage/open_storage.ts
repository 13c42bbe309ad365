/**
 * {@linkcode openStorage}: calls a torrent's {@linkcode StorageFactory} and wraps what it
 * returns in the core's checked layer ({@linkcode CheckedStorage}).
 *
 * @module
 */

import { ShoalError, StorageError } from "../errors.ts";
import type { Metainfo, StorageBackend, StorageContext, StorageFactory } from "../types.ts";
import { CheckedStorage } from "./storage.ts";

const METHODS = ["read", "write", "flush", "close"] as const;

/**
 * Opens a torrent's storage through its factory and wraps it for the core. Errors of the
 * core (a `StorageError` such as a `DiskFullError`, any `ShoalError`) and the signal's own
 * reason pass through; anything else a factory throws becomes a {@linkcode StorageError}
 * carrying it as its cause. A result that lacks a method of the contract is refused (and
 * closed, if it can be).
 *
 * @example
 * ```ts
 * import { openStorage } from "./open_storage.ts";
 * import { fileStorage } from "./file_storage_factory.ts";
 * import type { Metainfo } from "../types.ts";
 * declare const meta: Metainfo;
 * const storage = await openStorage(fileStorage(), meta, {
 *   downloadDir: "/downloads",
 *   skipFiles: new Set(),
 *   checkFreeSpace: true,
 *   signal: new AbortController().signal,
 * });
 * await storage.close();
 * ```
 *
 * @param factory The torrent's storage factory.
 * @param meta The torrent.
 * @param context What the factory is told.
 * @returns The backend inside the checked layer.
 * @throws {StorageError} when the factory fails or returns no usable backend.
 */
export async function openStorage(
  factory: StorageFactory,
  meta: Metainfo,
  context: StorageContext,
): Promise<CheckedStorage> {
  let backend: StorageBackend;
  try {
    backend = await factory(meta, context);
  } catch (error) {
    if (error instanceof ShoalError || (context.signal.aborted && error === context.signal.reason)) {
      throw error;
    }
    const why = error instanceof Error ? error.message : String(error);
    throw new StorageError(`Cannot open storage for ${meta.name}: ${why}`, { cause: error });
  }
  const lacking = METHODS.find((m) => typeof (backend as Partial<StorageBackend>)?.[m] !== "function");
  if (lacking !== undefined) {
    const close = (backend as Partial<StorageBackend> | undefined)?.close;
    if (typeof close === "function") {
      await Promise.resolve().then(() => close.call(backend)).catch(() => {/* refused already */});
    }
    throw new StorageError(
      `Cannot open storage for ${meta.name}: the factory returned no storage backend (${lacking}() is missing)`,
    );
  }
  return new CheckedStorage(backend, meta);
}
