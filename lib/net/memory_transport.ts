/**
 * An in-memory network for simulations: hosts registered by address, each with its own link
 * (latency, bandwidth, loss), and a {@linkcode Transport} per host that dials and listens on
 * it. Many sessions in one process talk over it as over TCP, with no sockets.
 *
 * The model, per host link: bytes leave a host at most at its `bandwidth` (shared by all its
 * connections), take the sum of both hosts' `latencyMs` to cross, and enter the other host at
 * most at its `bandwidth`. A stream is reliable and ordered, like TCP, so `loss` does not drop
 * bytes: a chunk that is "lost" (probability `loss`, drawn again for each retransmission) is
 * delivered one retransmission timeout later, and holds back the chunks behind it on its
 * connection (head-of-line blocking). Dialling takes one round trip; dialling an address
 * nobody listens on is refused after one round trip. `close()` is an abortive close: queued
 * bytes towards the closer are dropped, and the other side reads the end of the stream once
 * the bytes already sent have arrived (writes after that fail with `BrokenPipe`). A write
 * resolves once its chunk has left the sender's link (as TCP's send buffer frees); the
 * reading side has no flow control: delivered bytes wait in the reader's queue, so a reader
 * that reads slowly (a download rate limit) does not slow the sender as TCP's window would.
 *
 * Time is the real clock (timers of a few milliseconds); randomness comes from one seeded
 * source, {@linkcode MemoryNetwork.random}, which a simulation should use for its own choices
 * too, so that a seed gives the same outcome run after run.
 *
 * @module
 */

import type { Transport, TransportConnection, TransportListener, TransportListenOptions } from "../types.ts";
import { formatAddress, parseAddress } from "./address.ts";
import { seededRandom } from "./seeded_random.ts";

/** One host's link to the network. */
export interface LinkOptions {
  /** One-way delay this host's link adds, in ms. @default {1} */
  latencyMs?: number;
  /** Bytes per second in each direction, shared by the host's connections (0: no limit). @default {0} */
  bandwidth?: number;
  /** Chance that a chunk is lost and must be retransmitted, 0 to 1. @default {0} */
  loss?: number;
}

/** Options for {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Seed of the random source (loss draws, and whatever the simulation asks for). @default {1} */
  seed?: number;
  /** The link of hosts that are given none. @default {{ latencyMs: 1 }} */
  link?: LinkOptions;
  /** Least retransmission timeout in ms (a lost chunk waits max(this, 2 × round trip)). @default {20} */
  retransmitMs?: number;
}

interface Host {
  readonly name: string;
  link: Required<LinkOptions>;
  egressFree: number;
  ingressFree: number;
  nextListenPort: number;
  nextLocalPort: number;
  readonly listeners: Map<number, MemoryListener>;
  readonly ends: Set<End>;
}

type Item = { at: number; chunk: Uint8Array | null };

/** One direction of a connection: the bytes in flight towards one end. */
class Pipe {
  readonly #queue: Item[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAt = 0;
  /** Set once the receiving end closed: nothing more is delivered. */
  dropped = false;

  constructor(readonly from: Host, readonly to: Host, readonly deliver: (chunk: Uint8Array | null) => void) {}

  push(at: number, chunk: Uint8Array | null): void {
    if (this.dropped) return;
    at = Math.max(at, this.#lastAt);
    this.#lastAt = at;
    this.#queue.push({ at, chunk });
    if (this.#timer === undefined) this.#schedule();
  }

  drop(): void {
    this.dropped = true;
    this.#queue.length = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 0.5 && !this.dropped) {
        this.deliver(this.#queue.shift()!.chunk);
      }
      this.#schedule();
    }, Math.max(0, head.at - performance.now()));
  }
}

/** What an end asks of the network. */
interface Wire {
  send(end: End, chunk: Uint8Array): Promise<void> | void;
  sendEnd(end: End): void;
}

/** One end of a connection. */
class End implements TransportConnection {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly reusableWrites = true;
  /** The bytes towards this end and from it; set once both ends exist. */
  inbound!: Pipe;
  outbound!: Pipe;
  #controller!: ReadableByteStreamController;
  #closed = false;
  #readDone = false;
  #peerGone = false;
  #wroteEnd = false;

