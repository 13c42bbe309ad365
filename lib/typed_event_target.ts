/**
 * {@linkcode TypedEventTarget}: an `EventTarget` whose events are `CustomEvent`s typed by an
 * event map, so that `target.addEventListener("progress", (e) => e.detail.percent)` needs no
 * cast. `Torrent` and the daemon's `TorrentManager` are built on it.
 *
 * @module
 */

type AnyListener = ((event: CustomEvent<never>) => void) | EventListener | EventListenerObject | null;

/**
 * An `EventTarget` that dispatches one `CustomEvent` type per key of `M`, whose `detail` is the
 * key's value. Listeners of a known event name are typed; any other name works as on a plain
 * `EventTarget`.
 *
 * @example
 * ```ts
 * import { TypedEventTarget } from "./typed_event_target.ts";
 * class Counter extends TypedEventTarget<{ changed: { value: number } }> {
 *   #value = 0;
 *   increment(): void {
 *     this.emit("changed", { value: ++this.#value });
 *   }
 * }
 * const counter = new Counter();
 * counter.addEventListener("changed", (e) => console.log(e.detail.value)); // 1
 * counter.increment();
 * ```
 *
 * @typeParam M The event map: event name to `detail` type.
 */
export class TypedEventTarget<M extends object> extends EventTarget {
  /**
   * Listens to one of the events of the map.
   *
   * @param type The event's name.
   * @param listener Called with a `CustomEvent` whose `detail` has the event's type.
   * @param options As for `EventTarget.addEventListener`.
   */
  override addEventListener<K extends keyof M & string>(
    type: K,
    listener: (event: CustomEvent<M[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens to an event by any name (as `EventTarget.addEventListener`).
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
    // The typed listener takes the CustomEvent that emit() dispatches for that type.
    super.addEventListener(type, listener as EventListener | null, options);
  }

  /**
   * Removes a listener added with `addEventListener`.
   *
   * @param type The event's name.
   * @param listener The listener to remove.
   * @param options As for `EventTarget.removeEventListener`.
   */
  override removeEventListener<K extends keyof M & string>(
    type: K,
    listener: (event: CustomEvent<M[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener of an event by any name (as `EventTarget.removeEventListener`).
   *
   * @param type The event's name.
   * @param listener The listener to remove.
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
    // The typed listener takes the CustomEvent that emit() dispatches for that type.
    super.removeEventListener(type, listener as EventListener | null, options);
  }

  /**
   * Dispatches one event of the map.
   *
   * @param type The event's name.
   * @param detail Its detail.
   */
  protected emit<K extends keyof M & string>(type: K, detail: M[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
