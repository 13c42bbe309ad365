/**
 * Opening BitTorrent connections: dialling with a deadline, exchanging the 68-byte
 * handshake both ways, and turning a TCP connection into a {@linkcode Duplex}.
 *
 * @module
 */

import { ProtocolError, ShoalError } from "../errors.ts";
import type { Duplex, Encryption, InfoHashLookup } from "../types.ts";
import { ByteReader } from "../wire/byte_reader.ts";
import { abortable } from "../net/abortable.ts";
import { parseAddress } from "../net/address.ts";
import { equalBytes } from "../net/bytes.ts";
import { byobReader } from "./connection.ts";
import {
  decodeHandshake,
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  PROTOCOL,
  readHandshake,
} from "../wire/handshake.ts";

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

/**
 * Wraps a Deno connection as a {@linkcode Duplex} whose `close()` never throws.
 *
 * @example
 * ```ts ignore
 * const duplex = connDuplex(await Deno.connect({ hostname: "127.0.0.1", port: 6881 }));
 * ```
 *
 * @param conn The connection.
 * @returns The duplex.
 */
export function connDuplex(conn: Deno.Conn): Duplex {
  let closed = false;
  return {
    readable: conn.readable,
    writable: conn.writable,
    // Deno's socket sink resolves a write after writing all of it: the buffer is free again.
    reusableWrites: true,
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch (error) {
        // Closing an already-closed resource is the only expected failure here.
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    },
  };
}

/** Options for {@linkcode dialPeer}. */
export interface DialOptions {
  /** Our handshake (info-hash, peer id, reserved bits). */
  handshake: Handshake;
  /** Deadline for TCP connect plus handshake. @default {10_000} */
  timeoutMs?: number;
  /** Aborts the attempt. */
  signal?: AbortSignal;
  /** Wraps the raw connection before the handshake (encryption). @default identity */
  wrap?: (raw: Duplex, infoHash: Uint8Array, signal: AbortSignal) => Promise<Duplex>;
}

/**
 * Connects to a peer and exchanges handshakes. Rejects if the peer answers for another
 * torrent.
 *
 * @example
 * ```ts ignore
 * const { duplex, remote } = await dialPeer("127.0.0.1:6881", { handshake: { infoHash, peerId, reserved } });
 * ```
 *
 * @param address "host:port".
 * @param options Our handshake and the deadline.
 * @returns The handshaken connection.
 */
