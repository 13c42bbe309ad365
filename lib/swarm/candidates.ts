/**
 * The addresses a swarm may dial, with where each came from and its back-off: after `n`
 * failures an address waits `min(retryMaxMs, retryBaseMs * 2^(n-1))` before the next dial, and
 * after `maxFailures` it is forgotten.
 *
 * @module
 */

import type { SwarmPolicy } from "./constants.ts";

/**
 * Where a peer address came from (for logs): `manual`, `tracker`, `dht`, `pex`, `lsd`,
 * `magnet`, `incoming`, or a plugin's own name. Only `manual` changes behaviour: an invalid
 * manual address throws instead of being skipped.
 */
export type PeerSource = string;

/** One address to dial. */
export interface Candidate {
  /** "host:port". */
  readonly address: string;
  /** Where it came from. */
  readonly source: PeerSource;
  /** Failures since it was added (or last connected, under `forgiveOnConnect`). */
  failures: number;
  /** Not dialled before this time (ms). */
  nextTry: number;
}

/**
 * The candidate list of one swarm, in insertion order, capped at `maxCandidates`.
 *
 * @example
 * ```ts
 * import { Candidates } from "./candidates.ts";
 * import { METADATA_SWARM } from "./constants.ts";
 * const list = new Candidates(METADATA_SWARM);
 * list.add("10.0.0.1:6881", "tracker");
 * list.failed("10.0.0.1:6881", 0);
 * console.log(list.get("10.0.0.1:6881")?.nextTry); // 2000
 * ```
 */
export class Candidates {
  readonly #policy: SwarmPolicy;
  readonly #list = new Map<string, Candidate>();

  /**
   * Creates the instance.
   *
   * @param policy Cap and back-off.
   */
  constructor(policy: SwarmPolicy) {
    this.#policy = policy;
  }

  /** Addresses kept. */
  get size(): number {
    return this.#list.size;
  }

  /** Whether the list is at its cap. */
  get full(): boolean {
    return this.#list.size >= this.#policy.maxCandidates;
  }

  /**
   * Adds an address (unless known or the list is full).
   *
   * @param address "host:port".
   * @param source Where it came from.
   * @returns True if it was added.
   */
  add(address: string, source: PeerSource): boolean {
    if (this.#list.has(address) || this.full) return false;
    this.#list.set(address, { address, source, failures: 0, nextTry: 0 });
    return true;
  }

  /**
   * The candidate of an address.
   *
   * @param address "host:port".
   * @returns It, or undefined when not kept.
   */
  get(address: string): Candidate | undefined {
    return this.#list.get(address);
  }

  /**
   * Forgets an address.
   *
   * @param address "host:port".
   */
  delete(address: string): void {
    this.#list.delete(address);
  }

  /**
   * Records a failure: the address waits longer, or is forgotten after `maxFailures` (or at once
   * when `forever`).
   *
   * @param address "host:port".
   * @param now The time in ms.
   * @param forever Forget it now.
   */
  failed(address: string, now: number, forever = false): void {
    const c = this.#list.get(address);
    if (c === undefined) return;
    c.failures++;
    c.nextTry = now + Math.min(this.#policy.retryMaxMs, this.#policy.retryBaseMs * 2 ** (c.failures - 1));
    if (forever || c.failures >= this.#policy.maxFailures) this.#list.delete(address);
  }

  /** The addresses kept, oldest first. */
  addresses(): IterableIterator<string> {
    return this.#list.keys();
  }

  /** The candidates, oldest first. */
  values(): IterableIterator<Candidate> {
    return this.#list.values();
  }
}
