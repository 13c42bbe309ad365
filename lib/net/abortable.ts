/**
 * {@linkcode abortable}: race a promise against an `AbortSignal`, removing the listener when
 * either side settles, and hand a value that arrives after the abort to a clean-up callback
 * (a connection that opened too late is closed, not leaked).
 *
 * @module
 */

/**
 * Races `promise` against `signal`: rejects with the signal's reason on abort, otherwise
 * settles as the promise does. A value that arrives after the abort goes to `onLate`; a late
 * failure is ignored, since the attempt was abandoned.
 *
 * @example
 * ```ts
 * import { abortable } from "./abortable.ts";
 * const controller = new AbortController();
 * const value = await abortable(Promise.resolve(1), controller.signal, () => {});
 * console.log(value); // 1
 * ```
 *
 * @param promise What to wait for.
 * @param signal Ends the wait early (none: the promise itself).
 * @param onLate Receives a value that arrived after the abort (to close or release it).
 * @returns The promise's value.
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onLate: (value: T) => void = () => {},
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.then(onLate, () => {/* the attempt was abandoned; its failure does not matter */});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    // A value that arrives after the abort reaches onLate through the handler below, once.
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) onLate(v);
        else resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