  constructor(readonly host: Host, readonly remoteAddress: string, readonly wire: Wire) {
    this.readable = new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.#readDone = true;
        this.inbound.drop();
      },
    });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.#closed) throw new Deno.errors.BadResource("Connection is closed");
        if (this.#peerGone) throw new Deno.errors.BrokenPipe("Connection closed by the peer");
        if (this.#wroteEnd) throw new Deno.errors.BrokenPipe("Connection is shut down for writing");
        // The copy frees the writer's buffer at once and is what the byte stream transfers.
        return wire.send(this, chunk.slice());
      },
      close: () => this.#endWrites(),
      abort: () => this.#endWrites(),
    });
  }

  /** Takes delivered bytes (null: the other side's end of stream). */
  receive(chunk: Uint8Array | null): void {
    if (this.#readDone) return;
    if (chunk === null) {
      this.#peerGone = true;
      this.#finishReads();
      return;
    }
    this.#controller.enqueue(chunk);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.inbound.drop();
    this.#finishReads();
    this.#endWrites();
    this.host.ends.delete(this);
  }

  #endWrites(): void {
    if (this.#wroteEnd) return;
    this.#wroteEnd = true;
    this.wire.sendEnd(this);
  }

  #finishReads(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    try {
      this.#controller.close();
      // A BYOB read waiting now only ends once its request is answered with 0 bytes.
      this.#controller.byobRequest?.respond(0);
    } catch (error) {
      // A read waiting for a minimum it cannot get: end it with an error instead.
      if (!(error instanceof TypeError)) throw error;
      this.#controller.error(new Deno.errors.UnexpectedEof("Connection closed"));
    }
  }
}

/** A listener on the in-memory network. */
class MemoryListener implements TransportListener {
  readonly #queue: End[] = [];
  #waiting: ((end: End | null) => void) | undefined;
  #closed = false;

  constructor(readonly hostname: string, readonly port: number, readonly onClose: () => void) {}

