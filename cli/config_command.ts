/**
 * `shoal config [--config FILE] [--json]`: the settings `download`, `seed` and `share` start
 * with before any flag, and where each one comes from (config file, environment, default).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  expectPositionals,
  formatBytes,
  withUsageErrors,
  writeText,
} from "./common.ts";
import {
  CONFIG_ENV,
  CONFIG_KEYS,
  configOption,
  type ConfigOrigin,
  defaultConfigPath,
  readConfig,
} from "./config_file.ts";
import { type TransferSettings, transferSettings } from "./transfer_options.ts";

const USAGE = `Usage: shoal config [options]

Shows the settings that download, seed and share start with before any flag, and where each
comes from. They are read from a JSON config file and a few environment variables; a flag
given to a command overrides both (flags > environment > config file > built-in defaults).
The file is checked as those commands check it: a mistake is an error naming the file and the
key (exit 1).

The config file is --config FILE, else $SHOAL_CONFIG, else $XDG_CONFIG_HOME/shoal/config.json
(~/.config/shoal/config.json); a missing default file is fine. It holds one JSON object whose
keys are named like the flags:

  {
    "port": 6881, "bind": "0.0.0.0", "download-dir": "~/Downloads",
    "max-peers": 50, "upload-slots": 8, "up-limit": "500k", "down-limit": 0,
    "encryption": "prefer", "dht": true, "dht-port": 6881,
    "dht-bootstrap": ["router.bittorrent.com:6881"], "pex": true, "lsd": true,
    "space-check": true, "metadata-timeout": "5m", "log-level": "warn", "peers": false,
    "quiet": false
  }

"dht", "pex", "lsd" and "space-check" set to false are --no-dht, --no-pex, --no-lsd and
--no-space-check; "download-dir" is download's default -o (relative to the file's folder;
~/ is the home folder). Environment: ${Object.keys(CONFIG_ENV).join(", ")}.

Options:
      --config FILE       Read this config file
      --json              Print the settings as JSON
  -h, --help              Show this help
`;

/** The `config` command. */
export const configCommand: Command = {
  summary: "Show the settings from the config file and the environment",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("config", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          config: { type: "string" },
          json: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    expectPositionals("config", positionals, []);
    const settings = transferSettings("config", { config: values.config }, io);
    const layer = readConfig({ path: values.config, env: io.env, cwd: io.cwd ?? Deno.cwd() });
    const rows = CONFIG_KEYS.map((key) => {
      const origin = layer.origins.get(configOption(key));
      return {
        key,
        value: shownValue(key, settings),
        from: origin === undefined ? "default" : origin.kind === "env" ? origin.name : "config file",
      };
    });
    const file = layer.file ?? (values.config === undefined ? defaultPath(io) : undefined);
    if (values.json === true) {
      const json = {
        file: layer.file ?? null,
        settings: Object.fromEntries(rows.map((row) => [row.key, { value: row.value, from: row.from }])),
      };
      await writeText(io.stdout, `${JSON.stringify(json, null, 2)}\n`);
      return EXIT_OK;
    }
    const width = Math.max(...rows.map((row) => row.key.length));
    const valueWidth = Math.min(40, Math.max(...rows.map((row) => row.value.length)));
    const lines = rows.map((row) =>
      `  ${row.key.padEnd(width)}  ${row.value.padEnd(valueWidth)}  ${row.from}`
    );
    const head = layer.file !== undefined
      ? `Config file: ${shownFile(layer.origins)}`
      : `Config file: none${file === undefined ? "" : ` (${file} does not exist)`}`;
    await writeText(io.stdout, `${head}\n${lines.join("\n")}\n`);
    return EXIT_OK;
  },
};

function defaultPath(io: CliIO): string | undefined {
  return io.env === undefined ? undefined : defaultConfigPath(io.env);
}

/** The file as the origins name it (with ~), for the heading. */
function shownFile(origins: ReadonlyMap<string, ConfigOrigin>): string {
  for (const origin of origins.values()) if (origin.kind === "file") return origin.path;
  return "(no settings in it)";
}

const rate = (n: number) => (n === 0 ? "none" : `${formatBytes(n)}/s`);

/** How each config key's effective value is shown. */
const SHOWN: Readonly<Record<string, (s: TransferSettings) => string>> = {
  port: (s) => (s.port === 0 ? "0 (any free port)" : String(s.port)),
  bind: (s) => s.bind ?? "(all interfaces)",
  "download-dir": (s) => s.downloadDir ?? "(the current folder)",
  "max-peers": (s) => String(s.maxPeers),
  "upload-slots": (s) => String(s.uploadSlots),
  "up-limit": (s) => rate(s.upLimit),
  "down-limit": (s) => rate(s.downLimit),
  encryption: (s) => s.encryption,
  dht: (s) => String(s.dht !== false),
  "dht-port": (s) =>
    s.dht === false ? "-" : s.dht.port === undefined ? "(the listening port)" : String(s.dht.port),
  "dht-bootstrap": (s) =>
    s.dht === false ? "-" : s.dht.bootstrap.length === 0 ? "(none)" : s.dht.bootstrap.join(", "),
  pex: (s) => String(s.pex),
  lsd: (s) => String(s.lsd),
  "space-check": (s) => String(s.spaceCheck),
  "metadata-timeout": (s) => (s.metadataTimeout === 0 ? "none (wait forever)" : `${s.metadataTimeout} s`),
  "log-level": (s) => s.level,
  peers: (s) => String(s.peersView),
  quiet: (s) => String(s.quiet),
};

function shownValue(key: string, settings: TransferSettings): string {
  const show = SHOWN[key];
  if (show === undefined) throw new Error(`Config key ${key} has no display in config_command.ts`);
  return show(settings);
}
