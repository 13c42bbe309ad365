/**
 * The options every transferring command (`download`, `seed`, `share`) shares: their parseArgs
 * descriptors, help text, and parsing into {@linkcode TransferSettings}, with a usage error
 * for every value that cannot work.
 *
 * @module
 */

import { type LogLevel, type MsePolicy, parsePeerAddress, PeerAddressError } from "../mod.ts";
import { parseSize, parseTrackerTiers, UsageError } from "./common.ts";
import { DEFAULT_LOG, type LogTarget, parseLogTarget } from "./log_targets.ts";
import { PEER_FLAGS_HELP } from "./peer_view.ts";
import { type ConfigLayer, configValueError, type EnvLookup, readConfig } from "./config_file.ts";

/** parseArgs option descriptors shared by every command that transfers. */
export const TRANSFER_OPTIONS = {
  config: { type: "string" },
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
  "no-space-check": { type: "boolean" },
  encryption: { type: "string" },
  "metadata-timeout": { type: "string" },
  peers: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

/** Options of {@linkcode transferHelp}. */
export interface TransferHelpOptions {
  /** Options (long names, like "tracker") a command describes itself, left out. @default {[]} */
  omit?: readonly string[];
}

/**
 * The help lines of {@linkcode TRANSFER_OPTIONS}, without those a command describes itself
 * (`share` puts `--tracker` in the torrent, so its help lists its own meaning only).
 *
 * @example
 * ```ts
 * import { transferHelp } from "./transfer_options.ts";
 * console.log(transferHelp({ omit: ["tracker"] }).includes("--tracker")); // false
 * ```
 *
 * @param options What to leave out.
 * @returns The help lines.
 */
export function transferHelp(options: TransferHelpOptions = {}): string {
  const omit = new Set(options.omit ?? []);
  const entries = HELP_LINES.split(/\n(?= {2,6}-)/);
  return entries.filter((entry) => !omit.has(/--([\w-]+)/.exec(entry)?.[1] ?? "")).join("\n");
}

/** Every help entry, one option each (continuation lines are indented past the flags). */
const HELP_LINES = `      --config FILE       Read settings from this JSON file (default:
                          ~/.config/shoal/config.json, or $SHOAL_CONFIG); flags override
                          it. 'shoal config' shows the settings and where each comes from
      --port N            Listening port (default: a random free port)
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
                          print on stderr as "LEVEL category: message (fields)". jsonl
                          sinks also get a "progress" record every 2 s and at the end
                          (percent, completedBytes, wantedBytes, downloadRate, uploadRate,
                          peers, state, eta), whatever --log-level says
      --log-level LEVEL   Log records at this level and above: debug, info, warn, error
                          (default: warn)
      --no-pex            Do not exchange peers with peers (BEP 11 PEX)
      --no-lsd            Do not look for peers on the local network (BEP 14 multicast)
      --no-space-check    Start even when the free space reported for the folder is less
                          than the download still needs (for file systems that report it
                          wrongly); a full disk still stops the download, with resume data
      --encryption MODE   Message Stream Encryption: prefer (default: encrypted when the peer
                          can), require (encrypted only), allow (plaintext first), disable
      --metadata-timeout T
                          For a magnet link: give up fetching its metadata after T
                          (seconds, or 30m, 2h; default: 5m; 0: wait forever)
      --peers             Show the connected peers below the status line (on a terminal,
                          key p shows or hides them); off a terminal, a table every 10 s.
                          Columns: address, client, dir (in/out), net (tcp), enc (rc4 or
                          plain), flags, rates both ways, how much the peer has.
                          ${PEER_FLAGS_HELP}
  -q, --quiet             No progress display
  -h, --help              Show this help`;

/** Help lines for {@linkcode TRANSFER_OPTIONS}. */
export const TRANSFER_HELP: string = transferHelp();

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
  /** Show the peer table from the start (`--peers`). */
  peersView: boolean;
  /** Peer exchange (off with `--no-pex`). */
  pex: boolean;
  /** Local service discovery (off with `--no-lsd`). */
  lsd: boolean;
  /** Refuse to start when the free space is short (off with `--no-space-check`). */
  spaceCheck: boolean;
  /** MSE policy (`--encryption`). */
  encryption: MsePolicy;
  /** Download folder from the config file or `SHOAL_DOWNLOAD_DIR` (absolute), for `download -o`. */
  downloadDir?: string;
  /** Seconds a magnet link's metadata fetch may take (`--metadata-timeout`; 0: no limit). */
  metadataTimeout: number;
}

/** Default of `--metadata-timeout`, in seconds. */
export const DEFAULT_METADATA_TIMEOUT = 300;

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Where {@linkcode transferSettings} finds the config file and the environment. */
export interface ConfigSources {
  /** The environment (`SHOAL_*`, `XDG_CONFIG_HOME`, `HOME`); without it, none is read. */
  readonly env?: EnvLookup | undefined;
  /** Folder a relative `--config` path is resolved against. @default {Deno.cwd()} */
  readonly cwd?: string | undefined;
}

/**
 * A flag's value that its parser refuses. A usage error (exit 2) when it came from the
 * command line; the config file's loader rewords it when it came from there.
 *
 * @example
 * ```ts
 * import { InvalidValueError } from "./transfer_options.ts";
 * const error = new InvalidValueError("seed", "--port", "x", "a whole number from 0 to 65535");
 * console.log(error.message); // "Invalid --port: x (a whole number from 0 to 65535)"
 * ```
 */
export class InvalidValueError extends UsageError {
  /** The option, without dashes ("port"). */
  readonly option: string;
  /** The value refused. */
  readonly value: string;
  /** What the option takes ("a whole number from 0 to 65535"). */
  readonly expected: string;

