/**
 * A connection's outgoing side: messages are queued, gathered for one turn of the event loop
 * and written to the stream in one encoded buffer, reused between writes where the transport
 * allows it.
 *
 * @module
 */

import type { Duplex } from "../types.ts";
import { encodedLength, encodeMessageInto, type Message } from "../wire/messages.ts";

/** Largest send buffer a writer keeps for reuse. */
const MAX_REUSED_SEND_BUFFER = 2 * 1024 * 1024;

/** Options for {@linkcode MessageWriter}. */
export interface MessageWriterOptions {
  /** The clock, for {@linkcode MessageWriter.lastSent}. */
  now: () => number;
  /** Called when a write fails (the connection should close). */
  onError: (error: Error) => void;
}

/**
 * Queues and writes one connection's messages.
 *
 * @example
 * ```ts ignore
 * const out = new MessageWriter(duplex, { now: Date.now, onError: (error) => peer.close(error) });
 * out.send({ type: "interested" });
 * out.send({ type: "request", piece: 0, begin: 0, length: 16384 }); // both go in one write
 * out.stop();
 * out.closeSocket();
 * ```
 */
export class MessageWriter {
  /** When a message was last queued (ms). */
  lastSent: number;

  readonly #duplex: Duplex;
  readonly #options: MessageWriterOptions;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #stopped = false;
  #outQueue: Message[] = [];
  #outBytes = 0;
  #sendBuffer: Uint8Array = new Uint8Array(0);
  #flushing: Promise<void> | null = null;

  /**
   * @param duplex The connection; its writable side is locked by the writer.
   * @param options The clock and what to do when a write fails.
   */
  constructor(duplex: Duplex, options: MessageWriterOptions) {
    this.#duplex = duplex;
    this.#options = options;
    this.#writer = duplex.writable.getWriter();
    this.lastSent = options.now();
  }

  /** Encoded bytes queued and not yet handed to the stream. */
  get queuedBytes(): number {
    return this.#outBytes;
  }

  /** The write in progress, or null when idle. */
  get flushing(): Promise<void> | null {
    return this.#flushing;
  }

  /**
   * Queues a message; it is written after the current turn, with the others sent in it.
   * Ignored once {@linkcode MessageWriter.stop} was called.
   *
   * @param m The message.
   */
  send(m: Message): void {
    if (this.#stopped) return;
    this.#outQueue.push(m);
    this.#outBytes += encodedLength(m);
    this.lastSent = this.#options.now();
    if (this.#flushing === null) this.#flushing = this.#flush();
  }

  /** Drops every message sent from now on; what is queued is left for {@linkcode closeSocket}. */
  stop(): void {
    this.#stopped = true;
  }

  /** Closes the socket, after writing what is queued (e.g. rejects) when that is quick. */
  closeSocket(): void {
    if (this.#outQueue.length === 0 || this.#flushing !== null) {
      this.#duplex.close();
      return;
    }
    const buf = new Uint8Array(this.#outBytes);
    let at = 0;
    for (const m of this.#outQueue) at += encodeMessageInto(m, buf, at);
    this.#outQueue = [];
    this.#outBytes = 0;
    const timer = setTimeout(() => this.#duplex.close(), 1000);
    Deno.unrefTimer(timer);
    this.#writer.write(buf).catch(
      () => {/* the peer is being dropped: a failed last write changes nothing */},
    )
      .finally(() => {
        clearTimeout(timer);
        this.#duplex.close();
      });
  }

  async #flush(): Promise<void> {
    try {
      await Promise.resolve(); // gather messages sent in the same turn
      while (this.#outQueue.length > 0 && !this.#stopped) {
        const queue = this.#outQueue;
        const size = this.#outBytes;
        this.#outQueue = [];
        this.#outBytes = 0;
        // On a plain TCP connection one send buffer is reused (a write resolves once sent);
        // otherwise each flush gets a fresh one, since the stream may hold on to it.
        const reuse = this.#duplex.reusableWrites === true && size <= MAX_REUSED_SEND_BUFFER;
        if (reuse && this.#sendBuffer.length < size) {
          this.#sendBuffer = new Uint8Array(Math.min(MAX_REUSED_SEND_BUFFER, Math.max(size, 64 * 1024)));
        }
        const buf = reuse ? this.#sendBuffer.subarray(0, size) : new Uint8Array(size);
        let at = 0;
        for (const m of queue) at += encodeMessageInto(m, buf, at);
        await this.#writer.ready;
        await this.#writer.write(buf);
      }
    } catch (error) {
      this.#options.onError(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#flushing = null;
    }
  }
}
