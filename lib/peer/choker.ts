/**
 * The choker: which interested peers we upload to. Tit-for-tat while downloading (peers
 * that give us the most get our slots), fastest-upload while seeding, plus one optimistic
 * slot rotated so newcomers get a chance.
 *
 * @module
 */

/** What the choker sees of a peer. */
export interface ChokerPeer {
  /** Stable id. */
  readonly id: string;
  /** The peer wants data from us. */
  readonly peerInterested: boolean;
  /** Bytes per second we receive from it. */
  readonly downloadRate: number;
  /** Bytes per second we send to it. */
  readonly uploadRate: number;
}

/** Options for {@linkcode chooseUnchoked}. */
export interface ChokeOptions {
  /** Upload slots in all, optimistic included. @default {4} */
  slots?: number;
  /** True when we are seeding (rank by upload rate instead of download rate). */
  seeding: boolean;
  /** Id of the current optimistic unchoke, kept if still interested. */
  optimistic?: string | undefined;
  /** Random source, for choosing a new optimistic peer. @default {Math.random} */
  random?: () => number;
}

/**
 * Decides which peers to unchoke.
 *
 * @example
 * ```ts
 * import { chooseUnchoked } from "./choker.ts";
 * const peers = [
 *   { id: "a", peerInterested: true, downloadRate: 10, uploadRate: 0 },
 *   { id: "b", peerInterested: true, downloadRate: 99, uploadRate: 0 },
 *   { id: "c", peerInterested: false, downloadRate: 500, uploadRate: 0 },
 * ];
 * const { unchoke } = chooseUnchoked(peers, { slots: 2, seeding: false, random: () => 0 });
 * console.log([...unchoke].sort()); // ["a", "b"]
 * ```
 *
 * @param peers Connected peers.
 * @param options Slots and mode.
 * @returns The set of ids to unchoke, and the optimistic one.
 */
export function chooseUnchoked(
  peers: readonly ChokerPeer[],
  options: ChokeOptions,
): { unchoke: Set<string>; optimistic: string | undefined } {
  const slots = Math.max(1, options.slots ?? 4);
  const random = options.random ?? Math.random;
  const interested = peers.filter((p) => p.peerInterested);
  const rate = (p: ChokerPeer) => (options.seeding ? p.uploadRate : p.downloadRate);
  const ranked = [...interested].sort((a, b) => rate(b) - rate(a) || (a.id < b.id ? -1 : 1));
  const unchoke = new Set(ranked.slice(0, slots - 1).map((p) => p.id));
  let optimistic = options.optimistic;
  if (optimistic === undefined || unchoke.has(optimistic) || !interested.some((p) => p.id === optimistic)) {
    const rest = interested.filter((p) => !unchoke.has(p.id));
    optimistic = rest.length > 0 ? rest[Math.floor(random() * rest.length)]!.id : undefined;
  }
  if (optimistic !== undefined) unchoke.add(optimistic);
  return { unchoke, optimistic };
}
