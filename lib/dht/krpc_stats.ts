/**
 * {@linkcode emptyKrpcStats}: the counters of a KRPC socket before anything happened.
 *
 * @module
 */

/** Counters of a `KrpcSocket` (rpc.ts). */
export interface KrpcSocketStats {
  /** Queries received and handled. */
  queriesIn: number;
  /** Answers (responses and errors) sent. */
  answersOut: number;
  /** Queries sent. */
  queriesOut: number;
  /** Bytes sent, queries and answers. */
  bytesOut: number;
  /** Datagrams dropped by the per-source limit. */
  rateLimited: number;
  /** Datagrams not sent for lack of outgoing budget. */
  overBudget: number;
  /** Datagrams that were not valid KRPC. */
  malformed: number;
  /** Answers with an unknown transaction id or from another address than the one asked. */
  unexpected: number;
  /** Queries that got no answer in time. */
  timeouts: number;
}

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
