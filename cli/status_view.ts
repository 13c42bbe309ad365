/**
 * What a transfer shows while it runs and when it ends: the status line, and the tracker and
 * DHT reports.
 *
 * @module
 */

import type { Session, Torrent, TorrentStats } from "../mod.ts";
import { formatBytes } from "./common.ts";

/** One part of the status line, with how much it matters when the line must be shortened. */
export interface StatusField {
  /** Short name, for tests and callers that look for one. */
  readonly name: string;
  /** The full text. */
  readonly text: string;
  /** A shorter text, tried before the field is dropped. */
  readonly short?: string;
  /** 0 is the most important; the highest number goes first when the line is too long. */
  readonly priority: number;
}

/** Options of {@linkcode statusFields} and {@linkcode statusLine}. */
export interface StatusLineOptions {
  /** The torrent, for its trackers. */
  readonly torrent?: Torrent | undefined;
  /** The session, for its DHT counts. */
  readonly session?: Session | undefined;
  /**
   * Whether the run goes on seeding once the download is complete: a complete torrent then
   * says "seeding, uploaded …", otherwise "complete".
   *
   * @default {false}
   */
  readonly seeding?: boolean;
  /** Terminal columns: the line is at most `columns - 1` long. @default {Infinity} */
  readonly columns?: number;
}

/**
 * The parts of the status line, in display order, each with its priority: percent, sizes,
 * download rate, upload rate, peers, ETA, trackers, DHT, most important first; once the
 * torrent is complete, its state ("complete", or "seeding, uploaded …") comes right after
 * the sizes, and so does "paused" (no ETA) while the torrent is paused.
 *
 * @example
 * ```ts ignore
 * const names = statusFields(torrent.stats()).map((f) => f.name); // ["percent", "sizes", ...]
 * ```
 *
 * @param s The torrent's statistics.
 * @param options Torrent, session and whether the run goes on seeding.
 * @returns The fields.
 */
export function statusFields(s: TorrentStats, options: StatusLineOptions = {}): StatusField[] {
  const fields: StatusField[] = [
    { name: "percent", text: `${s.percent.toFixed(1).padStart(5)}%`, priority: 0 },
    {
      name: "sizes",
      text: `${formatBytes(s.completedBytes)}/${formatBytes(s.wantedBytes)}`,
      short: `${compactBytes(s.completedBytes)}/${compactBytes(s.wantedBytes)}`,
      priority: 1,
    },
    {
      name: "down",
      text: `down ${formatBytes(s.downloadRate)}/s`,
      short: `down ${compactBytes(s.downloadRate)}/s`,
      priority: 2,
    },
    {
      name: "up",
      text: `up ${formatBytes(s.uploadRate)}/s`,
      short: `up ${compactBytes(s.uploadRate)}/s`,
      priority: 3,
    },
    { name: "peers", text: `peers ${s.peers}`, priority: 4 },
  ];
  const trackers = options.torrent?.trackers() ?? [];
  if (trackers.length > 0) {
    const working = trackers.filter((t) => t.state === "working").length;
    fields.push({ name: "trackers", text: `trackers ${working}/${trackers.length}`, priority: 6 });
  }
  const complete = s.state === "seeding" || (s.done && s.state !== "checking");
  if (s.state === "paused") {
    // Paused: no peers, no rates worth an ETA; the state says why.
    fields.push({ name: "state", text: complete ? "paused, complete" : "paused", priority: 1.5 });
  } else if (complete && options.seeding === true) {
    fields.push({
      name: "state",
      text: `seeding, uploaded ${formatBytes(s.uploaded)}`,
      short: `seeding, up ${compactBytes(s.uploaded)}`,
      priority: 1.5,
    });
  } else if (complete) {
    // Once complete, the state says more than the rates: it is kept before them.
    fields.push({ name: "state", text: "complete", priority: 1.5 });
  } else {
    fields.push({ name: "eta", text: `ETA ${s.eta === null ? "--" : formatDuration(s.eta)}`, priority: 5 });
  }
  const dht = dhtField(options.session, options.torrent);
  if (dht !== undefined) fields.push(dht);
  return fields;
}

