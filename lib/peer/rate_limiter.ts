/**
 * Rate limits: token buckets shared fairly between peers, and chains of them (per torrent, then
 * global).
 *
 * How the pieces fit (the intended wiring):
 *
 * - A session holds one global upload bucket and one global download bucket; each torrent holds
 *   its own pair. A bucket whose rate is 0 or `Infinity` is unlimited: it grants at once, without
 *   timers and without bookkeeping.
 * - Each peer connection asks a {@linkcode RateLimiter} over `[torrentBucket, globalBucket]`:
 *   before sending a `piece` message, `await upload.take(block.length, signal)`; after reading
 *   `n` bytes from the socket, `await download.take(n, signal)` before reading again (the
 *   unread bytes stay in the kernel and TCP slows the sender). `signal` is the connection's, so
 *   a closed connection leaves no waiter and no timer behind.
 * - `setRate` changes a limit while running; waiting requests are re-evaluated at once.
 *
 * Design choices:
 *
 * - **FIFO**: each bucket serves its waiters strictly in arrival order, so peers that keep asking
 *   for 16 KiB blocks get equal shares (round robin), and a large request cannot be starved by a
 *   stream of small ones.
 * - **Requests larger than the burst are granted whole, by going into debt**: a request waits
 *   until the bucket holds `min(bytes, burst)` tokens, then takes all `bytes`, which may drive
 *   the balance below zero; later requests wait until the debt is paid back. Nothing is split,
 *   so callers never see partial grants, and the long-run rate stays exact.
 * - **Chains reserve, then refund**: a chained request takes its tokens from each bucket in
 *   chain order as soon as that bucket grants it (a reservation), then waits in the next
 *   bucket's queue. Those tokens are not lost: they pay for bytes that will be sent once the
 *   last bucket grants, and if the request is aborted before that, every reservation is given
 *   back. Because a bucket does not hold its queue while a request waits further down the
 *   chain, a torrent whose own limit is not the bottleneck keeps feeding requests to the
 *   global bucket, which stays FIFO across all requests of all torrents.
 *
 * @module
 */

/** Options for {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Bytes per second; 0 or `Infinity` means unlimited. */
  rate: number;
  /**
   * Bucket size in bytes: how many bytes can pass at once after a quiet spell. When not given,
   * it follows the rate: {@linkcode defaultBurst}`(rate)`, that is 100 ms worth of traffic but
   * at least 64 KiB. 100 ms absorbs the lateness of real timers (tokens keep accruing while a
   * timer is late, up to the burst, so lateness costs no throughput) while keeping any
   * one-second sample within about 10% of the limit; 64 KiB is four 16 KiB blocks, so ordinary
   * requests never need debt and one wake-up can serve several peers.
   *
   * @default {defaultBurst(rate)}
   */
  burst?: number;
  /** Clock in milliseconds. @default {performance.now} */
  now?: () => number;
  /** Starts a one-shot timer. @default {setTimeout} */
  setTimer?: (fn: () => void, ms: number) => unknown;
  /** Cancels a timer started by `setTimer`. @default {clearTimeout} */
  clearTimer?: (id: unknown) => void;
}

/** Smallest default burst: four 16 KiB blocks. */
const MIN_DEFAULT_BURST = 64 * 1024;
/** Default burst as a fraction of one second of traffic. */
const BURST_SECONDS = 0.1;
/** Slack for floating-point rounding when comparing token balances. */
const EPSILON = 1e-6;
/**
 * Shortest wait a timer is set for, in ms (unless the burst fills faster than twice that).
 * Each wake-up of the event loop costs about 0.1 ms of CPU in Deno; at high rates a short floor
 * lets one wake-up serve several waiters, and costs no throughput because tokens keep accruing
 * (the burst holds 100 ms of traffic by default).
 */
const MIN_WAIT_MS = 10;

/**
 * The burst a bucket uses when none is given: 100 ms of traffic at `rate`, at least 64 KiB
 * (`Infinity` for an unlimited rate).
 *
 * @example
 * ```ts
 * import { defaultBurst } from "./rate_limiter.ts";
 * console.log(defaultBurst(1024 * 1024)); // 104857.6
 * console.log(defaultBurst(10_000)); // 65536
 * ```
 *
 * @param rate Bytes per second.
 * @returns Bucket size in bytes.
 */
export function defaultBurst(rate: number): number {
  if (isUnlimited(rate)) return Infinity;
  return Math.max(rate * BURST_SECONDS, MIN_DEFAULT_BURST);
}

function isUnlimited(rate: number): boolean {
  return rate === 0 || rate === Infinity;
}

function checkRate(rate: number): void {
  if (!(rate >= 0)) throw new RangeError(`Invalid rate: ${rate} (expected bytes per second, 0 or more)`);
}

