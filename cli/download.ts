/**
 * `shoal download <torrent> [options]` and `shoal seed <torrent> <data-dir> [options]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { parseFileSelection, parseMagnet } from "../mod.ts";
import {
  type CliIO,
  type Command,
  EXIT_OK,
  expectPositionals,
  UsageError,
  withUsageErrors,
  writeText,
} from "./common.ts";
import { checkSeedData } from "./seed_data.ts";
import { loadSelector } from "./selector_loader.ts";
import { readTorrentArgument } from "./torrent_argument.ts";
import { runTransfer, type SeedGoal } from "./transfer.ts";
import {
  parseDuration,
  parseNumberOption,
  TRANSFER_HELP,
  TRANSFER_OPTIONS,
  transferSettings,
} from "./transfer_options.ts";

const DOWNLOAD_USAGE = `Usage: shoal download <torrent|magnet-uri> [options]

Downloads a torrent into a folder, verifying every piece. Existing data is checked first
(resume data makes that instant), so an interrupted download continues where it stopped.
For a magnet link the metadata is fetched from peers first (its x.pe peers, its tr
trackers, --peer and --tracker) and saved in DIR/.shoal, so a restart does not fetch it
again; its so= parameter selects files. Exits 0 only when every wanted piece is verified.

Options:
  -o, --output DIR        Download folder (default: "download-dir" of the config file or
                          $SHOAL_DOWNLOAD_DIR, else the current folder)
      --files LIST        Download only these files, by the index "shoal info" shows:
                          "0,2-3" (pieces shared with other files are fetched too)
      --selector NAME     Piece selection: rarest (default), sequential, or a path to a
                          module exporting a PieceSelector (e.g. ./my_selector.ts)
      --seed              Keep seeding after the download completes (until Ctrl+C,
                          --seed-ratio or --seed-time)
      --seed-ratio R      Seed after the download until uploaded / size reaches R (e.g.
                          1.5); implies --seed
      --seed-time T       Seed after the download for T (seconds, or 30m, 2h, 1d);
                          implies --seed
${TRANSFER_HELP}

Exit codes: 0 when every wanted piece is verified (and a seeding goal, if any, is reached),
130 on Ctrl+C (also while checking data or fetching metadata), 1 on an error, 2 on a usage
error.
`;

const SEED_USAGE = `Usage: shoal seed <torrent> <data-dir> [options]

Seeds a torrent whose file or folder is in <data-dir> (the folder that holds it, not the
data folder itself), until Ctrl+C. The data is checked first (instantly when resume data
matches); missing pieces are downloaded first, but data that is not there at all is refused
(use 'shoal download'). Use --peer to dial leechers (Transmission, for one, only downloads
from peers that dial it).

Options:
      --seed-ratio R      Stop once uploaded / size reaches R
      --seed-time T       Stop after T (seconds, or 30m, 2h, 1d)
${TRANSFER_HELP}

Exit codes: 0 when --seed-ratio or --seed-time is reached, 130 on Ctrl+C (during the data
check or while seeding alike), 1 on an error, 2 on a usage error.
`;

/** The `download` command. */
export const downloadCommand: Command = {
  summary: "Download a torrent from peers (then seed with --seed)",
  usage: DOWNLOAD_USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("download", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          ...TRANSFER_OPTIONS,
          output: { type: "string", short: "o" },
          files: { type: "string" },
          selector: { type: "string" },
          seed: { type: "boolean" },
          "seed-ratio": { type: "string" },
          "seed-time": { type: "string" },
        },
      }));
    if (values.help === true) {
      await writeText(io.stdout, DOWNLOAD_USAGE);
      return EXIT_OK;
    }
    const [source] = expectPositionals("download", positionals, ["<torrent|magnet-uri>"]) as [string];
    const cwd = io.cwd ?? Deno.cwd();
    const settings = transferSettings("download", values, io);
    const goal = seedGoal("download", values, values.seed === true);
    const selector = await loadSelector(values.selector ?? "rarest", cwd);
    let selectFiles: number[] | undefined;
    if (values.files !== undefined) {
      try {
        selectFiles = parseFileSelection(values.files);
      } catch (error) {
        throw new UsageError("download", `Invalid --files: ${(error as Error).message}`);
      }
    }
    const metainfo = /^magnet:/i.test(source) ? parseMagnet(source) : await readTorrentArgument(source, cwd);
    if (selectFiles !== undefined && "files" in metainfo) {
      const count = metainfo.files.length;
      const outside = selectFiles.filter((i) => i >= count);
      if (outside.length > 0) {
        throw new UsageError(
          "download",
          `Invalid --files: the torrent has files 0 to ${count - 1}, not ${outside[0]}`,
        );
      }
    }
    return await runTransfer({
      command: "download",
      metainfo,
      ...(selectFiles ? { selectFiles } : {}),
      dir: resolve(cwd, values.output ?? settings.downloadDir ?? "."),
      settings,
      selector,
      goal,
    }, io);
  },
};

/** The `seed` command. */
export const seedCommand: Command = {
  summary: "Seed a torrent whose data is in a folder",
  usage: SEED_USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = withUsageErrors("seed", () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: { ...TRANSFER_OPTIONS, "seed-ratio": { type: "string" }, "seed-time": { type: "string" } },
      }));
    if (values.help === true) {
      await writeText(io.stdout, SEED_USAGE);
      return EXIT_OK;
    }
    const [source, dataDir] = expectPositionals("seed", positionals, ["<torrent>", "<data-dir>"]) as [
      string,
      string,
    ];
    const cwd = io.cwd ?? Deno.cwd();
    const settings = transferSettings("seed", values, io);
    const goal = seedGoal("seed", values, true);
    const metainfo = await readTorrentArgument(source, cwd);
    const dir = resolve(cwd, dataDir);
    // Before anything is created: the data must be below <data-dir>, not be <data-dir>.
    await checkSeedData(metainfo, dir);
    return await runTransfer({ command: "seed", metainfo, dir, settings, goal }, io);
  },
};

function seedGoal(
  command: string,
  values: { "seed-ratio"?: string | undefined; "seed-time"?: string | undefined },
  seed: boolean,
): SeedGoal {
  const goal: SeedGoal = { seed };
  if (values["seed-ratio"] !== undefined) {
    goal.ratio = parseNumberOption(command, "--seed-ratio", values["seed-ratio"]);
  }
  if (values["seed-time"] !== undefined) {
    goal.seconds = parseDuration(command, "--seed-time", values["seed-time"]);
  }
  if (!seed && (goal.ratio !== undefined || goal.seconds !== undefined)) {
    goal.seed = true; // a seeding goal implies seeding
  }
  return goal;
}
