/**
 * Peer wire messages (BEP 3, with BEP 5 `port`, BEP 6 fast extension and BEP 10
 * `extended`): the {@linkcode Message} union, and functions to encode and decode one
 * message.
 *
 * On the wire every message is a 4-byte big-endian length, then a 1-byte id, then a
 * payload; a length of 0 is a keep-alive. {@linkcode decodeMessage} takes the *body*
 * (id and payload, without the length prefix); {@linkcode encodeMessage} returns the
 * whole frame, length prefix included. Splitting a byte stream into bodies is the job of
 * `FrameDecoder` in `framing.ts`.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";

/**
 * One peer wire message. Byte payloads (`bitfield.bits`, `piece.data`,
 * `extended.payload`, `unknown.payload`) produced by {@linkcode decodeMessage} are
 * views into the decoded body, not copies.
 */
export type Message =
  | { type: "keepalive" }
  | { type: "choke" }
  | { type: "unchoke" }
  | { type: "interested" }
  | { type: "not_interested" }
  | { type: "have"; piece: number }
  | { type: "bitfield"; bits: Uint8Array }
  | { type: "request"; piece: number; begin: number; length: number }
  | { type: "piece"; piece: number; begin: number; data: Uint8Array }
  | { type: "cancel"; piece: number; begin: number; length: number }
  | { type: "port"; port: number }
  | { type: "suggest"; piece: number }
  | { type: "have_all" }
  | { type: "have_none" }
  | { type: "reject"; piece: number; begin: number; length: number }
  | { type: "allowed_fast"; piece: number }
  | { type: "extended"; id: number; payload: Uint8Array }
  | { type: "unknown"; id: number; payload: Uint8Array };

/** The `type` of every {@linkcode Message}. */
export type MessageType = Message["type"];

/** Message types that have a fixed id on the wire (all but `keepalive` and `unknown`). */
export type KnownMessageType = Exclude<MessageType, "keepalive" | "unknown">;

/**
 * Wire ids of the known message types.
 *
 * @example
 * ```ts
 * import { MESSAGE_IDS } from "./messages.ts";
 * console.log(MESSAGE_IDS.piece); // 7
 * console.log(MESSAGE_IDS.extended); // 20
 * ```
 */
export const MESSAGE_IDS: Readonly<Record<KnownMessageType, number>> = Object.freeze({
  choke: 0,
  unchoke: 1,
  interested: 2,
  not_interested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  suggest: 13,
  have_all: 14,
  have_none: 15,
  reject: 16,
  allowed_fast: 17,
  extended: 20,
});

const ID_CHOKE = 0;
const ID_UNCHOKE = 1;
const ID_INTERESTED = 2;
const ID_NOT_INTERESTED = 3;
const ID_HAVE = 4;
const ID_BITFIELD = 5;
const ID_REQUEST = 6;
const ID_PIECE = 7;
const ID_CANCEL = 8;
const ID_PORT = 9;
const ID_SUGGEST = 13;
const ID_HAVE_ALL = 14;
const ID_HAVE_NONE = 15;
const ID_REJECT = 16;
const ID_ALLOWED_FAST = 17;
const ID_EXTENDED = 20;

/** Reads a big-endian unsigned 32-bit integer; the caller has checked the bounds. */
function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

/** Writes a big-endian unsigned 32-bit integer; the caller has checked the bounds. */
function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

function expectLength(body: Uint8Array, name: string, expected: number): void {
  if (body.length !== expected) {
    throw new ProtocolError(
      `Cannot decode ${name} message: length ${body.length}, expected ${expected}`,
    );
  }
}

function expectMinLength(body: Uint8Array, name: string, minimum: number): void {
  if (body.length < minimum) {
    throw new ProtocolError(
      `Cannot decode ${name} message: length ${body.length}, expected at least ${minimum}`,
    );
  }
}

