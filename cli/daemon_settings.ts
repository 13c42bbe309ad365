/**
 * The settings of `shoal daemon`: its flags over the `settings.json` of its state folder over
 * the defaults (flag > file > default), each value checked by the flags' own parsers.
 *
 * ```json
 * { "download-dir": "/srv/downloads", "port": 51413, "watch-dir": "/srv/watch", "up-limit": "2m" }
 * ```
 *
 * @module
 */

import { isAbsolute, join, resolve } from "node:path";
import type { LogLevel, MsePolicy } from "../mod.ts";
import { UsageError } from "./common.ts";
import { ConfigError, configValueError, type EnvLookup } from "./config_file.ts";
import { DEFAULT_LOG, type LogTarget, parseLogTarget } from "./log_targets.ts";
import { DEFAULT_DHT_BOOTSTRAP, InvalidValueError, parseIntOption, parseRate } from "./transfer_options.ts";

/** parseArgs descriptors of `shoal daemon`. */
export const DAEMON_OPTIONS = {
  "state-dir": { type: "string" },
  "download-dir": { type: "string" },
  "watch-dir": { type: "string" },
  port: { type: "string" },
  bind: { type: "string" },
  "rpc-port": { type: "string" },
  "rpc-bind": { type: "string" },
  "rpc-username": { type: "string" },
  "rpc-password": { type: "string" },
  "up-limit": { type: "string" },
  "down-limit": { type: "string" },
  encryption: { type: "string" },
  "no-dht": { type: "boolean" },
  "no-lsd": { type: "boolean" },
  "no-pex": { type: "boolean" },
  log: { type: "string", multiple: true },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** What `shoal daemon` runs with. */
export interface DaemonSettings {
  /** The state folder (absolute). */
  stateDir: string;
  /** Default download folder (absolute). */
  downloadDir: string;
  /** Watch folder (absolute), if any. */
  watchDir: string | undefined;
  /** Peer port (0: any). */
  port: number;
  /** Peer listening address, if given. */
  bind: string | undefined;
  /** Port of the Transmission RPC server (0: any free one). */
  rpcPort: number;
  /** Address of the Transmission RPC server. */
  rpcBind: string;
  /** Basic auth of the RPC server (both or neither). */
  rpcAuth: { username: string; password: string } | undefined;
  /** Global upload limit, bytes per second (0: none). */
  upLimit: number;
  /** Global download limit, bytes per second (0: none). */
  downLimit: number;
  /** MSE policy. */
  encryption: MsePolicy;
  /** DHT bootstrap nodes, or false when the DHT is off. */
  dht: false | string[];
  /** Local service discovery. */
  lsd: boolean;
  /** Peer exchange. */
  pex: boolean;
  /** Where log records go. */
  logs: LogTarget[];
  /** Least severe level logged. */
  level: LogLevel;
}

/** The flags as parseArgs returns them. */
export type DaemonValues = {
  [K in keyof typeof DAEMON_OPTIONS]?: K extends "log" ? string[] : string | boolean;
};

/** Keys of `settings.json`, and their JSON types. */
const FILE_KEYS: Readonly<Record<string, "string" | "integer" | "rate" | "boolean">> = {
  "download-dir": "string",
  "watch-dir": "string",
  port: "integer",
  bind: "string",
  "rpc-port": "integer",
  "rpc-bind": "string",
  "rpc-username": "string",
  "rpc-password": "string",
  "up-limit": "rate",
  "down-limit": "rate",
  encryption: "string",
  dht: "boolean",
  lsd: "boolean",
  pex: "boolean",
  "log-level": "string",
};

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
const POLICIES: readonly MsePolicy[] = ["prefer", "require", "allow", "disable"];

/**
 * The default state folder: `$XDG_DATA_HOME/shoal`, else `~/.local/share/shoal`.
 *
 * @example
 * ```ts
 * import { defaultStateDir } from "./daemon_settings.ts";
 * const env: Record<string, string> = { HOME: "/home/ana" };
 * console.log(defaultStateDir((name) => env[name])); // "/home/ana/.local/share/shoal"
 * ```
 *
 * @param env The environment.
 * @returns The folder, or undefined when neither variable is set.
 */
export function defaultStateDir(env: EnvLookup): string | undefined {
  const xdg = env("XDG_DATA_HOME");
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "shoal");
  const home = env("HOME");
  return home === undefined || home === "" ? undefined : join(home, ".local", "share", "shoal");
}

/**
 * Parses the flags over the state folder's `settings.json`.
 *
 * @example
 * ```ts ignore
 * const settings = await daemonSettings({ "state-dir": "/var/lib/shoal", port: "51413" }, { env, cwd });
 * ```
 *
 * @param values What parseArgs returned.
 * @param sources The environment and the working folder.
 * @returns The settings.
 * @throws {UsageError} for a bad flag; {@linkcode ConfigError} for a bad settings file.
 */
