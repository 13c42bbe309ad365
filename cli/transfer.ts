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
  type LogLevel,
  type LogRecord,
  type Metainfo,
  type PieceSelector,
  PluginError,
  rarestFirst,
  sequential,
  Session,
  type Torrent,
  type TorrentStats,
} from "../mod.ts";
import {
  type CliIO,
  EXIT_OK,
  formatBytes,
  parseSize,
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
  "log-level": { type: "string" },
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
      --log-level LEVEL   Print log records at this level and above: debug, info, warn,
                          error (default: warn)
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
  /** Log level for stderr. */
  level: LogLevel;
  /** Upload limit, bytes per second (0: none). */
  upLimit: number;
  /** Download limit, bytes per second (0: none). */
  downLimit: number;
  /** No progress line. */
  quiet: boolean;
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
    "log-level"?: string | undefined;
    quiet?: boolean | undefined;
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
    trackers: parseTrackers(command, values.tracker ?? []),
    maxPeers: values["max-peers"] === undefined
      ? 50
      : parseIntOption(command, "--max-peers", values["max-peers"], 1, 10_000),
    uploadSlots: values["upload-slots"] === undefined
      ? 8
      : parseIntOption(command, "--upload-slots", values["upload-slots"], 1, 1000),
    level,
    upLimit: values["up-limit"] === undefined ? 0 : parseRate(command, "--up-limit", values["up-limit"]),
    downLimit: values["down-limit"] === undefined
      ? 0
      : parseRate(command, "--down-limit", values["down-limit"]),
    quiet: values.quiet === true,
  };
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
  /** The torrent. */
  metainfo: Metainfo;
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
  const { metainfo, settings } = plan;
  const progress = settings.quiet ? null : new ProgressLine(io);
  let logChain = Promise.resolve();
  const sink = (record: LogRecord) => {
    const fields = Object.entries(record.fields).map(([k, v]) => `${k}=${v}`).join(" ");
    const line = `${record.level.toUpperCase()} ${record.category}: ${record.message}${
      fields ? ` (${fields})` : ""
    }`;
    const text = (io.isTerminal && progress ? "\r\x1b[K" : "") + line + "\n";
    logChain = logChain.then(() => writeText(io.stderr, text));
  };
  const session = new Session({
    downloadDir: plan.dir,
    port: settings.port,
    ...(settings.bind !== undefined ? { hostname: settings.bind } : {}),
    ...(plan.selector ? { selector: plan.selector } : {}),
    maxPeersPerTorrent: settings.maxPeers,
    uploadSlots: settings.uploadSlots,
    uploadLimit: settings.upLimit,
    downloadLimit: settings.downLimit,
    logSinks: [sink],
    logLevel: settings.level,
  });
  let torrent: Torrent | undefined;
  const stopped = new Promise<"interrupted">((resolveStop) => {
    if (io.signal?.aborted) resolveStop("interrupted");
    io.signal?.addEventListener("abort", () => resolveStop("interrupted"), { once: true });
  });
  try {
    if (io.signal?.aborted) return 130;
    const verb = plan.command === "download" ? "Downloading" : "Seeding";
    await writeText(
      io.stderr,
      `${verb} ${metainfo.name} (${formatBytes(metainfo.totalLength)}, ${metainfo.pieceCount} pieces) ` +
        `${plan.command === "download" ? "into" : "from"} ${plan.dir}\n`,
    );
    torrent = await session.add(metainfo, {
      peers: settings.peers,
      ...(settings.trackers.length > 0 ? { trackers: settings.trackers } : {}),
    });
    await writeText(io.stderr, `Listening on port ${session.port}\n`);
    await plan.onStarted?.(torrent, session);
    torrent.addEventListener(
      "progress",
      (e) => progress?.update(statusLine((e as CustomEvent<TorrentStats>).detail)),
    );
    const outcome = await Promise.race([torrent.completed.then(() => "done" as const), stopped]);
    if (outcome === "interrupted") {
      await progress?.done(statusLine(torrent.stats()));
      await writeText(
        io.stderr,
        `Interrupted with ${torrent.have.count()}/${metainfo.pieceCount} pieces: resume data saved\n`,
      );
      return 130;
    }
    await progress?.done(statusLine(torrent.stats()));
    const stats = torrent.stats();
    await writeText(
      io.stderr,
      stats.downloaded === 0 && plan.command !== "download"
        ? `Data checked: all ${stats.pieceCount} pieces present\n`
        : `Complete: ${stats.completedPieces}/${stats.pieceCount} pieces verified, ` +
          `${formatBytes(stats.downloaded)} downloaded this run in ${stats.activeSeconds.toFixed(2)} s` +
          (stats.failedPieces > 0 ? ` (${stats.failedPieces} failed checks, fetched again)` : "") + "\n",
    );
    if (plan.goal.seed) {
      const why = await seedUntil(torrent, plan.goal, stopped, progress);
      await progress?.done(statusLine(torrent.stats()));
      const after = torrent.stats();
      await writeText(
        io.stderr,
        `Stopped seeding (${why}): uploaded ${formatBytes(after.uploaded)}, ratio ${
          (after.uploaded / Math.max(1, metainfo.totalLength)).toFixed(2)
        }\n`,
      );
    }
    return EXIT_OK;
  } catch (error) {
    await progress?.done();
    throw error;
  } finally {
    const report = torrent ? trackerReport(torrent) : "";
    await session.close();
    await logChain;
    if (report !== "" && settings.level !== "error") await writeText(io.stderr, report);
  }
}

async function seedUntil(
  torrent: Torrent,
  goal: SeedGoal,
  stopped: Promise<"interrupted">,
  progress: ProgressLine | null,
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
      progress?.update(statusLine((e as CustomEvent<TorrentStats>).detail));
      check();
    });
    check();
  });
  return await Promise.race([reached, stopped.then(() => "interrupted")]);
}

function statusLine(s: TorrentStats, torrent?: Torrent): string {
  const eta = s.eta === null ? "--" : formatDuration(s.eta);
  const trackers = torrent?.trackers() ?? [];
  const working = trackers.filter((t) => t.state === "working").length;
  return `${s.percent.toFixed(1).padStart(5)}%  ${formatBytes(s.completedBytes)}/${
    formatBytes(s.totalBytes)
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

function parseTrackers(command: string, values: string[]): string[][] {
  const tiers = values.map((tier) => tier.split(",").map((u) => u.trim()).filter(Boolean)).filter((t) =>
    t.length > 0
  );
  for (const url of tiers.flat()) {
    const scheme = URL.canParse(url) ? new URL(url).protocol : "";
    if (!["http:", "https:", "udp:"].includes(scheme)) {
      throw new UsageError(command, `Invalid --tracker: ${url} (an http, https or udp URL)`);
    }
  }
  return tiers;
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
