/**
 * Message Stream Encryption (MSE/PE) as an {@linkcode Encryption} plugin: the obfuscation
 * libtorrent, Transmission and Vuze use, with four policies.
 *
 * | policy    | dials                    | offers         | selects (incoming) | plaintext incoming |
 * | --------- | ------------------------ | -------------- | ------------------ | ------------------ |
 * | `require` | encrypted                | RC4            | RC4                | refused            |
 * | `prefer`  | encrypted, then plain    | RC4, plaintext | RC4 if offered     | accepted           |
 * | `allow`   | plain, then encrypted    | RC4, plaintext | plaintext if offered | accepted         |
 * | `disable` | plain                    | -              | refused            | accepted           |
 *
 * "Dials" lists the fresh connections tried in order: under `prefer` a failed encrypted
 * attempt is retried in plaintext on a new connection.
 *
 * @module
 */

import type { Duplex, Encryption, InfoHashLookup } from "../../lib/types.ts";
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  initiateHandshake,
  MseError,
  type MseHandshake,
  type MseMethod,
  respondHandshake,
} from "./mse_handshake.ts";
import type { Rc4 } from "./rc4.ts";

export { MseError, type MseMethod } from "./mse_handshake.ts";

/** How much encryption a session insists on. */
export type MsePolicy = "require" | "prefer" | "allow" | "disable";

/** Options of {@linkcode mse}. */
export interface MseOptions {
  /**
   * `require`: RC4 only, both ways; `prefer`: encrypt when the peer can; `allow`: plaintext
   * first, encryption when the peer insists; `disable`: plaintext only.
   *
   * @default {"prefer"}
   */
  policy?: MsePolicy;
}

/** The duplex an MSE handshake yields, and the method it agreed on. */
export interface MseDuplex extends Duplex {
  /** "rc4" when the payload is encrypted, "plaintext" when only the handshake was. */
  readonly method: MseMethod;
}

const POLICIES: readonly MsePolicy[] = ["require", "prefer", "allow", "disable"];
const ATTEMPTS: Record<MsePolicy, readonly ("encrypted" | "plaintext")[]> = {
  require: ["encrypted"],
  prefer: ["encrypted", "plaintext"],
  allow: ["plaintext", "encrypted"],
  disable: ["plaintext"],
};
const PROVIDE: Record<MsePolicy, number> = {
  require: CRYPTO_RC4,
  prefer: CRYPTO_RC4 | CRYPTO_PLAINTEXT,
  allow: CRYPTO_RC4 | CRYPTO_PLAINTEXT,
  disable: 0,
};
/** Bytes asked of the connection per read when the consumer does not bring its own buffer. */
const CHUNK_SIZE = 65536;

/**
 * Makes the MSE plugin for a policy.
 *
 * @example Require encryption on every connection of a session
 * ```ts ignore
 * import { BaseSession } from "../../lib/session.ts";
 * import { rarestFirst } from "../selection/rarest_first.ts";
 * import { mse } from "./mse.ts";
 * await using session = new BaseSession({
 *   downloadDir: "./downloads",
 *   selector: rarestFirst(),
 *   encryption: mse({ policy: "require" }),
 * });
 * ```
 *
 * @example The plugin's answers
 * ```ts
 * import { mse } from "./mse.ts";
 * const plugin = mse({ policy: "prefer" });
 * console.log(plugin.name, plugin.outgoingAttempts, plugin.acceptsPlaintext);
 * // "mse-prefer" ["encrypted", "plaintext"] true
 * ```
 *
 * @param options The policy.
 * @returns The plugin.
 * @throws {TypeError} When the policy is not one of the four.
 */
export function mse(options: MseOptions = {}): Encryption {
  const policy = options.policy ?? "prefer";
  if (!POLICIES.includes(policy)) {
    throw new TypeError(`Invalid MSE policy '${policy}': expected ${POLICIES.join(", ")}`);
  }
  const name = `mse-${policy}`;
  return {
    name,
    outgoingAttempts: ATTEMPTS[policy],
    acceptsPlaintext: policy !== "require",
    async outgoing(raw: Duplex, infoHash: Uint8Array, signal: AbortSignal): Promise<MseDuplex> {
      try {
        if (policy === "disable") {
          throw new MseError(`Encryption '${name}' makes no encrypted connections`);
        }
        if (infoHash.length !== 20) {
          throw new TypeError(`Invalid info-hash: ${infoHash.length} bytes instead of 20`);
        }
        return wrap(raw, await initiateHandshake(raw, infoHash, { provide: PROVIDE[policy], signal }));
      } catch (error) {
        raw.close();
        throw error;
      }
    },
    async incoming(
      raw: Duplex,
      lookup: InfoHashLookup,
      signal: AbortSignal,
    ): Promise<{ duplex: MseDuplex; infoHash: Uint8Array }> {
      try {
        if (policy === "disable") {
          throw new MseError(
            `Refused an encrypted connection: encryption '${name}' accepts plaintext connections only`,
          );
        }
        const handshake = await respondHandshake(raw, lookup, { select: selector(policy), signal });
        return { duplex: wrap(raw, handshake), infoHash: handshake.infoHash };
      } catch (error) {
        raw.close();
        throw error;
      }
    },
  };
}

