/**
 * Caps on connections that have not proven anything yet: accepted but not past the
 * protocol's first exchange (a BitTorrent handshake, an HTTP request's headers). Each has
 * a per-address cap (a new one over it is refused) and a global cap (a new one over it
 * evicts the oldest waiting one, so a host that opens connections and sends nothing cannot
 * keep a peer whose handshake takes one round trip out).
 *
 * @module
 */

import type { DescriptorBudget } from "./descriptor_budget.ts";

/** Caps of a {@linkcode PendingGate}. */
export interface PendingLimits {
  /** Most waiting connections in all. */
  readonly maxPending: number;
  /** Most waiting connections from one IP address. */
  readonly maxPendingPerAddress: number;
}

/** A place in a {@linkcode PendingGate}; release it when the connection proved itself or closed. */
export interface PendingTicket {
  /** Frees the place (and its descriptor slot). Safe to call more than once. */
  release(): void;
}

/** Why {@linkcode PendingGate.admit} refused. */
export type PendingRefusal = "address" | "descriptors";

interface Entry {
  readonly host: string;
  readonly evict: () => void;
  released: boolean;
}

/**
 * Counts waiting connections per address and in all, and evicts the oldest at the global cap.
 *
 * @example
 * ```ts
 * import { PendingGate } from "./pending_gate.ts";
 * const gate = new PendingGate({ maxPending: 2, maxPendingPerAddress: 1 });
 * const a = gate.admit("10.0.0.1", () => console.log("evicted"));
 * console.log(typeof gate.admit("10.0.0.1", () => {})); // "string": "address"
 * if (typeof a !== "string") a.release();
 * ```
 */
export class PendingGate {
  readonly #limits: PendingLimits;
  readonly #budget: DescriptorBudget | undefined;
  /** In admission order: the first is the oldest. */
  readonly #entries = new Set<Entry>();
  readonly #perHost = new Map<string, number>();
  #evicted = 0;

  /**
   * Creates the instance.
   *
   * @param limits The caps.
   * @param budget Descriptor budget each waiting connection takes a slot of.
   */
  constructor(limits: PendingLimits, budget?: DescriptorBudget) {
    if (!(limits.maxPending >= 1) || !(limits.maxPendingPerAddress >= 1)) {
      throw new RangeError("Pending connection caps must be at least 1");
    }
    this.#limits = limits;
    this.#budget = budget;
  }

  /** Connections waiting now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Connections evicted so far to make room. */
  get evicted(): number {
    return this.#evicted;
  }

  /**
   * Lets a new connection wait, evicting the oldest waiting one when the global cap (or the
   * descriptor budget) is reached.
   *
   * @param host The remote IP address.
   * @param evict Closes this connection if it is evicted later.
   * @returns A ticket, or why it was refused (its address is at its cap; no descriptor slot
   * and nothing to evict).
   */
  admit(host: string, evict: () => void): PendingTicket | PendingRefusal {
    if ((this.#perHost.get(host) ?? 0) >= this.#limits.maxPendingPerAddress) return "address";
    while (this.#entries.size >= this.#limits.maxPending || (this.#budget?.full ?? false)) {
      const oldest = this.#entries.values().next();
      if (oldest.done) return "descriptors";
      this.#evicted++;
      this.#release(oldest.value);
      oldest.value.evict();
    }
    this.#budget?.take();
    const entry: Entry = { host, evict, released: false };
    this.#entries.add(entry);
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1);
    return { release: () => this.#release(entry) };
  }

  #release(entry: Entry): void {
    if (entry.released) return;
    entry.released = true;
    this.#entries.delete(entry);
    this.#budget?.give();
    const n = (this.#perHost.get(entry.host) ?? 1) - 1;
    if (n <= 0) this.#perHost.delete(entry.host);
    else this.#perHost.set(entry.host, n);
  }
}
