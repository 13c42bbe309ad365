/**
 * The BitTorrent handshake (BEP 3): `\x13BitTorrent protocol`, 8 reserved bytes, the
 * 20-byte info-hash and the 20-byte peer id, 68 bytes in all. The reserved bytes
 * advertise extensions: BEP 6 fast (`reserved[7] & 0x04`), BEP 10 extension protocol
 * (`reserved[5] & 0x10`) and BEP 5 DHT (`reserved[7] & 0x01`).
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { ByteReader } from "./byte_reader.ts";

/** The first 20 bytes of every plaintext handshake: the length 19, then `BitTorrent protocol`. */
export const PROTOCOL: Uint8Array = new Uint8Array([19, ...new TextEncoder().encode("BitTorrent protocol")]);

/** Size of a handshake in bytes. */
export const HANDSHAKE_LENGTH: number = 68;

/** A decoded handshake. */
export interface Handshake {
  /** The torrent's 20-byte info-hash. */
  infoHash: Uint8Array;
  /** The sender's 20-byte peer id. */
  peerId: Uint8Array;
  /** The 8 reserved bytes (extension bits). */
  reserved: Uint8Array;
}

/** Which extensions to advertise in the reserved bytes. */
export interface ReservedBitsOptions {
  /** BEP 6 fast extension. @default {false} */
  fast?: boolean;
  /** BEP 10 extension protocol. @default {false} */
  extensions?: boolean;
  /** BEP 5 DHT (the peer may send a `port` message). @default {false} */
  dht?: boolean;
}

/** Options of {@linkcode readHandshake}. */
export interface ReadHandshakeOptions {
  /** Aborts the read; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Deadline for the whole handshake in milliseconds; `Infinity` disables it.
   *
   * @default {10_000}
   */
  timeoutMs?: number;
}

/**
 * Builds the 8 reserved bytes advertising the given extensions.
 *
 * @example
 * ```ts
 * import { reservedBits } from "./handshake.ts";
 * console.log(reservedBits({ fast: true, extensions: true })); // Uint8Array(8) [0, 0, 0, 0, 0, 16, 0, 4]
 * ```
 *
 * @param options The extensions to advertise.
 * @returns A new 8-byte array.
 */
export function reservedBits(options: ReservedBitsOptions): Uint8Array {
  const reserved = new Uint8Array(8);
  if (options.extensions) reserved[5]! |= 0x10;
  if (options.fast) reserved[7]! |= 0x04;
  if (options.dht) reserved[7]! |= 0x01;
  return reserved;
}

/**
 * Tells whether the reserved bytes advertise the BEP 6 fast extension.
 *
 * @example
 * ```ts
 * import { reservedBits, supportsFast } from "./handshake.ts";
 * console.log(supportsFast(reservedBits({ fast: true }))); // true
 * ```
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns True when bit `0x04` of byte 7 is set.
 */
export function supportsFast(reserved: Uint8Array): boolean {
  return ((reserved[7] ?? 0) & 0x04) !== 0;
}

/**
 * Tells whether the reserved bytes advertise the BEP 10 extension protocol.
 *
 * @example
 * ```ts
 * import { reservedBits, supportsExtensions } from "./handshake.ts";
 * console.log(supportsExtensions(reservedBits({ extensions: true }))); // true
 * ```
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns True when bit `0x10` of byte 5 is set.
 */
export function supportsExtensions(reserved: Uint8Array): boolean {
  return ((reserved[5] ?? 0) & 0x10) !== 0;
}

/**
 * Tells whether the reserved bytes advertise BEP 5 DHT support.
 *
 * @example
 * ```ts
 * import { reservedBits, supportsDht } from "./handshake.ts";
 * console.log(supportsDht(reservedBits({ dht: true }))); // true
 * ```
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns True when bit `0x01` of byte 7 is set.
 */
export function supportsDht(reserved: Uint8Array): boolean {
  return ((reserved[7] ?? 0) & 0x01) !== 0;
}

function checkField(value: Uint8Array, name: string, length: number): void {
  if (value.length !== length) {
    throw new RangeError(`Cannot encode handshake: ${name} is ${value.length} bytes, expected ${length}`);
  }
}

/**
 * Encodes a handshake.
 *
 * @example
 * ```ts
 * import { encodeHandshake, reservedBits } from "./handshake.ts";
 * const bytes = encodeHandshake({
 *   infoHash: new Uint8Array(20),
 *   peerId: new TextEncoder().encode("-SH0010-abcdefghijkl"),
 *   reserved: reservedBits({ fast: true }),
 * });
 * console.log(bytes.length); // 68
 * ```
 *
 * @param handshake The fields to send.
 * @returns The 68 bytes of the handshake.
 * @throws {RangeError} when a field has the wrong length.
 */
