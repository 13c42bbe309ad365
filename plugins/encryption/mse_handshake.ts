/**
 * The Message Stream Encryption (MSE, also "Protocol Encryption") handshake, both sides,
 * as libtorrent, Transmission and Vuze speak it:
 *
 * ```
 * 1 A->B: Ya, PadA
 * 2 B->A: Yb, PadB
 * 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
 *         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
 * 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
 * 5 A->B: ENCRYPT2(payload)
 * ```
 *
 * Y is a 768-bit Diffie-Hellman public key (generator 2), S the shared secret, SKEY the
 * info-hash, HASH SHA-1, VC eight zero bytes, ENCRYPT RC4 keyed with
 * HASH('keyA', S, SKEY) from A and HASH('keyB', S, SKEY) from B, first 1024 bytes of
 * keystream dropped. ENCRYPT2 is the method B selected: RC4 again, or plaintext.
 *
 * Everything the peer controls is bounded: pads are at most 512 bytes, the sync points
 * are looked for within that window only, public keys are checked (not 0, 1, p-1 or
 * above), and every wait ends when the signal aborts.
 *
 * @module
 */

import { createDiffieHellman, createHash, randomBytes, randomInt } from "node:crypto";
import type { Duplex, InfoHashLookup } from "../../lib/types.ts";
import { Rc4 } from "./rc4.ts";

/** The 768-bit safe prime of MSE (big-endian, 96 bytes). */
export const MSE_PRIME: Uint8Array = hexBytes(
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
/** Bytes in a public key and in the shared secret. */
export const KEY_LENGTH = 96;
/** Longest pad (PadA, PadB, PadC, PadD) a peer may send. */
export const MAX_PAD_LENGTH = 512;
/** `crypto_provide` / `crypto_select` bit: plaintext after the handshake. */
export const CRYPTO_PLAINTEXT = 0x01;
/** `crypto_provide` / `crypto_select` bit: RC4 after the handshake. */
export const CRYPTO_RC4 = 0x02;
/** Bytes of keystream dropped after keying RC4. */
const DISCARD = 1024;
const VC_LENGTH = 8;
const PRIME = BigInt("0x" + hexOf(MSE_PRIME));
const ENCODER = new TextEncoder();

/** Thrown when an encryption handshake fails: bad input from the peer, a closed connection, an abort. */
export class MseError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, starting with a capital, no final period.
   * @param options The cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MseError";
  }
}

/** Method chosen for the payload after the handshake. */
export type MseMethod = "rc4" | "plaintext";

/** A finished handshake: what the stream wrapper needs to carry on. */
export interface MseHandshake {
  /** The payload method both sides agreed on. */
  readonly method: MseMethod;
  /** The torrent the connection is for. */
  readonly infoHash: Uint8Array;
  /** Our outgoing keystream (continues where the handshake stopped). */
  readonly encrypt: Rc4;
  /** The incoming keystream (continues where the handshake stopped). */
  readonly decrypt: Rc4;
  /** Plaintext to deliver before anything else: the initiator's initial payload (IA). */
  readonly initial: Uint8Array;
  /** Bytes already read from the connection after the handshake, still as sent (not deciphered). */
  readonly leftover: Uint8Array;
  /** The connection's readable side, unlocked, positioned after `leftover`. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The writer of the connection's writable side (its lock is held). */
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
}

/** Options of {@linkcode initiateHandshake}. */
export interface InitiateOptions {
  /** `crypto_provide` bits ({@linkcode CRYPTO_PLAINTEXT}, {@linkcode CRYPTO_RC4}). */
  provide: number;
  /** Aborts the handshake. */
  signal: AbortSignal;
}

/** Options of {@linkcode respondHandshake}. */
export interface RespondOptions {
  /** Picks one `crypto_select` bit from the peer's `crypto_provide`, or null to refuse. */
  select: (provide: number) => number | null;
  /** Aborts the handshake. */
  signal: AbortSignal;
}

/**
 * Runs the handshake on a connection we opened (side A). Sends no initial payload: the
 * caller's first bytes go out through the agreed method afterwards.
 *
 * @example
 * ```ts ignore
 * const hs = await initiateHandshake(raw, infoHash, { provide: CRYPTO_RC4, signal });
 * ```
 *
 * @param raw The connection.
 * @param infoHash The torrent (20 bytes).
 * @param options Methods offered, and the abort signal.
 * @returns The finished handshake.
 * @throws {MseError} When the peer misbehaves, the connection closes, or the signal aborts.
 */