/** The `crypto_select` choice of a policy, given the peer's `crypto_provide`. */
function selector(policy: MsePolicy): (provide: number) => number | null {
  return (provide) => {
    const rc4 = (provide & CRYPTO_RC4) !== 0;
    const plain = (provide & CRYPTO_PLAINTEXT) !== 0;
    if (policy === "require") return rc4 ? CRYPTO_RC4 : null;
    if (policy === "allow") return plain ? CRYPTO_PLAINTEXT : rc4 ? CRYPTO_RC4 : null;
    return rc4 ? CRYPTO_RC4 : plain ? CRYPTO_PLAINTEXT : null;
  };
}

/** The duplex to speak BitTorrent over after a handshake. */
function wrap(raw: Duplex, handshake: MseHandshake): MseDuplex {
  const cipher = handshake.method === "rc4";
  const readable = payloadReadable(
    handshake.initial,
    handshake.leftover,
    handshake.readable,
    cipher ? handshake.decrypt : null,
  );
  let writable: WritableStream<Uint8Array>;
  if (cipher) writable = encryptingWritable(handshake.writer, handshake.encrypt);
  else {
    handshake.writer.releaseLock();
    writable = raw.writable;
  }
  return {
    method: handshake.method,
    encryption: handshake.method,
    readable,
    writable,
    close: () => raw.close(),
  };
}

/**
 * A byte stream of the payload: `initial` (plaintext), then `leftover` and the rest of
 * `source` deciphered with `decrypt` (or as they are, without one). Every chunk is a
 * fresh buffer or the consumer's own: when the consumer reads with a BYOB reader and the
 * source is a byte stream, bytes are read straight into the consumer's buffer and
 * deciphered in place.
 */
function payloadReadable(
  initial: Uint8Array,
  leftover: Uint8Array,
  source: ReadableStream<Uint8Array>,
  decrypt: Rc4 | null,
): ReadableStream<Uint8Array> {
  // Bytes ready for the consumer, already deciphered.
  let pending = initial;
  let rest: Uint8Array | null = leftover.length > 0 ? leftover : null;
  let byob: ReadableStreamBYOBReader | null = null;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  try {
    byob = source.getReader({ mode: "byob" });
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    reader = source.getReader(); // not a byte stream: read its chunks and copy them
  }
  const decipher = (input: Uint8Array, output: Uint8Array): void => {
    if (decrypt) decrypt.process(input, output);
    else if (input !== output) output.set(input);
  };
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: CHUNK_SIZE,
    async pull(controller: ReadableByteStreamController) {
      // With autoAllocateChunkSize there is always a request, also for default readers.
      const request = controller.byobRequest!;
      const view = request.view!;
      const target = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      if (pending.length === 0 && rest !== null) {
        pending = rest;
        rest = null;
        decipher(pending, pending); // our own copy, from the handshake reader
      }
      if (pending.length > 0) {
        const n = Math.min(target.length, pending.length);
        target.set(pending.subarray(0, n));
        pending = pending.subarray(n);
        request.respond(n);
        return;
      }
      if (byob !== null) {
        const { value, done } = await byob.read(target);
        if (done) {
          controller.close();
          if (value !== undefined) request.respondWithNewView(value);
          else request.respond(0);
          return;
        }
        decipher(value, value);
        request.respondWithNewView(value);
        return;
      }
      const { value, done } = await reader!.read();
      if (done) {
        controller.close();
        request.respond(0);
        return;
      }
      const n = Math.min(target.length, value.length);
      decipher(value.subarray(0, n), target);
      if (value.length > n) {
        pending = new Uint8Array(value.length - n);
        decipher(value.subarray(n), pending);
      }
      request.respond(n);
    },
    cancel(reason) {
      return (byob ?? reader!).cancel(reason);
    },
  });
}

/** A writable side that enciphers each chunk into a fresh buffer (the caller's is left alone). */
function encryptingWritable(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  encrypt: Rc4,
): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write(chunk) {
      return writer.write(encrypt.process(chunk, new Uint8Array(chunk.length)));
    },
    close() {
      return writer.close();
    },
    abort(reason) {
      return writer.abort(reason);
    },
  });
}
