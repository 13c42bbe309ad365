/**
 * What `download`, `seed` and `share` share: the common options, a session with a live
 * progress view and log output, and the loop that waits for completion, seeding goals or
 * Ctrl+C.
 *
 * @module
 */

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  isMagnetLink,
  type LogLevel,
  type LogSink,
  type MagnetLink,
  type Metainfo,
  type PieceSelector,
  PluginError,
  rarestFirst,
  sequential,
  Session,
  type Torrent,
  type TorrentStats,
} from "../mod.ts";
import { jsonlSink, mse, type MsePolicy, prettySink } from "../mod.ts";
import {
  type CliIO,
  EXIT_OK,
  formatBytes,
  parseSize,
  parseTrackerTiers,
  printable,
  ProgressLine,
  UsageError,
  writeText,
} from "./common.ts";

/** parseArgs option descriptors shared by every command that transfers. */
export const TRANSFER_OPTIONS = {
  port: { type: "string" },
  bind: { type: "string" },
  peer: { type: "string", multiple: true },
  tracker: { type: "string", multiple: true },
  "max-peers": { type: "string" },
  "upload-slots": { type: "string" },
  "up-limit": { type: "string" },
  "down-limit": { type: "string" },
  "no-dht": { type: "boolean" },
  "dht-port": { type: "string" },
  "dht-bootstrap": { type: "string", multiple: true },
  log: { type: "string", multiple: true },
  "log-level": { type: "string" },
  "no-pex": { type: "boolean" },
  "no-lsd": { type: "boolean" },
  encryption: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

/** Help lines for {@linkcode TRANSFER_OPTIONS}. */
export const TRANSFER_HELP = `      --port N            Listening port (default: a random free port)
      --bind ADDRESS      Address to listen on (default: all interfaces, IPv6 and IPv4)
      --peer HOST:PORT    Connect to this peer; repeatable
      --tracker URL       Also announce to this tracker (http, https or udp); repeatable,
                          "URL1,URL2" is one tier
      --max-peers N       Most connections for this torrent (default: 50)
      --upload-slots N    Peers we upload to at once, one of them optimistic (default: 8)
      --up-limit RATE     Upload limit in bytes per second, like 500k or 2m (default: none)
      --down-limit RATE   Download limit in bytes per second (default: none)
      --no-dht            Do not use the DHT (it is on by default, never for private torrents)
      --dht-port N        UDP port of the DHT (default: the listening port's number if free)
      --dht-bootstrap HOST:PORT
                          Join the DHT through this node; repeatable (default: the public
                          routers, none when --bind is a loopback address; a saved routing
                          table in <dir>/.shoal/dht.dat is used either way)
      --log SINK          Where log records go; repeatable. "pretty": one line each on
                          stderr, with the time; "jsonl:PATH": one JSON object per line,
                          appended to PATH ("jsonl:-" for stdout); or a path to a module
                          exporting a LogSink (e.g. ./my_sink.ts). Without --log, records
                          print on stderr as "LEVEL category: message (fields)"
      --log-level LEVEL   Log records at this level and above: debug, info, warn, error
                          (default: warn)
      --no-pex            Do not exchange peers with peers (BEP 11 PEX)
      --no-lsd            Do not look for peers on the local network (BEP 14 multicast)
      --encryption MODE   Message Stream Encryption: prefer (default: encrypted when the peer
                          can), require (encrypted only), allow (plaintext first), disable
  -q, --quiet             No progress display
  -h, --help              Show this help`;

/** The common options, parsed. */
export interface TransferSettings {
  /** Listening port (0: any). */
  port: number;
  /** Listening address, if given. */
  bind: string | undefined;
  /** Peers to dial. */
  peers: string[];
  /** Extra tracker tiers. */
  trackers: string[][];
  /** Connection cap per torrent. */
  maxPeers: number;
  /** Upload slots. */
  uploadSlots: number;
  /** Lowest level of the records logged. */
  level: LogLevel;
  /** Where log records go (`--log`); without any, the stderr lines of {@linkcode DEFAULT_LOG}. */
  logs: LogTarget[];
  /** Upload limit, bytes per second (0: none). */
  upLimit: number;
  /** Download limit, bytes per second (0: none). */
  downLimit: number;
  /** DHT settings, or false for `--no-dht`. */
  dht: false | { port?: number; bootstrap: string[] };
  /** No progress line. */
  quiet: boolean;
  /** Peer exchange (off with `--no-pex`). */
  pex: boolean;
  /** Local service discovery (off with `--no-lsd`). */
  lsd: boolean;
  /** MSE policy (`--encryption`). */
  encryption: MsePolicy;
}

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/**
 * Parses the shared options.
 *
 * @param command Command name, for errors.
 * @param values What parseArgs returned.
 * @returns The settings.
 */
export function transferSettings(
  command: string,
  values: {
    port?: string | undefined;
    bind?: string | undefined;
    peer?: string[] | undefined;
    tracker?: string[] | undefined;
    "max-peers"?: string | undefined;
    "upload-slots"?: string | undefined;
    "up-limit"?: string | undefined;
    "down-limit"?: string | undefined;
    "no-dht"?: boolean | undefined;
    "dht-port"?: string | undefined;
    "dht-bootstrap"?: string[] | undefined;
    log?: string[] | undefined;
    "log-level"?: string | undefined;
    encryption?: string | undefined;
    quiet?: boolean | undefined;
    "no-pex"?: boolean | undefined;
    "no-lsd"?: boolean | undefined;
  },
): TransferSettings {
  const level = (values["log-level"] ?? "warn") as LogLevel;
  if (!LEVELS.includes(level)) {
    throw new UsageError(command, `Invalid --log-level: ${level} (debug, info, warn, error)`);
  }
  return {
    port: values.port === undefined ? 0 : parseIntOption(command, "--port", values.port, 0, 65535),
    bind: values.bind,
    peers: values.peer ?? [],
    trackers: parseTrackerTiers(command, values.tracker ?? []),
    maxPeers: values["max-peers"] === undefined
      ? 50
      : parseIntOption(command, "--max-peers", values["max-peers"], 1, 10_000),
    uploadSlots: values["upload-slots"] === undefined
      ? 8
      : parseIntOption(command, "--upload-slots", values["upload-slots"], 1, 1000),
    level,
    logs: values.log === undefined || values.log.length === 0
      ? [DEFAULT_LOG]
      : values.log.map((spec) => parseLogTarget(command, spec)),
    upLimit: values["up-limit"] === undefined ? 0 : parseRate(command, "--up-limit", values["up-limit"]),
    downLimit: values["down-limit"] === undefined
      ? 0
      : parseRate(command, "--down-limit", values["down-limit"]),
    dht: values["no-dht"] === true ? false : {
      ...(values["dht-port"] !== undefined
        ? { port: parseIntOption(command, "--dht-port", values["dht-port"], 0, 65535) }
        : {}),
      bootstrap: parseDhtBootstrap(command, values["dht-bootstrap"], values.bind),
    },
    quiet: values.quiet === true,
    encryption: parseEncryption(command, values.encryption),
    pex: values["no-pex"] !== true,
    lsd: values["no-lsd"] !== true,
  };
}

/** Well-known DHT routers, the bootstrap nodes used unless `--dht-bootstrap` names others. */
export const DEFAULT_DHT_BOOTSTRAP: readonly string[] = [
  "router.bittorrent.com:6881",
  "router.utorrent.com:6881",
  "dht.transmissionbt.com:6881",
];

function parseDhtBootstrap(
  command: string,
  values: string[] | undefined,
  bind: string | undefined,
): string[] {
  if (values === undefined || values.length === 0) {
    // Nothing on a loopback address can reach the public routers.
    const loopback = bind !== undefined &&
      (bind.startsWith("127.") || bind === "::1" || bind === "localhost");
    return loopback ? [] : [...DEFAULT_DHT_BOOTSTRAP];
  }
  for (const value of values) {
    const m = /^([^:\s]+):(\d{1,5})$/.exec(value);
    if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new UsageError(
        command,
        `Invalid --dht-bootstrap: ${value} (HOST:PORT, an IPv4 address or a name)`,
      );
    }
  }
  return values;
}

