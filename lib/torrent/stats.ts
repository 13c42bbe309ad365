/**
 * The arithmetic of a torrent's statistics snapshot: completed and wanted bytes, percent, ETA
 * and waste, from the counters the torrent's parts keep.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { wantedBytes } from "../file_priority.ts";
import type { RateMeter } from "../peer/rate.ts";
import type { TorrentState, TorrentStats } from "../torrent_types.ts";
import type { Metainfo } from "../types.ts";

/** The counters a snapshot is made of. */
export interface StatsInput {
  /** The torrent. */
  readonly metainfo: Metainfo;
  /** Our verified pieces. */
  readonly have: Bitfield;
  /** The pieces the file priorities want (null: every piece). */
  readonly wanted: Bitfield | null;
  /** The torrent's state. */
  readonly state: TorrentState;
  /** Piece bytes received. */
  readonly down: RateMeter;
  /** Piece bytes sent. */
  readonly up: RateMeter;
  /** Connected peers. */
  readonly peers: number;
  /** The piece pipeline's counters (null before the start-up check is over). */
  readonly counters: { failedPieces: number; duplicateBytes: number; failedBytes: number } | null;
  /** Bytes held in piece buffers. */
  readonly bufferedBytes: number;
  /** When the start-up check ended (0: not yet). */
  readonly startedAt: number;
  /** When the last wanted piece was verified (0: not done). */
  readonly completedAt: number;
  /** The current time. */
  readonly now: number;
}

/**
 * A torrent's statistics from its counters.
 *
 * @example
 * ```ts ignore
 * const stats = statsSnapshot({ metainfo, have, wanted: null, state: "downloading", down, up, peers: 0,
 *   counters: null, bufferedBytes: 0, startedAt: 0, completedAt: 0, now: Date.now() });
 * ```
 *
 * @param input The counters.
 * @returns The snapshot.
 */
export function statsSnapshot(input: StatsInput): TorrentStats {
  const { metainfo: meta, have, now, down, up } = input;
  let completedBytes = have.count() * meta.pieceLength;
  if (meta.pieceCount > 0 && have.get(meta.pieceCount - 1)) {
    completedBytes -= meta.pieceCount * meta.pieceLength - meta.totalLength;
  }
  const downloadRate = down.rate(now);
  const wanted = wantedBytes(meta, input.wanted, have);
  const left = wanted.total - wanted.done;
  const failedPieces = input.counters?.failedPieces ?? 0;
  const duplicateBytes = input.counters?.duplicateBytes ?? 0;
  const failedBytes = input.counters?.failedBytes ?? 0;
  return {
    state: input.state,
    completedPieces: have.count(),
    pieceCount: meta.pieceCount,
    completedBytes,
    totalBytes: meta.totalLength,
    percent: wanted.total === 0 ? 100 : (wanted.done / wanted.total) * 100,
    downloaded: down.total,
    uploaded: up.total,
    downloadRate,
    uploadRate: up.rate(now),
    peers: input.peers,
    eta: left === 0 ? 0 : downloadRate > 0 ? left / downloadRate : null,
    failedPieces,
    duplicateBytes,
    failedBytes,
    wastedBytes: duplicateBytes + failedBytes,
    bufferedBytes: input.bufferedBytes,
    activeSeconds: ((input.completedAt || now) - (input.startedAt || now)) / 1000,
    wantedPieces: wanted.pieces,
    wantedBytes: wanted.total,
    done: wanted.donePieces === wanted.pieces,
  };
}
