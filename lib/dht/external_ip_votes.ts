/**
 * Our external IP as other DHT nodes report it (the `ip` field of their answers): the
 * address most agreed on, by 3 nodes or more, wins.
 *
 * @module
 */

import { hostOf } from "../net/address.ts";

/**
 * The votes for our external address.
 *
 * @example
 * ```ts
 * import { ExternalIpVotes } from "./external_ip_votes.ts";
 * const votes = new ExternalIpVotes();
 * for (const voter of ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]) votes.vote("192.0.2.7:6881", voter);
 * console.log(votes.best); // "192.0.2.7"
 * ```
 */
export class ExternalIpVotes {
  readonly #votes = new Map<string, Set<string>>();
  #best: string | undefined;

  /** The address agreed on, if any. */
  get best(): string | undefined {
    return this.#best;
  }

  /**
   * Counts one node's report of our address.
   *
   * @param ipAndPort Our address as the node saw it, "a.b.c.d:port".
   * @param voter The node's address.
   */
  vote(ipAndPort: string, voter: string): void {
    const ip = hostOf(ipAndPort);
    let voters = this.#votes.get(ip);
    if (voters === undefined) {
      if (this.#votes.size >= 16) return;
      this.#votes.set(ip, voters = new Set());
    }
    if (voters.size < 64) voters.add(hostOf(voter) || voter);
    let best: string | undefined;
    let bestVotes = 2;
    for (const [candidate, set] of this.#votes) {
      if (set.size > bestVotes) [best, bestVotes] = [candidate, set.size];
    }
    if (best !== undefined) this.#best = best;
  }
}
