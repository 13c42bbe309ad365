/**
 * `shoal share <path> [options]`: make a torrent of a file or folder, seed it, and print what
 * another client needs to download it (the .torrent path and a magnet link).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, dirname, resolve } from "node:path";
import {
  type CreateOptions,
  createTorrent,
  formatMagnet,
  parseMetainfo,
  readTorrentFile,
  StorageError,
} from "../mod.ts";
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
import { runTransfer } from "./transfer.ts";
import {
  parseDuration,
  parseNumberOption,
  TRANSFER_OPTIONS,
  transferHelp,
  transferSettings,
} from "./transfer_options.ts";
import { formatElapsed } from "./status_view.ts";

const USAGE = `Usage: shoal share <path> [options]

Makes a torrent of a file or folder, writes the .torrent file, prints a magnet link, and
seeds until Ctrl+C (or --seed-ratio / --seed-time). Give the .torrent file (or the magnet
link, with a tracker) to whoever should download it.

Options:
  -o, --output FILE       Where to write the torrent (default: <name>.torrent here;
                          an existing file is reused when it describes the same data)
  -t, --tracker URL       Put this tracker in the torrent (and announce to it); repeatable,
                          "URL1,URL2" is one tier
      --private           Set the private flag (BEP 27)
  -l, --piece-length N    Bytes per piece (default: chosen from the size)
      --comment TEXT      Add a comment
      --seed-ratio R      Stop once uploaded / size reaches R
      --seed-time T       Stop after T (seconds, or 30m, 2h, 1d)
${transferHelp({ omit: ["tracker"] })}

The magnet link's x.pe lists the addresses this listener serves (--bind's address, or this
machine's addresses when it listens on all of them).

Exit codes: 0 when --seed-ratio or --seed-time is reached, 130 on Ctrl+C (while hashing,
checking or seeding alike), 1 on an error, 2 on a usage error.
`;

/** The `share` command. */
export const shareCommand: Command = {
  summary: "Make a torrent of a file or folder and seed it",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("share", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          ...TRANSFER_OPTIONS,
          output: { type: "string", short: "o" },
          tracker: { type: "string", short: "t", multiple: true },
          private: { type: "boolean" },
          "piece-length": { type: "string", short: "l" },
          comment: { type: "string" },
          "seed-ratio": { type: "string" },
          "seed-time": { type: "string" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    const [source] = expectPositionals("share", positionals, ["<path>"]) as [string];
    const cwd = io.cwd ?? Deno.cwd();
    // A path that is itself a symbolic link shares what it points to (seeding reads no link
    // that leads outside the folder it is in).
    const given = resolve(cwd, source);
    const path = await isSymlink(given) ? await Deno.realPath(given) : given;
    const settings = transferSettings("share", values, io);
    const options: CreateOptions = {};
    const trackers = parseTrackerTiers("share", values.tracker ?? []);
    if (trackers.length > 0) options.trackers = trackers;
    if (values.private === true) options.private = true;
    if (values.comment !== undefined) options.comment = values.comment;
    if (values["piece-length"] !== undefined) {
      const size = parseSize(values["piece-length"]);
      if (size === undefined || size < 16384 || (size & (size - 1)) !== 0) {
        throw new UsageError("share", `Invalid --piece-length: ${values["piece-length"]}`);
      }
      options.pieceLength = size;
    }
    if (io.signal !== undefined) options.signal = io.signal;
    const progress = new ProgressLine(io);
    const now = io.now ?? (() => performance.now());
    const started = now();
    options.onProgress = ({ bytesHashed, totalBytes }) => {
      const percent = totalBytes === 0 ? 100 : Math.floor((bytesHashed / totalBytes) * 100);
      progress.update(`Hashing: ${percent}% (${formatBytes(bytesHashed)} of ${formatBytes(totalBytes)})`);
    };
    let made;
    try {
      made = await createTorrent(path, options);
    } catch (error) {
      await progress.done();
      throw error;
    }
    await progress.done(`Hashed ${formatBytes(made.totalLength)} in ${formatElapsed(now() - started)}`);
    const output = resolve(cwd, values.output ?? `${basename(path)}.torrent`);
    await writeTorrentFile(output, made.torrent, made.infoHash);
    const metainfo = parseMetainfo(made.torrent);
    return await runTransfer({
      command: "share",
      metainfo,
      dir: dirname(path),
      settings,
      goal: {
        seed: true,
        ...(values["seed-ratio"] !== undefined
          ? { ratio: parseNumberOption("share", "--seed-ratio", values["seed-ratio"]) }
          : {}),
        ...(values["seed-time"] !== undefined
          ? { seconds: parseDuration("share", "--seed-time", values["seed-time"]) }
          : {}),
      },
      onStarted: async (_torrent, session) => {
        const magnet = formatMagnet({
          infoHash: metainfo.infoHash,
          infoHashHex: metainfo.infoHashHex,
          name: metainfo.name,
          trackers: metainfo.announceList.flat(),
          webSeeds: [],
          // Only what the listener really serves: with --bind 127.0.0.1, just that.
          peers: session.listenAddresses.slice(0, 8),
        });
        await writeText(
          io.stdout,
          `Torrent: ${output}\nInfo-hash: ${metainfo.infoHashHex}\nMagnet: ${magnet}\n`,
        );
      },
    }, io);
  },
};

/** Writes the .torrent, or keeps an existing file that holds the same torrent. */
async function writeTorrentFile(path: string, bytes: Uint8Array, infoHash: string): Promise<void> {
  try {
    await Deno.writeFile(path, bytes, { createNew: true });
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw new StorageError(`Cannot write ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  let same = false;
  try {
    same = parseMetainfo(await readTorrentFile(path)).infoHashHex === infoHash;
  } catch (error) {
    throw new StorageError(`Cannot write ${path}: a different file is there (${(error as Error).message})`);
  }
  if (!same) {
    throw new StorageError(`Cannot write ${path}: it holds another torrent (use -o to choose a path)`);
  }
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSymlink;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false; // createTorrent reports the missing path
    throw error;
  }
}
