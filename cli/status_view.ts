/**
 * What a transfer shows while it runs and when it ends: the status line, and the tracker and
 * DHT reports.
 *
 * @module
 */

import type { Session, Torrent, TorrentStats } from "../mod.ts";
import { formatBytes } from "./common.ts";

/** The DHT part of the progress line: routing-table nodes and the peers found for the torrent. */
export function dhtStatus(session: Session, torrent: Torrent | undefined): string {
  const dht = session.dht;
  if (dht === null || torrent === undefined) return "";
  const found = dht.status(torrent.infoHash);
  return found === undefined ? "" : `  dht ${dht.nodeCount} nodes/${found.peersFound} peers`;
}

/**
 * The DHT line of the end-of-run report.
 *
 * @param session The session.
 * @param torrent The torrent.
 * @returns A line of text (empty when the DHT is off or not used for this torrent).
 */
export function dhtReport(session: Session, torrent: Torrent): string {
  const found = session.dht?.status(torrent.infoHash);
  if (found === undefined) return "";
  return `DHT: ${session.dht!.nodeCount} nodes, ${found.lookups} lookups, ${found.peersFound} peers found\n`;
}

export function statusLine(s: TorrentStats, torrent?: Torrent): string {
  const eta = s.eta === null ? "--" : formatDuration(s.eta);
  const trackers = torrent?.trackers() ?? [];
  const working = trackers.filter((t) => t.state === "working").length;
  return `${s.percent.toFixed(1).padStart(5)}%  ${formatBytes(s.completedBytes)}/${
    formatBytes(s.wantedBytes)
  }  ` +
    `down ${formatBytes(s.downloadRate)}/s  up ${formatBytes(s.uploadRate)}/s  peers ${s.peers}` +
    (trackers.length > 0 ? `  trackers ${working}/${trackers.length}` : "") +
    (s.state === "seeding" ? `  seeding, uploaded ${formatBytes(s.uploaded)}` : `  ETA ${eta}`);
}

/**
 * A table of tracker states for the end of a run: URL, state, last announce, peers, error.
 *
 * @param torrent The torrent.
 * @returns Lines of text (empty when it has no trackers).
 */
export function trackerReport(torrent: Torrent): string {
  const rows = torrent.trackers();
  if (rows.length === 0) return "";
  const now = Date.now();
  return "Trackers:\n" + rows.map((t) => {
    const last = t.lastAnnounce === undefined
      ? "never"
      : `${Math.round((now - t.lastAnnounce) / 1000)} s ago`;
    return `  tier ${t.tier + 1} ${t.url}: ${t.state}, last announce ${last}, ${t.peersReceived} peers` +
      (t.lastError ? `, error: ${t.lastError}` : "");
  }).join("\n") + "\n";
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
