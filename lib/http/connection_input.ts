/**
 * The read side of one HTTP connection: one pump reads the socket into a buffer (paused
 * when it holds `highWater` bytes, so a client cannot make us buffer without bound), and
 * the parser takes a request head, a line or a number of bytes from it, each with a
 * deadline.
 *
 * @module
 */

import { ShoalError } from "../errors.ts";

/**
 * A request that cannot be served: carries the status to answer with (400, 408, 413, 431,
 * 501, 505) before the connection is closed.
 *
 * @example
 * ```ts
 * import { HttpRequestError } from "./connection_input.ts";
 * const e = new HttpRequestError(431, "Request header fields too large");
 * console.log(e.status, e.code); // 431 "HTTP_REQUEST"
 * ```
 */
export class HttpRequestError extends ShoalError {
  /** The HTTP status to answer with. */
  readonly status: number;

  /**
   * Creates the instance.
   *
   * @param status The HTTP status to answer with.
   * @param message What is wrong (sent to the client as the body).
   */
  constructor(status: number, message: string) {
    super("HTTP_REQUEST", message);
    this.status = status;
  }
}

/** Thrown by the reads of {@linkcode ConnectionInput} when a deadline passes. */
export class HttpTimeoutError extends HttpRequestError {
  /**
   * Creates the instance.
   *
   * @param message What was not received in time.
   */
  constructor(message: string) {
    super(408, message);
  }
}

const CR = 13;
const LF = 10;

/**
 * Buffered input of one connection.
 *
 * @example
 * ```ts ignore
 * const input = new ConnectionInput(conn.readable, 64 * 1024);
 * const head = await input.readHead(16 * 1024, Date.now() + 10_000);
 * ```
 */
export class ConnectionInput {
  #buffer = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  #eof = false;
  #wake: (() => void) | null = null;
  #resume: (() => void) | null = null;
  readonly #highWater: number;
  readonly #pump: Promise<void>;
  /** Called once when the client has closed its side or the connection failed. */
  onEnd: (() => void) | undefined;

  /**
   * Starts reading.
   *
   * @param readable The connection's readable side.
   * @param highWater Bytes buffered before reading pauses.
   */
  constructor(readable: ReadableStream<Uint8Array>, highWater: number) {
    this.#highWater = highWater;
    this.#pump = this.#run(readable);
  }

  /** Bytes received and not taken yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether the client closed its side (or the connection failed). */
  get ended(): boolean {
    return this.#eof;
  }

  /** Resolves when the pump has stopped (after the connection is closed). */
  get finished(): Promise<void> {
    return this.#pump;
  }

