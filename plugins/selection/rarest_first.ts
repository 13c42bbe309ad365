/**
 * The rarest-first piece selector (shoal's default): finish partial pieces first, then take
 * the pieces fewest peers have, choosing at random among equally rare ones. The first few
 * pieces are chosen at random instead, so a new peer quickly has something to share.
 *
 * @module
 */

import type { PeerView, PieceSelector, SelectionView } from "../../lib/types.ts";

/** Options for {@linkcode rarestFirst}. */
export interface RarestFirstOptions {
  /** While fewer than this many pieces are complete, pick at random instead of by rarity. @default {4} */
  randomFirstPieces?: number;
}

/**
 * Creates a rarest-first selector.
 *
 * @example
 * ```ts
 * import { rarestFirst } from "./rarest_first.ts";
 * const selector = rarestFirst({ randomFirstPieces: 0 });
 * const view = {
 *   pieceCount: 3, completedCount: 0, random: Math.random,
 *   wants: () => true, isPartial: () => false, availability: (i: number) => [3, 1, 2][i]!,
 * };
 * const peer = { id: "p", downloadRate: 0, has: () => true };
 * console.log([...selector.select(view, peer, 1)]); // [1]
 * ```
 *
 * @param options Tuning.
 * @returns The selector.
 */
export function rarestFirst(options: RarestFirstOptions = {}): PieceSelector {
  const randomFirst = options.randomFirstPieces ?? 4;
  return {
    name: "rarest-first",
    select(view: SelectionView, peer: PeerView, max: number): number[] {
      if (max <= 0) return [];
      const n = view.pieceCount;
      const partial: number[] = [];
      // Candidates bucketed by availability, scanning from a random start so ties break at random.
      const start = Math.floor(view.random() * n);
      let best: number[] = [];
      let bestAvail = Infinity;
      const byAvail = new Map<number, number[]>();
      const randomMode = view.completedCount < randomFirst;
      for (let k = 0; k < n; k++) {
        const i = (start + k) % n;
        if (!view.wants(i) || !peer.has(i)) continue;
        if (view.isPartial(i)) {
          partial.push(i);
          continue;
        }
        if (randomMode) {
          best.push(i);
          if (best.length >= max) break;
          continue;
        }
        const a = view.availability(i);
        if (a < bestAvail && max === 1) {
          bestAvail = a;
          best = [i];
        } else if (max > 1) {
          let bucket = byAvail.get(a);
          if (bucket === undefined) byAvail.set(a, bucket = []);
          if (bucket.length < max) bucket.push(i);
        }
      }
      const out = partial.slice(0, max);
      if (out.length >= max) return out;
      if (randomMode || max === 1) return out.concat(best).slice(0, max);
      const levels = [...byAvail.keys()].sort((a, b) => a - b);
      for (const level of levels) {
        for (const i of byAvail.get(level)!) {
          out.push(i);
          if (out.length >= max) return out;
        }
      }
      return out;
    },
  };
}
