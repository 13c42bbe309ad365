/**
 * `shoal info <torrent-file|magnet> [--json]`: shows what a torrent or magnet link holds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type MagnetLink, type Metainfo, parseMagnet } from "../mod.ts";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  expectPositionals,
  formatBytes,
  printable,
  UsageError,
  withUsageErrors,
  writeText,
} from "./common.ts";
import { readTorrentArgument } from "./torrent_argument.ts";

const USAGE = `Usage: shoal info <torrent-file|magnet-uri> [options]

Shows a torrent's name, info-hash, size, pieces, trackers, web seeds and files (numbered
as "download --files" takes them), or what a magnet link says: name, info-hash, trackers,
web seeds, peers and selected files (its size and file list come with the metadata).

Options:
  --json              Print one JSON object instead of text
  --max-files N       Show at most N files in text output (default 100; 0 for all)
  -h, --help          Show this help
`;

const DEFAULT_MAX_FILES = 100;

/** The `info` command. */
export const infoCommand: Command = {
  summary: "Show what a .torrent file or magnet link holds",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("info", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          json: { type: "boolean" },
          "max-files": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    const [source] = expectPositionals("info", positionals, ["<torrent-file|magnet-uri>"]) as [string];
    let maxFiles = DEFAULT_MAX_FILES;
    if (values["max-files"] !== undefined) {
      const n = Number(values["max-files"]);
      if (!/^\d+$/.test(values["max-files"]) || !Number.isSafeInteger(n)) {
        throw new UsageError("info", `Invalid --max-files: ${values["max-files"]}`);
      }
      maxFiles = n === 0 ? Infinity : n;
    }
    if (/^magnet:/i.test(source)) {
      const magnet = parseMagnet(source);
      await writeText(
        io.stdout,
        values.json === true ? JSON.stringify(magnetJson(magnet)) + "\n" : magnetText(magnet),
      );
      return EXIT_OK;
    }
    const meta = await readTorrentArgument(source, io.cwd ?? Deno.cwd());
    await writeText(
      io.stdout,
      values.json === true ? JSON.stringify(torrentJson(meta)) + "\n" : torrentText(meta, maxFiles),
    );
    return EXIT_OK;
  },
};

/** The `--json` form of a torrent. */
function torrentJson(meta: Metainfo): Record<string, unknown> {
  return {
    type: "torrent",
    name: meta.name,
    infoHash: meta.infoHashHex,
    totalLength: meta.totalLength,
    pieceLength: meta.pieceLength,
    pieceCount: meta.pieceCount,
    private: meta.private,
    multiFile: meta.multiFile,
    hybrid: meta.hybrid,
    trackers: meta.announceList,
    webSeeds: meta.urlList,
    comment: meta.comment,
    createdBy: meta.createdBy,
    creationDate: meta.creationDate,
    files: meta.files.map((f, index) => ({
      index,
      path: f.safePath,
      length: f.length,
      offset: f.offset,
      pad: f.pad,
    })),
  };
}

/** The `--json` form of a magnet link. */
function magnetJson(magnet: MagnetLink): Record<string, unknown> {
  return {
    type: "magnet",
    name: magnet.name,
    infoHash: magnet.infoHashHex,
    trackers: magnet.trackers,
    webSeeds: magnet.webSeeds,
    peers: magnet.peers,
    selectOnly: magnet.selectOnly,
  };
}

function field(label: string, value: string): string {
  return `${(label + ":").padEnd(14)}${value}\n`;
}

function formatDate(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(".000Z", "Z");
}

function torrentText(meta: Metainfo, maxFiles: number): string {
  let out = "";
  out += field("Name", printable(meta.name));
  out += field("Info-hash", meta.infoHashHex + (meta.hybrid ? " (v1 part of a hybrid v1/v2 torrent)" : ""));
  out += field("Size", `${formatBytes(meta.totalLength)} (${meta.totalLength} bytes)`);
  out += field("Pieces", `${meta.pieceCount} × ${formatBytes(meta.pieceLength)}`);
  out += field("Private", meta.private ? "yes" : "no");
  if (meta.comment !== undefined) out += field("Comment", printable(meta.comment));
  if (meta.createdBy !== undefined) out += field("Created by", printable(meta.createdBy));
  if (meta.creationDate !== undefined) out += field("Created on", formatDate(meta.creationDate));
  out += trackersText(meta.announceList);
  out += listText("Web seeds", meta.urlList);
  // Numbered by their index in the torrent (pad files count but are not shown), as --files and so= use.
  const files = meta.files.map((f, index) => ({ ...f, index })).filter((f) => !f.pad);
  out += `Files (${files.length}):\n`;
  const shown = files.slice(0, maxFiles);
  const width = Math.max(...shown.map((f) => formatBytes(f.length).length));
  const indexWidth = String(shown.at(-1)?.index ?? 0).length;
  for (const f of shown) {
    out += `  ${String(f.index).padStart(indexWidth)}  ${formatBytes(f.length).padStart(width)}  ${
      printable(f.safePath)
    }\n`;
  }
  if (files.length > shown.length) out += `  ... and ${files.length - shown.length} more\n`;
  return out;
}

function trackersText(tiers: readonly (readonly string[])[]): string {
  if (tiers.length === 0) return field("Trackers", "none");
  let out = "Trackers:\n";
  tiers.forEach((tier, i) => {
    tier.forEach((url, j) => {
      out += `  ${j === 0 ? `tier ${i + 1}:` : ""}`.padEnd(10) + printable(url) + "\n";
    });
  });
  return out;
}

function listText(label: string, items: readonly string[]): string {
  if (items.length === 0) return "";
  let out = `${label}:\n`;
  for (const item of items) out += `  ${printable(item)}\n`;
  return out;
}

function magnetText(magnet: MagnetLink): string {
  let out = "";
  out += field("Magnet link", "(no file list or size: the metadata is fetched from peers)");
  if (magnet.name !== undefined) out += field("Name", printable(magnet.name));
  out += field("Info-hash", magnet.infoHashHex);
  out += magnet.trackers.length === 0 ? field("Trackers", "none") : listText("Trackers", magnet.trackers);
  out += listText("Web seeds", magnet.webSeeds);
  out += listText("Peers", magnet.peers);
  if (magnet.selectOnly !== undefined) out += field("Select only", `files ${ranges(magnet.selectOnly)}`);
  return out;
}

/** "0,2,3,4" → "0,2-4". */
function ranges(indices: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < indices.length;) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    parts.push(j === i ? `${indices[i]}` : `${indices[i]}-${indices[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
