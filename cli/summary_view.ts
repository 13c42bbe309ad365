/**
 * What a transfer prints when it ends: pieces verified, duration and average rate, where the
 * downloaded bytes went (useful, duplicate blocks, pieces that failed their check), and what
 * was uploaded.
 *
 * @module
 */

import type { TorrentStats } from "../mod.ts";
import { formatBytes } from "./common.ts";
import { formatDuration, formatElapsed } from "./status_view.ts";

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
 * come the average rate and the whole run's duration, the bytes wasted and why (duplicate
 * blocks, pieces that failed their check), and the bytes uploaded with the ratio. Every line
 * but the first fits 80 columns.
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
  if (s.downloaded === 0) {
    // Everything was already here (resume data or a full check said so): no rates to report.
    return `${pieces}, nothing to download (all of it was already here)\n` +
      (s.uploaded > 0 ? `  Uploaded ${formatBytes(s.uploaded)} (ratio ${ratio(s)})\n` : "");
  }
  let text = `${pieces}, ${formatBytes(s.downloaded)} downloaded this run in ${
    s.activeSeconds.toFixed(2)
  } s\n`;
  const average = s.activeSeconds > 0
    ? `Average ${formatBytes(Math.round(s.downloaded / s.activeSeconds))}/s; `
    : "";
  text += `  ${average}${
    formatElapsed(context.elapsedSeconds * 1000)
  } in all (data check and connecting included)\n`;
  text += wasteLines(s);
  text += `  Uploaded ${formatBytes(s.uploaded)} (ratio ${ratio(s)})\n`;
  return text;
}

/** Where received bytes went to waste, one cause a line. */
function wasteLines(s: TorrentStats): string {
  if (s.wastedBytes === 0) return "  Wasted: nothing (every byte received was used)\n";
  let text = `  Wasted ${formatBytes(s.wastedBytes)} of the ${formatBytes(s.downloaded)} received:\n`;
  if (s.duplicateBytes > 0) text += `    ${formatBytes(s.duplicateBytes)} in duplicate or unneeded blocks\n`;
  if (s.failedBytes > 0) {
    const pieces = s.failedPieces === 1 ? "1 piece" : `${s.failedPieces} pieces`;
    text += `    ${formatBytes(s.failedBytes)} in ${pieces} that failed the hash check (downloaded again)\n`;
  }
  return text;
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
 * @param why What stopped it: `--seed-ratio 2 reached`, `--seed-time 60 s reached`, `interrupted`.
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
