/**
 * The session's peer listener on any {@linkcode Transport}: each accepted connection passes
 * the connection limits, then the handshake gate (a cap on connections waiting for their
 * handshake, globally and per address, and the descriptor budget; see
 * `listener_limits.ts`), then the handshake with its deadline, and is handed to the torrent
 * it names. These limits apply to every transport; only accept back-off is the transport's
 * own (TCP's, in `tcp_transport.ts`).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Encryption, InfoHashLookup, TransportConnection, TransportListener } from "../types.ts";
import type { Handshake } from "../wire/handshake.ts";
import { serveConnections } from "../net/accept_loop.ts";
import { hostOf } from "../net/address.ts";
import type { DescriptorBudget } from "../net/descriptor_budget.ts";
import { PendingGate } from "../net/pending_gate.ts";
import { PressureLog } from "../net/pressure_log.ts";
import { acceptPeer } from "./accept.ts";
import type { HandshakenPeer } from "./handshake_read.ts";
import { MAX_PENDING_HANDSHAKES, MAX_PENDING_HANDSHAKES_PER_ADDRESS } from "./listener_limits.ts";

/** What an incoming connection may be handed to: a torrent. */
export interface IncomingTarget {
  /** Whether it takes a connection from this address now. */
  accepts(address: string): boolean;
  /** Our handshake for it. */
  handshake(): Handshake;
  /** Takes the handshaken connection. */
  attach(address: string, peer: HandshakenPeer): void;
}

/** Options for {@linkcode servePeers}. */
export interface ServePeersOptions {
  /** Where refusals, pressure and dropped handshakes are logged (category `session`). */
  logger: Logger;
  /** Sockets waiting for a handshake are counted against it. */
  budget: DescriptorBudget;
  /** Most connections waiting for their handshake. @default {MAX_PENDING_HANDSHAKES} */
  maxPendingHandshakes?: number | undefined;
  /** Most from one address. @default {MAX_PENDING_HANDSHAKES_PER_ADDRESS} */
  maxPendingHandshakesPerAddress?: number | undefined;
  /** Whether the connection limits (global, per address) leave room for one from `address`. */
  admits: (address: string) => boolean;
  /** The torrent a handshake's info-hash names, if any. */
  target: (infoHash: Uint8Array) => IncomingTarget | undefined;
  /** The encryption plugin; without one only plaintext handshakes are accepted. */
  encryption?: Encryption | undefined;
  /** Finds a torrent from an obfuscated info-hash (encrypted handshakes). */
  lookup: InfoHashLookup;
}

/**
 * Serves a listener until it is closed; never rejects.
 *
 * @example
 * ```ts ignore
 * servePeers(bindListener(tcpTransport(), undefined, 6881), {
 *   logger, budget, admits: () => true, target: (hash) => torrents.get(hex(hash)), lookup,
 * });
 * ```
 *
 * @param listener The bound listener.
 * @param options Limits, where connections go.
 * @returns A promise that resolves once the listener is closed.
 */
export function servePeers(listener: TransportListener, options: ServePeersOptions): Promise<void> {
  const pending = new PendingGate({
    maxPending: options.maxPendingHandshakes ?? MAX_PENDING_HANDSHAKES,
    maxPendingPerAddress: options.maxPendingHandshakesPerAddress ?? MAX_PENDING_HANDSHAKES_PER_ADDRESS,
  }, options.budget);
  const pressure = new PressureLog("session", options.logger);
  const logger = options.logger;

  const accepted = (duplex: TransportConnection): void => {
    const address = duplex.remoteAddress;
    const host = hostOf(address);
    if (!options.admits(address)) {
      logger.debug("session", "Refused an incoming connection: connection limit reached", { peer: address });
      duplex.close();
      return;
    }
    const evictedBefore = pending.evicted;
    const ticket = pending.admit(host, () => duplex.close());
    if (typeof ticket === "string") {
      duplex.close();
      pressure.note(
        ticket === "address"
          ? "Peer listener under pressure: refused connections from an address with too many waiting for a handshake"
          : "Peer listener under pressure: refused connections, no file descriptor left for sockets",
        { peer: address, waiting: pending.size, sockets: options.budget.used },
      );
      return;
    }
    if (pending.evicted > evictedBefore) {
      pressure.note(
        "Peer listener under pressure: too many connections waiting for a handshake, the oldest evicted",
        { peer: address, waiting: pending.size, evicted: pending.evicted },
      );
    }
    incoming(duplex, address, options).catch((error) => {
      logger.debug("session", `Incoming connection dropped: ${(error as Error).message}`, { peer: address });
    }).finally(() => ticket.release());
  };

  // Never ends before the listener is closed: a transport retries failed accepts itself.
  return serveConnections(listener, {
    name: "Peer listener",
    category: "session",
    logger,
    onConnection: accepted,
    close: (duplex) => duplex.close(),
  });
}

async function incoming(
  duplex: TransportConnection,
  address: string,
  options: ServePeersOptions,
): Promise<void> {
  let torrent: IncomingTarget | undefined;
  try {
    const peer = await acceptPeer(duplex, {
      answer: (remote) => {
        torrent = options.target(remote.infoHash);
        if (torrent === undefined || !torrent.accepts(address)) return null;
        return torrent.handshake();
      },
      ...(options.encryption ? { encryption: options.encryption } : {}),
      lookup: options.lookup,
    });
    torrent!.attach(address, peer);
  } catch (error) {
    duplex.close();
    throw error;
  }
}
