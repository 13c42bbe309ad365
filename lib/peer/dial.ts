/**
 * Opening BitTorrent connections: dialling through a {@linkcode Transport} with a deadline,
 * the encryption plugin's wrapping, and the 68-byte handshake both ways; one attempt per
 * connection kind the encryption plugin asks for.
 *
 * @module
 */

import { ProtocolError, ShoalError } from "../errors.ts";
import type { Duplex, Encryption, Transport } from "../types.ts";
import { parseAddress } from "../net/address.ts";
import { equalBytes } from "../net/bytes.ts";
import { tcpTransport } from "../net/tcp_transport.ts";
import { encodeHandshake, type Handshake } from "../wire/handshake.ts";
import { type HandshakenPeer, receiveHandshake } from "./handshake_read.ts";

let tcp: Transport | undefined;
/** The TCP transport dials use when given none (one, made on first use). */
function defaultTransport(): Transport {
  return tcp ??= tcpTransport();
}

/** Options for {@linkcode dialPeer}. */
export interface DialOptions {
  /** Our handshake (info-hash, peer id, reserved bits). */
  handshake: Handshake;
  /** Deadline for TCP connect plus handshake. @default {10_000} */
  timeoutMs?: number;
  /** Aborts the attempt. */
  signal?: AbortSignal;
  /** How to connect. @default {tcpTransport()} */
  transport?: Transport | undefined;
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
  parseAddress(address); // a malformed address is a TypeError, not a failed connection
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let raw: Duplex;
  try {
    raw = await (options.transport ?? defaultTransport()).connect(address, signal);
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
  /** How to connect. @default {tcpTransport()} */
  transport?: Transport | undefined;
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
        transport: options.transport,
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
