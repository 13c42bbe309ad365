/**
 * Answering an incoming BitTorrent connection: plaintext or encrypted (the first 20 bytes
 * tell), the peer's handshake, the caller's choice of torrent, and ours back.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { Duplex, Encryption, InfoHashLookup } from "../types.ts";
import { abortable } from "../net/abortable.ts";
import { equalBytes } from "../net/bytes.ts";
import {
  decodeHandshake,
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  PROTOCOL,
} from "../wire/handshake.ts";
import { exactReader, type HandshakenPeer, prepend, receiveHandshake } from "./handshake_read.ts";

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