function checkBytes(bytes: number, what: string): void {
  if (!(bytes >= 0) || !Number.isFinite(bytes)) {
    throw new RangeError(`Invalid ${what}: ${bytes} (expected a finite number of bytes, 0 or more)`);
  }
}

/** One pending request: walks its chain of buckets, reserving at each. */
interface Ticket {
  readonly bytes: number;
  readonly chain: readonly TokenBucket[];
  /** Index in `chain` of the bucket whose queue holds the ticket. */
  stage: number;
  /** Buckets that have already granted (and been charged), to refund on abort. */
  readonly taken: TokenBucket[];
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * Walks a chain of buckets for a request (set by {@linkcode TokenBucket}'s static block, so the
 * chain logic can reach the buckets' private state without exposing it).
 */
let chainTake: (
  chain: readonly TokenBucket[],
  bytes: number,
  signal: AbortSignal | undefined,
) => Promise<void>;
/** Takes up to `max` tokens from every bucket of a chain without waiting. */
let chainTryTake: (chain: readonly TokenBucket[], max: number) => number;

/**
 * A token bucket: tokens accrue at `rate` bytes per second up to `burst`; a request for `bytes`
 * waits until the bucket can grant it, strictly in arrival order (FIFO across callers). One
 * timer at most is pending per bucket, and only while someone waits.
 *
 * Requests larger than the burst are granted once the bucket is full, and drive its balance into
 * debt (see the module documentation).
 *
 * @example Limit a loop to 64 KiB per second
 * ```ts
 * import { TokenBucket } from "./rate_limiter.ts";
 * const bucket = new TokenBucket({ rate: 64 * 1024 });
 * const controller = new AbortController();
 * await bucket.take(16 * 1024, controller.signal); // granted at once: the bucket starts full
 * console.log(bucket.tryTake(1_000_000) > 0); // true: takes what is left, without waiting
 * bucket.setRate(0); // unlimited from now on
 * await bucket.take(10 * 1024 * 1024);
 * ```
 */
export class TokenBucket {
  #rate: number;
  #burstOption: number | undefined;
  #burst: number;
  #tokens: number;
  #last: number;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (id: unknown) => void;
  /** Waiters in arrival order; `#head` indexes the first live one. */
  #queue: Ticket[] = [];
  #head = 0;
  #timer: unknown = undefined;
  #timerPending = false;

  /**
   * Creates the bucket, full.
   *
   * @param options Rate, burst, clock and timers.
   */
  constructor(options: TokenBucketOptions) {
    checkRate(options.rate);
    if (options.burst !== undefined && !(options.burst > 0 && Number.isFinite(options.burst))) {
      throw new RangeError(`Invalid burst: ${options.burst} (expected a finite number of bytes above 0)`);
    }
    this.#rate = options.rate;
    this.#burstOption = options.burst;
    this.#burst = options.burst ?? defaultBurst(options.rate);
    this.#now = options.now ?? (() => performance.now());
    this.#setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = options.clearTimer ?? ((id) => clearTimeout(id as number));
    this.#tokens = isUnlimited(this.#rate) ? 0 : this.#burst;
    this.#last = this.#now();
  }

  /** Bytes per second as last set (0 or `Infinity`: unlimited). */
  get rate(): number {
    return this.#rate;
  }

  /** True when the bucket grants everything at once. */
  get unlimited(): boolean {
    return isUnlimited(this.#rate);
  }

  /** Bucket size in bytes (`Infinity` when unlimited). */
  get burst(): number {
    return isUnlimited(this.#rate) ? Infinity : this.#burst;
  }

  /** Tokens available now; negative while paying back a request larger than the burst. */
  get tokens(): number {
    if (isUnlimited(this.#rate)) return Infinity;
    this.#refill();
    return this.#tokens;
  }

  /** Requests waiting in this bucket's queue. */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Changes the rate while running. Waiting requests are re-evaluated at once: they are all
   * granted when the bucket becomes unlimited, and their timer is recomputed otherwise. Tokens
   * accrued so far are kept (up to the new burst); a bucket that was unlimited starts full.
   *
   * @param rate Bytes per second; 0 or `Infinity` means unlimited.
   */
  setRate(rate: number): void {
    checkRate(rate);
    const wasUnlimited = isUnlimited(this.#rate);
    if (!wasUnlimited) this.#refill();
    this.#rate = rate;
    this.#burst = this.#burstOption ?? defaultBurst(rate);
    if (isUnlimited(rate)) {
      this.#tokens = 0;
    } else if (wasUnlimited) {
      this.#tokens = this.#burst;
      this.#last = this.#now();
    } else {
      this.#tokens = Math.min(this.#tokens, this.#burst);
    }
    this.#pump();
  }

  /**
   * Waits until `bytes` tokens are available and takes them. Requests are served in arrival
   * order. A request larger than the burst is granted once the bucket is full and leaves it in
   * debt. A request for 0 bytes is granted at once.
   *
   * @param bytes Number of bytes about to be transferred.
   * @param signal Aborting it rejects this request only (with the signal's reason) and takes no
   * tokens.
   * @returns A promise that resolves once the tokens are taken.
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    return TokenBucket.#take([this], bytes, signal);
  }

  /**
   * Takes up to `max` tokens now without waiting, for sizing a read or a write. Takes nothing
   * while others wait (no jumping the queue) or while the bucket is in debt.
   *
   * @param max Most bytes wanted.
   * @returns The number of tokens taken (a whole number, possibly 0); `max` when unlimited.
   */
  tryTake(max: number): number {
    return TokenBucket.#tryTake([this], max);
  }

  /**
   * Gives back tokens taken but not used (for instance after `tryTake` sized a read that
   * returned fewer bytes), up to the burst. Waiting requests are re-evaluated.
   *
   * @param bytes Number of unused bytes.
   */
  refund(bytes: number): void {
    checkBytes(bytes, "refund");
    if (isUnlimited(this.#rate) || bytes === 0) return;
    this.#give(bytes);
    this.#pump();
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
      this.#last = now;
    }
  }

  #give(bytes: number): void {
    this.#refill();
    this.#tokens = Math.min(this.#burst, this.#tokens + bytes);
  }

  /** Tokens a request for `bytes` needs before it is granted. */
  #need(bytes: number): number {
    return Math.min(bytes, this.#burst);
  }

  #canGrant(bytes: number): boolean {
    return this.#tokens + EPSILON >= this.#need(bytes);
  }

  /**
   * Offers a ticket to this bucket: true when granted now (and charged), false when queued.
   * Never calls back into any other bucket.
   */
  #admit(ticket: Ticket): boolean {
    if (isUnlimited(this.#rate)) return true;
    if (this.waiting === 0) {
      this.#refill();
      if (this.#canGrant(ticket.bytes)) {
        this.#tokens -= ticket.bytes;
        ticket.taken.push(this);
        return true;
      }
    }
    this.#queue.push(ticket);
    if (this.waiting === 1) this.#schedule();
    return false;
  }

  /** Grants what can be granted from the head of the queue, then sets the timer for the rest. */
  #pump(): void {
    this.#cancelTimer();
    while (this.waiting > 0) {
      const head = this.#queue[this.#head]!;
      if (!isUnlimited(this.#rate)) {
        this.#refill();
        if (!this.#canGrant(head.bytes)) break;
        this.#tokens -= head.bytes;
        head.taken.push(this);
      }
      this.#shift();
      head.stage++;
      TokenBucket.#route(head);
    }
    if (this.waiting > 0) this.#schedule();
  }

  #shift(): void {
    this.#queue[this.#head] = undefined as unknown as Ticket;
    this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Removes a ticket from the queue; returns whether it was there. */
  #remove(ticket: Ticket): boolean {
    const index = this.#queue.indexOf(ticket, this.#head);
    if (index < 0) return false;
    if (index === this.#head) this.#shift();
    else this.#queue.splice(index, 1);
    return true;
  }

  #schedule(): void {
    this.#cancelTimer();
    const head = this.#queue[this.#head];
    if (head === undefined || isUnlimited(this.#rate)) return;
    const deficit = this.#need(head.bytes) - this.#tokens;
    const floor = Math.max(1, Math.min(MIN_WAIT_MS, Math.floor((this.#burst * 500) / this.#rate)));
    const ms = Math.max(floor, Math.ceil((deficit * 1000) / this.#rate));
    this.#timerPending = true;
    this.#timer = this.#setTimer(() => {
      this.#timerPending = false;
      this.#timer = undefined;
      this.#pump();
    }, ms);
  }

  #cancelTimer(): void {
    if (!this.#timerPending) return;
    this.#timerPending = false;
    this.#clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /** Moves a ticket along its chain from its current stage; resolves it at the end. */
  static #route(ticket: Ticket): void {
    while (ticket.stage < ticket.chain.length) {
      if (!ticket.chain[ticket.stage]!.#admit(ticket)) return;
      ticket.stage++;
    }
    ticket.signal?.removeEventListener("abort", ticket.onAbort);
    ticket.resolve();
  }

  /** Drops an aborted ticket: out of its queue, reservations refunded, queues re-evaluated. */
  static #abort(ticket: Ticket): void {
    const waitingIn = ticket.chain[ticket.stage];
    if (waitingIn === undefined || !waitingIn.#remove(ticket)) return;
    ticket.stage = ticket.chain.length;
    for (const bucket of ticket.taken) if (!isUnlimited(bucket.#rate)) bucket.#give(ticket.bytes);
    waitingIn.#pump();
    for (const bucket of ticket.taken) bucket.#pump();
    ticket.reject(ticket.signal?.reason);
  }

  static #take(chain: readonly TokenBucket[], bytes: number, signal: AbortSignal | undefined): Promise<void> {
    checkBytes(bytes, "request size");
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (bytes === 0) return Promise.resolve();
    if (TokenBucket.#grantNow(chain, bytes)) return Promise.resolve();
    let resolve!: () => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const ticket: Ticket = {
      bytes,
      chain,
      stage: 0,
      taken: [],
      resolve,
      reject,
      signal,
      onAbort: () => TokenBucket.#abort(ticket),
    };
    TokenBucket.#route(ticket);
    if (ticket.stage < chain.length) signal?.addEventListener("abort", ticket.onAbort, { once: true });
    return promise;
  }

  /** The common case: every bucket can grant at once with nobody waiting; charges them all. */
  static #grantNow(chain: readonly TokenBucket[], bytes: number): boolean {
    for (const bucket of chain) {
      if (isUnlimited(bucket.#rate)) continue;
      if (bucket.waiting > 0) return false;
      bucket.#refill();
      if (!bucket.#canGrant(bytes)) return false;
    }
    for (const bucket of chain) if (!isUnlimited(bucket.#rate)) bucket.#tokens -= bytes;
    return true;
  }

  static #tryTake(chain: readonly TokenBucket[], max: number): number {
    checkBytes(max, "maximum");
    let n = Math.floor(max);
    for (const bucket of chain) {
      if (isUnlimited(bucket.#rate)) continue;
      if (bucket.waiting > 0) return 0;
      bucket.#refill();
      n = Math.min(n, Math.floor(bucket.#tokens + EPSILON));
    }
    if (n <= 0) return 0;
    for (const bucket of chain) if (!isUnlimited(bucket.#rate)) bucket.#tokens -= n;
    return n;
  }

  static {
    chainTake = (chain, bytes, signal) => TokenBucket.#take(chain, bytes, signal);
    chainTryTake = (chain, max) => TokenBucket.#tryTake(chain, max);
  }
}

/**
 * A chain of buckets (for instance per torrent, then global): a request is granted when every
 * bucket in the chain has granted it. Each bucket charges the request when it grants it and the
 * request then waits in the next bucket's queue; if it is aborted on the way, every bucket that
 * already charged it is refunded (see the module documentation). Unlimited buckets are skipped.
 *
 * @example Per-torrent and global upload limits
 * ```ts
 * import { RateLimiter, TokenBucket } from "./rate_limiter.ts";
 * const global = new TokenBucket({ rate: 4 * 1024 * 1024 });
 * const torrent = new TokenBucket({ rate: 1024 * 1024 });
 * const upload = new RateLimiter([torrent, global]);
 * await upload.take(16 * 1024); // before sending one block
 * console.log(torrent.tokens < torrent.burst && global.tokens < global.burst); // true
 * ```
 */
export class RateLimiter {
  readonly #chain: readonly TokenBucket[];

  /**
   * Creates the limiter.
   *
   * @param buckets The buckets, checked in this order (put the narrowest limit first).
   */
  constructor(buckets: readonly TokenBucket[]) {
    if (new Set(buckets).size !== buckets.length) {
      throw new TypeError("Cannot chain buckets: the same bucket appears twice");
    }
    this.#chain = [...buckets];
  }

  /** The buckets, in the order they are checked. */
  get buckets(): readonly TokenBucket[] {
    return this.#chain;
  }

  /**
   * Waits until every bucket has granted `bytes` tokens (each in its own FIFO order).
   *
   * @param bytes Number of bytes about to be transferred.
   * @param signal Aborting it rejects this request only and refunds any bucket that already
   * granted it.
   * @returns A promise that resolves once every bucket has granted the request.
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    return chainTake(this.#chain, bytes, signal);
  }

  /**
   * Takes up to `max` tokens from every bucket at once without waiting: the least any bucket can
   * give, and nothing while any bucket has waiters or is in debt.
   *
   * @param max Most bytes wanted.
   * @returns The number of tokens taken from each bucket (possibly 0).
   */
  tryTake(max: number): number {
    return chainTryTake(this.#chain, max);
  }

  /**
   * Gives back tokens taken but not used, to every bucket.
   *
   * @param bytes Number of unused bytes.
   */
  refund(bytes: number): void {
    for (const bucket of this.#chain) bucket.refund(bytes);
  }
}
