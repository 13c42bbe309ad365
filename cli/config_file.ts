/**
 * The config file (`~/.config/shoal/config.json`, or `--config PATH`) and the few environment
 * variables that matter in containers: the options people set every time, read into the same
 * shape parseArgs gives, so that the flags' own parsers check them (flags > environment >
 * config file > built-in defaults).
 *
 * ```json
 * { "port": 6881, "download-dir": "~/Downloads", "up-limit": "500k", "dht": false }
 * ```
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { ShoalError } from "../mod.ts";

/** Reads one environment variable (`undefined` when unset). */
export type EnvLookup = (name: string) => string | undefined;

/**
 * A problem in the config file or a `SHOAL_*` variable, naming the file and key (or the
 * variable). Exit code 1.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./config_file.ts";
 * const error = new ConfigError('~/.config/shoal/config.json: "port" must be a whole number from 0 to 65535');
 * console.log(error.code); // "CONFIG"
 * ```
 */
export class ConfigError extends ShoalError {
  /**
   * @param message What is wrong, starting with the file or variable.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super("CONFIG", message, options);
  }
}

type Kind = "integer" | "string" | "rate" | "duration" | "boolean" | "negated" | "strings";

/** A config key: the option it stands for and the JSON type it takes. */
interface KeySpec {
  /** The parseArgs option it sets (`dht: false` sets `no-dht`). */
  readonly option: string;
  readonly kind: Kind;
}

/** Every key a config file may hold, named like the long flag it stands for. */
const KEYS: Readonly<Record<string, KeySpec>> = {
  port: { option: "port", kind: "integer" },
  bind: { option: "bind", kind: "string" },
  "download-dir": { option: "download-dir", kind: "string" },
  "max-peers": { option: "max-peers", kind: "integer" },
  "upload-slots": { option: "upload-slots", kind: "integer" },
  "up-limit": { option: "up-limit", kind: "rate" },
  "down-limit": { option: "down-limit", kind: "rate" },
  encryption: { option: "encryption", kind: "string" },
  dht: { option: "no-dht", kind: "negated" },
  "dht-port": { option: "dht-port", kind: "integer" },
  "dht-bootstrap": { option: "dht-bootstrap", kind: "strings" },
  pex: { option: "no-pex", kind: "negated" },
  lsd: { option: "no-lsd", kind: "negated" },
  "space-check": { option: "no-space-check", kind: "negated" },
  "metadata-timeout": { option: "metadata-timeout", kind: "duration" },
  "log-level": { option: "log-level", kind: "string" },
  peers: { option: "peers", kind: "boolean" },
  quiet: { option: "quiet", kind: "boolean" },
};

/** The config keys, in the order the help lists them. */
export const CONFIG_KEYS: readonly string[] = Object.keys(KEYS);

/**
 * The parseArgs option a config key sets.
 *
 * @example
 * ```ts
 * import { configOption } from "./config_file.ts";
 * console.log(configOption("port"), configOption("dht")); // "port" "no-dht"
 * ```
 *
 * @param key A key of {@linkcode CONFIG_KEYS}.
 * @returns The option's long name (the key itself for a key that is not known).
 */
export function configOption(key: string): string {
  return Object.hasOwn(KEYS, key) ? (KEYS[key]?.option ?? key) : key;
}

/** Environment variables read besides `SHOAL_CONFIG` (a config file's path), by the key they set. */
export const CONFIG_ENV: Readonly<Record<string, string>> = {
  SHOAL_PORT: "port",
  SHOAL_BIND: "bind",
  SHOAL_DOWNLOAD_DIR: "download-dir",
  SHOAL_LOG_LEVEL: "log-level",
};

/**
 * Every environment variable shoal reads: what `deno install --allow-env=...` must grant.
 */
export const ENV_NAMES: readonly string[] = [
  "HOME",
  "XDG_CONFIG_HOME",
  "XDG_DATA_HOME",
  "SHOAL_CONFIG",
  ...Object.keys(CONFIG_ENV),
];

const EXPECTED: Record<Kind, string> = {
  integer: "a whole number",
  string: "a string",
  rate: 'bytes per second, a number or a string like "500k"',
  duration: 'seconds, a number or a string like "30m"',
  boolean: "true or false",
  negated: "true or false",
  strings: "a list of strings",
};

/** Where a setting came from. */
export type ConfigOrigin =
  | { readonly kind: "file"; readonly path: string; readonly key: string }
  | { readonly kind: "env"; readonly name: string };

/** What the config file and the environment set, in the shape parseArgs returns. */
export interface ConfigLayer {
  /** The config file read, if any (absolute). */
  readonly file: string | undefined;
  /** Values by parseArgs option name (`"no-dht": true` for `"dht": false`), strings as typed. */
  readonly values: Readonly<Record<string, string | boolean | string[]>>;
  /** Where each of {@linkcode ConfigLayer.values} came from. */
  readonly origins: ReadonlyMap<string, ConfigOrigin>;
}

/** Where {@linkcode readConfig} looks. */
export interface ReadConfigOptions {
  /** `--config PATH` (relative to `cwd`); a missing file is then an error. */
  path?: string | undefined;
  /** The environment; without it, no variable and no default config file is read. */
  env?: EnvLookup | undefined;
  /** Folder relative paths are resolved against. */
  cwd: string;
}

/**
 * The default config file: `$XDG_CONFIG_HOME/shoal/config.json`, else
 * `$HOME/.config/shoal/config.json`.
 *
 * @example
 * ```ts
 * import { defaultConfigPath } from "./config_file.ts";
 * const env: Record<string, string> = { HOME: "/home/ana" };
 * console.log(defaultConfigPath((name) => env[name])); // "/home/ana/.config/shoal/config.json"
 * ```
 *
 * @param env The environment.
 * @returns The path, or `undefined` when neither variable is set.
 */
export function defaultConfigPath(env: EnvLookup): string | undefined {
  const xdg = env("XDG_CONFIG_HOME");
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "shoal", "config.json");
  const home = env("HOME");
  return home === undefined || home === "" ? undefined : join(home, ".config", "shoal", "config.json");
}

