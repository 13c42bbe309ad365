/**
 * The shoal command-line client.
 *
 * ```sh
 * deno run -A cli.ts info x.torrent
 * deno run -A cli.ts create ./dir --tracker udp://tracker.example:6969/announce -o dir.torrent
 * ```
 *
 * Subcommands live in {@linkcode commands}; each gets the arguments after its name and an
 * injectable {@linkcode CliIO}, and returns an exit code: 0 success, 1 failure, 2 usage error,
 * 130 interrupted (Ctrl+C, SIGTERM), 141 output into a closed pipe (printed: nothing).
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { configCommand } from "./cli/config_command.ts";
import { createCommand } from "./cli/create.ts";
import { downloadCommand, seedCommand } from "./cli/download.ts";
import { shareCommand } from "./cli/share.ts";
import { trackerCommand } from "./cli/tracker.ts";
import { infoCommand } from "./cli/info.ts";
import { daemonCommand } from "./cli/daemon.ts";
import {
  type CliIO,
  type Command,
  defaultIO,
  EXIT_BROKEN_PIPE,
  EXIT_OK,
  EXIT_USAGE,
  isBrokenPipe,
  reportError,
  writeText,
} from "./cli/common.ts";

import { guardOutput } from "./cli/output_guard.ts";

export type { CliIO, Command } from "./cli/common.ts";

/** The version printed by `--version`. */
export const VERSION: string = denoJson.version;

/** Every subcommand, by name. Add new ones here. */
export const commands: Record<string, Command> = {
  info: infoCommand,
  create: createCommand,
  download: downloadCommand,
  seed: seedCommand,
  share: shareCommand,
  tracker: trackerCommand,
  config: configCommand,
  daemon: daemonCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`)
    .join("\n");
  return `shoal ${VERSION}: a BitTorrent client

Usage: shoal <command> [options]
       shoal <command> --help
       shoal --version

Commands:
${list}
`;
}

/**
 * Runs the CLI with the given arguments.
 *
 * @example Capture the output of `--version`
 * ```ts
 * import { main } from "./cli.ts";
 * const chunks: Uint8Array[] = [];
 * const code = await main(["--version"], {
 *   stdout: new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
 *   stderr: new WritableStream(),
 *   isTerminal: false,
 * });
 * console.log(code, new TextDecoder().decode(chunks[0])); // 0 "shoal 0.1.0\n"
 * ```
 *
 * @param args The arguments (without the program name).
 * @param io Where to write; the process's stdout and stderr by default.
 * @returns The exit code.
 */
export async function main(args: string[], io: CliIO = defaultIO()): Promise<number> {
  try {
    const [first, ...rest] = args;
    if (first === undefined) {
      await writeText(io.stderr, usage());
      return EXIT_USAGE;
    }
    if (first === "--help" || first === "-h") {
      await writeText(io.stdout, usage());
      return EXIT_OK;
    }
    if (first === "--version" || first === "-V") {
      await writeText(io.stdout, `shoal ${VERSION}\n`);
      return EXIT_OK;
    }
    if (first === "help") {
      const target = rest[0] === undefined ? undefined : commands[rest[0]];
      if (rest[0] !== undefined && target === undefined) {
        await writeText(io.stderr, `error: Unknown command: ${rest[0]}\n\n${usage()}`);
        return EXIT_USAGE;
      }
      await writeText(io.stdout, target?.usage ?? usage());
      return EXIT_OK;
    }
    const command = Object.hasOwn(commands, first) ? commands[first] : undefined;
    if (command === undefined) {
      const what = first.startsWith("-") ? "Unknown option" : "Unknown command";
      await writeText(io.stderr, `error: ${what}: ${first}\n\n${usage()}`);
      return EXIT_USAGE;
    }
    return await command.run(rest, io);
  } catch (e) {
    return await reportError(e, io);
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new DOMException("Interrupted", "AbortError"));
  // Ctrl+C and a service manager's SIGTERM both stop cleanly (resume data is saved).
  Deno.addSignalListener("SIGINT", onInterrupt);
  Deno.addSignalListener("SIGTERM", onInterrupt);
  // Output into a closed pipe stops the run too, as SIGPIPE would (resume data is saved).
  let pipeClosed = false;
  const onPipeClosed = () => {
    pipeClosed = true;
    controller.abort(new DOMException("Output pipe closed", "AbortError"));
  };
  const streams = defaultIO();
  // A Ctrl+C read as a key by the live view (the terminal in cbreak mode) interrupts the same way.
  const io = {
    ...streams,
    stdout: guardOutput(streams.stdout, onPipeClosed),
    stderr: guardOutput(streams.stderr, onPipeClosed),
    signal: controller.signal,
    interrupt: onInterrupt,
  };
  // main() reports its own errors; this catches what escapes it (a write to a closed stderr).
  const result = await main(Deno.args, io).catch((error: unknown) =>
    isBrokenPipe(error) ? EXIT_BROKEN_PIPE : 1
  );
  const code = pipeClosed ? EXIT_BROKEN_PIPE : result;
  Deno.removeSignalListener("SIGINT", onInterrupt);
  Deno.removeSignalListener("SIGTERM", onInterrupt);
  Deno.exit(code);
}