  /**
   * @param command Command name, for the `--help` hint.
   * @param flag The flag ("--port").
   * @param value The value refused.
   * @param expected What the flag takes.
   */
  constructor(command: string, flag: string, value: string, expected: string) {
    super(command, `Invalid ${flag}: ${value} (${expected})`);
    this.option = flag.replace(/^--/, "");
    this.value = value;
    this.expected = expected;
  }
}

/**
 * Parses the shared options, over what the config file and the environment set (flags >
 * environment > config file > defaults; `--config` chooses the file).
 *
 * @example
 * ```ts
 * import { transferSettings } from "./transfer_options.ts";
 * const env: Record<string, string> = { SHOAL_PORT: "6881" };
 * const settings = transferSettings("seed", { "max-peers": "20" }, { env: (name) => env[name] });
 * console.log(settings.port, settings.maxPeers); // 6881 20
 * ```
 *
 * @param command Command name, for errors.
 * @param values What parseArgs returned.
 * @param sources The environment (none by default: only `--config` is read then).
 * @returns The settings.
 * @throws {UsageError} for a bad flag; {@linkcode ConfigError} for a bad config file or variable.
 */
export function transferSettings(
  command: string,
  values: TransferValues & { config?: string | undefined },
  sources: ConfigSources = {},
): TransferSettings {
  const config = readConfig({ path: values.config, env: sources.env, cwd: sources.cwd ?? Deno.cwd() });
  checkConfig(command, config);
  const given = Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
  const settings = parseTransferValues(command, { ...config.values, ...given } as TransferValues);
  const dir = config.values["download-dir"];
  return typeof dir === "string" ? { ...settings, downloadDir: dir } : settings;
}

/**
 * Checks every value of the config file and the environment with the flags' parsers, also
 * those a flag overrides this time (a mistake in the file shows at once, not some day later).
 */
function checkConfig(command: string, config: ConfigLayer): void {
  try {
    parseTransferValues(command, config.values as TransferValues);
  } catch (error) {
    const origin = error instanceof InvalidValueError ? config.origins.get(error.option) : undefined;
    if (origin === undefined) throw error;
    throw configValueError(origin, (error as InvalidValueError).expected, (error as InvalidValueError).value);
  }
}

/** The shared options as parseArgs returns them. */
type TransferValues = Parameters<typeof parseTransferValues>[1];

function parseTransferValues(
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
    "metadata-timeout"?: string | undefined;
    quiet?: boolean | undefined;
    peers?: boolean | undefined;
    "no-pex"?: boolean | undefined;
    "no-lsd"?: boolean | undefined;
    "no-space-check"?: boolean | undefined;
  },
): TransferSettings {
  const level = (values["log-level"] ?? "warn") as LogLevel;
  if (!LEVELS.includes(level)) {
    throw new InvalidValueError(command, "--log-level", level, "debug, info, warn or error");
  }
  return {
    port: values.port === undefined ? 0 : parseIntOption(command, "--port", values.port, 0, 65535),
    bind: values.bind === undefined ? undefined : parseBind(command, values.bind),
    peers: parsePeers(command, values.peer ?? []),
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
    peersView: values.peers === true,
    encryption: parseEncryption(command, values.encryption),
    pex: values["no-pex"] !== true,
    lsd: values["no-lsd"] !== true,
    spaceCheck: values["no-space-check"] !== true,
    metadataTimeout: values["metadata-timeout"] === undefined
      ? DEFAULT_METADATA_TIMEOUT
      : parseDuration(command, "--metadata-timeout", values["metadata-timeout"]),
  };
}

/**
 * Checks each `--peer` value with the library's {@linkcode parsePeerAddress}, so that what
 * passes here is what the session can dial.
 */
/** `--bind`: an IPv4 or IPv6 address (without brackets) or a host name. */
function parseBind(command: string, value: string): string {
  try {
    parsePeerAddress(value.includes(":") ? `[${value}]:1` : `${value}:1`);
  } catch (error) {
    if (!(error instanceof PeerAddressError)) throw error;
    throw new UsageError(
      command,
      `Invalid --bind '${value}': not an IP address or a host name (such as 127.0.0.1, ::1 or localhost)`,
    );
  }
  return value;
}

function parsePeers(command: string, values: readonly string[]): string[] {
  for (const value of values) {
    try {
      parsePeerAddress(value);
    } catch (error) {
      if (!(error instanceof PeerAddressError)) throw error;
      throw new UsageError(command, `Invalid --peer '${value}': ${error.reason}`);
    }
  }
  return [...values];
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
      throw new InvalidValueError(command, "--dht-bootstrap", value, "HOST:PORT, an IPv4 address or a name");
    }
  }
  return values;
}

const POLICIES: readonly MsePolicy[] = ["prefer", "require", "allow", "disable"];

function parseEncryption(command: string, value: string | undefined): MsePolicy {
  const policy = (value ?? "prefer") as MsePolicy;
  if (!POLICIES.includes(policy)) {
    throw new InvalidValueError(command, "--encryption", String(value), "prefer, require, allow or disable");
  }
  return policy;
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
    throw new InvalidValueError(command, flag, text, `a whole number from ${min} to ${max}`);
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
  if (!m) throw new InvalidValueError(command, flag, text, "like 90, 30m, 2h or 1d");
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
    throw new InvalidValueError(command, flag, text, "a number such as 1.5");
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
    throw new InvalidValueError(command, flag, text, "bytes per second, like 500k or 2m");
  }
  return n;
}
