/**
 * Helpers for the seeding interop tests and the seed benchmark: the shoal CLI's `seed`
 * command as a child process (started, waited for, stopped with Ctrl+C so it prints its
 * summary), and parsers for what it logs at `--log-level info` (choker decisions, peers,
 * the upload total).
 *
 * @module
 */

import { join } from "node:path";
import { LineProcess, REPO_ROOT } from "./_download_helpers.ts";
import { HERMETIC_ENV } from "../_cli_io.ts";

/** Options of {@linkcode startSeedCli}. */
export interface SeedCliOptions {
  /** More arguments after `seed <torrent> <data-dir>` (`--peer`, `--upload-slots`, ...). */
  args?: readonly string[];
  /**
   * Flags for `deno run` before the script (such as `--cpu-prof`).
   *
   * @default {[]}
   */
  denoFlags?: readonly string[];
  /**
   * A command to run deno under, with its arguments (such as `["prlimit", "--nofile=256:256"]`).
   *
   * @default {[]}
   */
  wrapper?: readonly string[];
  /**
   * Deadline for start-up and the data check.
   *
   * @default {60000}
   */
  readyTimeoutMs?: number;
}

/** A running `cli.ts seed`. */
export interface SeedCli {
  /** The process; its stderr lines are the log. */
  readonly process: LineProcess;
  /** The port it listens on. */
  readonly port: number;
  /** `"127.0.0.1:PORT"`, to give a leecher. */
  readonly address: string;
  /**
   * Sends Ctrl+C (SIGINT), so it prints its "Stopped seeding" summary, and waits for the
   * exit; `SIGTERM` then `SIGKILL` if it does not exit in time.
   *
   * @returns Its exit code (130 after Ctrl+C).
   */
  interrupt(): Promise<number>;
}

/**
 * Starts `deno run -A [denoFlags] cli.ts seed <torrent> <dataDir> --bind 127.0.0.1 --log-level info -q`
 * plus `options.args` in the repository root, and waits until it has checked its data (it prints "Data checked:
 * all N pieces present") and listens. Stop it with {@linkcode SeedCli.interrupt} or
 * `process.stop()` in a `finally`.
 *
 * @example
 * ```ts ignore
 * const seed = await startSeedCli("x.torrent", "data", { args: ["--upload-slots", "2"] });
 * try { ... } finally { await seed.interrupt(); }
 * ```
 *
 * @param torrentPath The .torrent file.
 * @param dataDir The folder that holds the torrent's file or folder.
 * @param options More arguments and the deadline.
 * @returns The running seed.
 */
export async function startSeedCli(
  torrentPath: string,
  dataDir: string,
  options: SeedCliOptions = {},
): Promise<SeedCli> {
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const [command, ...wrapperArgs] = [...(options.wrapper ?? []), Deno.execPath()];
  const name = options.wrapper ? `shoal seed (${options.wrapper.join(" ")})` : "shoal seed";
  // HERMETIC_ENV: the machine's config file and SHOAL_* variables stay out of the test.
  const child = new LineProcess(
    name,
    command!,
    [
      ...wrapperArgs,
      "run",
      "-A",
      ...(options.denoFlags ?? []),
      join(REPO_ROOT, "cli.ts"),
      "seed",
      torrentPath,
      dataDir,
      "--bind",
      "127.0.0.1",
      "--log-level",
      "info",
      "-q",
      ...(options.args ?? []),
    ],
    REPO_ROOT,
    { ...HERMETIC_ENV },
  );
  try {
    const listening = await child.waitForLine(
      (l) => /^Listening on port \d+/.test(l),
      timeoutMs,
      "listening",
    );
    const port = Number(/^Listening on port (\d+)/.exec(listening)![1]);
    await child.waitForLine((l) => l.startsWith("Data checked: all "), timeoutMs, "data checked");
    const interrupt = async (): Promise<number> => {
      child.kill("SIGINT");
      try {
        return (await child.wait(15_000)).code;
      } catch (e) {
        if (!(e instanceof Deno.errors.TimedOut)) throw e;
        return (await child.stop()).code;
      }
    };
    return { process: child, port, address: `127.0.0.1:${port}`, interrupt };
  } catch (e) {
    await child.stop();
    throw e;
  }
}

/** One "Rechoked" record of the seed's log. */
export interface Rechoke {
  /** The peers unchoked after this decision ("host:port"), sorted. */
  unchoked: string[];
  /** The optimistic unchoke, if any. */
  optimistic: string | null;
  /** How many peers were interested. */
  interested: number;
}

