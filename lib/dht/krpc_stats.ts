/**
 * {@linkcode emptyKrpcStats}: the counters of a KRPC socket before anything happened.
 *
 * @module
 */

import type { KrpcSocketStats } from "./rpc.ts";

/**
 * Fresh KRPC socket counters, all zero.
 *
 * @example
 * ```ts
 * import { emptyKrpcStats } from "./krpc_stats.ts";
 * console.log(emptyKrpcStats().queriesIn); // 0
 * ```
 *
 * @returns A new object with every counter at 0.
 */
export function emptyKrpcStats(): KrpcSocketStats {
  return {
    queriesIn: 0,
    answersOut: 0,
    queriesOut: 0,
    bytesOut: 0,
    rateLimited: 0,
    overBudget: 0,
    malformed: 0,
    unexpected: 0,
    timeouts: 0,
  };
}