/** When to stop seeding after the download completes. */
export interface SeedGoal {
  /** Keep seeding at all. */
  seed: boolean;
  /** Stop once uploaded / size reaches this. */
  ratio?: number;
  /** Stop after this many seconds of seeding. */
  seconds?: number;
}

/** Everything one transfer needs. */
export interface TransferPlan {
  /** Command name, for messages. */
  command: string;
  /** The torrent, or a magnet link whose metadata is fetched from peers first. */
  metainfo: Metainfo | MagnetLink;
  /** Download only these files (indices as `info` numbers them). @default a magnet's `so`, else all */
  selectFiles?: readonly number[];
  /** Folder holding (or receiving) the torrent's files. */
  dir: string;
  /** Shared settings. */
  settings: TransferSettings;
  /** Piece selector. */
  selector?: PieceSelector;
  /** Seeding after completion. */
  goal: SeedGoal;
  /** Called once the torrent is running (e.g. to print a magnet link). */
  onStarted?: (torrent: Torrent, session: Session) => Promise<void>;
}

/**
 * Runs one torrent in a session until it completes (and the seeding goal is met) or the
 * user interrupts; prints progress, log records and a summary.
 *
 * @example
 * ```ts ignore
 * const code = await runTransfer({ command: "download", metainfo, dir, settings, goal: { seed: false } }, io);
 * ```
 *
 * @param plan What to run.
 * @param io Where to print; `io.signal` is Ctrl+C.
 * @returns The exit code: 0 when every piece is verified, 130 when interrupted.
 */
