/**
 * The sequential piece selector, for streaming: always the lowest-numbered wanted piece the
 * peer has, so a media player can start on the first bytes while the rest arrives.
 *
 * @module
 */

import type { PeerView, PieceSelector, SelectionView } from "../../lib/types.ts";

/** Options for {@linkcode sequential}. */
export interface SequentialOptions {
  /** First piece to consider (e.g. where a player is seeking to). @default {0} */
  from?: number;
}

/**
 * Creates a sequential selector.
 *
 * @example
 * ```ts
 * import { sequential } from "./sequential.ts";
 * const view = {
 *   pieceCount: 4, completedCount: 0, random: Math.random,
 *   wants: (i: number) => i !== 1, isPartial: () => false, availability: () => 1,
 * };
 * const peer = { id: "p", downloadRate: 0, has: () => true };
 * console.log([...sequential().select(view, peer, 2)]); // [0, 2]
 * ```
 *
 * @param options Where to start.
 * @returns The selector.
 */
export function sequential(options: SequentialOptions = {}): PieceSelector {
  const from = options.from ?? 0;
  return {
    name: "sequential",
    *select(view: SelectionView, peer: PeerView, max: number): Generator<number> {
      let count = 0;
      const n = view.pieceCount;
      const start = Math.min(Math.max(0, from), n);
      for (let k = 0; k < n && count < max; k++) {
        const i = (start + k) % n;
        if (view.wants(i) && peer.has(i)) {
          yield i;
          count++;
        }
      }
    },
  };
}
