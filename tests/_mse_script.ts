/**
 * A scripted Message Stream Encryption peer for tests: it plays either side of the MSE
 * handshake step by step, with fixed pad lengths and knobs to get each step wrong (a
 * degenerate key, a pad longer than allowed, a wrong method...), and can split what it
 * sends at any byte position. It talks through {@linkcode ScriptIo}, so the same script
 * runs over TCP (a {@linkcode FakeConnection}) or an in-memory duplex ({@linkcode duplexIo}).
 *
 * It reuses the plugin's arithmetic (Diffie-Hellman, SHA-1, RC4) but not its handshake
 * logic; interop with libtorrent and Transmission proves the arithmetic.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import {
  CRYPTO_RC4,
  KEY_LENGTH,
  KeyPair,
  keystream,
  MSE_PRIME,
  sha1,
} from "../plugins/encryption/mse_handshake.ts";
import type { Rc4 } from "../plugins/encryption/rc4.ts";
import type { Duplex } from "../lib/types.ts";
import { sleep, withDeadline } from "./_fake_peer.ts";

/** How a script reads and writes raw bytes. */
export interface ScriptIo {
  /** Sends bytes; false when the connection is gone. */
  write(bytes: Uint8Array): Promise<boolean>;
  /** Reads exactly `n` bytes; null when the connection ended first. */
  readExactly(n: number, timeoutMs?: number): Promise<Uint8Array | null>;
}

/**
 * A {@linkcode ScriptIo} over a {@linkcode Duplex} (an in-memory pair end).
 *
 * @example
 * ```ts ignore
 * const io = duplexIo(end);
 * await io.write(new Uint8Array([1]));
 * ```
 *
 * @param duplex The end to drive.
 * @returns The io.
 */
export function duplexIo(duplex: Duplex): ScriptIo {
  const writer = duplex.writable.getWriter();
  const reader = duplex.readable.getReader();
  let buffer = new Uint8Array(0);
  let ended = false;
  return {
    async write(bytes) {
      try {
        await writer.write(bytes);
        return true;
      } catch (error) {
        if (error instanceof Error) return false; // closed by the other side
        throw error;
      }
    },
    async readExactly(n, timeoutMs = 5000) {
      while (buffer.length < n && !ended) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await withDeadline(reader.read(), timeoutMs, `${n} bytes from the plugin`);
        } catch (error) {
          if (error instanceof Error && error.name !== "FakePeerTimeout") {
            ended = true; // the connection failed: same as closed for a script
            break;
          }
          throw error;
        }
        if (result.done) {
          ended = true;
          break;
        }
        const joined = new Uint8Array(buffer.length + result.value.length);
        joined.set(buffer);
        joined.set(result.value, buffer.length);
        buffer = joined;
      }
      if (buffer.length < n) return null;
      const out = buffer.slice(0, n);
      buffer = buffer.subarray(n);
      return out;
    },
  };
}

/** Sends bytes through an io, with a segment boundary at one absolute offset of the stream. */
class Sender {
  readonly #io: ScriptIo;
  readonly #splitAt: number | undefined;
  #sent = 0;

  constructor(io: ScriptIo, splitAt: number | undefined) {
    this.#io = io;
    this.#splitAt = splitAt;
  }

  /** Bytes sent so far. */
  get sent(): number {
    return this.#sent;
  }

