/**
 * A {@linkcode CliIO} for in-process CLI tests: captures stdout and stderr, and carries an
 * explicit environment (none by default), so no test reads the machine's config file.
 *
 * @module
 */

import type { CliIO } from "../cli/common.ts";
import { ENV_NAMES } from "../cli/config_file.ts";

/**
 * Environment overrides for a CLI subprocess (`Deno.Command`'s `env`) that keep the machine's
 * config file and `SHOAL_*` variables out of a test: `XDG_CONFIG_HOME` points at a folder that
 * does not exist and every `SHOAL_*` variable is empty (which shoal treats as unset). `HOME`
 * stays, so Deno finds its cache.
 */
export const HERMETIC_ENV: Readonly<Record<string, string>> = {
  ...Object.fromEntries(ENV_NAMES.filter((name) => name.startsWith("SHOAL_")).map((name) => [name, ""])),
  XDG_CONFIG_HOME: "/nonexistent/shoal-test-config",
};

/** What {@linkcode captureIO} returns. */
export interface CapturedIO {
  /** Pass to `main()` or a command's `run()`. */
  io: CliIO;
  /** Everything written to stdout so far. */
  out(): string;
  /** Everything written to stderr so far. */
  err(): string;
}

/**
 * Makes a capturing {@linkcode CliIO}.
 *
 * @example
 * ```ts
 * import { main } from "../cli.ts";
 * import { captureIO } from "./_cli_io.ts";
 * const { io, out } = captureIO();
 * await main(["--version"], io);
 * console.log(out()); // "shoal 0.1.0\n"
 * ```
 *
 * @param extra Fields to add or override (cwd, env, now, signal, isTerminal).
 * @returns The io and readers of what was written.
 */
export function captureIO(extra: Partial<CliIO> = {}): CapturedIO {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const text = (chunks: Uint8Array[]) => {
    const decoder = new TextDecoder();
    return chunks.map((c) => decoder.decode(c, { stream: true })).join("") + decoder.decode();
  };
  return {
    io: {
      stdout: new WritableStream({ write: (c) => void out.push(c.slice()) }),
      stderr: new WritableStream({ write: (c) => void err.push(c.slice()) }),
      isTerminal: false,
      ...extra,
    },
    out: () => text(out),
    err: () => text(err),
  };
}

/** What {@linkcode runCommand} returns. */
export interface CommandRun {
  /** Exit code. */
  code: number;
  /** Its stdout, as text. */
  stdout: string;
  /** Its stderr, as text. */
  stderr: string;
}

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Its working folder. */
  cwd: string;
  /** Variables set over the inherited environment. @default {HERMETIC_ENV} */
  env?: Record<string, string>;
  /** Deadline; the process is killed after it. @default {60_000} */
  timeoutMs?: number;
}

/**
 * Runs a program to its end with no stdin, and returns its exit code and output.
 *
 * @example
 * ```ts
 * import { runCommand } from "./_cli_io.ts";
 * const ran = await runCommand(Deno.execPath(), ["--version"], { cwd: "." });
 * console.log(ran.code); // 0
 * ```
 *
 * @param command The program.
 * @param args Its arguments.
 * @param options Folder, environment, deadline.
 * @returns What it did.
 */
export async function runCommand(
  command: string,
  args: string[],
  options: RunCommandOptions,
): Promise<CommandRun> {
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env ?? { ...HERMETIC_ENV },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}
