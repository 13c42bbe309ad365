/**
 * The process's file descriptor budget. Sockets are counted against the soft
 * `RLIMIT_NOFILE` minus a reserve, so that with every socket slot taken the process can
 * still accept (to refuse), open storage and resume files, and dial.
 *
 * One {@linkcode processDescriptors} is shared by every listener of the process (peer
 * session, tracker, later the RPC server), since they draw on one kernel limit.
 *
 * @module
 */

/**
 * Descriptors never given to sockets: storage files, resume data, log files, the DHT, LSD
 * and tracker sockets, and the one descriptor an accept needs to refuse a connection.
 */
export const DESCRIPTOR_RESERVE = 64;

/**
 * Reads the soft limit on open files of this process (Linux `/proc/self/limits`).
 *
 * @example
 * ```ts
 * import { openFileLimit } from "./descriptor_budget.ts";
 * console.log(openFileLimit()); // e.g. 1024, or undefined where unknown
 * ```
 *
 * @returns The limit, or `undefined` when it cannot be read (not Linux, no read permission, unlimited).
 */
export function openFileLimit(): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/self/limits");
  } catch (error) {
    // No /proc (macOS, Windows) or no --allow-read: the limit is unknown and only the
    // connection caps apply; accept failures are still retried with back-off.
    if (
      error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied
    ) return undefined;
    throw error;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (m === null || m[1] === "unlimited") return undefined;
  return Number(m[1]);
}

/** Options of {@linkcode DescriptorBudget}. */
export interface DescriptorBudgetOptions {
  /** Open-file limit. @default {openFileLimit()} (no budget when unknown) */
  limit?: number | undefined;
  /** Descriptors kept back from sockets. @default {DESCRIPTOR_RESERVE} (at most half the limit) */
  reserve?: number;
}

/**
 * Counts the sockets a process holds against its open-file limit.
 *
 * @example
 * ```ts
 * import { DescriptorBudget } from "./descriptor_budget.ts";
 * const budget = new DescriptorBudget({ limit: 256 });
 * console.log(budget.capacity); // 192
 * if (budget.tryTake()) budget.give();
 * ```
 */
export class DescriptorBudget {
  /** Sockets allowed at once (`Infinity` when the limit is unknown). */
  readonly capacity: number;
  #used = 0;

  /**
   * Creates the instance.
   *
   * @param options Limit and reserve.
   */
  constructor(options: DescriptorBudgetOptions = {}) {
    const limit = "limit" in options ? options.limit : openFileLimit();
    if (limit === undefined) {
      this.capacity = Infinity;
    } else {
      const reserve = Math.min(options.reserve ?? DESCRIPTOR_RESERVE, Math.floor(limit / 2));
      this.capacity = Math.max(1, limit - reserve);
    }
  }

  /** Sockets counted now. */
  get used(): number {
    return this.#used;
  }

  /** Whether no socket slot is left. */
  get full(): boolean {
    return this.#used >= this.capacity;
  }

  /**
   * Takes one socket slot if one is free.
   *
   * @returns True when taken (give it back with {@linkcode DescriptorBudget.give}).
   */
  tryTake(): boolean {
    if (this.#used >= this.capacity) return false;
    this.#used++;
    return true;
  }

  /**
   * Counts a socket that is open whether or not a slot was free (an established connection
   * handed over by another count).
   *
   * @param n How many.
   */
  take(n = 1): void {
    this.#used += n;
  }

  /**
   * Gives slots back.
   *
   * @param n How many.
   */
  give(n = 1): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

let shared: DescriptorBudget | undefined;

/**
 * The budget shared by every listener of this process (made on first use).
 *
 * @example
 * ```ts
 * import { processDescriptors } from "./descriptor_budget.ts";
 * console.log(processDescriptors().capacity);
 * ```
 *
 * @returns The shared budget.
 */
export function processDescriptors(): DescriptorBudget {
  shared ??= new DescriptorBudget();
  return shared;
}