export async function dialPeer(address: string, options: DialOptions): Promise<HandshakenPeer> {
  const { hostname, port } = parseAddress(address);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const connecting = Deno.connect({ hostname, port, transport: "tcp" });
  let raw: Duplex;
  try {
    const conn = await abortable(connecting, signal, (late) => connDuplex(late).close());
    conn.setNoDelay(true);
    raw = connDuplex(conn);
  } catch (error) {
    if (signal.aborted && deadline.aborted) {
      throw new ProtocolError(`Cannot connect to ${address}: timed out after ${timeoutMs} ms`);
    }
    throw new ProtocolError(`Cannot connect to ${address}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const duplex = options.wrap ? await options.wrap(raw, options.handshake.infoHash, signal) : raw;
    const writer = duplex.writable.getWriter();
    await writer.write(encodeHandshake(options.handshake));
    writer.releaseLock();
    const { remote, readable } = await receiveHandshake(duplex.readable, { signal, timeoutMs });
    if (!equalBytes(remote.infoHash, options.handshake.infoHash)) {
      throw new ProtocolError(`Peer ${address} answered with a different info-hash`);
    }
    return {
      remote,
      encryption: options.wrap ? (duplex.encryption ?? "encrypted") : "none",
      duplex: {
        readable,
        writable: duplex.writable,
        close: () => duplex.close(),
        ...(duplex.reusableWrites ? { reusableWrites: true } : {}),
      },
    };
  } catch (error) {
    raw.close();
    if (deadline.aborted) {
      throw new ProtocolError(`Handshake with ${address} timed out after ${timeoutMs} ms`);
    }
    throw error;
  }
}

/** Options for {@linkcode dialWithEncryption}. */
export interface EncryptedDialOptions {
  /** Our handshake. */
  handshake: Handshake;
  /** The encryption plugin; absent: one plaintext attempt. */
  encryption?: Encryption | undefined;
  /** Deadline per attempt. @default {10_000} */
  timeoutMs?: number;
  /** Aborts every attempt. */
  signal?: AbortSignal;
  /** Told about each failed attempt (for logs). */
  onAttemptFailed?: (attempt: "encrypted" | "plaintext", error: unknown) => void;
}

/**
 * Dials a peer once per attempt the encryption plugin asks for (for "prefer": encrypted, then
 * plaintext on a fresh connection) and returns the first that completes the handshakes.
 *
 * @example
 * ```ts ignore
 * const peer = await dialWithEncryption("127.0.0.1:6881", { handshake, encryption: mse() });
 * ```
 *
 * @param address "host:port".
 * @param options Handshake, plugin, deadline.
 * @returns The handshaken connection.
 * @throws the last attempt's error; a plaintext-only dial refused at once says the peer may
 * require encryption.
 */
export async function dialWithEncryption(
  address: string,
  options: EncryptedDialOptions,
): Promise<HandshakenPeer> {
  const encryption = options.encryption;
  const attempts = encryption?.outgoingAttempts ?? ["plaintext"];
  if (attempts.length === 0) {
    throw new ShoalError("ENCRYPTION", `Encryption '${encryption?.name}' allows no connection`);
  }
  let last: unknown;
  for (const attempt of attempts) {
    try {
      return await dialPeer(address, {
        handshake: options.handshake,
        timeoutMs: options.timeoutMs ?? 10_000,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(attempt === "encrypted" && encryption
          ? {
            wrap: (raw: Duplex, infoHash: Uint8Array, signal: AbortSignal) =>
              encryption.outgoing(raw, infoHash, signal),
          }
          : {}),
      });
    } catch (error) {
      last = error;
      if (options.signal?.aborted) break;
      options.onAttemptFailed?.(attempt, error);
    }
  }
  if (!attempts.includes("encrypted") && /after 0 bytes/.test(String((last as Error)?.message))) {
    throw new ShoalError(
      "ENCRYPTION",
      `${(last as Error).message} (the peer may require encryption, and encryption '${
        encryption?.name ?? "none"
      }' dials plaintext only)`,
      { cause: last },
    );
  }
  throw last;
}

/** Options for {@linkcode acceptPeer}. */
export interface AcceptOptions {
  /** Given the remote handshake, returns ours, or null to refuse (unknown torrent, no slot). */
  answer: (remote: Handshake) => Handshake | null;
  /** The encryption plugin; without one only plaintext handshakes are accepted. */
  encryption?: Encryption;
  /** Finds a torrent from an obfuscated info-hash (for encrypted handshakes). */
  lookup?: InfoHashLookup;
  /** Deadline for the whole exchange. @default {10_000} */
  timeoutMs?: number;
  /** Aborts the exchange. */
  signal?: AbortSignal;
}

/**
 * Answers an incoming connection. The first 20 bytes tell a plaintext BitTorrent handshake
 * (byte 19, "BitTorrent protocol") from an encrypted one; an encrypted connection is handed,
 * those bytes included, to the encryption plugin. Then the peer's handshake is read, the
 * caller picks the torrent, and ours is sent back.
 *
 * @example
 * ```ts ignore
 * const peer = await acceptPeer(duplex, { answer: (remote) => torrentFor(remote.infoHash)?.handshake() ?? null });
 * ```
 *
 * @param raw The accepted connection.
 * @param options How to answer, encryption, deadline.
 * @returns The handshaken connection.
 */
