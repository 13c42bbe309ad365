/**
 * The daemon's typed error: what went wrong with a managed torrent or the state folder, with a
 * stable `code` an RPC layer can map to its own answers.
 *
 * @module
 */

import { ShoalError } from "../errors.ts";

/**
 * The codes of {@linkcode DaemonError}:
 *
 * - `NOT_FOUND`: no torrent has that id;
 * - `INVALID_SOURCE`: what was given to add is not a torrent, a path, a magnet link or an
 *   http(s) URL of one;
 * - `FETCH_FAILED`: a .torrent URL could not be fetched (status, size cap, timeout);
 * - `INVALID_RECORD`: a state file cannot be used (set aside, never fatal);
 * - `INVALID_ARGUMENT`: a setting out of range (a file index, a negative limit);
 * - `CLOSED`: the manager was closed.
 */
export type DaemonErrorCode =
  | "NOT_FOUND"
  | "INVALID_SOURCE"
  | "FETCH_FAILED"
  | "INVALID_RECORD"
  | "INVALID_ARGUMENT"
  | "CLOSED";

/**
 * An error of the torrent manager or its state store.
 *
 * @example
 * ```ts
 * import { DaemonError } from "./errors.ts";
 * const error = new DaemonError("NOT_FOUND", "No torrent with id 7");
 * console.log(error.code, error.message); // "NOT_FOUND" "No torrent with id 7"
 * ```
 */
export class DaemonError extends ShoalError {
  /** Which kind of failure (see {@linkcode DaemonErrorCode}). */
  declare readonly code: DaemonErrorCode;

  /**
   * Creates the error.
   *
   * @param code What kind of failure.
   * @param message What happened and what to do, starting with a capital, no final period.
   * @param options Standard error options (`cause`).
   */
  constructor(code: DaemonErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