export async function initiateHandshake(
  raw: Duplex,
  infoHash: Uint8Array,
  options: InitiateOptions,
): Promise<MseHandshake> {
  const { signal } = options;
  const reader = new HandshakeReader(raw.readable, signal);
  const writer = raw.writable.getWriter();
  const keys = new KeyPair();
  await send(writer, concat(keys.publicKey, randomPad()), signal);
  const secret = keys.secret(await reader.read(KEY_LENGTH, "the peer's public key"));
  const encrypt = keystream("keyA", secret, infoHash);
  const decrypt = keystream("keyB", secret, infoHash);
  const padC = randomPad();
  const negotiation = new Uint8Array(VC_LENGTH + 4 + 2 + padC.length + 2);
  const view = new DataView(negotiation.buffer);
  view.setUint32(VC_LENGTH, options.provide);
  view.setUint16(VC_LENGTH + 4, padC.length);
  negotiation.set(padC, VC_LENGTH + 6);
  // len(IA) stays 0: the caller's BitTorrent handshake follows as payload.
  const obfuscated = xor(sha1("req2", infoHash), sha1("req3", secret));
  await send(writer, concat(sha1("req1", secret), obfuscated, encrypt.process(negotiation)), signal);

  const vc = decrypt.process(new Uint8Array(VC_LENGTH));
  await reader.skipTo(vc, MAX_PAD_LENGTH, "verification constant");
  const head = decrypt.process(await reader.read(6, "crypto_select"));
  const select = u32(head, 0);
  const padD = u16(head, 4);
  if (padD > MAX_PAD_LENGTH) {
    throw new MseError(`Peer sent an invalid PadD: length ${padD} exceeds ${MAX_PAD_LENGTH}`);
  }
  decrypt.process(await reader.read(padD, "PadD"));
  if ((select !== CRYPTO_PLAINTEXT && select !== CRYPTO_RC4) || (select & options.provide) === 0) {
    throw new MseError(
      `Peer selected an invalid crypto method: 0x${select.toString(16)} for crypto_provide 0x${
        options.provide.toString(16)
      }`,
    );
  }
  const { leftover, readable } = reader.release();
  return {
    method: select === CRYPTO_RC4 ? "rc4" : "plaintext",
    infoHash,
    encrypt,
    decrypt,
    initial: new Uint8Array(0),
    leftover,
    readable,
    writer,
  };
}

/**
 * Runs the handshake on a connection the peer opened (side B): finds the torrent by its
 * obfuscated info-hash, reads the initial payload, and selects the payload method.
 *
 * @example
 * ```ts ignore
 * const hs = await respondHandshake(raw, lookup, { select: (p) => p & CRYPTO_RC4 || null, signal });
 * ```
 *
 * @param raw The connection, from its first byte.
 * @param lookup Finds a torrent from SHA-1("req2" + info-hash).
 * @param options How to select the method, and the abort signal.
 * @returns The finished handshake, with the initiator's initial payload.
 * @throws {MseError} When the peer misbehaves, the torrent is unknown, no method is
 * acceptable, the connection closes, or the signal aborts.
 */
export async function respondHandshake(
  raw: Duplex,
  lookup: InfoHashLookup,
  options: RespondOptions,
): Promise<MseHandshake> {
  const { signal } = options;
  const reader = new HandshakeReader(raw.readable, signal);
  const writer = raw.writable.getWriter();
  const remoteKey = await reader.read(KEY_LENGTH, "the peer's public key");
  checkPublicKey(remoteKey);
  const keys = new KeyPair();
  const secret = keys.secret(remoteKey);
  await send(writer, concat(keys.publicKey, randomPad()), signal);

  await reader.skipTo(sha1("req1", secret), MAX_PAD_LENGTH, "sync point HASH('req1', S)");
  const obfuscated = xor(await reader.read(20, "the obfuscated info-hash"), sha1("req3", secret));
  const infoHash = lookup(obfuscated);
  if (infoHash === undefined) {
    throw new MseError("Peer asked for an unknown torrent: no torrent matches its obfuscated info-hash");
  }
  const decrypt = keystream("keyA", secret, infoHash);
  const encrypt = keystream("keyB", secret, infoHash);
  const head = decrypt.process(await reader.read(VC_LENGTH + 6, "the verification constant"));
  if (!head.subarray(0, VC_LENGTH).every((b) => b === 0)) {
    throw new MseError("Peer sent a wrong verification constant: its keys do not match ours");
  }
  const provide = u32(head, VC_LENGTH);
  const padC = u16(head, VC_LENGTH + 4);
  if (padC > MAX_PAD_LENGTH) {
    throw new MseError(`Peer sent an invalid PadC: length ${padC} exceeds ${MAX_PAD_LENGTH}`);
  }
  decrypt.process(await reader.read(padC, "PadC"));
  const iaLength = u16(decrypt.process(await reader.read(2, "len(IA)")), 0);
  const initial = decrypt.process(await reader.read(iaLength, "the initial payload"));
  const select = options.select(provide);
  if (select === null) {
    throw new MseError(`Peer offers no crypto method we accept: crypto_provide 0x${provide.toString(16)}`);
  }
  const padD = randomPad();
  const answer = new Uint8Array(VC_LENGTH + 4 + 2 + padD.length);
  const view = new DataView(answer.buffer);
  view.setUint32(VC_LENGTH, select);
  view.setUint16(VC_LENGTH + 4, padD.length);
  answer.set(padD, VC_LENGTH + 6);
  await send(writer, encrypt.process(answer), signal);
  const { leftover, readable } = reader.release();
  return {
    method: select === CRYPTO_RC4 ? "rc4" : "plaintext",
    infoHash,
    encrypt,
    decrypt,
    initial,
    leftover,
    readable,
    writer,
  };
}

