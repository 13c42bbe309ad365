/**
 * Framing of the peer wire protocol: one synchronous parser, {@linkcode FrameParser}, which
 * the connections run inside their read loops, wrapped as a Web Stream by
 * {@linkcode FrameDecoder} (byte stream → {@linkcode Message}s) for stream edges;
 * {@linkcode FrameEncoder} turns messages into bytes. Why a synchronous parser sits inside
 * the stream pipeline is in ARCHITECTURE.md ("Framing"): a promise and a queued chunk per
 * message cost too much at several hundred MiB/s.
 *
 * ## Zero copy, and what it asks of the stream upstream
 *
 * When a message's body lies entirely inside one input chunk (the usual case), the
 * decoder hands out messages whose payloads (`piece.data`, `bitfield.bits`,
 * `extended.payload`) are `subarray` views into that chunk. Only a body that straddles
 * chunks is copied, once, into a buffer of its own. So:
 *
 * - the stream upstream must not reuse or mutate a chunk after enqueueing it. Deno's
 *   `Deno.Conn#readable` satisfies this: read with its default reader it yields each read
 *   in a fresh 64 KiB `ArrayBuffer` (checked on Deno 2.9: every chunk of an 8 MiB transfer
 *   had its own buffer and stayed intact after later reads). A decrypting layer in
 *   between must enqueue fresh buffers (or decrypt into a buffer it then gives away);
 * - a view keeps its whole chunk's `ArrayBuffer` alive (64 KiB from `Deno.Conn`), so
 *   consume payloads promptly (write the block to storage) or copy the ones you keep.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { decodeMessage, encodedLength, encodeMessageInto, type Message } from "./messages.ts";

/**
 * Default for {@linkcode FrameDecoderOptions.maxMessageLength}: 1 MiB plus the 13 bytes
 * of a piece message's header. Large enough for a piece message carrying a 1 MiB block
 * and for the bitfield of a torrent with 8 million pieces; small enough that a hostile
 * length prefix cannot make us allocate much.
 */
export const DEFAULT_MAX_MESSAGE_LENGTH: number = 1024 * 1024 + 13;

/**
 * A body that straddles chunks is assembled in a buffer allocated this large at first
 * (or smaller when the body is smaller) and grown by doubling only as bytes actually
 * arrive. A peer that announces a large message and then stalls costs us at most this.
 * Every piece message with a block of up to 64 KiB fits without growing.
 */
const INITIAL_ASSEMBLY_CAPACITY = 64 * 1024 + 13;

/** Options of {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Largest message body accepted, in bytes (the value of the length prefix). A larger
   * length prefix is a {@linkcode ProtocolError}, raised before anything is allocated.
   *
   * @default {DEFAULT_MAX_MESSAGE_LENGTH} (1 MiB + 13 = 1048589)
   */
  maxMessageLength?: number;
}

/** Mutable state of one decoder (one per stream, never shared). */
interface DecoderState {
  readonly max: number;
  /** Bytes of the length prefix read so far when it straddles chunks (0-3). */
  headerFill: number;
  /** The length prefix being assembled, big-endian, as its bytes arrive. */
  headerValue: number;
  /** Buffer holding a body that straddles chunks, or `undefined` between messages. */
  body: Uint8Array | undefined;
  /** Total length of the body being assembled. */
  bodyLength: number;
  /** Bytes of that body received so far. */
  bodyFill: number;
  /** Reuse assembly buffers (only when every message is consumed before the next push). */
  readonly reuse: boolean;
  /** An assembly buffer free for reuse. */
  spare: Uint8Array | undefined;
}

function startBody(state: DecoderState, length: number): void {
  const spare = state.spare;
  state.body = spare !== undefined && spare.length >= Math.min(length, INITIAL_ASSEMBLY_CAPACITY)
    ? spare
    : new Uint8Array(Math.min(length, INITIAL_ASSEMBLY_CAPACITY));
  state.spare = undefined;
  state.bodyLength = length;
  state.bodyFill = 0;
}

