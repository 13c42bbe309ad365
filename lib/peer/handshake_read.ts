/**
 * Reading the start of a BitTorrent connection: exact byte counts without reading past them
 * (so the message loop can go on reading the socket's own stream), the 68-byte handshake, and
 * giving bytes back in front of a stream.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { Duplex } from "../types.ts";
import { abortable } from "../net/abortable.ts";
import { ByteReader } from "../wire/byte_reader.ts";
import { decodeHandshake, type Handshake, HANDSHAKE_LENGTH, readHandshake } from "../wire/handshake.ts";
import { byobReader } from "../net/byob_reader.ts";

/** A connection whose handshakes are done. */
export interface HandshakenPeer {
  /** The byte stream after the handshake (buffered bytes first). */
  readonly duplex: Duplex;
  /** The remote handshake. */
  readonly remote: Handshake;
  /**
   * What protects the payload: the encryption layer's `Duplex.encryption` (`"rc4"`, or
   * `"plaintext"` after an obfuscated handshake), `"encrypted"` for a layer that does not say,
   * or `"none"` for a plain BitTorrent handshake.
   */
  readonly encryption: string;
}

/** Reads exact byte counts from a stream's start; see {@linkcode exactReader}. */
export interface ExactReader {
  /**
   * Reads exactly `n` bytes.
   *
   * @param n How many.
   * @param closed The error message when the stream ends after `filled` bytes.
   * @returns A fresh buffer of `n` bytes.
   */
  read(n: number, closed?: (filled: number) => string): Promise<Uint8Array>;
  /** Releases the stream: what follows the bytes read. */
  rest(): ReadableStream<Uint8Array>;
}

/**
 * Reads exact byte counts from the start of a stream, then hands the rest on. On a byte
 * stream it uses a BYOB reader, so it never reads past what was asked and `rest()` is the
 * original stream (zero-copy reads stay possible); otherwise it buffers through a
 * {@linkcode ByteReader}.
 *
 * @example
 * ```ts
 * import { exactReader } from "./handshake_read.ts";
 * const source = exactReader(ReadableStream.from([new Uint8Array([1, 2, 3])]));
 * console.log(await source.read(2)); // Uint8Array [1, 2]
 * for await (const chunk of source.rest()) console.log(chunk); // Uint8Array [3]
 * ```
 *
 * @param stream The stream.
 * @returns The reader.
 */
export function exactReader(stream: ReadableStream<Uint8Array>): ExactReader {
  const byob = byobReader(stream);
  if (byob === null) {
    const reader = new ByteReader(stream);
    return { read: async (n) => (await reader.readExactly(n)).slice(), rest: () => reader.rest() };
  }
  return {
    async read(n: number, closed?: (filled: number) => string): Promise<Uint8Array> {
      let buffer = new ArrayBuffer(n);
      let filled = 0;
      while (filled < n) {
        const { value, done } = await byob.read(new Uint8Array(buffer, filled, n - filled));
        if (done || value === undefined) {
          throw new ProtocolError(closed?.(filled) ?? `Connection closed after ${filled} of ${n} bytes`);
        }
        filled += value.byteLength;
        buffer = value.buffer as ArrayBuffer;
      }
      return new Uint8Array(buffer);
    },
    rest(): ReadableStream<Uint8Array> {
      byob.releaseLock();
      return stream;
    },
  };
}

/**
 * A stream that yields `head` and then everything from `tail` (the bytes an inbound
 * connection's first read took, given back to the encryption plugin).
 *
 * @example
 * ```ts
 * import { prepend } from "./handshake_read.ts";
 * const s = prepend(new Uint8Array([1]), ReadableStream.from([new Uint8Array([2, 3])]));
 * for await (const chunk of s) console.log(chunk); // [1], then [2, 3]
 * ```
 *
 * @param head Bytes to yield first.
 * @param tail The rest.
 * @returns The joined stream.
 */
export function prepend(head: Uint8Array, tail: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        controller.enqueue(head);
        return;
      }
      reader ??= tail.getReader();
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader ? reader.cancel(reason) : tail.cancel(reason);
    },
  });
}

/**
 * Reads the remote handshake. On a byte stream (a TCP connection) it reads exactly 68 bytes
 * with a BYOB reader, so the stream itself carries on untouched for the message loop (which
 * can then read into a reused buffer); on other streams it reads through a
 * {@linkcode ByteReader} and returns a stream of what follows.
 *
 * @example
 * ```ts ignore
 * const { remote, readable } = await receiveHandshake(conn.readable, { timeoutMs: 10_000 });
 * ```
 *
 * @param stream The connection's readable side.
 * @param options Deadline and cancellation.
 * @returns The handshake and the stream to read messages from.
 */
export async function receiveHandshake(
  stream: ReadableStream<Uint8Array>,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ remote: Handshake; readable: ReadableStream<Uint8Array> }> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const probe = byobReader(stream);
  if (probe === null) {
    const reader = new ByteReader(stream);
    const remote = await readHandshake(reader, {
      timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { remote, readable: reader.rest() };
  }
  probe.releaseLock(); // a byte stream: read exactly the handshake, as exactReader does
  const source = exactReader(stream);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const bytes = await abortable(
    source.read(HANDSHAKE_LENGTH, (filled) => `Connection closed during the handshake after ${filled} bytes`),
    signal,
    () => {/* the caller closes the connection; the late bytes are not needed */},
  ).catch((error) => {
    if (deadline.aborted) throw new ProtocolError(`Handshake timed out after ${timeoutMs} ms`);
    throw error;
  });
  source.rest();
  return { remote: decodeHandshake(bytes), readable: stream };
}
