/**
 * Reading a byte stream into the caller's own buffer where the stream allows it.
 *
 * @module
 */

/**
 * A BYOB reader for the stream when it is a byte stream (Deno's TCP connections are), or
 * null when it is not (a stream made by an encryption layer, say).
 *
 * @example
 * ```ts
 * import { byobReader } from "./byob_reader.ts";
 * const bytes = new ReadableStream({ type: "bytes", pull: (c) => c.close() });
 * console.log(byobReader(bytes) !== null); // true
 * console.log(byobReader(new ReadableStream<Uint8Array>())); // null
 * ```
 *
 * @param stream The stream; locked by the reader when one is returned.
 * @returns The reader, or null for a stream that is not a byte stream.
 */
export function byobReader(stream: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | null {
  try {
    return stream.getReader({ mode: "byob" });
  } catch (error) {
    if (error instanceof TypeError) return null; // not a byte stream: the caller reads chunks instead
    throw error;
  }
}
