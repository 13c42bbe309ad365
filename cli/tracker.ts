/**
 * `shoal tracker [options]`: runs the built-in tracker (HTTP and UDP) until Ctrl+C.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { Logger, type LogLevel, type LogRecord, ShoalError } from "../mod.ts";
import { TrackerServer, type TrackerServerOptions } from "../lib/tracker/mod.ts";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  printable,
  UsageError,
  withUsageErrors,
  writeText,
} from "./common.ts";

const USAGE = `Usage: shoal tracker [options]

Runs a BitTorrent tracker for private swarms: HTTP announce and scrape at
http://HOST:PORT/announce and /scrape, UDP (BEP 15) at udp://HOST:PORT. Prints its
announce URLs, then serves until Ctrl+C.

Options:
      --http-port N       HTTP port, 0 for any free one (default: 6969)
      --udp-port N        UDP port, 0 for any free one (default: 6969)
      --no-http           Do not serve HTTP
      --no-udp            Do not serve UDP
  -b, --bind ADDR         Address to listen on (default: 0.0.0.0; "::" for IPv6 too)
  -a, --allow FILE        Serve only the info-hashes in FILE: 40 hex characters per
                          line; blank lines and lines starting with # are ignored
  -i, --interval S        Seconds between announces asked of clients (default: 1800)
      --min-interval S    Minimum seconds between announces (default: 60)
  -v, --verbose           Log every request
  -h, --help              Show this help
`;

/** The `tracker` command. */
export const trackerCommand: Command = {
  summary: "Run a tracker (HTTP and UDP) for private swarms",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values } = withUsageErrors("tracker", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: false,
        options: {
          "http-port": { type: "string" },
          "udp-port": { type: "string" },
          "no-http": { type: "boolean" },
          "no-udp": { type: "boolean" },
          bind: { type: "string", short: "b" },
          allow: { type: "string", short: "a" },
          interval: { type: "string", short: "i" },
          "min-interval": { type: "string" },
          verbose: { type: "boolean", short: "v" },
          help: { type: "boolean", short: "h" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    const http = values["no-http"] !== true;
    const udp = values["no-udp"] !== true;
    if (!http && !udp) throw new UsageError("tracker", "Nothing to serve: both --no-http and --no-udp given");
    const options: TrackerServerOptions = {
      http,
      udp,
      bind: values.bind ?? "0.0.0.0",
      httpPort: parsePort(values["http-port"], "--http-port"),
      udpPort: parsePort(values["udp-port"], "--udp-port"),
    };
    const interval = parseSeconds(values.interval, "--interval");
    if (interval !== undefined) options.interval = interval;
    const minInterval = parseSeconds(values["min-interval"], "--min-interval");
    if (minInterval !== undefined) options.minInterval = minInterval;
    if (values.allow !== undefined) {
      options.allowList = await readAllowList(resolve(io.cwd ?? Deno.cwd(), values.allow));
    }

    // Log records and messages go to stderr as plain lines, in order, through one queue.
    let chain = Promise.resolve();
    let stderrFailure: unknown;
    const say = (line: string): Promise<void> => {
      chain = chain.then(() => writeText(io.stderr, line)).catch((e: unknown) => {
        // stderr is gone (closed pipe): the server keeps running; the error is reported at the end.
        stderrFailure ??= e;
      });
      return chain;
    };
    const level: LogLevel = values.verbose === true ? "debug" : "info";
    const sink = (record: LogRecord) => void say(formatRecord(record));
    options.logger = new Logger({ level, sinks: [sink] });

    if (io.signal?.aborted) return 130;
    const server = new TrackerServer(options);
    try {
      try {
        await server.start();
      } catch (e) {
        if (!(e instanceof Deno.errors.AddrInUse) && !(e instanceof Deno.errors.AddrNotAvailable)) throw e;
        const ports = [http ? `HTTP port ${options.httpPort}` : "", udp ? `UDP port ${options.udpPort}` : ""]
          .filter((p) => p !== "").join(", ");
        throw new ShoalError(
          "TRACKER_SERVER",
          `Cannot listen on ${options.bind} (${ports}): ${e.message}`,
          {
            cause: e,
          },
        );
      }
      const urls = server.announceUrls;
      let text = "";
      if (urls.http !== undefined) text += `HTTP announce URL: ${urls.http}\n`;
      if (urls.udp !== undefined) text += `UDP announce URL:  ${urls.udp}\n`;
      if (options.allowList !== undefined) {
        text += `Serving ${options.allowList.size} allowed torrent${
          options.allowList.size === 1 ? "" : "s"
        }\n`;
      } else {
        text += "Open tracker: any torrent may announce\n";
      }
      await writeText(io.stdout, text);
      if (options.bind === "0.0.0.0" || options.bind === "::") {
        await say("Other machines use this machine's address in place of the loopback address shown.\n");
      }
      await say("Serving; press Ctrl+C to stop\n");
      await new Promise<void>((resolveStop) => {
        if (io.signal === undefined) return; // Runs until the process is killed.
        if (io.signal.aborted) resolveStop();
        io.signal.addEventListener("abort", () => resolveStop(), { once: true });
      });
    } finally {
      await server.close();
      await chain;
    }
    const stats = server.stats();
    await say(`Stopped: ${stats.announces} announces, ${stats.scrapes} scrapes, ${stats.errors} refused\n`);
    if (stderrFailure !== undefined) throw stderrFailure;
    return EXIT_OK;
  },
};

function parsePort(text: string | undefined, flag: string): number {
  if (text === undefined) return 6969;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError("tracker", `Invalid ${flag}: ${text} (a port from 0 to 65535)`);
  }
  return Number(text);
}

function parseSeconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) {
    throw new UsageError("tracker", `Invalid ${flag}: ${text} (a whole number of seconds, at least 1)`);
  }
  return Number(text);
}

/**
 * Reads an allow-list file: one 40-hex info-hash per line, `#` comments and blank lines
 * ignored, anything else an error naming the line.
 *
 * @example
 * ```ts
 * import { readAllowList } from "./tracker.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "# ours\n" + "ab".repeat(20) + "\n");
 * console.log((await readAllowList(path)).size); // 1
 * await Deno.remove(path);
 * ```
 *
 * @param path The file.
 * @returns The info-hashes, lower-case.
 * @throws {ShoalError} when the file cannot be read or a line is not an info-hash.
 */
export async function readAllowList(path: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
    throw new ShoalError(
      "ALLOW_LIST",
      `Cannot read allow-list ${path}: ${e instanceof Error ? e.message : e}`,
      {
        cause: e,
      },
    );
  }
  const out = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    // A trailing comment after the hash is allowed too.
    const hash = line.split("#")[0]!.trim();
    if (!/^[0-9a-fA-F]{40}$/.test(hash)) {
      throw new ShoalError(
        "ALLOW_LIST",
        `Invalid allow-list ${path}: line ${index + 1} is not a 40-hex info-hash: ${
          printable(line.length > 80 ? `${line.slice(0, 80)}…` : line)
        }`,
      );
    }
    out.add(hash.toLowerCase());
  }
  return out;
}

function formatRecord(record: LogRecord): string {
  const time = new Date(record.time).toISOString();
  const fields = Object.entries(record.fields).map(([k, v]) => `${k}=${v}`).join(" ");
  return printable(`${time} ${record.level} ${record.message}${fields === "" ? "" : ` ${fields}`}`) + "\n";
}