export async function runTransfer(plan: TransferPlan, io: CliIO): Promise<number> {
  const { settings } = plan;
  let metainfo = plan.metainfo;
  const progress = settings.quiet ? null : new ProgressLine(io);
  const logs = await openLogSinks(settings.logs, io, { clearLine: io.isTerminal && progress !== null });
  let session: Session;
  try {
    session = new Session({
      downloadDir: plan.dir,
      port: settings.port,
      ...(settings.bind !== undefined ? { hostname: settings.bind } : {}),
      ...(plan.selector ? { selector: plan.selector } : {}),
      maxPeersPerTorrent: settings.maxPeers,
      uploadSlots: settings.uploadSlots,
      uploadLimit: settings.upLimit,
      downloadLimit: settings.downLimit,
      logSinks: logs.sinks,
      logLevel: settings.level,
      encryption: mse({ policy: settings.encryption }),
      ...(settings.dht ? { dht: settings.dht } : {}),
      ...(settings.pex ? {} : { pex: false }),
      ...(settings.lsd ? {} : { lsd: false }),
    });
  } catch (error) {
    await logs.close();
    throw error;
  }
  let torrent: Torrent | undefined;
  const line = (stats: TorrentStats) => statusLine(stats) + dhtStatus(session, torrent);
  const stopped = new Promise<"interrupted">((resolveStop) => {
    if (io.signal?.aborted) resolveStop("interrupted");
    io.signal?.addEventListener("abort", () => resolveStop("interrupted"), { once: true });
  });
  try {
    if (io.signal?.aborted) return 130;
    const verb = plan.command === "download" ? "Downloading" : "Seeding";
    const header = (m: Metainfo) =>
      `${verb} ${m.name} (${formatBytes(m.totalLength)}, ${m.pieceCount} pieces) ` +
      `${plan.command === "download" ? "into" : "from"} ${plan.dir}\n`;
    const magnet = isMagnetLink(metainfo) ? metainfo : null;
    await writeText(
      io.stderr,
      magnet === null
        ? header(metainfo as Metainfo)
        : `Fetching metadata for ${
          magnet.name === undefined ? magnet.infoHashHex : `${printable(magnet.name)} (${magnet.infoHashHex})`
        } from peers\n`,
    );
    try {
      torrent = await session.add(metainfo, {
        peers: settings.peers,
        ...(settings.trackers.length > 0 ? { trackers: settings.trackers } : {}),
        ...(plan.selectFiles ? { selectFiles: plan.selectFiles } : {}),
        ...(io.signal ? { signal: io.signal } : {}),
      });
    } catch (error) {
      if (magnet === null || !io.signal?.aborted) throw error;
      await writeText(io.stderr, "Interrupted while fetching metadata\n");
      return 130;
    }
    metainfo = torrent.metainfo;
    if (magnet !== null) await writeText(io.stderr, header(metainfo));
    await writeText(io.stderr, `Listening on port ${session.port}\n`);
    await plan.onStarted?.(torrent, session);
    torrent.addEventListener(
      "progress",
      (e) => progress?.update(line((e as CustomEvent<TorrentStats>).detail)),
    );
    const outcome = await Promise.race([torrent.completed.then(() => "done" as const), stopped]);
    if (outcome === "interrupted") {
      await progress?.done(line(torrent.stats()));
      await writeText(
        io.stderr,
        `Interrupted with ${torrent.have.count()}/${torrent.metainfo.pieceCount} pieces: resume data saved\n`,
      );
      return 130;
    }
    await progress?.done(line(torrent.stats()));
    const stats = torrent.stats();
    await writeText(
      io.stderr,
      stats.downloaded === 0 && plan.command !== "download"
        ? `Data checked: all ${stats.pieceCount} pieces present\n`
        : (stats.wantedPieces < stats.pieceCount
          ? `Complete: ${stats.wantedPieces}/${stats.wantedPieces} wanted pieces verified ` +
            `(${stats.completedPieces}/${stats.pieceCount} in all), `
          : `Complete: ${stats.completedPieces}/${stats.pieceCount} pieces verified, `) +
          `${formatBytes(stats.downloaded)} downloaded this run in ${stats.activeSeconds.toFixed(2)} s` +
          (stats.failedPieces > 0 ? ` (${stats.failedPieces} failed checks, fetched again)` : "") + "\n",
    );
    if (plan.goal.seed) {
      const why = await seedUntil(torrent, plan.goal, stopped, progress, line);
      await progress?.done(line(torrent.stats()));
      const after = torrent.stats();
      await writeText(
        io.stderr,
        `Stopped seeding (${why}): uploaded ${formatBytes(after.uploaded)}, ratio ${
          (after.uploaded / Math.max(1, torrent.metainfo.totalLength)).toFixed(2)
        }\n`,
      );
    }
    return EXIT_OK;
  } catch (error) {
    await progress?.done();
    throw error;
  } finally {
    const report = torrent ? trackerReport(torrent) + dhtReport(session, torrent) : "";
    await session.close();
    await logs.close();
    if (report !== "" && settings.level !== "error") await writeText(io.stderr, report);
  }
}