function checkLength(state: DecoderState, length: number): void {
  if (length > state.max) {
    throw new ProtocolError(`Cannot decode message: length ${length} exceeds maximum ${state.max}`);
  }
}

/**
 * Consumes as much of `chunk` from `pos` as the body being assembled needs; returns the
 * new position and emits the message when the body is complete.
 */
function continueBody(
  state: DecoderState,
  chunk: Uint8Array,
  pos: number,
  emit: (message: Message) => void,
): number {
  let body = state.body!;
  const take = Math.min(state.bodyLength - state.bodyFill, chunk.length - pos);
  const needed = state.bodyFill + take;
  if (needed > body.length) {
    const grown = new Uint8Array(Math.min(state.bodyLength, Math.max(body.length * 2, needed)));
    grown.set(body.subarray(0, state.bodyFill));
    body = grown;
    state.body = grown;
  }
  body.set(chunk.subarray(pos, pos + take), state.bodyFill);
  state.bodyFill = needed;
  if (needed === state.bodyLength) {
    state.body = undefined;
    if (state.reuse) state.spare = body;
    emit(decodeMessage(body.subarray(0, needed)));
  }
  return pos + take;
}

function transformChunk(
  state: DecoderState,
  chunk: Uint8Array,
  emit: (message: Message) => void,
): void {
  const end = chunk.length;
  let pos = 0;
  if (state.body !== undefined) pos = continueBody(state, chunk, pos, emit);
  while (pos < end) {
    let length: number;
    if (state.headerFill === 0 && end - pos >= 4) {
      length = ((chunk[pos]! << 24) | (chunk[pos + 1]! << 16) | (chunk[pos + 2]! << 8) | chunk[pos + 3]!) >>>
        0;
      pos += 4;
    } else {
      // The length prefix straddles chunks: gather it byte by byte (at most 4 bytes).
      while (state.headerFill < 4 && pos < end) {
        state.headerValue = (state.headerValue * 256) + chunk[pos]!;
        state.headerFill++;
        pos++;
      }
      if (state.headerFill < 4) return;
      length = state.headerValue;
      state.headerFill = 0;
      state.headerValue = 0;
    }
    if (length === 0) {
      emit({ type: "keepalive" });
      continue;
    }
    checkLength(state, length);
    if (end - pos >= length) {
      // The whole body is in this chunk: hand out a view, no copy.
      emit(decodeMessage(chunk.subarray(pos, pos + length)));
      pos += length;
    } else {
      startBody(state, length);
      pos = continueBody(state, chunk, pos, emit);
    }
  }
}

/**
 * Splits a byte stream into peer wire messages: reads each 4-byte big-endian length
 * prefix, then that many bytes of body, and decodes them with `decodeMessage`. A length
 * of 0 is a keep-alive. A thin stream wrapper over {@linkcode FrameParser}, the parser the
 * connections run, with buffer reuse off.
 *
 * Payloads are views into the input chunks when a body fits in one chunk (see the module
 * documentation): consume or copy them before the upstream could reuse its buffers.
 *
 * Errors, each a {@linkcode ProtocolError} that errors the stream: a length prefix above
 * `maxMessageLength` (raised before allocating), a body whose length does not fit its
 * type, and the input ending in the middle of a message.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./framing.ts";
 * import { encodeMessage } from "./messages.ts";
 * const bytes = encodeMessage({ type: "have", piece: 3 });
 * const stream = ReadableStream.from([bytes.subarray(0, 2), bytes.subarray(2)]).pipeThrough(new FrameDecoder());
 * for await (const message of stream) console.log(message); // { type: "have", piece: 3 }
 * ```
 */
export class FrameDecoder extends TransformStream<Uint8Array, Message> {
  /**
   * Creates a decoder for one connection.
   *
   * @param options Limits.
   * @throws {RangeError} when `maxMessageLength` is not a non-negative integer below 2^32.
   */
  constructor(options: FrameDecoderOptions = {}) {
    // The one parser production runs, minus buffer reuse: messages wait in the stream's
    // queue, so their payloads must stay valid after the next chunk is parsed.
    const parser = new FrameParser({ ...options, reuseBuffer: false });
    super({
      transform(chunk, controller) {
        parser.push(chunk, (message) => controller.enqueue(message));
      },
      flush() {
        parser.end();
      },
    });
  }
}

