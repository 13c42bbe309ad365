/**
 * What a transfer prints when it ends: pieces verified, duration and average rate, where the
 * downloaded bytes went (useful, duplicate blocks, pieces that failed their check), and what
 * was uploaded.
 *
 * @module
 */

import type { TorrentStats } from "../mod.ts";
import { formatBytes } from "./common.ts";
import { formatDuration } from "./status_view.ts";

/** What {@linkcode downloadSummary} needs besides the statistics. */
export interface SummaryContext {
  /** The command: `download` prints the download lines even when nothing was missing. */
  readonly command: string;
  /** Seconds since the command started (check and metadata fetch included). */
  readonly elapsedSeconds: number;
}

/**
 * The end-of-download report. Its first line starts `Complete: N/M pieces verified` (or
 * `Data checked: all N pieces present` for a `seed` or `share` that had everything), then
 * come the bytes received and wasted, and the bytes uploaded with the ratio.
 *
 * @example
 * ```ts ignore
 * await writeText(io.stderr, downloadSummary(torrent.stats(), { command: "download", elapsedSeconds: 12.5 }));
 * ```
 *
 * @param s The torrent's statistics once it completed.
 * @param context The command and how long it ran.
 * @returns Lines of text, each ending in a line break.
 */
export function downloadSummary(s: TorrentStats, context: SummaryContext): string {
  if (s.downloaded === 0 && context.command !== "download") {
    return `Data checked: all ${s.pieceCount} pieces present\n`;
  }
  const pieces = s.wantedPieces < s.pieceCount
    ? `Complete: ${s.wantedPieces}/${s.wantedPieces} wanted pieces verified ` +
      `(${s.completedPieces}/${s.pieceCount} in all)`
    : `Complete: ${s.completedPieces}/${s.pieceCount} pieces verified`;
  const average = s.activeSeconds > 0
    ? ` (${formatBytes(Math.round(s.downloaded / s.activeSeconds))}/s average)`
    : "";
  let text =
    `${pieces}, ${formatBytes(s.downloaded)} downloaded this run in ${s.activeSeconds.toFixed(2)} s` +
    `${average}\n`;
  if (s.downloaded > 0) text += `  ${wasteLine(s)}\n`;
  text += `  Uploaded ${formatBytes(s.uploaded)} (ratio ${ratio(s)}); ${
    formatDuration(context.elapsedSeconds)
  } in all\n`;
  return text;
}

/** "Received X for Y of data: none wasted" or what was wasted, and why. */
function wasteLine(s: TorrentStats): string {
  const head = `Received ${formatBytes(s.downloaded)} of piece data for ${formatBytes(s.wantedBytes)} wanted`;
  if (s.wastedBytes === 0) return `${head}: none wasted`;
  const causes: string[] = [];
  if (s.duplicateBytes > 0) causes.push(`${formatBytes(s.duplicateBytes)} duplicate or unneeded blocks`);
  if (s.failedBytes > 0) {
    causes.push(
      `${formatBytes(s.failedBytes)} in ${s.failedPieces} ${
        s.failedPieces === 1 ? "piece" : "pieces"
      } that failed the hash check (downloaded again)`,
    );
  }
  return `${head}: ${formatBytes(s.wastedBytes)} wasted (${causes.join(", ")})`;
}

/**
 * The end-of-seeding report: why it stopped, bytes uploaded, ratio, and how long it seeded.
 * It starts `Stopped seeding (<why>): uploaded <bytes>` (scripts read that).
 *
 * @example
 * ```ts ignore
 * await writeText(io.stderr, seedSummary(torrent.stats(), "interrupted", 65));
 * ```
 *
 * @param s The torrent's statistics when seeding stopped.
 * @param why What stopped it: `ratio 2 reached`, `seeded for 60 s`, `interrupted`.
 * @param seededSeconds Seconds spent seeding.
 * @returns One line of text, ending in a line break.
 */
export function seedSummary(s: TorrentStats, why: string, seededSeconds: number): string {
  const average = seededSeconds > 0
    ? `, ${formatBytes(Math.round(s.uploaded / seededSeconds))}/s average`
    : "";
  return `Stopped seeding (${why}): uploaded ${formatBytes(s.uploaded)}, ratio ${ratio(s)}, ` +
    `seeded for ${formatDuration(seededSeconds)}${average}\n`;
}

/** Uploaded bytes over the torrent's size, as the `--seed-ratio` goal counts it. */
function ratio(s: TorrentStats): string {
  return (s.uploaded / Math.max(1, s.totalBytes)).toFixed(2);
}
