/**
 * `shoal download <torrent> [options]` and `shoal seed <torrent> [options]`: fetch a torrent
 * from peers with a live progress view, then optionally keep seeding.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type LogLevel,
  type LogRecord,
  MagnetError,
  parseMetainfo,
  type PieceSelector,
  PluginError,
  rarestFirst,
  sequential,
  Session,
  ShoalError,
  type Torrent,
  type TorrentStats,
} from "../mod.ts";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  expectPositionals,
  formatBytes,
  ProgressLine,
  UsageError,
  withUsageErrors,
  writeText,
} from "./common.ts";

const DOWNLOAD_USAGE = `Usage: shoal download <torrent> [options]

Downloads a torrent into a folder, verifying every piece. Existing data is checked first
(resume data makes that instant), so an interrupted download continues where it stopped.
Exits 0 only when every piece is verified.

Options:
  -o, --output DIR        Download folder (default: the current folder)
      --port N            Listening port (default: a random free port)
      --bind ADDRESS      Address to listen on (default: all interfaces, IPv6 and IPv4)
      --peer HOST:PORT    Connect to this peer; repeatable
      --selector NAME     Piece selection: rarest (default), sequential, or a path to a
                          module exporting a PieceSelector (e.g. ./my_selector.ts)
      --max-peers N       Most connections for this torrent (default: 50)
      --seed              Keep seeding after the download completes (until Ctrl+C)
      --log-level LEVEL   Print log records at this level and above: debug, info, warn,
                          error (default: warn)
  -q, --quiet             No progress display
  -h, --help              Show this help
`;

const SEED_USAGE = `Usage: shoal seed <torrent> [options]

Checks the data of a torrent in a folder and seeds it until Ctrl+C. Missing pieces are
downloaded first from the peers given.

Options:
  -d, --dir DIR           Folder holding the data (default: the current folder)
      --port N            Listening port (default: a random free port)
      --bind ADDRESS      Address to listen on (default: all interfaces, IPv6 and IPv4)
      --peer HOST:PORT    Connect to this peer; repeatable
      --max-peers N       Most connections for this torrent (default: 50)
      --log-level LEVEL   Print log records at this level and above (default: warn)
  -q, --quiet             No progress display
  -h, --help              Show this help
`;

/** The `download` command. */
export const downloadCommand: Command = {
  summary: "Download a torrent from peers (then seed with --seed)",
  usage: DOWNLOAD_USAGE,
  run: (args, io) => run("download", args, io),
};

/** The `seed` command. */
export const seedCommand: Command = {
  summary: "Seed a torrent's data from a folder",
  usage: SEED_USAGE,
  run: (args, io) => run("seed", args, io),
};

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

