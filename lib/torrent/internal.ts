/**
 * What the parts of a torrent share and what its owner (the session) may reach that the public
 * API does not show: the typed event emitter the parts are given, and the handle incoming
 * connections go through. `mod.ts` does not export this module.
 *
 * @module
 */

import type { IncomingTarget } from "../peer/peer_listener.ts";
import type { TorrentEventMap } from "../torrent_types.ts";

/** Dispatches one of the torrent's events (the parts are given this, not the torrent). */
export type EmitTorrentEvent = <K extends keyof TorrentEventMap>(type: K, detail: TorrentEventMap[K]) => void;

const incoming = new WeakMap<object, IncomingTarget>();

/**
 * Records the handle through which incoming connections reach a torrent (called by the
 * torrent's constructor).
 *
 * @example
 * ```ts ignore
 * registerIncoming(this, { accepts, handshake, attach });
 * ```
 *
 * @param torrent The torrent.
 * @param target Its `accepts`, `handshake` and `attach`.
 */
export function registerIncoming(torrent: object, target: IncomingTarget): void {
  incoming.set(torrent, target);
}

/**
 * The handle of a torrent for incoming connections (the session's listener looks it up).
 *
 * @example
 * ```ts ignore
 * const target = incomingTarget(torrent);
 * ```
 *
 * @param torrent The torrent.
 * @returns Its handle, or undefined for an object that is not a torrent.
 */
export function incomingTarget(torrent: object): IncomingTarget | undefined {
  return incoming.get(torrent);
}
