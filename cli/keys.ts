/**
 * Keystrokes for the live view: a terminal's stdin in cbreak mode (each key at once, not
 * echoed) while a transfer runs, restored as soon as it stops listening.
 *
 * @module
 */

/** Delivers keystrokes while someone listens. */
export interface KeySource {
  /**
   * Starts delivering keys (a terminal leaves line mode).
   *
   * @param onKey Called with each chunk of input, decoded (usually one key; `"\x03"` is Ctrl+C).
   * @returns Stops delivering and restores the terminal; safe to call more than once.
   */
  listen(onKey: (key: string) => void): () => void;
}

/** The byte Ctrl+C sends when the terminal does not turn it into SIGINT. */
export const CTRL_C = "\x03";

/** The part of `Deno.stdin` {@linkcode terminalKeys} uses. */
export interface RawInput {
  /** Switches line mode off (`true`) or back on. */
  setRaw(mode: boolean, options?: { cbreak: boolean }): void;
  /** Reads a chunk, or null at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * Keys from a terminal's stdin. While listening the terminal is in cbreak mode: keys arrive
 * one at a time and are not echoed, and Ctrl+C still raises SIGINT (a Ctrl+C that arrives as
 * a byte anyway is passed on as {@linkcode CTRL_C}). Line mode is restored when listening
 * stops; the caller must stop on every exit path.
 *
 * @example
 * ```ts ignore
 * const stop = terminalKeys().listen((key) => key === "p" && togglePeers());
 * try { await transfer(); } finally { stop(); }
 * ```
 *
 * @param input The terminal (`Deno.stdin`).
 * @returns The key source.
 */
export function terminalKeys(input: RawInput = Deno.stdin): KeySource {
  return {
    listen(onKey) {
      input.setRaw(true, { cbreak: true });
      let listening = true;
      const decoder = new TextDecoder();
      (async () => {
        const buffer = new Uint8Array(64);
        while (listening) {
          const n = await input.read(buffer);
          if (n === null || !listening) return;
          onKey(decoder.decode(buffer.subarray(0, n)));
        }
      })().catch(() => {/* stdin unreadable (the terminal went away): the view runs on without keys */});
      return () => {
        if (!listening) return;
        listening = false;
        input.setRaw(false);
      };
    },
  };
}

/**
 * Keys from a list, for tests: each is delivered after `delayMs`, in order, while listening.
 *
 * @example
 * ```ts
 * import { scriptedKeys } from "./keys.ts";
 * const stop = scriptedKeys(["p"], 10).listen((key) => console.log(key));
 * stop();
 * ```
 *
 * @param keys The keys.
 * @param delayMs Milliseconds before each.
 * @returns The key source.
 */
export function scriptedKeys(keys: readonly string[], delayMs: number): KeySource {
  return {
    listen(onKey) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let i = 0;
      const next = () => {
        if (i >= keys.length) return;
        timer = setTimeout(() => {
          onKey(keys[i++]!);
          next();
        }, delayMs);
      };
      next();
      return () => clearTimeout(timer);
    },
  };
}
