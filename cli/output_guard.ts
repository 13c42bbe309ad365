/**
 * Output into a closed pipe (`shoal download … 2>&1 | head -3`, `--log jsonl:- | head -1`)
 * stops the command, as SIGPIPE stops a Unix tool: {@linkcode guardOutput} wraps stdout and
 * stderr so the first write that finds the reader gone calls back (the CLI then aborts the
 * run: resume data is saved, the exit code is 141, nothing more is printed there).
 *
 * @module
 */

import { isBrokenPipe } from "./common.ts";

/**
 * Wraps a stream so that a write failing with `BrokenPipe` calls `onClosed` (once) before the
 * error reaches the writer. Writes go through to `stream` one at a time, holding its writer only
 * for the write.
 *
 * @example
 * ```ts
 * import { guardOutput } from "./output_guard.ts";
 * const controller = new AbortController();
 * const stdout = guardOutput(Deno.stdout.writable, () => controller.abort());
 * ```
 *
 * @param stream The real stream (the process's stdout or stderr).
 * @param onClosed Called when a write finds the reader gone.
 * @returns The stream to write to instead.
 */
export function guardOutput(
  stream: WritableStream<Uint8Array>,
  onClosed: () => void,
): WritableStream<Uint8Array> {
  let closed = false;
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      const writer = stream.getWriter();
      try {
        await writer.write(chunk);
      } catch (error) {
        if (isBrokenPipe(error) && !closed) {
          closed = true;
          onClosed();
        }
        throw error;
      } finally {
        writer.releaseLock();
      }
    },
  });
}
