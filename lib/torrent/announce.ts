/**
 * A torrent's tracker announcer: the torrent's tiers (plus the session's extra ones, each URL
 * once), with the torrent's totals and a place for the peers the trackers send.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { RateMeter } from "../peer/rate.ts";
import { Announcer } from "../tracker/announcer.ts";
import type { TorrentOptions } from "../torrent_types.ts";
import type { Metainfo } from "../types.ts";

/** What the announcer reads from and gives to its torrent. */
export interface AnnounceHooks {
  /** Piece bytes sent this session. */
  readonly up: RateMeter;
  /** Piece bytes received this session. */
  readonly down: RateMeter;
  /** Wanted bytes still missing. */
  readonly left: () => number;
  /** Peers a tracker sent; returns how many were new. */
  readonly addPeers: (peers: string[]) => number;
  /** Where announces are logged. */
  readonly logger: Logger;
}

/**
 * Makes and starts the announcer of a torrent (its first announce carries `started`).
 *
 * @example
 * ```ts ignore
 * const announcer = startAnnouncer(metainfo, options, { up, down, left, addPeers, logger });
 * await announcer?.stop(3000);
 * ```
 *
 * @param meta The torrent.
 * @param options The torrent's options (`trackers`, identity, random source).
 * @param hooks Totals, where peers go, the logger.
 * @returns The running announcer, or null when trackers are off or there are none.
 */
export function startAnnouncer(
  meta: Metainfo,
  options: TorrentOptions,
  hooks: AnnounceHooks,
): Announcer | null {
  const trackers = options.trackers;
  if (trackers === undefined) return null;
  const seen = new Set<string>();
  const tiers = [...meta.announceList, ...(trackers.extraTiers ?? [])]
    .map((tier) => tier.filter((url) => !seen.has(url) && seen.add(url)))
    .filter((tier) => tier.length > 0);
  if (tiers.length === 0) return null;
  const announcer = new Announcer({
    tiers,
    infoHash: meta.infoHash,
    peerId: options.peerId,
    port: trackers.port,
    udp: trackers.udp,
    logger: hooks.logger,
    stats: () => ({ uploaded: hooks.up.total, downloaded: hooks.down.total, left: hooks.left() }),
    onPeers: (peers, tracker) => {
      const added = hooks.addPeers(peers);
      hooks.logger.debug("tracker", "Peers from tracker", { tracker, peers: peers.length, new: added });
    },
    ...(options.random ? { random: options.random } : {}),
  });
  announcer.start();
  return announcer;
}