  /** Queues a connection for the next accept. */
  offer(end: End): void {
    if (this.#waiting) {
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake(end);
    } else this.#queue.push(end);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose();
    for (const end of this.#queue.splice(0)) end.close();
    this.#waiting?.(null);
    this.#waiting = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TransportConnection, void, undefined> {
    while (!this.#closed) {
      const next = this.#queue.shift() ??
        await new Promise<End | null>((resolve) => (this.#waiting = resolve));
      if (next === null) return;
      yield next;
    }
  }
}

const WILDCARDS = new Set(["::", "0.0.0.0"]);

/**
 * An in-memory network of hosts, each reached through the {@linkcode Transport} that
 * {@linkcode MemoryNetwork.host} returns for it.
 *
 * @example Two hosts, one listening
 * ```ts
 * import { MemoryNetwork } from "./memory_transport.ts";
 * const net = new MemoryNetwork({ seed: 7 });
 * const a = net.host("10.0.0.1"), b = net.host("10.0.0.2", { latencyMs: 5, bandwidth: 1 << 20 });
 * const listener = b.listen({ hostname: "::", port: 6881 });
 * const dialled = await a.connect("10.0.0.2:6881", AbortSignal.timeout(1000));
 * for await (const accepted of listener) {
 *   console.log(accepted.remoteAddress); // "10.0.0.1:49152"
 *   accepted.close();
 *   break;
 * }
 * dialled.close();
 * listener.close();
 * ```
 */
export class MemoryNetwork {
  readonly #hosts = new Map<string, Host>();
  readonly #random: () => number;
  readonly #link: Required<LinkOptions>;
  readonly #retransmitMs: number;

  /**
   * Creates an empty network.
   *
   * @param options Seed, default link, retransmission timeout.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#random = seededRandom(options.seed ?? 1);
    this.#link = { latencyMs: 1, bandwidth: 0, loss: 0, ...options.link };
    this.#retransmitMs = options.retransmitMs ?? 20;
  }

  /**
   * The network's seeded random source, a number in [0, 1).
   *
   * @returns The next number.
   */
  random(): number {
    return this.#random();
  }

  /**
   * Registers a host (or returns the transport of one registered already, with its link
   * changed when `link` is given).
   *
   * @param hostname Its address ("10.0.0.1"), what peers dial and see.
   * @param link Its link; the network's default for what is left out.
   * @returns The transport that dials from and listens on this host.
   */
  host(hostname: string, link?: LinkOptions): Transport {
    let host = this.#hosts.get(hostname);
    if (host === undefined) {
      host = {
        name: hostname,
        link: { ...this.#link, ...link },
        egressFree: 0,
        ingressFree: 0,
        nextListenPort: 6881,
        nextLocalPort: 49152,
        listeners: new Map(),
        ends: new Set(),
      };
      this.#hosts.set(hostname, host);
    } else if (link) this.setLink(hostname, link);
    const self = host;
    return {
      name: "memory",
      connect: (address, signal) => this.#connect(self, address, signal),
      listen: (options) => this.#listen(self, options),
    };
  }

  /**
   * Changes a host's link from now on (bytes in flight keep their times).
   *
   * @param hostname A registered host.
   * @param link What changes.
   */
  setLink(hostname: string, link: LinkOptions): void {
    const host = this.#hosts.get(hostname);
    if (host === undefined) throw new RangeError(`Unknown host: ${hostname}`);
    host.link = { ...host.link, ...link };
  }

  /**
   * Cuts every connection of a host at once (a crash or a cable pulled): both sides read the
   * end of their streams.
   *
   * @param hostname A registered host.
   */
  disconnect(hostname: string): void {
    for (const end of [...this.#hosts.get(hostname)?.ends ?? []]) {
      end.close();
    }
  }

  /** Open connection ends over all hosts (two per connection). */
  get openEnds(): number {
    let n = 0;
    for (const host of this.#hosts.values()) n += host.ends.size;
    return n;
  }

  #connect(from: Host, address: string, signal: AbortSignal): Promise<TransportConnection> {
    const { hostname, port } = parseAddress(address);
    const to = this.#hosts.get(hostname);
    const rtt = 2 * (from.link.latencyMs + (to?.link.latencyMs ?? 0));
    return new Promise<TransportConnection>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        const listener = to?.listeners.get(port);
        if (to === undefined || listener === undefined) {
          return reject(new Deno.errors.ConnectionRefused(`Connection refused: ${address}`));
        }
        const localPort = from.nextLocalPort++;
        const client = new End(from, formatAddress(to.name, port), this.#wire);
        const server = new End(to, formatAddress(from.name, localPort), this.#wire);
        client.outbound = server.inbound = new Pipe(from, to, (chunk) => server.receive(chunk));
        server.outbound = client.inbound = new Pipe(to, from, (chunk) => client.receive(chunk));
        from.ends.add(client);
        to.ends.add(server);
        listener.offer(server);
        resolve(client);
      }, rtt);
    });
  }

  #listen(host: Host, options: TransportListenOptions): TransportListener {
    if (!WILDCARDS.has(options.hostname) && options.hostname !== host.name) {
      throw new Deno.errors.AddrNotAvailable(`Cannot listen on ${options.hostname}: not this host's address`);
    }
    let port = options.port;
    if (port === 0) {
      while (host.listeners.has(host.nextListenPort)) host.nextListenPort++;
      port = host.nextListenPort++;
    }
    if (host.listeners.has(port)) {
      throw new Deno.errors.AddrInUse(`Address in use: ${formatAddress(host.name, port)}`);
    }
    const listener = new MemoryListener(host.name, port, () => host.listeners.delete(port));
    host.listeners.set(port, listener);
    return listener;
  }

  /** Schedules each chunk through the sender's link, the crossing and the receiver's link. */
  readonly #wire: Wire = {
    send: (end, chunk) => {
      const pipe = end.outbound;
      const { from, to } = pipe;
      const now = performance.now();
      const left = serialise(from, "egressFree", now, chunk.byteLength);
      const latency = from.link.latencyMs + to.link.latencyMs;
      const arrived = serialise(to, "ingressFree", left + latency, chunk.byteLength);
      let stall = 0;
      const loss = Math.max(from.link.loss, to.link.loss);
      // Each retransmission may be lost again; ten in a row are taken as delivered anyway.
      for (let tries = 0; tries < 10 && loss > 0 && this.#random() < loss; tries++) {
        stall += Math.max(this.#retransmitMs, 2 * latency);
      }
      pipe.push(arrived + stall, chunk);
      const wait = left - now;
      // The write resolves once the chunk has left the sender's link (TCP's send buffer).
      if (wait >= 1) return new Promise((resolve) => setTimeout(resolve, wait));
    },
    sendEnd: (end) => {
      const pipe = end.outbound;
      pipe.push(performance.now() + pipe.from.link.latencyMs + pipe.to.link.latencyMs, null);
    },
  };
}

/** Takes `bytes` through a host's link direction from `start`; returns when they are through. */
function serialise(host: Host, side: "egressFree" | "ingressFree", start: number, bytes: number): number {
  if (host.link.bandwidth <= 0) return start;
  const begin = Math.max(start, host[side]);
  host[side] = begin + (bytes * 1000) / host.link.bandwidth;
  return host[side];
}
