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