async function seedUntil(
  torrent: Torrent,
  goal: SeedGoal,
  stopped: Promise<"interrupted">,
  progress: ProgressLine | null,
  line: (s: TorrentStats) => string,
): Promise<string> {
  const limits: string[] = [];
  if (goal.ratio !== undefined) limits.push(`ratio ${goal.ratio}`);
  if (goal.seconds !== undefined) limits.push(`${goal.seconds} s`);
  progress?.update(`Seeding until ${limits.length > 0 ? limits.join(" or ") : "Ctrl+C"}`);
  const start = Date.now();
  const size = Math.max(1, torrent.metainfo.totalLength);
  const reached = new Promise<string>((resolveGoal) => {
    const check = () => {
      const stats = torrent.stats();
      if (goal.ratio !== undefined && stats.uploaded / size >= goal.ratio) {
        resolveGoal(`ratio ${goal.ratio} reached`);
      } else if (goal.seconds !== undefined && (Date.now() - start) / 1000 >= goal.seconds) {
        resolveGoal(`seeded for ${goal.seconds} s`);
      }
    };
    torrent.addEventListener("progress", (e) => {
      progress?.update(line((e as CustomEvent<TorrentStats>).detail));
      check();
    });
    check();
  });
  return await Promise.race([reached, stopped.then(() => "interrupted")]);
}