/**
 * Decodes one message body: the id byte followed by the payload, without the 4-byte
 * length prefix. An empty body is a keep-alive. Ids shoal does not know become
 * `{ type: "unknown" }` so the caller can ignore them.
 *
 * Byte payloads are views into `body` (no copy): copy them if `body` may be reused.
 *
 * @example
 * ```ts
 * import { decodeMessage } from "./messages.ts";
 * const message = decodeMessage(new Uint8Array([4, 0, 0, 1, 2]));
 * console.log(message); // { type: "have", piece: 258 }
 * ```
 *
 * @param body The id byte and payload, exactly one message long.
 * @returns The decoded message.
 * @throws {ProtocolError} when the body's length does not fit its message type.
 */
export function decodeMessage(body: Uint8Array): Message {
  if (body.length === 0) return { type: "keepalive" };
  const id = body[0]!;
  switch (id) {
    case ID_CHOKE:
      expectLength(body, "choke", 1);
      return { type: "choke" };
    case ID_UNCHOKE:
      expectLength(body, "unchoke", 1);
      return { type: "unchoke" };
    case ID_INTERESTED:
      expectLength(body, "interested", 1);
      return { type: "interested" };
    case ID_NOT_INTERESTED:
      expectLength(body, "not_interested", 1);
      return { type: "not_interested" };
    case ID_HAVE:
      expectLength(body, "have", 5);
      return { type: "have", piece: readU32(body, 1) };
    case ID_BITFIELD:
      return { type: "bitfield", bits: body.subarray(1) };
    case ID_REQUEST:
      expectLength(body, "request", 13);
      return { type: "request", piece: readU32(body, 1), begin: readU32(body, 5), length: readU32(body, 9) };
    case ID_PIECE:
      expectMinLength(body, "piece", 9);
      return { type: "piece", piece: readU32(body, 1), begin: readU32(body, 5), data: body.subarray(9) };
    case ID_CANCEL:
      expectLength(body, "cancel", 13);
      return { type: "cancel", piece: readU32(body, 1), begin: readU32(body, 5), length: readU32(body, 9) };
    case ID_PORT:
      expectLength(body, "port", 3);
      return { type: "port", port: (body[1]! << 8) | body[2]! };
    case ID_SUGGEST:
      expectLength(body, "suggest", 5);
      return { type: "suggest", piece: readU32(body, 1) };
    case ID_HAVE_ALL:
      expectLength(body, "have_all", 1);
      return { type: "have_all" };
    case ID_HAVE_NONE:
      expectLength(body, "have_none", 1);
      return { type: "have_none" };
    case ID_REJECT:
      expectLength(body, "reject", 13);
      return { type: "reject", piece: readU32(body, 1), begin: readU32(body, 5), length: readU32(body, 9) };
    case ID_ALLOWED_FAST:
      expectLength(body, "allowed_fast", 5);
      return { type: "allowed_fast", piece: readU32(body, 1) };
    case ID_EXTENDED:
      expectMinLength(body, "extended", 2);
      return { type: "extended", id: body[1]!, payload: body.subarray(2) };
    default:
      return { type: "unknown", id, payload: body.subarray(1) };
  }
}

function checkUint(value: number, max: number, field: string, type: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`Cannot encode ${type} message: ${field} ${value} is not an integer in [0, ${max}]`);
  }
}

/**
 * Returns the number of bytes {@linkcode encodeMessage} produces for a message, length
 * prefix included.
 *
 * @example
 * ```ts
 * import { encodedLength } from "./messages.ts";
 * console.log(encodedLength({ type: "have", piece: 1 })); // 9
 * ```
 *
 * @param message The message.
 * @returns Its size on the wire in bytes.
 */
export function encodedLength(message: Message): number {
  switch (message.type) {
    case "keepalive":
      return 4;
    case "choke":
    case "unchoke":
    case "interested":
    case "not_interested":
    case "have_all":
    case "have_none":
      return 5;
    case "have":
    case "suggest":
    case "allowed_fast":
      return 9;
    case "bitfield":
      return 5 + message.bits.length;
    case "request":
    case "cancel":
    case "reject":
      return 17;
    case "piece":
      return 13 + message.data.length;
    case "port":
      return 7;
    case "extended":
      return 6 + message.payload.length;
    case "unknown":
      return 5 + message.payload.length;
  }
}

