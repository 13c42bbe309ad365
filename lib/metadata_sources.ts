/**
 * The peers a metadata fetch hands on to the download: what each said about its pieces before
 * the metadata arrived is checked against the real piece count, and those that fit are ranked,
 * seeds first.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import type { Logger } from "./log.ts";
import type { PieceEvidence } from "./peer/metadata_peer.ts";

/** A peer met during the fetch, with what it said about its pieces (already checked). */
export interface MetadataSource {
  /** "host:port". */
  readonly address: string;
  /** Pieces it announced before the metadata arrived ("all" for a seed), or null if it said nothing. */
  readonly pieces: number | "all" | null;
}

/** Options for {@linkcode rankSources}. */
export interface RankSourcesOptions {
  /** Addresses left out whatever they said (peers that broke the protocol); more are added. */
  leftOut: Set<string>;
  /** True for a banned address (left out). */
  isBanned: (address: string) => boolean;
  /** Other addresses heard of, listed after the peers met. */
  candidates: Iterable<string>;
  /** Where peers left out are logged (category `metadata`). */
  logger: Logger;
}

/**
 * Peers met (checked against the piece count) first, seeds first, then the other addresses
 * heard of. A peer whose bitfield does not fit, or that announced a piece past the end, is
 * left out.
 *
 * @example
 * ```ts
 * import { rankSources } from "./metadata_sources.ts";
 * import { Logger } from "./log.ts";
 * const evidence = new Map([
 *   ["10.0.0.1:6881", { bitfield: null, all: false, haves: [0] }],
 *   ["10.0.0.2:6881", { bitfield: null, all: true, haves: [] }],
 * ]);
 * const ranked = rankSources(evidence, 4, {
 *   leftOut: new Set(), isBanned: () => false, candidates: ["10.0.0.3:6881"], logger: new Logger(),
 * });
 * console.log(ranked.map((s) => s.pieces)); // ["all", 1, null]
 * ```
 *
 * @param evidence What each peer met said about its pieces, by address.
 * @param pieceCount The torrent's piece count.
 * @param options Who to leave out, the other addresses, the log.
 * @returns The sources, best first.
 */
export function rankSources(
  evidence: ReadonlyMap<string, PieceEvidence>,
  pieceCount: number,
  options: RankSourcesOptions,
): MetadataSource[] {
  const { leftOut, isBanned, logger } = options;
  const met: MetadataSource[] = [];
  for (const [address, e] of evidence) {
    if (leftOut.has(address) || isBanned(address)) continue;
    let pieces: number | "all" | null = e.all ? "all" : null;
    if (e.bitfield !== null) {
      let bits: Bitfield;
      try {
        bits = Bitfield.fromWire(e.bitfield, pieceCount);
      } catch (error) {
        logger.info("metadata", `Left out a peer: ${(error as Error).message}`, { peer: address });
        leftOut.add(address);
        continue;
      }
      pieces = bits.isComplete() ? "all" : bits.count();
    }
    if (e.haves.some((i) => i >= pieceCount)) {
      logger.info("metadata", "Left out a peer: it announced a piece the torrent does not have", {
        peer: address,
      });
      leftOut.add(address);
      continue;
    }
    if (e.haves.length > 0 && pieces !== "all") {
      pieces = Math.min(pieceCount, (pieces ?? 0) + e.haves.length);
    }
    met.push({ address, pieces });
  }
  const rank = (s: MetadataSource) => (s.pieces === "all" ? Infinity : s.pieces ?? -1);
  met.sort((a, b) => rank(b) - rank(a));
  const seen = new Set(met.map((s) => s.address));
  for (const address of options.candidates) {
    if (!seen.has(address) && !leftOut.has(address) && !isBanned(address)) {
      met.push({ address, pieces: null });
    }
  }
  return met;
}