async function run(name: "download" | "seed", args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = withUsageErrors(name, () =>
    parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        output: { type: "string", short: "o" },
        dir: { type: "string", short: "d" },
        port: { type: "string" },
        bind: { type: "string" },
        peer: { type: "string", multiple: true },
        selector: { type: "string" },
        "max-peers": { type: "string" },
        seed: { type: "boolean" },
        "log-level": { type: "string" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
      },
    }));
  if (values.help === true) {
    await writeText(io.stdout, name === "seed" ? SEED_USAGE : DOWNLOAD_USAGE);
    return EXIT_OK;
  }
  const [source] = expectPositionals(name, positionals, ["<torrent>"]) as [string];
  const cwd = io.cwd ?? Deno.cwd();
  const dirOption = name === "seed" ? values.dir : values.output;
  if (name === "seed" && values.output !== undefined) throw new UsageError(name, "Use --dir with seed");
  if (name === "download" && values.dir !== undefined) {
    throw new UsageError(name, "Use --output with download");
  }
  const downloadDir = resolve(cwd, dirOption ?? ".");
  const port = values.port === undefined ? 0 : parseIntOption(name, "--port", values.port, 0, 65535);
  const maxPeers = values["max-peers"] === undefined
    ? 50
    : parseIntOption(name, "--max-peers", values["max-peers"], 1, 10_000);
  const level = (values["log-level"] ?? "warn") as LogLevel;
  if (!LEVELS.includes(level)) {
    throw new UsageError(name, `Invalid --log-level: ${level} (debug, info, warn, error)`);
  }
  const keepSeeding = name === "seed" || values.seed === true;
  const selector = await loadSelector(values.selector ?? "rarest", cwd);

  if (source.startsWith("magnet:")) {
    throw new MagnetError(
      "Magnet links need metadata exchange (BEP 9), which this version does not support yet",
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(resolve(cwd, source));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ShoalError("NOT_FOUND", `No such torrent file: ${source}`);
    }
    throw error;
  }
  const metainfo = parseMetainfo(bytes);

  const progress = values.quiet === true ? null : new ProgressLine(io);
  const logLines: string[] = [];
  const sink = (record: LogRecord) => {
    const fields = Object.entries(record.fields).map(([k, v]) => `${k}=${v}`).join(" ");
    logLines.push(
      `${record.level.toUpperCase()} ${record.category}: ${record.message}${fields ? ` (${fields})` : ""}`,
    );
    if (logLines.length > 1000) logLines.splice(0, logLines.length - 1000);
    flushLogs();
  };
  let logChain = Promise.resolve();
  const flushLogs = () => {
    const lines = logLines.splice(0);
    if (lines.length === 0) return;
    const text = (io.isTerminal && progress ? "\r\x1b[K" : "") + lines.join("\n") + "\n";
    logChain = logChain.then(() => writeText(io.stderr, text));
  };

  const session = new Session({
    downloadDir,
    port,
    ...(values.bind !== undefined ? { hostname: values.bind } : {}),
    selector,
    maxPeersPerTorrent: maxPeers,
    logSinks: [sink],
    logLevel: level,
  });
  let torrent: Torrent | undefined;
  let interrupted = false;
  const onAbort = () => {
    interrupted = true;
  };
  io.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (io.signal?.aborted) return 130;
    await writeText(
      io.stderr,
      `${name === "seed" ? "Seeding" : "Downloading"} ${metainfo.name} (${
        formatBytes(metainfo.totalLength)
      }, ` +
        `${metainfo.pieceCount} pieces) into ${downloadDir}\n`,
    );
    torrent = await session.add(metainfo, { peers: values.peer ?? [] });
    await writeText(io.stderr, `Listening on port ${session.port}\n`);
    const show = (stats: TorrentStats) => progress?.update(statusLine(stats));
    torrent.addEventListener("progress", (e) => show((e as CustomEvent<TorrentStats>).detail));
    const stopped = new Promise<"interrupted">((resolveStop) => {
      if (io.signal?.aborted) resolveStop("interrupted");
      io.signal?.addEventListener("abort", () => resolveStop("interrupted"), { once: true });
    });
    const outcome = await Promise.race([torrent.completed.then(() => "done" as const), stopped]);
    if (outcome === "done") {
      await progress?.done(statusLine(torrent.stats()));
      const stats = torrent.stats();
      await writeText(
        io.stderr,
        `Complete: ${stats.completedPieces}/${stats.pieceCount} pieces verified, ` +
          `${formatBytes(stats.downloaded)} downloaded this run in ${stats.activeSeconds.toFixed(2)} s` +
          (stats.failedPieces > 0 ? ` (${stats.failedPieces} failed checks, fetched again)` : "") + "\n",
      );
      if (keepSeeding && !interrupted) {
        await writeText(io.stderr, "Seeding; press Ctrl+C to stop\n");
        await stopped;
      }
      return EXIT_OK;
    }
    await progress?.done(statusLine(torrent.stats()));
    await writeText(io.stderr, "Interrupted: saving resume data\n");
    return 130;
  } catch (error) {
    await progress?.done();
    throw error;
  } finally {
    io.signal?.removeEventListener("abort", onAbort);
    await session.close();
    flushLogs();
    await logChain;
    if (torrent && !torrent.have.isComplete() && !interrupted) {
      await writeText(io.stderr, `Stopped with ${torrent.have.count()}/${metainfo.pieceCount} pieces\n`);
    }
  }
}

function statusLine(s: TorrentStats): string {
  const eta = s.eta === null ? "--" : formatDuration(s.eta);
  return `${s.percent.toFixed(1).padStart(5)}%  ${formatBytes(s.completedBytes)}/${
    formatBytes(s.totalBytes)
  }  ` +
    `down ${formatBytes(s.downloadRate)}/s  up ${formatBytes(s.uploadRate)}/s  peers ${s.peers}  ETA ${eta}` +
    (s.state === "seeding" ? "  seeding" : "");
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function parseIntOption(command: string, flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(command, `Invalid ${flag}: ${text} (a whole number from ${min} to ${max})`);
  }
  return n;
}

/**
 * Finds the selector a `--selector` value names: a built-in name or a module path.
 *
 * @example
 * ```ts ignore
 * const selector = await loadSelector("./fixtures/plugins/lowest_first.ts", Deno.cwd());
 * ```
 *
 * @param spec "rarest", "sequential", or a path to a module.
 * @param cwd Folder relative paths are resolved against.
 * @returns The selector.
 * @throws {PluginError} when the module cannot be loaded or exports no selector.
 */
export async function loadSelector(spec: string, cwd: string): Promise<PieceSelector> {
  if (spec === "rarest" || spec === "rarest-first") return rarestFirst();
  if (spec === "sequential") return sequential();
  if (!spec.includes("/") && !spec.includes("\\") && !spec.endsWith(".ts") && !spec.endsWith(".js")) {
    throw new UsageError(
      "download",
      `Unknown --selector: ${spec} (rarest, sequential, or a path like ./mine.ts)`,
    );
  }
  const url = pathToFileURL(resolve(cwd, spec)).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (error) {
    throw new PluginError(spec, `cannot load the module: ${(error as Error).message}`, { cause: error });
  }
  const candidates = [module.selector, module.default, ...Object.values(module)];
  for (const candidate of candidates) {
    if (isSelector(candidate)) return candidate;
  }
  for (const candidate of candidates) {
    if (typeof candidate === "function" && candidate.length === 0) {
      let made: unknown;
      try {
        made = (candidate as () => unknown)();
      } catch (error) {
        throw new PluginError(spec, `its factory threw: ${(error as Error).message}`, { cause: error });
      }
      if (isSelector(made)) return made;
    }
  }
  throw new PluginError(
    spec,
    "the module exports no PieceSelector (an object with a name and a select() method)",
  );
}

function isSelector(value: unknown): value is PieceSelector {
  return typeof value === "object" && value !== null && typeof (value as PieceSelector).name === "string" &&
    typeof (value as PieceSelector).select === "function";
}
