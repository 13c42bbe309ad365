/**
 * `shoal create <path> [options]`: makes a `.torrent` file for a file or folder.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, resolve } from "node:path";
import { type CreateOptions, createTorrent, StorageError } from "../mod.ts";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  expectPositionals,
  formatBytes,
  parseSize,
  parseTrackerTiers,
  ProgressLine,
  UsageError,
  withUsageErrors,
  writeText,
} from "./common.ts";
import { formatElapsed } from "./status_view.ts";

const USAGE = `Usage: shoal create <path> [options]

Makes a v1 .torrent file for a file or a folder (files sorted by path, zero-byte files
included). Prints the info-hash when done.

Options:
  -o, --output FILE       Where to write the torrent (default: <name>.torrent here)
  -t, --tracker URL       Add a tracker; repeat for more tiers; "URL1,URL2" is one tier
                          of several trackers
  -w, --web-seed URL      Add a web seed (BEP 19); repeatable
  -p, --private           Set the private flag (BEP 27)
  -l, --piece-length N    Bytes per piece, a power of two from 16k to 128m, with an
                          optional unit: 262144, 256k, 1m (default: from the size)
  -c, --comment TEXT      Add a comment
  -n, --name NAME         Torrent name (default: the file or folder name)
      --no-date           Leave out the creation date (reproducible output)
  -f, --force             Overwrite the output file if it exists
  -h, --help              Show this help
`;

/** The `create` command. */
export const createCommand: Command = {
  summary: "Make a .torrent file for a file or folder",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("create", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          output: { type: "string", short: "o" },
          tracker: { type: "string", short: "t", multiple: true },
          "web-seed": { type: "string", short: "w", multiple: true },
          private: { type: "boolean", short: "p" },
          "piece-length": { type: "string", short: "l" },
          comment: { type: "string", short: "c" },
          name: { type: "string", short: "n" },
          "no-date": { type: "boolean" },
          force: { type: "boolean", short: "f" },
          help: { type: "boolean", short: "h" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    const [source] = expectPositionals("create", positionals, ["<path>"]) as [string];
    const cwd = io.cwd ?? Deno.cwd();
    const path = resolve(cwd, source);

    const options: CreateOptions = {};
    if (values["piece-length"] !== undefined) {
      const size = parseSize(values["piece-length"]);
      if (size === undefined || size < 16384 || size > 128 * 1024 * 1024 || (size & (size - 1)) !== 0) {
        throw new UsageError(
          "create",
          `Invalid --piece-length: ${values["piece-length"]} (a power of two from 16k to 128m)`,
        );
      }
      options.pieceLength = size;
    }
    const trackers = parseTrackerTiers("create", values.tracker ?? []);
    for (const url of values["web-seed"] ?? []) {
      if (!URL.canParse(url)) throw new UsageError("create", `Invalid URL: ${url}`);
    }
    if (trackers.length > 0) options.trackers = trackers;
    if (values["web-seed"] !== undefined) options.webSeeds = values["web-seed"];
    if (values.private === true) options.private = true;
    if (values.comment !== undefined) options.comment = values.comment;
    if (values.name !== undefined) {
      if (values.name === "" || values.name.includes("/")) {
        throw new UsageError("create", `Invalid --name: ${JSON.stringify(values.name)}`);
      }
      options.name = values.name;
    }
    if (values["no-date"] === true) options.creationDate = null;
    if (io.signal !== undefined) options.signal = io.signal;

    const name = options.name ?? basename(path);
    const output = resolve(cwd, values.output ?? `${name}.torrent`);
    const force = values.force === true;
    if (!force && await exists(output)) {
      throw new StorageError(`Cannot write ${output}: the file exists (use --force to overwrite it)`);
    }

    const progress = new ProgressLine(io);
    const started = (io.now ?? (() => performance.now()))();
    options.onProgress = ({ bytesHashed, totalBytes }) => {
      const percent = totalBytes === 0 ? 100 : Math.floor((bytesHashed / totalBytes) * 100);
      progress.update(`Hashing: ${percent}% (${formatBytes(bytesHashed)} of ${formatBytes(totalBytes)})`);
    };
    let made;
    try {
      made = await createTorrent(path, options);
    } finally {
      await progress.done();
    }
    const elapsed = (io.now ?? (() => performance.now()))() - started;
    const seconds = elapsed / 1000;

    try {
      await Deno.writeFile(output, made.torrent, force ? {} : { createNew: true });
    } catch (e) {
      const why = e instanceof Deno.errors.AlreadyExists
        ? "the file exists (use --force to overwrite it)"
        : e instanceof Error
        ? e.message
        : String(e);
      throw new StorageError(`Cannot write ${output}: ${why}`, { cause: e });
    }
    const rate = seconds >= 0.5 ? `, ${formatBytes(Math.round(made.totalLength / seconds))}/s` : "";
    await writeText(
      io.stdout,
      `Created ${output}\n` +
        `  ${made.name}: ${formatBytes(made.totalLength)} in ${made.pieceCount} piece${
          made.pieceCount === 1 ? "" : "s"
        } of ` +
        `${formatBytes(made.pieceLength)} (hashed in ${formatElapsed(elapsed)}${rate})\n` +
        `Info-hash: ${made.infoHash}\n`,
    );
    return EXIT_OK;
  },
};

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
