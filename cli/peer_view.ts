/**
 * The peer table of the live view (`--peers`, or `p` on a terminal): one row per connected
 * peer with its address, client, direction, transport, encryption, choke and interest flags,
 * rates both ways and its progress.
 *
 * @module
 */

import type { PeerInfo } from "../mod.ts";
import { formatBytes, printable } from "./common.ts";

/**
 * What the letters of the flags column mean, for `--help`:
 * `D`/`d` for our downloading, `U`/`u` for theirs, `K` and `?` for an unchoke not used.
 */
export const PEER_FLAGS_HELP: string = `Flags (as qBittorrent shows them): D downloading from the peer;
                          d we want to, the peer chokes us; K the peer unchokes us, we are
                          not interested; U uploading to the peer; u it wants to, we choke
                          it; ? we unchoke it, it is not interested; . nothing either way`;

/**
 * The flags column of one peer: the first letter says how we download from it, the second
 * how it downloads from us (see {@linkcode PEER_FLAGS_HELP}).
 *
 * @example
 * ```ts
 * import { peerFlags } from "./peer_view.ts";
 * console.log(peerFlags({ amChoking: false, amInterested: true, peerChoking: false, peerInterested: true })); // "DU"
 * ```
 *
 * @param flags The peer's choke and interest flags.
 * @returns Two letters.
 */
export function peerFlags(flags: PeerInfo["flags"]): string {
  const down = flags.amInterested ? (flags.peerChoking ? "d" : "D") : (flags.peerChoking ? "." : "K");
  const up = flags.peerInterested ? (flags.amChoking ? "u" : "U") : (flags.amChoking ? "." : "?");
  return down + up;
}

interface Column {
  readonly title: string;
  /** Columns wide; for a column with `fit`, the most it grows to. */
  readonly width: number;
  /** As wide as its widest cell (at least the title), up to `width`. */
  readonly fit?: boolean;
  readonly right?: boolean;
  /** When the table is too wide, the column with the highest number goes first. */
  readonly drop: number;
  readonly cell: (p: PeerInfo) => string;
}

const COLUMNS: readonly Column[] = [
  { title: "client", drop: 4, width: 18, fit: true, cell: (p) => printable(p.client) },
  { title: "dir", drop: 5, width: 3, cell: (p) => p.direction },
  { title: "net", drop: 7, width: 3, cell: (p) => p.transport },
  { title: "enc", drop: 6, width: 5, cell: (p) => encryptionName(p.encryption) },
  { title: "flags", drop: 2, width: 5, cell: (p) => peerFlags(p.flags) },
  {
    title: "down",
    drop: 0,
    width: 12,
    right: true,
    cell: (p) => `${formatBytes(Math.round(p.downloadRate))}/s`,
  },
  { title: "up", drop: 1, width: 12, right: true, cell: (p) => `${formatBytes(Math.round(p.uploadRate))}/s` },
  { title: "have", drop: 3, width: 6, right: true, cell: (p) => `${p.percent.toFixed(1)}%` },
];

/** `rc4`, or `plain` for a payload in clear (after an MSE handshake or none at all). */
function encryptionName(encryption: string): string {
  return encryption === "none" || encryption === "plaintext" ? "plain" : encryption;
}

/** Options of {@linkcode peerTable}. */
export interface PeerTableOptions {
  /** Terminal columns: every line is at most `columns - 1` long. @default {Infinity} */
  readonly columns?: number;
  /** Most lines, the header included; peers past it are counted on the last line. @default {Infinity} */
  readonly maxLines?: number;
}

/**
 * The peer table: a header, then one row per peer, fastest first (download rate, then upload
 * rate, then address). Columns that do not fit the width are left out, least useful first
 * (net, enc, dir, client, have, flags, up); rows that do not fit `maxLines` are summed up as
 * "… and N more".
 *
 * @example
 * ```ts ignore
 * const lines = peerTable(torrent.peers(), { columns: 80, maxLines: 10 });
 * ```
 *
 * @param peers The torrent's `peers()`.
 * @param options Width and height available.
 * @returns Lines of text, without line breaks (just a "no peers connected" line when empty).
 */
export function peerTable(peers: readonly PeerInfo[], options: PeerTableOptions = {}): string[] {
  const max = Math.max(1, (options.columns ?? Infinity) - 1);
  const maxLines = Math.max(1, options.maxLines ?? Infinity);
  if (peers.length === 0) return [cut("  (no peers connected)", max)];
  const sorted = [...peers].sort((a, b) =>
    b.downloadRate - a.downloadRate || b.uploadRate - a.uploadRate || a.address.localeCompare(b.address)
  );
  const addressWidth = Math.min(39, Math.max(7, ...sorted.map((p) => p.address.length)));
  const columns = COLUMNS.map((c) =>
    c.fit
      ? { ...c, width: Math.min(c.width, Math.max(c.title.length, ...sorted.map((p) => c.cell(p).length))) }
      : c
  );
  const width = () => columns.reduce((sum, c) => sum + 1 + c.width, addressWidth);
  while (width() > max && columns.length > 0) {
    const least = columns.reduce((a, b) => (b.drop > a.drop ? b : a));
    columns.splice(columns.indexOf(least), 1);
  }
  const row = (address: string, cells: string[]) =>
    cut(
      [
        address.padEnd(addressWidth),
        ...columns.map((c, i) => {
          const text = cut(cells[i] ?? "", c.width);
          return c.right ? text.padStart(c.width) : text.padEnd(c.width);
        }),
      ].join(" ").trimEnd(),
      max,
    );
  const lines = [row("address", columns.map((c) => c.title))];
  const room = maxLines - 1;
  const shown = sorted.length <= room ? sorted : sorted.slice(0, Math.max(0, room - 1));
  for (const p of shown) {
    lines.push(row(cut(printable(p.address), addressWidth), columns.map((c) => c.cell(p))));
  }
  if (shown.length < sorted.length) lines.push(cut(`  ... and ${sorted.length - shown.length} more`, max));
  return lines.slice(0, maxLines);
}

function cut(text: string, width: number): string {
  return text.length <= width ? text : text.slice(0, Math.max(0, width));
}