function checkEnd(state: DecoderState): void {
  if (state.body !== undefined) {
    throw new ProtocolError(
      `Stream ended in the middle of a message: got ${state.bodyFill} of ${state.bodyLength} bytes`,
    );
  }
  if (state.headerFill !== 0) {
    throw new ProtocolError(
      `Stream ended in the middle of a length prefix: got ${state.headerFill} of 4 bytes`,
    );
  }
}

/** Options for {@linkcode FrameParser}. */
export interface FrameParserOptions extends FrameDecoderOptions {
  /**
   * Reuse the buffer a straddling body was assembled in for the next one, so a payload is
   * valid only until `emit` returns. Off for {@linkcode FrameDecoder}, whose messages wait
   * in a queue.
   *
   * @default {true}
   */
  reuseBuffer?: boolean;
}

/**
 * The one wire-message parser: connections run it directly and {@linkcode FrameDecoder}
 * wraps it for stream edges. Made for a read loop that handles each message before
 * reading again: it hands messages to a callback synchronously and reuses
 * its assembly buffer, so a connection that reads into one reused buffer (a BYOB reader)
 * decodes with no allocation per message. Every payload is a view that is only valid
 * until the callback returns: copy what you keep.
 *
 * @example
 * ```ts
 * import { FrameParser } from "./framing.ts";
 * import { encodeMessage } from "./messages.ts";
 * const parser = new FrameParser();
 * const bytes = encodeMessage({ type: "have", piece: 7 });
 * parser.push(bytes.subarray(0, 3), (m) => console.log(m));
 * parser.push(bytes.subarray(3), (m) => console.log(m)); // { type: "have", piece: 7 }
 * parser.end();
 * ```
 */
export class FrameParser {
  readonly #state: DecoderState;

  /**
   * @param options Limits.
   * @throws {RangeError} when `maxMessageLength` is not a non-negative integer below 2^32.
   */
  constructor(options: FrameParserOptions = {}) {
    const max = options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) {
      throw new RangeError(`Invalid maxMessageLength: ${max} is not an integer in [0, 4294967295]`);
    }
    this.#state = {
      max,
      headerFill: 0,
      headerValue: 0,
      body: undefined,
      bodyLength: 0,
      bodyFill: 0,
      reuse: options.reuseBuffer ?? true,
      spare: undefined,
    };
  }

  /**
   * Decodes the messages a chunk completes and passes each to `emit`. The chunk may be
   * reused by the caller once this returns.
   *
   * @param chunk Bytes from the connection.
   * @param emit Called for each complete message, synchronously.
   * @throws {ProtocolError} on an oversized length prefix or a malformed message.
   */
  push(chunk: Uint8Array, emit: (message: Message) => void): void {
    transformChunk(this.#state, chunk, emit);
  }

  /**
   * Checks that the input did not end in the middle of a message.
   *
   * @throws {ProtocolError} when it did.
   */
  end(): void {
    checkEnd(this.#state);
  }
}

/**
 * Turns messages into bytes: one `Uint8Array` per message, length prefix included.
 *
 * @example
 * ```ts
 * import { FrameEncoder } from "./framing.ts";
 * const bytes = ReadableStream.from([{ type: "interested" } as const]).pipeThrough(new FrameEncoder());
 * for await (const chunk of bytes) console.log(chunk); // Uint8Array(5) [0, 0, 0, 1, 2]
 * ```
 */
export class FrameEncoder extends TransformStream<Message, Uint8Array> {
  /** Creates an encoder. An invalid message (a field out of range) errors the stream with a `RangeError`. */
  constructor() {
    super({
      transform(message, controller) {
        const out = new Uint8Array(encodedLength(message));
        encodeMessageInto(message, out, 0);
        controller.enqueue(out);
      },
    });
  }
}
