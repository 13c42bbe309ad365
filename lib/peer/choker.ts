/**
 * The choker: which interested peers we upload to, decided every 10 seconds.
 *
 * - While downloading: tit-for-tat. The peers that give us the most get the regular slots;
 *   peers that snub us (stopped sending while we had requests out) rank last.
 * - While seeding: rotation. A peer keeps its slot for a while after being unchoked, then
 *   yields to those that waited longest (newcomers first), so every leecher gets served.
 * - Always: one optimistic slot, rotated every 30 seconds, chosen at random with peers that
 *   connected in the last minute three times as likely.
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
  /** It stopped sending while we had requests out. @default {false} */
  readonly snubbed?: boolean;
  /** When it connected (ms). @default {0} */
  readonly connectedAt?: number;
  /** When its current unchoke began (ms), or undefined while it is choked. */
  readonly unchokedAt?: number | undefined;
  /** When it was last unchoked at all (ms), kept after it is choked again; undefined if never. */
  readonly lastUnchokedAt?: number | undefined;
}

/** Options for {@linkcode chooseUnchoked}. */
export interface ChokeOptions {
  /** Upload slots in all, optimistic included. @default {4} */
  slots?: number;
  /** True when we are seeding (rotate) rather than downloading (tit-for-tat). */
  seeding: boolean;
  /** Id of the current optimistic unchoke, kept if still interested. */
  optimistic?: string | undefined;
  /** Current time (ms), for rotation and newcomer weighting. @default {0} */
  now?: number;
  /** While seeding, how long a peer keeps a slot before it may be rotated out (ms). @default {30_000} */
  seedSlotMs?: number;
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
  const now = options.now ?? 0;
  const interested = peers.filter((p) => p.peerInterested);
  let ranked: ChokerPeer[];
  if (options.seeding) {
    const slotMs = options.seedSlotMs ?? 30_000;
    // Peers unchoked recently keep their slots; then those that waited longest (never-unchoked
    // newcomers first), fastest first among equals.
    const holding = (p: ChokerPeer) => p.unchokedAt !== undefined && now - p.unchokedAt < slotMs;
    ranked = [...interested].sort((a, b) =>
      Number(holding(b)) - Number(holding(a)) ||
      waited(a) - waited(b) ||
      b.uploadRate - a.uploadRate ||
      (a.id < b.id ? -1 : 1)
    );
  } else {
    ranked = [...interested].sort((a, b) =>
      Number(a.snubbed ?? false) - Number(b.snubbed ?? false) ||
      b.downloadRate - a.downloadRate ||
      (a.id < b.id ? -1 : 1)
    );
  }
  const unchoke = new Set(ranked.slice(0, slots - 1).map((p) => p.id));
  let optimistic = options.optimistic;
  if (optimistic === undefined || unchoke.has(optimistic) || !interested.some((p) => p.id === optimistic)) {
    const rest = interested.filter((p) => !unchoke.has(p.id));
    optimistic = pickWeighted(rest, now, random);
  }
  if (optimistic !== undefined) unchoke.add(optimistic);
  return { unchoke, optimistic };
}

/** Sort key for rotation: peers never unchoked first, then those unchoked longest ago. */
function waited(p: ChokerPeer): number {
  return p.lastUnchokedAt ?? -Infinity;
}

function pickWeighted(peers: ChokerPeer[], now: number, random: () => number): string | undefined {
  if (peers.length === 0) return undefined;
  const weight = (p: ChokerPeer) => (now - (p.connectedAt ?? -Infinity) < 60_000 ? 3 : 1);
  const total = peers.reduce((sum, p) => sum + weight(p), 0);
  let r = random() * total;
  for (const p of peers) {
    r -= weight(p);
    if (r < 0) return p.id;
  }
  return peers[peers.length - 1]!.id;
}
