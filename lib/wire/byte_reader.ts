/**
 * {@linkcode ByteReader}: read exact byte counts from a `ReadableStream<Uint8Array>`, peek
 * ahead without consuming, then hand the rest of the stream (buffered bytes first) to the
 * next stage, such as a `FrameDecoder` after the handshake.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { abortable } from "../net/abortable.ts";

/**
 * A buffered reader over a byte stream, for the parts of a connection that read fixed
 * sizes (handshakes, encryption negotiation) before switching to framed messages.
 *
 * It holds the stream's reader lock from construction until {@linkcode ByteReader.rest}
 * or {@linkcode ByteReader.cancel}. One read (`readExactly` or `peek`) may run at a time.
 * Returned bytes may be views into the source's chunks: do not mutate them.
 *
 * @example Read a header, then stream the rest
 * ```ts
 * import { ByteReader } from "./byte_reader.ts";
 * const source = ReadableStream.from([new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]);
 * const reader = new ByteReader(source);
 * console.log(await reader.readExactly(4)); // Uint8Array(4) [1, 2, 3, 4]
 * for await (const chunk of reader.rest()) console.log(chunk); // Uint8Array(1) [5]
 * ```
 */
export class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Buffered chunks not yet consumed; the first one starts at `#head`. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  /** A read of the source that is still running (kept when a read is aborted, so no chunk is lost). */
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #ended = false;
  #busy = false;
  #detached = false;

  /**
   * Takes the stream's reader lock.
   *
   * @param stream The byte stream to read from.
   * @throws {TypeError} when the stream is already locked.
   */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Number of bytes read from the source and not yet consumed. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Reads exactly `n` bytes, waiting for more input as needed.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * const reader = new ByteReader(ReadableStream.from([new Uint8Array([1]), new Uint8Array([2, 3])]));
   * console.log(await reader.readExactly(2)); // Uint8Array(2) [1, 2]
   * ```
   *
   * @param n Number of bytes to read.
   * @param signal Aborts the wait; bytes that arrive afterwards stay buffered for the next read.
   * @returns `n` bytes (a view into a source chunk when they lie in one chunk, else a new buffer).
   * @throws {ProtocolError} when the stream ends before `n` bytes.
   * @throws {unknown} `signal.reason` when the signal aborts.
   */
  async readExactly(n: number, signal?: AbortSignal): Promise<Uint8Array> {
    const bytes = await this.#fill(n, signal);
    this.#consume(n);
    return bytes;
  }

  /**
   * Returns the next `n` bytes without consuming them: the next read starts with them.
   *
   * @example Tell a plaintext handshake from an encrypted one
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * const reader = new ByteReader(ReadableStream.from([new Uint8Array([19, 66, 105])]));
   * const first = await reader.peek(1);
   * console.log(first[0] === 19); // true
   * console.log(await reader.readExactly(3)); // Uint8Array(3) [19, 66, 105]
   * ```
   *
   * @param n Number of bytes to look at.
   * @param signal Aborts the wait.
   * @returns `n` bytes, not consumed.
   * @throws {ProtocolError} when the stream ends before `n` bytes.
   * @throws {unknown} `signal.reason` when the signal aborts.
   */
  peek(n: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#fill(n, signal);
  }

  /**
   * Returns a stream that yields the buffered bytes first, then the rest of the source.
   * After this call the `ByteReader` is unusable; cancelling the returned stream cancels
   * the source.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * const reader = new ByteReader(ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3])]));
   * await reader.readExactly(1);
   * for await (const chunk of reader.rest()) console.log(chunk); // [2], then [3]
   * ```
   *
   * @returns The remaining bytes as a stream.
   * @throws {TypeError} when a read is in progress or `rest()`/`cancel()` was already called.
   */
  rest(): ReadableStream<Uint8Array> {
    this.#checkUsable();
    this.#detached = true;
    const leftovers = this.#chunks;
    if (leftovers.length > 0) leftovers[0] = leftovers[0]!.subarray(this.#head);
    this.#chunks = [];
    this.#head = 0;
    this.#buffered = 0;
    const reader = this.#reader;
    let pending = this.#pending;
    this.#pending = undefined;
    const ended = this.#ended;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = leftovers.shift();
        if (next !== undefined) {
          controller.enqueue(next);
          return;
        }
        if (ended) {
          controller.close();
          reader.releaseLock();
          return;
        }
        const read = pending ?? reader.read();
        pending = undefined;
        const { value, done } = await read;
        if (done) {
          controller.close();
          reader.releaseLock();
        } else {
          controller.enqueue(value);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Cancels the source stream and drops buffered bytes. The `ByteReader` is unusable
   * afterwards. Does nothing after {@linkcode ByteReader.rest}.
   *
   * @example
   * ```ts
   * import { ByteReader } from "./byte_reader.ts";
   * const reader = new ByteReader(new ReadableStream<Uint8Array>());
   * await reader.cancel(new Error("Closing"));
   * ```
   *
   * @param reason Passed to the source's `cancel`.
   */
  async cancel(reason?: unknown): Promise<void> {
    if (this.#detached) return;
    this.#detached = true;
    this.#chunks = [];
    this.#buffered = 0;
    await this.#reader.cancel(reason);
  }

  #checkUsable(): void {
    if (this.#detached) throw new TypeError("ByteReader is unusable after rest() or cancel()");
    if (this.#busy) throw new TypeError("ByteReader already has a read in progress");
  }

  /** Buffers at least `n` bytes and returns the first `n` as one contiguous array. */
  async #fill(n: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`Invalid byte count: ${n}`);
    this.#checkUsable();
    signal?.throwIfAborted();
    this.#busy = true;
    try {
      while (this.#buffered < n) {
        if (this.#ended) {
          throw new ProtocolError(`Unexpected end of stream: wanted ${n} bytes, got ${this.#buffered}`);
        }
        await this.#readChunk(signal);
        if (this.#detached) throw new TypeError("ByteReader was cancelled during a read");
      }
    } finally {
      this.#busy = false;
    }
    return this.#front(n);
  }

  async #readChunk(signal: AbortSignal | undefined): Promise<void> {
    this.#pending ??= this.#reader.read();
    const result = signal === undefined ? await this.#pending : await abortable(this.#pending, signal);
    this.#pending = undefined;
    if (result.done) {
      this.#ended = true;
    } else if (result.value.length > 0) {
      this.#chunks.push(result.value);
      this.#buffered += result.value.length;
    }
  }

  /** The first `n` buffered bytes, contiguous; merges chunks in place when they straddle. */
  #front(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0]!;
    if (first.length - this.#head >= n) return first.subarray(this.#head, this.#head + n);
    const merged = new Uint8Array(n);
    let filled = 0;
    let used = 0;
    let head = this.#head;
    while (filled < n) {
      const chunk = this.#chunks[used]!;
      const take = Math.min(chunk.length - head, n - filled);
      merged.set(chunk.subarray(head, head + take), filled);
      filled += take;
      if (head + take === chunk.length) {
        used++;
        head = 0;
      } else {
        head += take;
      }
    }
    // Replace the merged chunks with the merged bytes, so peek() then readExactly() copies once.
    const rest = head === 0
      ? this.#chunks.slice(used)
      : [this.#chunks[used]!.subarray(head), ...this.#chunks.slice(used + 1)];
    this.#chunks = [merged, ...rest];
    this.#head = 0;
    return merged;
  }

  #consume(n: number): void {
    this.#buffered -= n;
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0]!;
      const available = first.length - this.#head;
      if (available > left) {
        this.#head += left;
        return;
      }
      left -= available;
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}
