/**
 * Runs `hold_connections.py`: many idle (or half-sent) TCP connections to a server, from
 * chosen loopback source addresses, held until stopped. Deno cannot pick a source address;
 * the script can, so the "attacker" is 127.0.0.2 or 127.0.1.1…127.0.4.250 while the
 * legitimate client stays on 127.0.0.1.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { LineProcess } from "./_download_helpers.ts";

const SCRIPT = fileURLToPath(new URL("./hold_connections.py", import.meta.url));

/** Options of {@linkcode holdConnections}. */
export interface HoldOptions {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** How many connections. */
  count: number;
  /** One source address, or a range "A-B". */
  source: string;
  /** Bytes to send on each (Python escapes such as \r\n), then nothing. @default {""} */
  send?: string;
  /** Deadline for opening them all. @default {120_000} */
  timeoutMs?: number;
}

/** Held connections. */
export interface HeldConnections extends AsyncDisposable {
  /** Connections that were established (the server may have closed some since). */
  readonly connected: number;
  /** Attempts that failed outright (connect refused or timed out). */
  readonly failed: number;
  /** The latest count of connections still open (from the script's status lines). */
  open(): number;
  /** The script's output, for messages. */
  tail(): string;
  /** Closes them all and waits for the script to exit. */
  stop(): Promise<void>;
}

/**
 * Opens the connections and resolves once every attempt is done.
 *
 * @example
 * ```ts ignore
 * await using held = await holdConnections({ port, count: 400, source: "127.0.0.2" });
 * ```
 *
 * @param options Where, how many, from where.
 * @returns The held connections.
 */
export async function holdConnections(options: HoldOptions): Promise<HeldConnections> {
  const range = options.source.includes("-");
  const args = [
    SCRIPT,
    "--port",
    `${options.port}`,
    "--count",
    `${options.count}`,
    range ? "--source-range" : "--source",
    options.source,
    "--connect-timeout",
    "0.3",
  ];
  if (options.send) args.push("--send", options.send);
  const child = new LineProcess("hold_connections", "/usr/bin/python3", args);
  try {
    const line = await child.waitForLine(
      (l) => l.includes('"opened"'),
      options.timeoutMs ?? 120_000,
      "opened",
    );
    const opened = JSON.parse(line) as { connected: number; failed: number };
    const open = () => {
      for (let i = child.stdoutLines.length - 1; i >= 0; i--) {
        const l = child.stdoutLines[i]!;
        if (l.includes('"status"')) return (JSON.parse(l) as { open: number }).open;
      }
      return opened.connected;
    };
    const stop = async () => {
      await child.stop();
    };
    return {
      connected: opened.connected,
      failed: opened.failed,
      open,
      tail: () => child.tail(),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