  async send(bytes: Uint8Array): Promise<boolean> {
    const cut = this.#splitAt === undefined ? -1 : this.#splitAt - this.#sent;
    this.#sent += bytes.length;
    if (cut <= 0 || cut >= bytes.length) return await this.#io.write(bytes);
    if (!(await this.#io.write(bytes.slice(0, cut)))) return false;
    await sleep(2); // lets the first part leave as its own segment
    return await this.#io.write(bytes.slice(cut));
  }
}

/** What an MSE initiator script does. */
export interface InitiatorScript {
  /** The torrent asked for (SKEY). */
  infoHash: Uint8Array;
  /** Sent instead of our public key (and then nothing more is sent). */
  publicKey?: Uint8Array;
  /** Length of PadA. @default {10} */
  padA?: number;
  /** Length of PadC. @default {5} */
  padC?: number;
  /** Value of the len(PadC) field, when it should lie. @default the real length */
  padCField?: number;
  /** crypto_provide. @default {CRYPTO_RC4} */
  provide?: number;
  /** The 8 bytes sent as VC. @default zeros */
  vc?: Uint8Array;
  /** The initial payload (IA), e.g. a BitTorrent handshake. @default empty */
  ia?: Uint8Array;
  /** Absolute offset of what we send where a segment boundary falls. */
  splitAt?: number;
}

/** A script's view of a finished handshake. */
export interface ScriptedSession {
  /** The method the other side selected (initiator) or we selected (responder). */
  select: number;
  /** crypto_provide as received (responder) or sent (initiator). */
  provide: number;
  /** Sends payload with the agreed method. */
  send(bytes: Uint8Array): Promise<boolean>;
  /** Reads `n` payload bytes with the agreed method; null on end of stream. */
  read(n: number): Promise<Uint8Array | null>;
}

/**
 * Plays side A: sends Ya and PadA, reads Yb, sends the rest of its half, and finds B's
 * answer. Returns null when the other side closed the connection at any point.
 *
 * @example
 * ```ts ignore
 * const session = await runInitiator(io, { infoHash, ia: encodeHandshake(ours) });
 * ```
 *
 * @param io The connection.
 * @param script What to send.
 * @returns The session, or null when the connection ended.
 */
export async function runInitiator(io: ScriptIo, script: InitiatorScript): Promise<ScriptedSession | null> {
  const out = new Sender(io, script.splitAt);
  const keys = new KeyPair();
  if (script.publicKey) {
    await out.send(script.publicKey);
    return null;
  }
  if (!(await out.send(concat(keys.publicKey, randomBytes(script.padA ?? 10))))) return null;
  const yb = await io.readExactly(KEY_LENGTH);
  if (yb === null) return null;
  const secret = keys.secret(yb);
  const encrypt = keystream("keyA", secret, script.infoHash);
  const decrypt = keystream("keyB", secret, script.infoHash);
  const padC = randomBytes(script.padC ?? 5);
  const ia = script.ia ?? new Uint8Array(0);
  const provide = script.provide ?? CRYPTO_RC4;
  const body = concat(
    script.vc ?? new Uint8Array(8),
    u32(provide),
    u16(script.padCField ?? padC.length),
    padC,
    u16(ia.length),
    ia,
  );
  const obfuscated = xor(sha1("req2", script.infoHash), sha1("req3", secret));
  if (!(await out.send(concat(sha1("req1", secret), obfuscated, encrypt.process(body))))) return null;
  // B's answer: PadB (any length up to 512), then ENCRYPT(VC).
  const vc = decrypt.process(new Uint8Array(8));
  if (!(await scanFor(io, vc, 512))) return null;
  const head = await io.readExactly(6);
  if (head === null) return null;
  decrypt.process(head);
  const select = (head[0]! << 24 | head[1]! << 16 | head[2]! << 8 | head[3]!) >>> 0;
  const padD = await io.readExactly(head[4]! << 8 | head[5]!);
  if (padD === null) return null;
  decrypt.process(padD);
  return session(out, io, select, provide, select === CRYPTO_RC4 ? { encrypt, decrypt } : null);
}

/** What an MSE responder script does. */
export interface ResponderScript {
  /** The torrent it serves (SKEY). */
  infoHash: Uint8Array;
  /** Sent instead of our public key; then the script waits for the other side to hang up. */
  publicKey?: Uint8Array;
  /** Length of PadB. @default {10} */
  padB?: number;
  /** Length of PadD. @default {5} */
  padD?: number;
  /** Value of the len(PadD) field, when it should lie. @default the real length */
  padDField?: number;
  /** crypto_select, from the offered crypto_provide. @default RC4 */
  select?: (provide: number) => number;
  /** Absolute offset of what we send where a segment boundary falls. */
  splitAt?: number;
}

/**
 * Plays side B: reads Ya, sends Yb and PadB, finds A's sync point, checks the request is
 * for its torrent, reads IA, answers. Returns null when the other side closed the
 * connection at any point; throws when A's bytes are wrong.
 *
 * @example
 * ```ts ignore
 * const session = await runResponder(io, { infoHash });
 * const handshake = await session?.read(68);
 * ```
 *
 * @param io The connection.
 * @param script What to send.
 * @returns The session (with the IA readable first), or null when the connection ended.
 */
export async function runResponder(
  io: ScriptIo,
  script: ResponderScript,
): Promise<(ScriptedSession & { ia: Uint8Array }) | null> {
  const out = new Sender(io, script.splitAt);
  const ya = await io.readExactly(KEY_LENGTH);
  if (ya === null) return null;
  const keys = new KeyPair();
  if (script.publicKey) {
    await out.send(script.publicKey);
    return null;
  }
  const secret = keys.secret(ya);
  if (!(await out.send(concat(keys.publicKey, randomBytes(script.padB ?? 10))))) return null;
  if (!(await scanFor(io, sha1("req1", secret), 512))) return null;
  const obfuscated = await io.readExactly(20);
  if (obfuscated === null) return null;
  const expected = xor(sha1("req2", script.infoHash), sha1("req3", secret));
  if (!equal(obfuscated, expected)) throw new Error("Initiator asked for another torrent");
  const decrypt = keystream("keyA", secret, script.infoHash);
  const encrypt = keystream("keyB", secret, script.infoHash);
  const head = await io.readExactly(14);
  if (head === null) return null;
  decrypt.process(head);
  if (!head.subarray(0, 8).every((b) => b === 0)) throw new Error("Initiator sent a wrong VC");
  const provide = (head[8]! << 24 | head[9]! << 16 | head[10]! << 8 | head[11]!) >>> 0;
  const padC = await io.readExactly(head[12]! << 8 | head[13]!);
  if (padC === null) return null;
  decrypt.process(padC);
  const iaLength = await io.readExactly(2);
  if (iaLength === null) return null;
  decrypt.process(iaLength);
  const ia = await io.readExactly(iaLength[0]! << 8 | iaLength[1]!);
  if (ia === null) return null;
  decrypt.process(ia);
  const select = script.select ? script.select(provide) : CRYPTO_RC4;
  const padD = randomBytes(script.padD ?? 5);
  const answer = concat(new Uint8Array(8), u32(select), u16(script.padDField ?? padD.length), padD);
  if (!(await out.send(encrypt.process(answer)))) return null;
  const s = session(out, io, select, provide, select === CRYPTO_RC4 ? { encrypt, decrypt } : null);
  return { ...s, ia };
}

/** Consumes bytes up to and including `pattern`, which must start within `maxSkip` bytes. */
async function scanFor(io: ScriptIo, pattern: Uint8Array, maxSkip: number): Promise<boolean> {
  let window: Uint8Array = new Uint8Array(0);
  while (window.length < maxSkip + pattern.length) {
    const next = await io.readExactly(1);
    if (next === null) return false;
    window = concat(window, next);
    if (window.length >= pattern.length && equal(window.subarray(window.length - pattern.length), pattern)) {
      return true;
    }
  }
  throw new Error("Scripted peer found no sync point within the window");
}

function session(
  out: Sender,
  io: ScriptIo,
  select: number,
  provide: number,
  cipher: { encrypt: Rc4; decrypt: Rc4 } | null,
): ScriptedSession {
  return {
    select,
    provide,
    send: (bytes) => out.send(cipher ? cipher.encrypt.process(bytes.slice()) : bytes),
    async read(n) {
      const bytes = await io.readExactly(n);
      return bytes === null || cipher === null ? bytes : cipher.decrypt.process(bytes);
    },
  };
}

/**
 * Public keys no peer may send: 0, 1, p-1, p, and 2^768-1 (each 96 bytes).
 *
 * @example
 * ```ts ignore
 * for (const [name, key] of degenerateKeys()) console.log(name, key.length);
 * ```
 *
 * @returns Each key with its name.
 */
export function degenerateKeys(): [string, Uint8Array][] {
  const number = (n: number) => {
    const key = new Uint8Array(KEY_LENGTH);
    key[KEY_LENGTH - 1] = n;
    return key;
  };
  const pMinus1 = MSE_PRIME.slice();
  pMinus1[KEY_LENGTH - 1] = MSE_PRIME[KEY_LENGTH - 1]! - 1; // p is odd: no borrow
  return [
    ["0", number(0)],
    ["1", number(1)],
    ["p-1", pMinus1],
    ["p", MSE_PRIME.slice()],
    ["2^768-1", new Uint8Array(KEY_LENGTH).fill(0xff)],
  ];
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

function u16(n: number): Uint8Array {
  return new Uint8Array([n >>> 8 & 0xff, n & 0xff]);
}

function u32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24 & 0xff, n >>> 16 & 0xff, n >>> 8 & 0xff, n & 0xff]);
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  return a.map((x, i) => x ^ b[i]!);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