/**
 * Reads the config file (`path`, else `SHOAL_CONFIG`, else the default file if it exists) and
 * the `SHOAL_*` variables, checking keys and JSON types. Values are checked by the flags'
 * parsers afterwards; {@linkcode configValueError} words their complaints.
 *
 * @example
 * ```ts
 * import { readConfig } from "./config_file.ts";
 * const env: Record<string, string> = { SHOAL_PORT: "6881" };
 * const layer = readConfig({ env: (name) => env[name], cwd: "/" });
 * console.log(layer.values.port); // "6881"
 * ```
 *
 * @param options Where to look.
 * @returns The settings found, with their origins.
 * @throws {ConfigError} for an unreadable file, bad JSON, an unknown key or a wrong type.
 */
export function readConfig(options: ReadConfigOptions): ConfigLayer {
  const env: EnvLookup = options.env ?? (() => undefined);
  const values: Record<string, string | boolean | string[]> = {};
  const origins = new Map<string, ConfigOrigin>();
  const given = options.path ?? nonEmpty(env("SHOAL_CONFIG"));
  const file = given !== undefined ? resolve(options.cwd, given) : defaultConfigPath(env);
  const text = file === undefined ? undefined : readText(file, given !== undefined, env);
  if (file !== undefined && text !== undefined) {
    const shown = displayPath(file, env);
    for (const [key, value] of Object.entries(parseObject(text, shown))) {
      const spec = Object.hasOwn(KEYS, key) ? KEYS[key] : undefined;
      if (spec === undefined) {
        throw new ConfigError(
          `${shown}: unknown key ${JSON.stringify(key)} (known: ${CONFIG_KEYS.join(", ")})`,
        );
      }
      let typed = typedValue(spec.kind, value);
      if (typed === undefined) {
        throw new ConfigError(
          `${shown}: ${JSON.stringify(key)} must be ${EXPECTED[spec.kind]}, not ${describe(value)}`,
        );
      }
      if (spec.option === "download-dir" && typeof typed === "string") {
        typed = expandPath(typed, dirname(file), env, `${shown}: "download-dir"`);
      }
      values[spec.option] = typed;
      origins.set(spec.option, { kind: "file", path: shown, key });
    }
  }
  for (const [name, key] of Object.entries(CONFIG_ENV)) {
    const value = nonEmpty(env(name));
    if (value === undefined) continue;
    const option = KEYS[key]?.option ?? key;
    values[option] = option === "download-dir" ? expandPath(value, options.cwd, env, name) : value;
    origins.set(option, { kind: "env", name });
  }
  return { file: text === undefined ? undefined : file, values, origins };
}