/**
 * Encodes a message, length prefix included, into `target` at `offset`: use it to batch
 * several messages into one buffer.
 *
 * @example Two messages in one buffer
 * ```ts
 * import { encodedLength, encodeMessageInto, type Message } from "./messages.ts";
 * const messages: Message[] = [{ type: "interested" }, { type: "have", piece: 7 }];
 * const buffer = new Uint8Array(messages.reduce((n, m) => n + encodedLength(m), 0));
 * let offset = 0;
 * for (const m of messages) offset += encodeMessageInto(m, buffer, offset);
 * console.log(offset); // 14
 * ```
 *
 * @param message The message.
 * @param target The buffer to write into.
 * @param offset Where in `target` to start writing.
 * @returns The number of bytes written (equal to {@linkcode encodedLength}).
 * @throws {RangeError} when the message does not fit in `target`, or a field is out of range.
 */
export function encodeMessageInto(message: Message, target: Uint8Array, offset: number): number {
  const total = encodedLength(message);
  if (!Number.isInteger(offset) || offset < 0 || offset + total > target.length) {
    throw new RangeError(
      `Cannot encode ${message.type} message: ${total} bytes at offset ${offset} do not fit in ${target.length}`,
    );
  }
  if (total - 4 > 0xffffffff) {
    throw new RangeError(`Cannot encode ${message.type} message: length ${total - 4} exceeds 4294967295`);
  }
  writeU32(target, offset, total - 4);
  const at = offset + 4;
  switch (message.type) {
    case "keepalive":
      break;
    case "choke":
    case "unchoke":
    case "interested":
    case "not_interested":
    case "have_all":
    case "have_none":
      target[at] = MESSAGE_IDS[message.type];
      break;
    case "have":
    case "suggest":
    case "allowed_fast":
      checkUint(message.piece, 0xffffffff, "piece", message.type);
      target[at] = MESSAGE_IDS[message.type];
      writeU32(target, at + 1, message.piece);
      break;
    case "bitfield":
      target[at] = ID_BITFIELD;
      target.set(message.bits, at + 1);
      break;
    case "request":
    case "cancel":
    case "reject":
      checkUint(message.piece, 0xffffffff, "piece", message.type);
      checkUint(message.begin, 0xffffffff, "begin", message.type);
      checkUint(message.length, 0xffffffff, "length", message.type);
      target[at] = MESSAGE_IDS[message.type];
      writeU32(target, at + 1, message.piece);
      writeU32(target, at + 5, message.begin);
      writeU32(target, at + 9, message.length);
      break;
    case "piece":
      checkUint(message.piece, 0xffffffff, "piece", message.type);
      checkUint(message.begin, 0xffffffff, "begin", message.type);
      target[at] = ID_PIECE;
      writeU32(target, at + 1, message.piece);
      writeU32(target, at + 5, message.begin);
      target.set(message.data, at + 9);
      break;
    case "port":
      checkUint(message.port, 0xffff, "port", message.type);
      target[at] = ID_PORT;
      target[at + 1] = message.port >>> 8;
      target[at + 2] = message.port & 0xff;
      break;
    case "extended":
      checkUint(message.id, 0xff, "id", message.type);
      target[at] = ID_EXTENDED;
      target[at + 1] = message.id;
      target.set(message.payload, at + 2);
      break;
    case "unknown":
      checkUint(message.id, 0xff, "id", message.type);
      target[at] = message.id;
      target.set(message.payload, at + 1);
      break;
  }
  return total;
}

/**
 * Encodes one message into a new buffer, 4-byte length prefix included.
 *
 * @example
 * ```ts
 * import { encodeMessage } from "./messages.ts";
 * console.log(encodeMessage({ type: "have", piece: 258 })); // Uint8Array(9) [0, 0, 0, 5, 4, 0, 0, 1, 2]
 * ```
 *
 * @param message The message.
 * @returns The framed message.
 * @throws {RangeError} when a field is out of range (a piece index above 2^32 - 1, say).
 */
export function encodeMessage(message: Message): Uint8Array {
  const out = new Uint8Array(encodedLength(message));
  encodeMessageInto(message, out, 0);
  return out;
}
