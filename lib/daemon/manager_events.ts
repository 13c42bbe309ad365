/**
 * The events a `TorrentManager` dispatches, and a typed `EventTarget` for them.
 *
 * @module
 */

import type { DaemonTorrentState } from "./snapshot.ts";
import { TypedEventTarget } from "../typed_event_target.ts";

/** Events of a `TorrentManager`, with their `detail`. */
export interface ManagerEventMap {
  /** A torrent was added (its record is durable). */
  added: { id: number; hash: string };
  /** A torrent was removed (its record is gone). */
  removed: { id: number; hash: string };
  /** A torrent went from one state to another. */
  "state-changed": { id: number; hash: string; from: DaemonTorrentState; to: DaemonTorrentState };
}

/**
 * An `EventTarget` whose listeners are typed by {@linkcode ManagerEventMap}.
 *
 * @example
 * ```ts
 * import { ManagerEvents } from "./manager_events.ts";
 * const events = new ManagerEvents();
 * events.addEventListener("added", (e) => console.log(e.detail.id));
 * ```
 */
export class ManagerEvents extends TypedEventTarget<ManagerEventMap> {}
