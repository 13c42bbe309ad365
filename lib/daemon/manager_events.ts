/**
 * The events a `TorrentManager` dispatches, and a typed `EventTarget` for them.
 *
 * @module
 */

import type { DaemonTorrentState } from "./snapshot.ts";

/** Events of a `TorrentManager`, with their `detail`. */
export interface ManagerEventMap {
  /** A torrent was added (its record is durable). */
  added: { id: number; hash: string };
  /** A torrent was removed (its record is gone). */
  removed: { id: number; hash: string };
  /** A torrent went from one state to another. */
  "state-changed": { id: number; hash: string; from: DaemonTorrentState; to: DaemonTorrentState };
}

type AnyListener = ((event: CustomEvent<never>) => void) | EventListener | EventListenerObject | null;

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
export class ManagerEvents extends EventTarget {
  /**
   * Listens to one of the manager's events.
   *
   * @param type The event's name.
   * @param listener Called with a `CustomEvent` whose `detail` has the event's type.
   * @param options As for `EventTarget.addEventListener`.
   */
  override addEventListener<K extends keyof ManagerEventMap>(
    type: K,
    listener: (event: CustomEvent<ManagerEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens to an event by any name.
   *
   * @param type The event's name.
   * @param listener Called with the event.
   * @param options As for `EventTarget.addEventListener`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: AnyListener,
    options?: boolean | AddEventListenerOptions,
  ): void {
    // The typed listener takes the CustomEvent dispatched for that type.
    super.addEventListener(type, listener as EventListener | null, options);
  }

  /**
   * Removes a listener added with {@linkcode ManagerEvents.addEventListener}.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget.removeEventListener`.
   */
  override removeEventListener<K extends keyof ManagerEventMap>(
    type: K,
    listener: (event: CustomEvent<ManagerEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener of an event by any name.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget.removeEventListener`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: AnyListener,
    options?: boolean | EventListenerOptions,
  ): void {
    // The typed listener takes the CustomEvent dispatched for that type.
    super.removeEventListener(type, listener as EventListener | null, options);
  }

  /**
   * Dispatches one event.
   *
   * @param type The event's name.
   * @param detail Its detail.
   */
  protected emit<K extends keyof ManagerEventMap>(type: K, detail: ManagerEventMap[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