export function encodeHandshake(handshake: Handshake): Uint8Array {
  checkField(handshake.reserved, "reserved", 8);
  checkField(handshake.infoHash, "infoHash", 20);
  checkField(handshake.peerId, "peerId", 20);
  const out = new Uint8Array(HANDSHAKE_LENGTH);
  out.set(PROTOCOL, 0);
  out.set(handshake.reserved, 20);
  out.set(handshake.infoHash, 28);
  out.set(handshake.peerId, 48);
  return out;
}

function checkProtocol(bytes: Uint8Array): void {
  if (bytes[0] !== 19) {
    throw new ProtocolError(`Invalid handshake: protocol string length ${bytes[0]}, expected 19`);
  }
  for (let i = 1; i < 20; i++) {
    if (bytes[i] !== PROTOCOL[i]) {
      const seen = Array.from(
        bytes.subarray(1, 20),
        (b) => b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".",
      )
        .join("");
      throw new ProtocolError(`Invalid handshake: unknown protocol string: ${JSON.stringify(seen)}`);
    }
  }
}

/**
 * Decodes a 68-byte handshake. The fields are copies, not views of `bytes`.
 *
 * @example
 * ```ts
 * import { decodeHandshake, encodeHandshake, reservedBits } from "./handshake.ts";
 * const bytes = encodeHandshake({
 *   infoHash: new Uint8Array(20).fill(1),
 *   peerId: new Uint8Array(20).fill(2),
 *   reserved: reservedBits({ extensions: true }),
 * });
 * console.log(decodeHandshake(bytes).infoHash[0]); // 1
 * ```
 *
 * @param bytes Exactly 68 bytes.
 * @returns The decoded handshake.
 * @throws {ProtocolError} when the length, the protocol string length or the protocol string is wrong.
 */
export function decodeHandshake(bytes: Uint8Array): Handshake {
  if (bytes.length !== HANDSHAKE_LENGTH) {
    throw new ProtocolError(`Invalid handshake: length ${bytes.length}, expected ${HANDSHAKE_LENGTH}`);
  }
  checkProtocol(bytes);
  return {
    reserved: bytes.slice(20, 28),
    infoHash: bytes.slice(28, 48),
    peerId: bytes.slice(48, 68),
  };
}

/**
 * Reads a handshake from a {@linkcode ByteReader}. The protocol string is checked as
 * soon as its 20 bytes arrive, so a peer speaking something else is rejected without
 * waiting for 68 bytes. Bytes after the handshake stay in the reader.
 *
 * @example
 * ```ts
 * import { ByteReader } from "./byte_reader.ts";
 * import { encodeHandshake, readHandshake, reservedBits } from "./handshake.ts";
 * const bytes = encodeHandshake({
 *   infoHash: new Uint8Array(20),
 *   peerId: new Uint8Array(20),
 *   reserved: reservedBits({ fast: true }),
 * });
 * const reader = new ByteReader(ReadableStream.from([bytes.subarray(0, 30), bytes.subarray(30)]));
 * const handshake = await readHandshake(reader, { timeoutMs: 5_000 });
 * console.log(handshake.peerId.length); // 20
 * ```
 *
 * @param reader Where to read from.
 * @param options Cancellation and deadline.
 * @returns The handshake, its fields copied.
 * @throws {ProtocolError} when the handshake is invalid, the stream ends early, or the deadline passes
 *   (`Handshake timed out after N ms`).
 * @throws {unknown} `options.signal.reason` when the signal aborts.
 */
export async function readHandshake(
  reader: ByteReader,
  options: ReadHandshakeOptions = {},
): Promise<Handshake> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!(timeoutMs >= 0)) throw new RangeError(`Invalid timeoutMs: ${timeoutMs}`);
  const outer = options.signal;
  outer?.throwIfAborted();
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer!.reason);
  outer?.addEventListener("abort", onAbort, { once: true });
  const timer = Number.isFinite(timeoutMs)
    ? setTimeout(() => {
      controller.abort(new ProtocolError(`Handshake timed out after ${timeoutMs} ms`));
    }, timeoutMs)
    : undefined;
  try {
    const head = await reader.readExactly(20, controller.signal);
    checkProtocol(head);
    const tail = await reader.readExactly(HANDSHAKE_LENGTH - 20, controller.signal);
    return {
      reserved: tail.slice(0, 8),
      infoHash: tail.slice(8, 28),
      peerId: tail.slice(28, 48),
    };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}