export async function daemonSettings(
  values: DaemonValues,
  sources: { env: EnvLookup; cwd: string },
): Promise<DaemonSettings> {
  const given = typeof values["state-dir"] === "string" ? values["state-dir"] : undefined;
  const fallback = defaultStateDir(sources.env);
  if (given === undefined && fallback === undefined) {
    throw new UsageError(
      "daemon",
      "No state folder: give --state-dir DIR (HOME and XDG_DATA_HOME are not set)",
    );
  }
  const stateDir = resolve(sources.cwd, given ?? fallback!);
  const file = join(stateDir, "settings.json");
  const fromFile = await readSettingsFile(file, stateDir);
  try {
    parseValues(fromFile.values); // a mistake in the file shows even where a flag overrides it
  } catch (error) {
    if (!(error instanceof InvalidValueError)) throw error;
    throw configValueError({ kind: "file", path: file, key: error.option }, error.expected, error.value);
  }
  const flags = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
  for (const key of ["download-dir", "watch-dir"] as const) {
    if (typeof flags[key] === "string") flags[key] = resolve(sources.cwd, flags[key]);
  }
  const merged: DaemonValues = { ...fromFile.values, ...flags };
  const settings = parseValues(merged, stateDir);
  const text = (key: "rpc-username" | "rpc-password") =>
    typeof merged[key] === "string" ? merged[key] as string : undefined;
  return {
    stateDir,
    ...settings,
    rpcAuth: rpcAuth(text("rpc-username"), text("rpc-password"), settings.rpcBind),
  };
}

async function readSettingsFile(file: string, stateDir: string): Promise<{ values: DaemonValues }> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { values: {} };
    throw new ConfigError(`Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${file}: must hold a JSON object, like {"port": 51413}`);
  }
  const values: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const kind = Object.hasOwn(FILE_KEYS, key) ? FILE_KEYS[key] : undefined;
    if (kind === undefined) {
      throw new ConfigError(
        `${file}: unknown key ${JSON.stringify(key)} (known: ${Object.keys(FILE_KEYS).join(", ")})`,
      );
    }
    const ok = kind === "boolean"
      ? typeof value === "boolean"
      : kind === "integer"
      ? typeof value === "number"
      : kind === "rate"
      ? typeof value === "number" || typeof value === "string"
      : typeof value === "string";
    if (!ok) {
      throw new ConfigError(
        `${file}: ${JSON.stringify(key)} must be ${
          kind === "rate" ? 'a number or a string like "500k"' : `a ${kind}`
        }`,
      );
    }
    if (kind === "boolean") values[`no-${key}`] = !(value as boolean);
    else if (key.endsWith("-dir")) values[key] = resolve(stateDir, value as string);
    else values[key] = String(value);
  }
  return { values: values as DaemonValues };
}

function parseValues(values: DaemonValues, stateDir = "/"): Omit<DaemonSettings, "stateDir" | "rpcAuth"> {
  const str = (key: keyof DaemonValues): string | undefined =>
    typeof values[key] === "string" ? values[key] as string : undefined;
  const level = (str("log-level") ?? "info") as LogLevel;
  if (!LEVELS.includes(level)) {
    throw new InvalidValueError("daemon", "--log-level", level, "debug, info, warn or error");
  }
  const encryption = (str("encryption") ?? "prefer") as MsePolicy;
  if (!POLICIES.includes(encryption)) {
    throw new InvalidValueError("daemon", "--encryption", encryption, "prefer, require, allow or disable");
  }
  const bind = str("bind");
  const loopback = bind !== undefined && isLoopback(bind);
  const rpcBind = str("rpc-bind") ?? "127.0.0.1";
  const rate = (key: "up-limit" | "down-limit") =>
    str(key) === undefined ? 0 : parseRate("daemon", `--${key}`, str(key)!);
  return {
    downloadDir: str("download-dir") ?? join(stateDir, "downloads"),
    watchDir: str("watch-dir"),
    port: str("port") === undefined ? 51413 : parseIntOption("daemon", "--port", str("port")!, 0, 65535),
    bind,
    rpcPort: str("rpc-port") === undefined
      ? 9091
      : parseIntOption("daemon", "--rpc-port", str("rpc-port")!, 0, 65535),
    rpcBind,
    upLimit: rate("up-limit"),
    downLimit: rate("down-limit"),
    encryption,
    dht: values["no-dht"] === true ? false : loopback ? [] : [...DEFAULT_DHT_BOOTSTRAP],
    lsd: values["no-lsd"] !== true,
    pex: values["no-pex"] !== true,
    logs: values.log === undefined || values.log.length === 0
      ? [DEFAULT_LOG]
      : values.log.map((spec) => parseLogTarget("daemon", spec)),
    level,
  };
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1" || address === "localhost";
}

/** The RPC login; a server reachable from other hosts must have a password. */
function rpcAuth(
  username: string | undefined,
  password: string | undefined,
  rpcBind: string,
): DaemonSettings["rpcAuth"] {
  if (password === undefined || password === "") {
    if (!isLoopback(rpcBind)) {
      throw new UsageError(
        "daemon",
        `--rpc-bind ${rpcBind} lets other hosts control the daemon: set --rpc-password (and --rpc-username) too, or bind 127.0.0.1`,
      );
    }
    if (username !== undefined) throw new UsageError("daemon", "--rpc-username needs --rpc-password");
    return undefined;
  }
  return { username: username ?? "", password };
}
