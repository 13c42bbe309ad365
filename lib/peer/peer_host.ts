/**
 * The contract between a `PeerConnection` (connection.ts) and its torrent: what a connection asks of
 * the torrent (pieces, blocks, reads, the clock) and what it reports (availability, interest,
 * close).
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import type { BlockRef } from "./piece_picker.ts";

/** What changed in a peer's pieces, for {@linkcode PeerHost.availabilityChanged}. */
export interface AvailabilityChange {
  /** The peer has every piece now. */
  all?: boolean;
  /** The peer's pieces now (when not all). */
  bits?: Bitfield;
  /** The peer announced one more piece (`have`). */
  piece?: number;
  /**
   * What the peer had announced before, when a later bitfield, have_all or have_none replaces it:
   * forget it from availability before counting the new announcement.
   */
  replaced?: { all: boolean; bits: Bitfield };
}

/**
 * What a connection asks of its torrent (the torrent's peer wiring implements it). `P` is the
 * connection type the callbacks receive (`PeerConnection`): a parameter, so that this contract
 * does not import the connection that imports it.
 */
export interface PeerHost<P = unknown> {
  /** Number of pieces in the torrent. */
  readonly pieceCount: number;
  /** Our verified pieces. */
  readonly have: Bitfield;
  /** Length of a piece. */
  pieceSize(piece: number): number;
  /** True when we lack some piece this peer has (or might have, for seeds). */
  isInteresting(peer: P): boolean;
  /** Picks blocks to request from this peer and marks them requested. */
  pick(peer: P, max: number): BlockRef[];
  /** Gives a requested block back (choke, reject, time-out, close). */
  release(peer: P, block: BlockRef): void;
  /** A block arrived. `requested` is false for blocks we had cancelled or released. */
  block(peer: P, piece: number, begin: number, data: Uint8Array): void;
  /** The peer announced its pieces (bitfield, have_all or have_none), or sent a first `have`. */
  availabilityChanged(peer: P, change: AvailabilityChange): void;
  /** Reads a block to serve an upload request. */
  readBlock(piece: number, begin: number, length: number): Promise<Uint8Array>;
  /** Starts reading a piece that requests were queued for, ahead of serving it. */
  prefetch?(piece: number): void;
  /**
   * True for a piece we announced but no longer have (it changed or vanished on disk): a request
   * for it is refused without counting against the peer.
   */
  lost?(piece: number): boolean;
  /** The peer became interested or not (the choker may act). */
  interestChanged(peer: P): void;
  /** The connection closed; `error` says why when it was not a clean close. */
  closed(peer: P, error: Error | undefined): void;
  /** The clock. */
  now(): number;
}
