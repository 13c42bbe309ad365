/**
 * Who sent bad data: bans, per-peer failure counts, and "smart ban" (remember each peer's
 * block hashes of a failed piece; once the piece passes, the peers whose blocks differ from
 * the good data are the liars).
 *
 * @module
 */

import { parseAddress } from "../net/address.ts";
import { BLOCK_SIZE } from "./piece_picker.ts";
import { sha1 } from "../storage/verify.ts";
import { toHex } from "../net/bytes.ts";

/** A peer to ban, and why. */
export interface BanVerdict {
  /** "host:port". */
  readonly address: string;
  /** Why, for logs and events. */
  readonly reason: string;
}

/** Failed pieces a peer may take part in (beyond its good ones) before it is banned on count. */
const FAILURE_LIMIT = 5;

/**
 * The ban state of one torrent.
 *
 * @example
 * ```ts
 * import { BanList } from "./ban_list.ts";
 * const bans = new BanList();
 * const data = new Uint8Array(16384);
 * console.log(bans.pieceFailed(0, data, ["10.0.0.1:6881"])); // [{ address: "10.0.0.1:6881", reason: ... }]
 * ```
 */
export class BanList {
  readonly #bans = new Set<string>();
  /** Failed pieces minus verified ones each peer took part in. */
  readonly #failures = new Map<string, number>();
  /** For pieces that failed with several contributors: block index → peer → block hash. */
  readonly #suspects = new Map<number, Map<number, Map<string, string>>>();

  /**
   * What a ban applies to: the IP, except on loopback, where test swarms and local setups put
   * many peers on one address and only the exact endpoint is banned.
   *
   * @param address "host:port".
   * @returns The key.
   */
  static keyOf(address: string): string {
    const { hostname } = parseAddress(address);
    const local = hostname === "::1" || hostname.startsWith("127.") || hostname === "localhost";
    return local ? address : hostname;
  }

  /**
   * Whether an address is banned.
   *
   * @param address "host:port".
   * @returns True if banned.
   */
  isBanned(address: string): boolean {
    return this.#bans.has(BanList.keyOf(address));
  }

  /**
   * Bans an address.
   *
   * @param address "host:port".
   * @returns False when it was banned already.
   */
  ban(address: string): boolean {
    const key = BanList.keyOf(address);
    if (this.#bans.has(key)) return false;
    this.#bans.add(key);
    return true;
  }

  /**
   * Records a piece that failed its hash check.
   *
   * @param piece Piece index.
   * @param data The piece's (bad) bytes.
   * @param contributors The sender of each block, by block index.
   * @returns Peers to ban now: the sole sender, or one peer clearly worse than the others.
   */
  pieceFailed(piece: number, data: Uint8Array, contributors: readonly string[]): BanVerdict[] {
    const peers = [...new Set(contributors)];
    if (peers.length === 1) {
      return [{ address: peers[0]!, reason: `sent piece ${piece}, which failed its hash check` }];
    }
    // Remember what each peer sent, so the liar is found once the piece passes.
    const blocks = this.#suspects.get(piece) ?? new Map<number, Map<string, string>>();
    for (let b = 0; b * BLOCK_SIZE < data.length; b++) {
      const byPeer = blocks.get(b) ?? new Map<string, string>();
      byPeer.set(contributors[b]!, blockHash(data, b));
      blocks.set(b, byPeer);
    }
    this.#suspects.set(piece, blocks);
    // A peer already banned for bad data explains the failure: the others are not blamed. Else
    // ban by count only a peer clearly worse than the others (a tie waits for smart ban).
    if (peers.some((id) => this.isBanned(id))) return [];
    const counts = peers.map((id) => {
      const n = (this.#failures.get(id) ?? 0) + 1;
      this.#failures.set(id, n);
      return n;
    });
    const worst = Math.max(...counts);
    if (worst >= FAILURE_LIMIT && counts.indexOf(worst) === counts.lastIndexOf(worst)) {
      return [{
        address: peers[counts.indexOf(worst)]!,
        reason: `took part in ${worst} more failed pieces than good ones`,
      }];
    }
    return [];
  }

  /**
   * Records a piece that passed: good data earns its senders credit, and peers whose earlier
   * blocks of this piece differ from the good ones are found out.
   *
   * @param piece Piece index.
   * @param data The verified bytes.
   * @param contributors The sender of each block.
   * @returns Peers to ban (liars found by smart ban).
   */
  pieceVerified(piece: number, data: Uint8Array, contributors: readonly string[]): BanVerdict[] {
    for (const id of new Set(contributors)) this.#failures.set(id, (this.#failures.get(id) ?? 0) - 1);
    const blocks = this.#suspects.get(piece);
    if (blocks === undefined) return [];
    this.#suspects.delete(piece);
    const verdicts: BanVerdict[] = [];
    for (const [b, byPeer] of blocks) {
      const good = blockHash(data, b);
      for (const [id, hash] of byPeer) {
        if (hash !== good) verdicts.push({ address: id, reason: `sent a corrupt block of piece ${piece}` });
      }
    }
    return verdicts;
  }
}

function blockHash(data: Uint8Array, block: number): string {
  return toHex(sha1(data.subarray(block * BLOCK_SIZE, Math.min(data.length, (block + 1) * BLOCK_SIZE))));
}
