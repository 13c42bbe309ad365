/**
 * What a transfer shows before it runs: the start-up data check's progress and outcome, the
 * state of a magnet link's metadata fetch (and why it gave up), and the warning for a torrent
 * that has no way to find peers.
 *
 * @module
 */

import type { CheckProgress, MetadataFetchStatus, StartupCheck } from "../mod.ts";
import { formatBytes } from "./common.ts";

/** Most piece numbers a "failed their check" line names. */
const MAX_LISTED_PIECES = 10;

/**
 * The progress line of the start-up data check.
 *
 * @example
 * ```ts
 * import { checkingLine } from "./startup_view.ts";
 * console.log(checkingLine({ checkedPieces: 1, piecesToCheck: 4, checkedBytes: 1024, bytesToCheck: 4096 }));
 * // "Checking existing data: 25% (1 KiB of 4 KiB)"
 * ```
 *
 * @param p How far the check has got.
 * @returns One line of text.
 */
export function checkingLine(p: CheckProgress): string {
  const percent = p.bytesToCheck === 0 ? 100 : Math.floor((p.checkedBytes / p.bytesToCheck) * 100);
  return `Checking existing data: ${percent}% (${formatBytes(p.checkedBytes)} of ${
    formatBytes(p.bytesToCheck)
  })`;
}

/**
 * What the start-up data check found, for the lines printed before the transfer starts:
 * "Resuming: N of M pieces verified" when resume data was used, "Checked existing data: N of
 * M pieces present" after a full check, nothing when there was no data at all; then the
 * pieces resume data claimed that failed their check, by number.
 *
 * @example
 * ```ts
 * import { startupReport } from "./startup_view.ts";
 * console.log(startupReport({ have: 7, pieceCount: 10, trusted: 8, rechecked: 2, usedResume: true, failed: [3] }));
 * // "Resuming: 7 of 10 pieces verified (8 from resume data, 2 checked)\n1 piece failed its check and will be downloaded again: 3\n"
 * ```
 *
 * @param check The torrent's `startupCheck`.
 * @returns Lines of text, each ending in a line break (empty when there is nothing to say).
 */
export function startupReport(check: StartupCheck): string {
  let text = "";
  if (check.usedResume) {
    text += `Resuming: ${check.have} of ${check.pieceCount} pieces verified ` +
      `(${check.trusted} from resume data, ${check.rechecked} checked)\n`;
  } else if (check.rechecked > 0) {
    text += `Checked existing data: ${check.have} of ${check.pieceCount} pieces present\n`;
  }
  const failed = check.failed;
  if (failed.length > 0) {
    const listed = failed.slice(0, MAX_LISTED_PIECES).join(", ");
    const more = failed.length > MAX_LISTED_PIECES ? ` and ${failed.length - MAX_LISTED_PIECES} more` : "";
    text += failed.length === 1
      ? `1 piece failed its check and will be downloaded again: ${listed}\n`
      : `${failed.length} pieces failed their check and will be downloaded again: ${listed}${more}\n`;
  }
  return text;
}

/** The peer sources a transfer has, for {@linkcode noPeerSourceWarning}. */
export interface PeerSources {
  /** Tracker URLs: the torrent's own, the magnet link's `tr`, `--tracker`. */
  trackers: number;
  /** Peers to dial: `--peer` and a magnet link's `x.pe`. */
  peers: number;
  /** The DHT is on (`--no-dht` not given). */
  dht: boolean;
  /** Local service discovery is on (`--no-lsd` not given). */
  lsd: boolean;
  /** The torrent is private (no DHT, no LSD whatever the options). */
  private: boolean;
  /** The command only serves what it has (`seed`, `share`): peers may still connect to it. */
  serving: boolean;
}

/**
 * The warning for a torrent with no way to find peers (no tracker, no peer to dial, DHT and
 * LSD off or not allowed), or an empty string when it has one.
 *
 * @example
 * ```ts
 * import { noPeerSourceWarning } from "./startup_view.ts";
 * console.log(noPeerSourceWarning({ trackers: 0, peers: 0, dht: false, lsd: false, private: false, serving: false }));
 * ```
 *
 * @param sources What the transfer has.
 * @returns A line ending in a line break, or "".
 */
export function noPeerSourceWarning(sources: PeerSources): string {
  const dht = sources.dht && !sources.private;
  const lsd = sources.lsd && !sources.private;
  if (sources.trackers > 0 || sources.peers > 0 || dht || lsd) return "";
  const off = sources.private && (sources.dht || sources.lsd)
    ? "DHT and LSD are not used for a private torrent"
    : "DHT and LSD are off";
  const then = sources.serving
    ? "only peers that connect to this one can take part"
    : "add --peer HOST:PORT or --tracker URL";
  return `warning: no way to find peers: this torrent has no trackers, ${off} and no --peer ` +
    `was given (${then})\n`;
}

/**
 * The progress line while a magnet link's metadata is fetched.
 *
 * @example
 * ```ts
 * import { metadataLine } from "./startup_view.ts";
 * import { NO_METADATA_STATUS } from "../mod.ts";
 * console.log(metadataLine(NO_METADATA_STATUS, 12)); // "Fetching metadata: tried 0 peers, 0 connected, 0 offering it  dht 12 nodes"
 * ```
 *
 * @param status The fetch's state.
 * @param dhtNodes Nodes in the DHT's routing table, or null when the DHT is off.
 * @returns One line of text.
 */
export function metadataLine(status: MetadataFetchStatus, dhtNodes: number | null): string {
  return `Fetching metadata: tried ${peers(status.tried)}, ${status.connected} connected, ` +
    `${status.offering} offering it` +
    (status.pieceCount > 0 ? `, ${status.piecesReceived}/${status.pieceCount} pieces` : "") +
    (dhtNodes === null ? "" : `  dht ${dhtNodes} nodes`);
}

/**
 * The message of a metadata fetch that ran out of time, with what was tried and what to do.
 *
 * @example
 * ```ts
 * import { metadataTimeoutMessage } from "./startup_view.ts";
 * import { NO_METADATA_STATUS } from "../mod.ts";
 * console.log(metadataTimeoutMessage(300, NO_METADATA_STATUS, 0));
 * // "No metadata after 5m: tried 0 peers, 0 connected; DHT 0 nodes (add --peer or a tracker)"
 * ```
 *
 * @param seconds The `--metadata-timeout`.
 * @param status The fetch's state when it gave up.
 * @param dhtNodes Nodes in the DHT's routing table, or null when the DHT is off.
 * @returns The message (no "error:" prefix).
 */
export function metadataTimeoutMessage(
  seconds: number,
  status: MetadataFetchStatus,
  dhtNodes: number | null,
): string {
  const offered = status.connected > 0 ? `, ${status.offering} offering it` : "";
  return `No metadata after ${shortDuration(seconds)}: tried ${peers(status.tried)}, ` +
    `${status.connected} connected${offered}; ${dhtNodes === null ? "DHT off" : `DHT ${dhtNodes} nodes`} ` +
    "(add --peer or a tracker)";
}

function peers(n: number): string {
  return n === 1 ? "1 peer" : `${n} peers`;
}

/** "3s", "5m", "1h30m": a duration as the user would have typed it. */
function shortDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60 || s % 60 !== 0) return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
  const m = s / 60;
  if (m < 60 || m % 60 !== 0) return m < 60 ? `${m}m` : `${Math.floor(m / 60)}h${m % 60}m`;
  return `${m / 60}h`;
}