  async #run(readable: ReadableStream<Uint8Array>): Promise<void> {
    const reader = readable.getReader();
    try {
      for (;;) {
        while (this.buffered >= this.#highWater) {
          await new Promise<void>((resolve) => (this.#resume = resolve));
        }
        const { value, done } = await reader.read();
        if (done) break;
        this.#append(value);
        this.#notify();
      }
    } catch (error) {
      // A reset or the server closing the socket ends the input like an end of stream; the
      // parser reports what was incomplete.
      void error;
    } finally {
      this.#eof = true;
      this.#notify();
      this.onEnd?.();
      reader.releaseLock();
    }
  }

  #append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#buffer.length) {
      const live = this.buffered;
      const size = Math.max(this.#buffer.length, (live + chunk.length) * 2);
      if (size > this.#buffer.length) {
        const next = new Uint8Array(size);
        next.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = next;
      } else {
        this.#buffer.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #take(n: number): Uint8Array {
    const out = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    const resume = this.#resume;
    if (resume !== null && this.buffered < this.#highWater) {
      this.#resume = null;
      resume();
    }
    return out;
  }

  /** Waits for more bytes or the end, until `deadline` (ms since the epoch). */
  #more(deadline: number, what: string): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new HttpTimeoutError(`Timed out waiting for ${what}`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        reject(new HttpTimeoutError(`Timed out waiting for ${what}`));
      }, left);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Waits until a byte is buffered or the client closed its side.
   *
   * @param deadline Ms since the epoch.
   * @returns True when a byte is there, false when the input ended first.
   * @throws {HttpTimeoutError} at the deadline.
   */
  async waitForData(deadline: number): Promise<boolean> {
    while (this.buffered === 0) {
      if (this.#eof) return false;
      await this.#more(deadline, "a request");
    }
    return true;
  }

  /**
   * Takes a request head: everything up to and including the empty line that ends the
   * headers (CRLF CRLF, or bare LFs).
   *
   * @param maxBytes Most bytes before the empty line.
   * @param deadline Ms since the epoch.
   * @returns The head, or `null` when the input ended before any byte of it.
   * @throws {HttpRequestError} 431 past `maxBytes`, 400 when the input ends inside the head,
   * {@linkcode HttpTimeoutError} at the deadline.
   */
  async readHead(maxBytes: number, deadline: number): Promise<Uint8Array | null> {
    let scanned = 0;
    for (;;) {
      const end = this.#findHeadEnd(scanned);
      if (end >= 0) {
        if (end > maxBytes) throw new HttpRequestError(431, "Request header fields too large");
        return this.#take(end);
      }
      scanned = Math.max(0, this.buffered - 3);
      if (this.buffered > maxBytes) throw new HttpRequestError(431, "Request header fields too large");
      if (this.#eof) {
        if (this.buffered === 0) return null;
        throw new HttpRequestError(400, "Connection closed inside the request head");
      }
      await this.#more(deadline, "the request headers");
    }
  }

  /** Offset just past the head's final empty line, or -1. */
  #findHeadEnd(from: number): number {
    const b = this.#buffer;
    for (let i = this.#start + from; i < this.#end; i++) {
      if (b[i] !== LF) continue;
      if (i + 1 < this.#end && b[i + 1] === LF) return i + 2 - this.#start;
      if (i + 2 < this.#end && b[i + 1] === CR && b[i + 2] === LF) return i + 3 - this.#start;
    }
    return -1;
  }

  /**
   * Takes one line (without its CRLF or LF).
   *
   * @param maxBytes Most bytes in the line.
   * @param deadline Ms since the epoch.
   * @returns The line.
   * @throws {HttpRequestError} when too long or cut off, {@linkcode HttpTimeoutError} at the deadline.
   */
  async readLine(maxBytes: number, deadline: number): Promise<Uint8Array> {
    let scanned = 0;
    for (;;) {
      const at = this.#buffer.subarray(this.#start + scanned, this.#end).indexOf(LF);
      if (at >= 0) {
        const length = scanned + at;
        const line = this.#take(length + 1);
        return line.subarray(0, length > 0 && line[length - 1] === CR ? length - 1 : length);
      }
      scanned = this.buffered;
      if (scanned > maxBytes) throw new HttpRequestError(400, "Line too long in the request body");
      if (this.#eof) throw new HttpRequestError(400, "Connection closed inside the request body");
      await this.#more(deadline, "the request body");
    }
  }

  /**
   * Takes what is buffered, at most `max` bytes, waiting for at least one.
   *
   * @param max Most bytes.
   * @param deadline Ms since the epoch.
   * @returns The bytes (at least one).
   * @throws {HttpRequestError} when the input ended, {@linkcode HttpTimeoutError} at the deadline.
   */
  async readSome(max: number, deadline: number): Promise<Uint8Array> {
    while (this.buffered === 0) {
      if (this.#eof) throw new HttpRequestError(400, "Connection closed inside the request body");
      await this.#more(deadline, "the request body");
    }
    return this.#take(Math.min(max, this.buffered));
  }

  /**
   * Takes exactly `n` bytes (`n` must not exceed the high-water mark).
   *
   * @param n How many.
   * @param deadline Ms since the epoch.
   * @returns The bytes.
   * @throws {HttpRequestError} when cut off, {@linkcode HttpTimeoutError} at the deadline.
   */
  async readExact(n: number, deadline: number): Promise<Uint8Array> {
    while (this.buffered < n) {
      if (this.#eof) throw new HttpRequestError(400, "Connection closed inside the request body");
      await this.#more(deadline, "the request body");
    }
    return this.#take(n);
  }
}