/**
 * A Diffie-Hellman key pair on the MSE group, with a 160-bit private key.
 *
 * @example Both sides reach the same secret
 * ```ts
 * import { KeyPair } from "./mse_handshake.ts";
 * const a = new KeyPair(), b = new KeyPair();
 * console.log(a.secret(b.publicKey).join() === b.secret(a.publicKey).join()); // true
 * ```
 */
export class KeyPair {
  readonly #dh = createDiffieHellman(MSE_PRIME, 2);
  /** Our public key, 96 bytes big-endian. */
  readonly publicKey: Uint8Array;

  /** Generates the pair. */
  constructor() {
    this.#dh.setPrivateKey(randomBytes(20));
    this.#dh.generateKeys();
    this.publicKey = leftPad(this.#dh.getPublicKey(), KEY_LENGTH);
  }

  /**
   * Computes the shared secret S from the peer's public key, after checking it.
   *
   * @param remote The peer's public key (96 bytes).
   * @returns S, 96 bytes big-endian.
   * @throws {MseError} When the key is degenerate (see {@linkcode checkPublicKey}).
   */
  secret(remote: Uint8Array): Uint8Array {
    checkPublicKey(remote);
    return leftPad(this.#dh.computeSecret(remote), KEY_LENGTH);
  }
}

/**
 * Rejects a public key that would make the shared secret guessable: 0, 1, p-1, or not
 * below p (it must be 96 bytes).
 *
 * @example
 * ```ts
 * import { checkPublicKey, KEY_LENGTH } from "./mse_handshake.ts";
 * const one = new Uint8Array(KEY_LENGTH);
 * one[KEY_LENGTH - 1] = 1;
 * try {
 *   checkPublicKey(one);
 * } catch (error) {
 *   console.log((error as Error).message); // "Peer sent a degenerate public key: 1"
 * }
 * ```
 *
 * @param key The key, big-endian.
 * @throws {MseError} When the key is unacceptable.
 */
export function checkPublicKey(key: Uint8Array): void {
  if (key.length !== KEY_LENGTH) {
    throw new MseError(`Peer sent an invalid public key: ${key.length} bytes instead of ${KEY_LENGTH}`);
  }
  const y = BigInt("0x" + hexOf(key));
  if (y <= 1n || y === PRIME - 1n) {
    throw new MseError(`Peer sent a degenerate public key: ${y === PRIME - 1n ? "p-1" : y}`);
  }
  if (y >= PRIME) throw new MseError("Peer sent an invalid public key: not below the prime");
}

/**
 * SHA-1 of an ASCII label followed by byte strings: MSE's HASH('req1', S) and friends.
 *
 * @example
 * ```ts
 * import { sha1 } from "./mse_handshake.ts";
 * console.log(sha1("abc").length); // 20
 * ```
 *
 * @param label The ASCII prefix ("req1", "keyA", ...).
 * @param parts Byte strings hashed after it.
 * @returns The 20-byte digest.
 */
export function sha1(label: string, ...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha1").update(ENCODER.encode(label));
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/**
 * One direction's RC4 keystream: keyed with HASH(name, S, SKEY), first 1024 bytes dropped.
 *
 * @example
 * ```ts
 * import { keystream } from "./mse_handshake.ts";
 * const a = keystream("keyA", new Uint8Array(96), new Uint8Array(20));
 * const b = keystream("keyA", new Uint8Array(96), new Uint8Array(20));
 * console.log(b.process(a.process(new Uint8Array([1, 2, 3])))); // Uint8Array(3) [1, 2, 3]
 * ```
 *
 * @param name "keyA" (initiator to responder) or "keyB" (responder to initiator).
 * @param secret S.
 * @param infoHash SKEY.
 * @returns The keystream, ready for the first handshake byte.
 */
export function keystream(name: "keyA" | "keyB", secret: Uint8Array, infoHash: Uint8Array): Rc4 {
  const rc4 = new Rc4(sha1(name, secret, infoHash));
  rc4.discard(DISCARD);
  return rc4;
}

/**
 * Reads the start of a connection during the handshake: exact byte counts and bounded
 * scans for a sync pattern, every wait cut short by the signal. Buffers what it reads
 * (at most a chunk beyond what was asked), and hands it back with {@linkcode HandshakeReader.release}.
 *
 * @example
 * ```ts
 * import { HandshakeReader } from "./mse_handshake.ts";
 * const stream = ReadableStream.from([new Uint8Array([9, 9, 1, 2]), new Uint8Array([3, 4])]);
 * const reader = new HandshakeReader(stream, new AbortController().signal);
 * await reader.skipTo(new Uint8Array([1, 2]), 512, "marker");
 * console.log(await reader.read(1, "a byte")); // Uint8Array(1) [3]
 * console.log(reader.release().leftover); // Uint8Array(1) [4]
 * ```
 */
export class HandshakeReader {
  readonly #stream: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #signal: AbortSignal;
  /** Unconsumed bytes (a private copy). */
  #buffer = new Uint8Array(0);
  #total = 0;

  /**
   * Takes the stream's reader lock.
   *
   * @param stream The connection's readable side.
   * @param signal Cuts every wait short.
   */
  constructor(stream: ReadableStream<Uint8Array>, signal: AbortSignal) {
    this.#stream = stream;
    this.#reader = stream.getReader();
    this.#signal = signal;
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @param n Byte count.
   * @param what Names the field in error messages.
   * @returns A fresh array of `n` bytes.
   * @throws {MseError} When the connection ends first or the signal aborts.
   */
  async read(n: number, what: string): Promise<Uint8Array> {
    while (this.#buffer.length < n) await this.#more(what);
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /**
   * Consumes bytes up to and including the first occurrence of `pattern`, which must
   * start within the next `maxSkip + 1` bytes.
   *
   * @param pattern The bytes to find.
   * @param maxSkip Most bytes that may come before it.
   * @param what Names the pattern in error messages.
   * @throws {MseError} When the pattern is not within the window, the connection ends, or
   * the signal aborts.
   */
  async skipTo(pattern: Uint8Array, maxSkip: number, what: string): Promise<void> {
    let from = 0;
    for (;;) {
      const buffer = this.#buffer;
      const last = Math.min(buffer.length - pattern.length, maxSkip);
      for (let at = from; at <= last; at++) {
        let k = 0;
        while (k < pattern.length && buffer[at + k] === pattern[k]) k++;
        if (k === pattern.length) {
          this.#buffer = buffer.subarray(at + pattern.length);
          return;
        }
      }
      from = Math.max(from, last + 1);
      if (from > maxSkip) {
        throw new MseError(`Peer sent no ${what} within ${maxSkip} bytes of padding`);
      }
      await this.#more(what);
    }
  }

  /**
   * Gives the stream back: the bytes read but not consumed, and the unlocked stream.
   *
   * @returns The leftover bytes and the stream.
   */
  release(): { leftover: Uint8Array; readable: ReadableStream<Uint8Array> } {
    this.#reader.releaseLock();
    return { leftover: this.#buffer, readable: this.#stream };
  }

  async #more(what: string): Promise<void> {
    const { value, done } = await untilAborted(this.#reader.read(), this.#signal);
    if (done) {
      throw new MseError(
        `Connection closed during the encryption handshake after ${this.#total} bytes, waiting for ${what}`,
      );
    }
    this.#total += value.length;
    const joined = new Uint8Array(this.#buffer.length + value.length);
    joined.set(this.#buffer);
    joined.set(value, this.#buffer.length);
    this.#buffer = joined;
  }
}

/** Writes handshake bytes, cut short by the signal. */
async function send(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  bytes: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  await untilAborted(writer.write(bytes), signal);
}

/** Settles like `promise`, or rejects with an {@linkcode MseError} as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  const aborted = () =>
    new MseError(`Encryption handshake aborted: ${describe(signal.reason)}`, { cause: signal.reason });
  const ignoreLate = () => {/* abandoned on abort: the connection is being closed, its outcome is moot */};
  if (signal.aborted) {
    promise.then(ignoreLate, ignoreLate);
    return Promise.reject(aborted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.then(ignoreLate, ignoreLate);
      reject(aborted());
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function describe(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/** Random pad of 0 to 512 bytes. */
function randomPad(): Uint8Array {
  return new Uint8Array(randomBytes(randomInt(MAX_PAD_LENGTH + 1)));
}

function leftPad(bytes: Uint8Array, length: number): Uint8Array {
  if (bytes.length > length) throw new MseError(`Invalid key material: ${bytes.length} bytes`);
  const out = new Uint8Array(length);
  out.set(bytes, length - bytes.length);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function hexOf(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