/** The DHT part of the status line: routing-table nodes and the peers found for the torrent. */
function dhtField(session: Session | undefined, torrent: Torrent | undefined): StatusField | undefined {
  const dht = session?.dht ?? null;
  if (dht === null || torrent === undefined) return undefined;
  const found = dht.status(torrent.infoHash);
  if (found === undefined) return undefined;
  return {
    name: "dht",
    text: `dht ${dht.nodeCount} nodes/${found.peersFound} peers`,
    short: `dht ${dht.nodeCount}/${found.peersFound}`,
    priority: 7,
  };
}

/**
 * Joins fields into a line of at most `columns - 1` characters (the last column is left free,
 * so a terminal never wraps it): the most fields that fit in their full text, else in their
 * short text, dropping the least important first; a single field too long is cut.
 *
 * @example
 * ```ts
 * import { fitFields } from "./status_view.ts";
 * const fields = [
 *   { name: "a", text: "alpha", priority: 0 },
 *   { name: "b", text: "beta", priority: 1 },
 * ];
 * console.log(fitFields(fields, 12)); // "alpha"
 * console.log(fitFields(fields, 80)); // "alpha  beta"
 * ```
 *
 * @param fields The fields, in display order.
 * @param columns The terminal's width (Infinity: no limit).
 * @returns The line.
 */
export function fitFields(fields: readonly StatusField[], columns: number): string {
  const max = Math.max(1, columns - 1);
  const byImportance = [...fields].sort((a, b) => a.priority - b.priority);
  for (let keep = fields.length; keep > 0; keep--) {
    const kept = new Set(byImportance.slice(0, keep));
    const chosen = fields.filter((f) => kept.has(f));
    const full = chosen.map((f) => f.text).join(SEPARATOR);
    if (full.length <= max) return full;
    const short = chosen.map((f) => f.short ?? f.text).join(SEPARATOR);
    if (short.length <= max) return short;
  }
  const first = byImportance[0];
  return first === undefined ? "" : (first.short ?? first.text).slice(0, max);
}

const SEPARATOR = "  ";

/**
 * The live status line of a transfer, fitted to the terminal.
 *
 * @example
 * ```ts ignore
 * progress.update(statusLine(torrent.stats(), { torrent, session, columns: 80 }));
 * ```
 *
 * @param s The torrent's statistics.
 * @param options Torrent, session, whether the run goes on seeding, and the width.
 * @returns One line of text.
 */
export function statusLine(s: TorrentStats, options: StatusLineOptions = {}): string {
  return fitFields(statusFields(s, options), options.columns ?? Infinity);
}

/** A byte count in at most 6 characters: `512B`, `1.5K`, `19.1M`, `2.0G`. */
function compactBytes(bytes: number): string {
  const units = ["B", "K", "M", "G", "T", "P"];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(bytes)}B`;
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)}${units[i]}`;
}

/**
 * The DHT line of the end-of-run report.
 *
 * @example
 * ```ts ignore
 * await writeText(io.stderr, dhtReport(session, torrent));
 * ```
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

/**
 * A table of tracker states for the end of a run: URL, state, last announce, peers, error.
 *
 * @example
 * ```ts ignore
 * await writeText(io.stderr, trackerReport(torrent));
 * ```
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

/**
 * A duration for people: `42s`, `3m05s`, `2h10m`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./status_view.ts";
 * console.log(formatDuration(185)); // "3m05s"
 * ```
 *
 * @param seconds The duration.
 * @returns The text (`--` for an infinite or unknown duration).
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Formats a short elapsed time with a precision that says something: "under 1 ms", "12 ms",
 * "2.4 s", and minutes and seconds from a minute on.
 *
 * @example
 * ```ts
 * import { formatElapsed } from "./status_view.ts";
 * console.log(formatElapsed(12.3), formatElapsed(2400), formatElapsed(125_000)); // "12 ms" "2.4 s" "2m05s"
 * ```
 *
 * @param ms Milliseconds.
 * @returns The time for people.
 */
export function formatElapsed(ms: number): string {
  if (ms < 1) return "under 1 ms";
  if (ms < 999.5) return `${Math.round(ms)} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(ms / 1000);
}