/**
 * Reads the choker's decisions from the seed's log lines: `INFO choker: Rechoked
 * (unchoked=A,B optimistic=B interested=3)`.
 *
 * @example
 * ```ts
 * import { parseRechokes } from "./_seed_helpers.ts";
 * const [r] = parseRechokes([
 *   "INFO choker: Rechoked (torrent=abc unchoked=127.0.0.1:2,127.0.0.1:1 optimistic=127.0.0.1:2 interested=3)",
 * ]);
 * console.log(r?.unchoked); // ["127.0.0.1:1", "127.0.0.1:2"]
 * ```
 *
 * @param lines The seed's stderr lines.
 * @returns The decisions, in order.
 */
export function parseRechokes(lines: readonly string[]): Rechoke[] {
  const out: Rechoke[] = [];
  for (const line of lines) {
    if (!/^INFO choker: Rechoked \(/.test(line)) continue;
    const unchoked = /\bunchoked=(\S*)/.exec(line)?.[1] ?? "";
    const optimistic = /\boptimistic=(\S+)/.exec(line)?.[1] ?? "null";
    const interested = /\binterested=(\d+)/.exec(line)?.[1];
    out.push({
      unchoked: unchoked === "" ? [] : unchoked.split(",").sort(),
      optimistic: optimistic === "null" ? null : optimistic,
      interested: interested === undefined ? 0 : Number(interested),
    });
  }
  return out;
}

/**
 * The addresses of the peers the seed logged as connected, with their client names.
 *
 * @example
 * ```ts
 * import { connectedPeers } from "./_seed_helpers.ts";
 * console.log(connectedPeers(["INFO peer: Peer connected (torrent=ab peer=127.0.0.1:5 client=LT2080)"]));
 * // Map { "127.0.0.1:5" => "LT2080" }
 * ```
 *
 * @param lines The seed's stderr lines.
 * @returns Address to client name.
 */
export function connectedPeers(lines: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    if (!line.startsWith("INFO peer: Peer connected")) continue;
    const peer = /\bpeer=(\S+)/.exec(line)?.[1];
    const client = /\bclient=([^)\s]+)/.exec(line)?.[1];
    if (peer !== undefined) out.set(peer, client ?? "?");
  }
  return out;
}

/**
 * The seed's "Peer disconnected: <reason>" lines where shoal closed the connection because of
 * something the peer did (a protocol error, a ban, a time-out). Disconnections without a
 * reason (a clean close) and those the peer caused by going away (`Connection reset by peer`,
 * `Broken pipe` and other OS errors, as when a finished leecher exits) are left out.
 *
 * @example
 * ```ts
 * import { droppedByShoal } from "./_seed_helpers.ts";
 * console.log(droppedByShoal([
 *   "INFO peer: Peer disconnected: Peer sent 101 invalid requests; the last: x (peer=127.0.0.1:5)",
 *   "INFO peer: Peer disconnected: Connection reset by peer (os error 104) (peer=127.0.0.1:6)",
 *   "INFO peer: Peer disconnected (peer=127.0.0.1:7)",
 * ]).length); // 1
 * ```
 *
 * @param lines The seed's stderr lines.
 * @returns The matching lines.
 */
export function droppedByShoal(lines: readonly string[]): string[] {
  return lines.filter((l) => l.startsWith("INFO peer: Peer disconnected: ") && !/\(os error \d+\)/.test(l));
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/**
 * The upload total from the seed's "Stopped seeding (...): uploaded 192.00 MiB, ratio 3.00"
 * line (printed after Ctrl+C), to two decimals of its unit.
 *
 * @example
 * ```ts
 * import { uploadedBytes } from "./_seed_helpers.ts";
 * console.log(uploadedBytes(["Stopped seeding (interrupted): uploaded 1.50 KiB, ratio 0.01"])); // 1536
 * ```
 *
 * @param lines The seed's stderr lines.
 * @returns Bytes, or undefined when the line is missing.
 */
export function uploadedBytes(lines: readonly string[]): number | undefined {
  for (const line of lines) {
    const m = /^Stopped seeding \(.*\): uploaded ([0-9.]+) (B|KiB|MiB|GiB|TiB)\b/.exec(line);
    if (m) return Number(m[1]) * UNITS[m[2]!]!;
  }
  return undefined;
}

/**
 * CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
 *
 * @example
 * ```ts
 * import { cpuSeconds } from "./_seed_helpers.ts";
 * console.log(await cpuSeconds(Deno.pid) >= 0); // true
 * ```
 *
 * @param pid The process id.
 * @returns Seconds.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/**
 * Resident memory of a process now and its peak so far (`VmRSS`, `VmHWM` of
 * `/proc/<pid>/status`), in bytes.
 *
 * @example
 * ```ts
 * import { memoryOf } from "./_seed_helpers.ts";
 * const m = await memoryOf(Deno.pid);
 * console.log(m.peak >= m.rss); // true
 * ```
 *
 * @param pid The process id.
 * @returns Current and peak resident set size.
 */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024 };
}