export async function acceptPeer(raw: Duplex, options: AcceptOptions): Promise<HandshakenPeer> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  try {
    const source = exactReader(raw.readable);
    const first = await abortable(
      source.read(20),
      signal,
      () => {/* the connection is closed by the caller */},
    );
    let remote: Handshake;
    let duplex: Duplex;
    let protection = "none";
    if (equalBytes(first, PROTOCOL_PREFIX)) {
      if (options.encryption && !options.encryption.acceptsPlaintext) {
        throw new ProtocolError(
          `Refused a plaintext connection: encryption '${options.encryption.name}' requires it`,
        );
      }
      const rest = await abortable(
        source.read(HANDSHAKE_LENGTH - 20),
        signal,
        () => {/* closed by the caller */},
      );
      const whole = new Uint8Array(HANDSHAKE_LENGTH);
      whole.set(first);
      whole.set(rest, 20);
      remote = decodeHandshake(whole);
      duplex = {
        readable: source.rest(),
        writable: raw.writable,
        close: () => raw.close(),
        ...(raw.reusableWrites ? { reusableWrites: true } : {}),
      };
    } else {
      const encryption = options.encryption;
      if (encryption === undefined) {
        throw new ProtocolError(
          "Peer did not start with a BitTorrent handshake (encrypted connections are off)",
        );
      }
      const replay = prepend(first, source.rest());
      const wrapped = await encryption.incoming(
        { readable: replay, writable: raw.writable, close: () => raw.close() },
        options.lookup ?? (() => undefined),
        signal,
      );
      const received = await receiveHandshake(wrapped.duplex.readable, { timeoutMs, signal });
      remote = received.remote;
      if (!equalBytes(remote.infoHash, wrapped.infoHash)) {
        throw new ProtocolError(
          "Encrypted peer's handshake names another torrent than its encryption handshake",
        );
      }
      protection = wrapped.duplex.encryption ?? "encrypted";
      duplex = {
        readable: received.readable,
        writable: wrapped.duplex.writable,
        close: () => wrapped.duplex.close(),
      };
    }
    const ours = options.answer(remote);
    if (ours === null) {
      throw new ProtocolError("Peer asked for a torrent we do not have (or no slot is free)");
    }
    const writer = duplex.writable.getWriter();
    await writer.write(encodeHandshake(ours));
    writer.releaseLock();
    return { remote, duplex, encryption: protection };
  } catch (error) {
    if (deadline.aborted) throw new ProtocolError(`Incoming handshake timed out after ${timeoutMs} ms`);
    throw error;
  }
}

const PROTOCOL_PREFIX = PROTOCOL.subarray(0, 20);

/**
 * Reads exact byte counts from the start of a stream, then hands the rest on. On a byte
 * stream it uses a BYOB reader, so it never reads past what was asked and `rest()` is the
 * original stream (zero-copy reads stay possible); otherwise it buffers through a
 * {@linkcode ByteReader}.
 */
function exactReader(stream: ReadableStream<Uint8Array>): {
  read(n: number): Promise<Uint8Array>;
  rest(): ReadableStream<Uint8Array>;
} {
  const byob = byobReader(stream);
  if (byob === null) {
    const reader = new ByteReader(stream);
    return { read: async (n) => (await reader.readExactly(n)).slice(), rest: () => reader.rest() };
  }
  return {
    async read(n: number): Promise<Uint8Array> {
      let buffer = new ArrayBuffer(n);
      let filled = 0;
      while (filled < n) {
        const { value, done } = await byob.read(new Uint8Array(buffer, filled, n - filled));
        if (done || value === undefined) {
          throw new ProtocolError(`Connection closed after ${filled} of ${n} bytes`);
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
 * import { prepend } from "./handshake_io.ts";
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
  const byob = byobReader(stream);
  if (byob === null) {
    const reader = new ByteReader(stream);
    const remote = await readHandshake(reader, {
      timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { remote, readable: reader.rest() };
  }
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const bytes = await abortable(
    (async () => {
      let buffer = new ArrayBuffer(HANDSHAKE_LENGTH);
      let filled = 0;
      while (filled < HANDSHAKE_LENGTH) {
        const { value, done } = await byob.read(new Uint8Array(buffer, filled, HANDSHAKE_LENGTH - filled));
        if (done || value === undefined) {
          throw new ProtocolError(`Connection closed during the handshake after ${filled} bytes`);
        }
        filled += value.byteLength;
        buffer = value.buffer as ArrayBuffer;
      }
      return new Uint8Array(buffer);
    })(),
    signal,
    () => {/* the caller closes the connection; the late bytes are not needed */},
  ).catch((error) => {
    if (deadline.aborted) throw new ProtocolError(`Handshake timed out after ${timeoutMs} ms`);
    throw error;
  });
  byob.releaseLock();
  return { remote: decodeHandshake(bytes), readable: stream };
}
