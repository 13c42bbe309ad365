/**
 * Where a metadata fetch stands ({@linkcode MetadataFetchStatus}), and the error it ends with
 * when it runs out of time, worded from that state.
 *
 * @module
 */

import { ShoalError } from "./errors.ts";

/** Where a metadata fetch stands (see {@linkcode MetadataFetcher.status}). */
export interface MetadataFetchStatus {
  /** Peer addresses heard of and not given up on (the link's, given ones, from trackers, the DHT). */
  readonly known: number;
  /** Distinct peers dialled so far. */
  readonly tried: number;
  /** Distinct peers that completed a BitTorrent handshake so far. */
  readonly connected: number;
  /** Peers connected now. */
  readonly active: number;
  /** Peers connected now that offer the metadata (sent its size). */
  readonly offering: number;
  /** Metadata pieces received of the assembly in progress. */
  readonly piecesReceived: number;
  /** Metadata pieces in all (0 until a peer tells the size). */
  readonly pieceCount: number;
}

/** The state of a fetch that has not started: nothing tried. */
export const NO_METADATA_STATUS: MetadataFetchStatus = Object.freeze({
  known: 0,
  tried: 0,
  connected: 0,
  active: 0,
  offering: 0,
  piecesReceived: 0,
  pieceCount: 0,
});

/**
 * The error of a metadata fetch that ran out of time: code `METADATA_TIMEOUT`, with what the
 * fetch had achieved in the message ("No metadata after 30 s: tried 4 peers, 1 connected,
 * none offered it").
 *
 * @example
 * ```ts
 * import { metadataTimeoutError, NO_METADATA_STATUS } from "./metadata_status.ts";
 * console.log(metadataTimeoutError(30_000, NO_METADATA_STATUS).message);
 * // "No metadata after 30 s: tried 0 peers, 0 connected, none offered it"
 * ```
 *
 * @param timeoutMs How long the fetch ran.
 * @param status Its state when it gave up.
 * @returns The error to reject with.
 */
export function metadataTimeoutError(timeoutMs: number, status: MetadataFetchStatus): ShoalError {
  const seconds = Math.round(timeoutMs / 100) / 10;
  const offered = status.offering === 0 ? "none offered it" : `${status.offering} offered it`;
  return new ShoalError(
    "METADATA_TIMEOUT",
    `No metadata after ${seconds} s: tried ${status.tried} ${status.tried === 1 ? "peer" : "peers"}, ` +
      `${status.connected} connected, ${offered}`,
  );
}
