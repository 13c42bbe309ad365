/**
 * A faulty storage backend for the storage conformance suite: it wraps another backend and
 * makes its reads and writes slow, or fail (after some number of successful writes, or for
 * some pieces), the way a dying disk or an unreachable cloud store would. It is written
 * against the public contract only, like a user's backend.
 *
 * @module
 */

import type { StorageBackend, StorageFactory } from "../../lib/types.ts";

/** What goes wrong, and when. */
export interface Faults {
  /** Delay before every read and write, in ms. @default {0} */
  delayMs?: number;
  /** Writes that succeed before every later write fails. @default {Infinity} */
  writesBeforeFailure?: number;
  /** Pieces whose reads fail. @default {none} */
  failReads?: ReadonlySet<number>;
  /** The message failures carry. @default {"simulated I/O failure"} */
  message?: string;
}

/** A factory whose backends misbehave, and what they did. */
export interface FaultyFactory {
  /** The factory to give a session. */
  readonly factory: StorageFactory;
  /** Pieces written successfully, over every backend it made. */
  readonly written: number[];
  /** Writes that failed. */
  readonly failedWrites: number;
}

/**
 * Wraps a factory so that its backends misbehave. The backend is named `"faulty"`, and keeps
 * the inner backend's `fileStat` (so resume data works when the inner one has it).
 *
 * @example
 * ```ts
 * import { faulty } from "./storage_faults.ts";
 * import { memoryStorage } from "../../plugins/storage/memory.ts";
 * const broken = faulty(memoryStorage(), { writesBeforeFailure: 3 });
 * console.log(broken.written.length); // 0
 * ```
 *
 * @param inner The factory of the backend that really stores the data.
 * @param faults What goes wrong.
 * @returns The factory and its record.
 */
export function faulty(inner: StorageFactory, faults: Faults): FaultyFactory {
  const written: number[] = [];
  let failedWrites = 0;
  /** Writes begun: counted when they start, so writes in flight together cannot overshoot. */
  let begun = 0;
  const delay = () =>
    (faults.delayMs ?? 0) > 0 ? new Promise((r) => setTimeout(r, faults.delayMs)) : Promise.resolve();
  const failure = () => new Error(faults.message ?? "simulated I/O failure");
  const factory: StorageFactory = async (meta, context) => {
    const backend = await inner(meta, context);
    const wrapped: StorageBackend = {
      name: "faulty",
      async read(piece, begin, length) {
        await delay();
        if (faults.failReads?.has(piece)) throw failure();
        return await backend.read(piece, begin, length);
      },
      async write(piece, begin, data) {
        const attempt = begun++;
        await delay();
        if (attempt >= (faults.writesBeforeFailure ?? Infinity)) {
          failedWrites++;
          throw failure();
        }
        await backend.write(piece, begin, data);
        written.push(piece);
      },
      flush: () => backend.flush(),
      close: () => backend.close(),
      ...(backend.fileStat ? { fileStat: backend.fileStat.bind(backend) } : {}),
    };
    return wrapped;
  };
  return {
    factory,
    written,
    get failedWrites() {
      return failedWrites;
    },
  };
}
