/**
 * Helpers for the MSE interop tests: the MSE plugin wrapped so a test can see which method
 * each connection agreed on, and a library `Session` that keeps its log records.
 *
 * @module
 */

import type { Encryption, LogRecord } from "../../lib/types.ts";
import { Session } from "../../mod.ts";
import { mse, type MseDuplex, type MsePolicy } from "../../plugins/encryption/mse.ts";

/** An MSE plugin and the methods its connections agreed on, in order. */
export interface RecordingMse {
  /** The plugin to give a session. */
  readonly plugin: Encryption;
  /** Methods of the connections we dialled ("rc4" or "plaintext"). */
  readonly outgoing: string[];
  /** Methods of the connections we accepted. */
  readonly incoming: string[];
}

/**
 * Wraps `mse({ policy })` so that every finished handshake records its method.
 *
 * @example
 * ```ts ignore
 * const rec = recordingMse("require");
 * const session = new Session({ downloadDir, encryption: rec.plugin });
 * // ... after a download:
 * assert.deepEqual(new Set(rec.outgoing), new Set(["rc4"]));
 * ```
 *
 * @param policy The MSE policy.
 * @returns The plugin and its records.
 */
export function recordingMse(policy: MsePolicy): RecordingMse {
  const inner = mse({ policy });
  const outgoing: string[] = [];
  const incoming: string[] = [];
  const plugin: Encryption = {
    name: inner.name,
    outgoingAttempts: inner.outgoingAttempts,
    acceptsPlaintext: inner.acceptsPlaintext,
    async outgoing(raw, infoHash, signal) {
      const duplex = await inner.outgoing(raw, infoHash, signal);
      outgoing.push((duplex as MseDuplex).method);
      return duplex;
    },
    async incoming(raw, lookup, signal) {
      const result = await inner.incoming(raw, lookup, signal);
      incoming.push((result.duplex as MseDuplex).method);
      return result;
    },
  };
  return { plugin, outgoing, incoming };
}

/** A library session on 127.0.0.1 (no trackers, LSD or PEX) that keeps every log record (debug level). */
export class LoggedSession extends Session {
  /** Every record logged so far. */
  readonly records: LogRecord[];

  /**
   * @param downloadDir The download folder.
   * @param encryption The encryption plugin.
   */
  constructor(downloadDir: string, encryption: Encryption) {
    const records: LogRecord[] = [];
    super({
      downloadDir,
      bind: "127.0.0.1",
      encryption,
      trackers: false,
      lsd: false,
      pex: false,
      logLevel: "debug",
      logSinks: [(record) => records.push(record)],
    });
    this.records = records;
  }

  /** "127.0.0.1:PORT" of the listener. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Messages of the records that match, for assertions.
   *
   * @param pattern What to look for.
   * @returns The matching messages.
   */
  messages(pattern: RegExp): string[] {
    return this.records.map((r) => r.message).filter((m) => pattern.test(m));
  }

  /**
   * Waits until a record's message matches, polling every 50 ms, with a deadline.
   *
   * @param pattern What to wait for.
   * @param timeoutMs Deadline.
   * @returns The first matching message.
   */
  async waitForMessage(pattern: RegExp, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = this.messages(pattern)[0];
      if (hit !== undefined) return hit;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Deno.errors.TimedOut(
      `Timed out after ${timeoutMs} ms waiting for a log record matching ${pattern}; last records:\n` +
        this.records.slice(-15).map((r) => `${r.level} ${r.category}: ${r.message}`).join("\n"),
    );
  }
}