/**
 * Words a flag parser's complaint about a value that came from the config file or the
 * environment: `~/.config/shoal/config.json: "port" must be a whole number from 0 to 65535 (not 99999)`.
 *
 * @example
 * ```ts
 * import { configValueError } from "./config_file.ts";
 * const error = configValueError({ kind: "env", name: "SHOAL_PORT" }, "a whole number from 0 to 65535", "x");
 * console.log(error.message); // 'SHOAL_PORT must be a whole number from 0 to 65535 (not "x")'
 * ```
 *
 * @param origin Where the value came from.
 * @param expected What the parser wants ("a whole number from 0 to 65535").
 * @param value The value as the parser saw it.
 * @returns The error to throw.
 */
export function configValueError(origin: ConfigOrigin, expected: string, value: string): ConfigError {
  const where = origin.kind === "env" ? origin.name : `${origin.path}: ${JSON.stringify(origin.key)}`;
  const shown = /^-?\d+(\.\d+)?$/.test(value) ? value : JSON.stringify(value);
  return new ConfigError(`${where} must be ${expected} (not ${shown})`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function readText(file: string, required: boolean, env: EnvLookup): string | undefined {
  try {
    return Deno.readTextFileSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !required) return undefined; // no default file: defaults
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.IsADirectory
      ? "it is a folder"
      : (error as Error).message;
    throw new ConfigError(`Cannot read config file ${displayPath(file, env)}: ${why}`, { cause: error });
  }
}

function parseObject(text: string, shown: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${shown}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${shown}: must hold a JSON object, like {"port": 6881}`);
  }
  return parsed as Record<string, unknown>;
}

/** The value as parseArgs would give it, or `undefined` when its JSON type is wrong. */
function typedValue(kind: Kind, value: unknown): string | boolean | string[] | undefined {
  switch (kind) {
    case "integer":
      return typeof value === "number" ? String(value) : undefined;
    case "rate":
    case "duration":
      return typeof value === "number" ? String(value) : typeof value === "string" ? value : undefined;
    case "string":
      return typeof value === "string" ? value : undefined;
    case "boolean":
      return typeof value === "boolean" ? value : undefined;
    case "negated":
      return typeof value === "boolean" ? !value : undefined;
    case "strings":
      return Array.isArray(value) && value.every((v) => typeof v === "string") ? [...value] : undefined;
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `${typeof value === "string" ? "the string" : typeof value === "number" ? "the number" : ""} ${
    JSON.stringify(value)
  }`.trim();
}

/** Expands a leading `~/` and resolves a relative path against `base`. */
function expandPath(path: string, base: string, env: EnvLookup, where: string): string {
  if (path === "") throw new ConfigError(`${where} must name a folder, not ""`);
  if (path === "~" || path.startsWith("~/")) {
    const home = nonEmpty(env("HOME"));
    if (home === undefined) throw new ConfigError(`${where}: cannot expand ~ (HOME is not set)`);
    return join(home, path.slice(1));
  }
  return resolve(base, path);
}

/** The path with the home folder shown as `~`. */
function displayPath(path: string, env: EnvLookup): string {
  const home = nonEmpty(env("HOME"));
  return home !== undefined && path.startsWith(`${home.replace(/\/$/, "")}/`)
    ? `~${path.slice(home.replace(/\/$/, "").length)}`
    : path;
}