/** The DHT part of the progress line: routing-table nodes and the peers found for the torrent. */
function dhtStatus(session: Session, torrent: Torrent | undefined): string {
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

function statusLine(s: TorrentStats, torrent?: Torrent): string {
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

const POLICIES: readonly MsePolicy[] = ["prefer", "require", "allow", "disable"];

function parseEncryption(command: string, value: string | undefined): MsePolicy {
  const policy = (value ?? "prefer") as MsePolicy;
  if (!POLICIES.includes(policy)) {
    throw new UsageError(command, `Invalid --encryption: ${value} (prefer, require, allow or disable)`);
  }
  return policy;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Parses a whole-number option.
 *
 * @param command Command name, for errors.
 * @param flag The flag, for errors.
 * @param text Its value.
 * @param min Smallest allowed.
 * @param max Largest allowed.
 * @returns The number.
 */
export function parseIntOption(
  command: string,
  flag: string,
  text: string,
  min: number,
  max: number,
): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(command, `Invalid ${flag}: ${text} (a whole number from ${min} to ${max})`);
  }
  return n;
}

/**
 * Parses a duration: seconds, or a number with s, m, h or d.
 *
 * @param command Command name, for errors.
 * @param flag The flag, for errors.
 * @param text Like "90", "30m", "2h".
 * @returns Seconds.
 */
export function parseDuration(command: string, flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(command, `Invalid ${flag}: ${text} (like 90, 30m, 2h or 1d)`);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

/**
 * Parses a non-negative decimal number.
 *
 * @param command Command name, for errors.
 * @param flag The flag, for errors.
 * @param text The value.
 * @returns The number.
 */
export function parseNumberOption(command: string, flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n)) {
    throw new UsageError(command, `Invalid ${flag}: ${text} (a number such as 1.5)`);
  }
  return n;
}

/**
 * Parses a rate such as "500k" or "2m" (bytes per second).
 *
 * @param command Command name, for errors.
 * @param flag The flag, for errors.
 * @param text The value.
 * @returns Bytes per second.
 */
export function parseRate(command: string, flag: string, text: string): number {
  const n = parseSize(text);
  if (n === undefined || n <= 0) {
    throw new UsageError(command, `Invalid ${flag}: ${text} (bytes per second, like 500k or 2m)`);
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

// ---------------------------------------------------------------------------------------------
// Log sinks: --log pretty | jsonl:PATH | ./my_sink.ts

/** One `--log` value, parsed. */
export type LogTarget =
  | {
    /** Human lines on stderr ({@linkcode prettySink}). */
    readonly kind: "pretty";
    /** Show the time of day in front of each line. */
    readonly timestamps: boolean;
  }
  | {
    /** JSON Lines ({@linkcode jsonlSink}). */
    readonly kind: "jsonl";
    /** File to append to, or "-" for stdout. */
    readonly path: string;
  }
  | {
    /** A user module exporting a {@linkcode LogSink}. */
    readonly kind: "module";
    /** Its path, as given. */
    readonly path: string;
  };

/**
 * Where records go without `--log`: stderr lines without timestamps, the format shoal has
 * always printed (`INFO peer: Peer connected (peer=...)`), which scripts may be reading.
 */
export const DEFAULT_LOG: LogTarget = { kind: "pretty", timestamps: false };

/**
 * Parses one `--log` value.
 *
 * @example
 * ```ts ignore
 * parseLogTarget("download", "jsonl:./log.jsonl"); // { kind: "jsonl", path: "./log.jsonl" }
 * ```
 *
 * @param command Command name, for errors.
 * @param spec `pretty`, `jsonl:PATH`, `jsonl:-`, or a module path.
 * @returns The target.
 * @throws {UsageError} for anything else.
 */
export function parseLogTarget(command: string, spec: string): LogTarget {
  if (spec === "pretty") return { kind: "pretty", timestamps: true };
  if (spec === "jsonl" || spec.startsWith("jsonl:")) {
    const path = spec.slice("jsonl:".length);
    if (path === "") {
      throw new UsageError(
        command,
        `Invalid --log: ${spec} (give a file: jsonl:PATH, or jsonl:- for stdout)`,
      );
    }
    return { kind: "jsonl", path };
  }
  if (isModulePath(spec)) return { kind: "module", path: spec };
  throw new UsageError(command, `Unknown --log: ${spec} (pretty, jsonl:PATH, or a path like ./my_sink.ts)`);
}

function isModulePath(spec: string): boolean {
  return spec.includes("/") || spec.includes("\\") || /\.(ts|js|mts|mjs)$/.test(spec);
}

/** Options for {@linkcode openLogSinks}. */
export interface OpenLogSinksOptions {
  /** Erase the progress line (`\r\x1b[K`) before each stderr line. @default {false} */
  clearLine?: boolean;
}

/** The sinks of a run, and how to finish them. */
export interface OpenedLogSinks {
  /** For the session's logger. */
  readonly sinks: LogSink[];
  /** Waits for queued output, then closes every sink that can be closed. Never throws. */
  close(): Promise<void>;
}

/**
 * Builds the sinks `--log` asked for. Text for stderr and stdout goes through `io` (after the
 * writes queued before it), so it interleaves cleanly with the progress line. A module sink
 * is wrapped so that an exception, or a rejected promise from an async sink, names the module
 * and removes only that sink.
 *
 * @example
 * ```ts ignore
 * const logs = await openLogSinks([{ kind: "jsonl", path: "log.jsonl" }], io);
 * // new Session({ ..., logSinks: logs.sinks }) ... then
 * await logs.close();
 * ```
 *
 * @param targets What `--log` asked for.
 * @param io Where stderr and stdout are; `io.cwd` for relative paths.
 * @param options Progress line handling.
 * @returns The sinks.
 * @throws {PluginError} when a file cannot be opened or a module gives no sink (sinks already
 * opened are closed first).
 */
export async function openLogSinks(
  targets: readonly LogTarget[],
  io: CliIO,
  options: OpenLogSinksOptions = {},
): Promise<OpenedLogSinks> {
  const cwd = io.cwd ?? Deno.cwd();
  const sinks: LogSink[] = [];
  const closers: { name: string; close: () => unknown }[] = [];
  let chain = Promise.resolve();
  const queue = (stream: WritableStream<Uint8Array>, text: string) => {
    chain = chain.then(() => writeText(stream, text)).catch(() => {/* output gone: nothing to tell */});
  };
  const close = async () => {
    await chain;
    for (const { name, close } of closers.splice(0)) {
      try {
        await close();
      } catch (error) {
        await writeText(io.stderr, `warning: Log sink '${name}' failed to close: ${describe(error)}\n`)
          .catch(() => {/* stderr gone */});
      }
    }
    await chain;
  };
  try {
    for (const target of targets) {
      if (target.kind === "pretty") {
        const clear = options.clearLine === true ? "\r\x1b[K" : "";
        sinks.push(prettySink({
          write: (text) => queue(io.stderr, clear + text),
          color: io.isTerminal && !Deno.noColor,
          timestamp: target.timestamps ? "time" : "none",
        }));
      } else if (target.kind === "jsonl") {
        const name = `jsonl:${target.path}`;
        let sink;
        try {
          sink = target.path === "-"
            ? jsonlSink({ write: (line) => queue(io.stdout, line) })
            : jsonlSink(resolve(cwd, target.path));
        } catch (error) {
          throw new PluginError(name, `cannot open the log file: ${describe(error)}`, { cause: error });
        }
        sinks.push(sink);
        closers.push({ name, close: () => sink.close() });
      } else {
        const loaded = await loadLogSink(target.path, cwd);
        sinks.push(containSink(target.path, loaded.sink, (text) => queue(io.stderr, text)));
        if (loaded.close) closers.push({ name: target.path, close: loaded.close });
      }
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { sinks, close };
}

/** What {@linkcode loadLogSink} found in a module. */
export interface LoadedLogSink {
  /** The sink. */
  readonly sink: LogSink;
  /** Its `close()`, `Symbol.asyncDispose` or `Symbol.dispose`, bound, if it has one. */
  readonly close?: () => unknown;
}

/**
 * Loads a user's log sink module. A sink is a function of one argument (the record). The
 * export named `sink` is tried first, then the default export, then every other export;
 * failing a function of one argument, a function of none is called as a factory (and awaited)
 * and must return one.
 *
 * @example
 * ```ts ignore
 * const { sink, close } = await loadLogSink("./fixtures/plugins/counting_sink.ts", Deno.cwd());
 * ```
 *
 * @param spec The module path, as given on the command line.
 * @param cwd Folder a relative path is resolved against.
 * @returns The sink, and how to close it.
 * @throws {PluginError} naming the module, when it cannot be loaded, its factory throws, or it
 * exports no sink.
 */
export async function loadLogSink(spec: string, cwd: string): Promise<LoadedLogSink> {
  const url = pathToFileURL(resolve(cwd, spec)).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (error) {
    throw new PluginError(spec, `cannot load the module: ${describe(error)}`, { cause: error });
  }
  const candidates = [module.sink, module.default, ...Object.values(module)].filter(
    (value): value is (...args: unknown[]) => unknown => typeof value === "function" && !isClass(value),
  );
  let sink = candidates.find((fn) => fn.length === 1);
  if (sink === undefined) {
    const factory = candidates.find((fn) => fn.length === 0);
    if (factory !== undefined) {
      let made: unknown;
      try {
        made = await factory();
      } catch (error) {
        throw new PluginError(spec, `its factory threw: ${describe(error)}`, { cause: error });
      }
      if (typeof made === "function") sink = made as (...args: unknown[]) => unknown;
    }
  }
  if (sink === undefined) {
    throw new PluginError(
      spec,
      "the module exports no LogSink (a function taking a log record, or a factory returning one)",
    );
  }
  const owner = sink as unknown as Partial<
    Record<"close" | typeof Symbol.asyncDispose | typeof Symbol.dispose, unknown>
  >;
  const method = [owner.close, owner[Symbol.asyncDispose], owner[Symbol.dispose]].find((m) =>
    typeof m === "function"
  ) as ((this: unknown) => unknown) | undefined;
  const found = sink;
  return { sink: found as LogSink, ...(method ? { close: () => method.call(found) } : {}) };
}

/**
 * Wraps a user's sink: an exception is rethrown as a {@linkcode PluginError} naming it (the
 * logger then removes the sink and reports that), and a rejected promise from an async sink
 * turns the sink off and is reported on stderr instead of crashing the process.
 */
function containSink(name: string, sink: LogSink, report: (text: string) => void): LogSink {
  let failed = false;
  const fail = (how: string, error: unknown) =>
    new PluginError(name, `${how}: ${describe(error)}`, { cause: error });
  return (record) => {
    if (failed) return;
    let result: unknown;
    try {
      result = (sink as (record: unknown) => unknown)(record);
    } catch (error) {
      failed = true;
      throw fail("the log sink threw", error);
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
      (result as PromiseLike<unknown>).then(undefined, (error: unknown) => {
        if (failed) return;
        failed = true;
        report(`error: ${fail("the log sink rejected", error).message}; it is turned off\n`);
      });
    }
  };
}

function isClass(fn: unknown): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
