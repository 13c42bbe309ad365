/**
 * Scripted fake trackers for the tracker client tests: an HTTP tracker (`Deno.serve`) and
 * a UDP tracker (`Deno.listenDatagram`), both on 127.0.0.1 with a port chosen by the
 * system. Each records what it received and answers what the test scripts, right or
 * wrong. Every wait has a deadline.
 *
 * @module
 */

import { type BEncodable, encode } from "../lib/bencode.ts";

/** Default deadline of every wait, in milliseconds. */
export const WAIT_MS = 5000;

/**
 * Resolves like `promise`, or rejects after `ms` milliseconds. The timer is always cleared.
 *
 * @param promise What to wait for.
 * @param ms Deadline.
 * @param what Names the wait in the error message.
 * @returns The promise's value.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `condition` every few milliseconds until it holds, or throws after `ms`.
 *
 * @param condition The condition.
 * @param what Names the wait in the error message.
 * @param ms Deadline.
 */
export async function waitUntil(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A port on 127.0.0.1 where nothing listens (bound, then closed): TCP connections to it
 * are refused and UDP datagrams to it go unanswered.
 *
 * @returns The port.
 */
export function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Decodes one query-string component's percent-escapes into raw bytes. */
export function percentDecode(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%" && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      out.push(...new TextEncoder().encode(text[i]!));
    }
  }
  return new Uint8Array(out);
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/** A request the HTTP tracker received. */
export interface SeenHttpRequest {
  /** The path, e.g. `/announce`. */
  path: string;
  /** The query string exactly as sent, without `?`. */
  rawQuery: string;
  /** Each parameter's values as raw bytes (percent-escapes decoded), in order. */
  params: Map<string, Uint8Array[]>;
  /** The request headers. */
  headers: Headers;
}

/** What the HTTP tracker answers: a response, or `"hang"` to never answer (until closed). */
export type HttpScript = (request: SeenHttpRequest) => Response | "hang" | Promise<Response | "hang">;

/**
 * A bencoded `200 OK` response (or another status).
 *
 * @param value The value to bencode.
 * @param status The status.
 * @returns The response.
 */
export function bencoded(value: BEncodable, status = 200): Response {
  return new Response(new Uint8Array(encode(value)), { status });
}

/** A scripted HTTP tracker on 127.0.0.1. */
export class ScriptedHttpTracker implements AsyncDisposable {
  /** Every request received, in order. */
  readonly requests: SeenHttpRequest[] = [];
  /** What to answer; replace it at any time. */
  script: HttpScript;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #abort = new AbortController();
  readonly #hanging: (() => void)[] = [];
  #closed: Promise<void> | undefined;

  /**
   * Starts the tracker.
   *
   * @param script What to answer.
   */
  constructor(script: HttpScript = () => bencoded({ interval: 1800, peers: new Uint8Array(0) })) {
    this.script = script;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: this.#abort.signal, onListen: () => {} },
      async (request) => {
        const url = new URL(request.url);
        const rawQuery = url.search.slice(1);
        const params = new Map<string, Uint8Array[]>();
        for (const pair of rawQuery === "" ? [] : rawQuery.split("&")) {
          const eq = pair.indexOf("=");
          const name = eq < 0 ? pair : pair.slice(0, eq);
          const value = percentDecode(eq < 0 ? "" : pair.slice(eq + 1));
          params.set(name, [...(params.get(name) ?? []), value]);
        }
        const seen = { path: url.pathname, rawQuery, params, headers: request.headers };
        this.requests.push(seen);
        const answer = await this.script(seen);
        if (answer !== "hang") return answer;
        await new Promise<void>((resolve) => this.#hanging.push(resolve));
        return new Response("closing", { status: 503 });
      },
    );
  }

  /** The port it listens on. */
  get port(): number {
    return this.#server.addr.port;
  }

  /** `http://127.0.0.1:PORT/announce`. */
  get announceUrl(): string {
    return `http://127.0.0.1:${this.port}/announce`;
  }

  /**
   * Waits until at least `count` requests have arrived.
   *
   * @param count How many.
   * @param ms Deadline.
   * @returns The `count`-th request.
   */
  async waitForRequests(count: number, ms = WAIT_MS): Promise<SeenHttpRequest> {
    await waitUntil(() => this.requests.length >= count, `${count} HTTP tracker requests`, ms);
    return this.requests[count - 1]!;
  }

  /** Answers the hanging requests and stops the server. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const release of this.#hanging.splice(0)) release();
      this.#abort.abort();
      await this.#server.finished;
    })();
    return this.#closed;
  }

  /** Same as {@linkcode ScriptedHttpTracker.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The text value of a query parameter the tracker saw.
 *
 * @param request The request.
 * @param name The parameter.
 * @returns Its first value as text, or `undefined`.
 */
export function param(request: SeenHttpRequest, name: string): string | undefined {
  const value = request.params.get(name)?.[0];
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

/** A datagram the UDP tracker received, with its BEP 15 header parsed when long enough. */
export interface SeenUdpPacket {
  /** The raw bytes. */
  data: Uint8Array;
  /** The sender. */
  from: Deno.NetAddr;
  /** The connection id (or protocol id of a connect). */
  connectionId: bigint;
  /** The action. */
  action: number;
  /** The transaction id. */
  txid: number;
}

/** The fields of a BEP 15 announce request. */
export interface UdpAnnounceFields {
  /** Info-hash. */
  infoHash: Uint8Array;
  /** Peer id. */
  peerId: Uint8Array;
  /** Downloaded. */
  downloaded: bigint;
  /** Left. */
  left: bigint;
  /** Uploaded. */
  uploaded: bigint;
  /** Event code (0 none, 1 completed, 2 started, 3 stopped). */
  event: number;
  /** IP field. */
  ip: number;
  /** Key. */
  key: number;
  /** Numwant. */
  numwant: number;
  /** Port. */
  port: number;
}

/**
 * Parses an announce request's body.
 *
 * @param packet The datagram.
 * @returns Its fields.
 */
export function parseUdpAnnounce(packet: SeenUdpPacket): UdpAnnounceFields {
  const d = packet.data;
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  return {
    infoHash: d.slice(16, 36),
    peerId: d.slice(36, 56),
    downloaded: view.getBigUint64(56),
    left: view.getBigUint64(64),
    uploaded: view.getBigUint64(72),
    event: view.getUint32(80),
    ip: view.getUint32(84),
    key: view.getUint32(88),
    numwant: view.getInt32(92),
    port: view.getUint16(96),
  };
}

/** How the UDP tracker reacts to one datagram: `reply` sends bytes back to the sender. */
export type UdpScript = (
  packet: SeenUdpPacket,
  reply: (bytes: Uint8Array) => Promise<void>,
  tracker: ScriptedUdpTracker,
) => void | Promise<void>;

/** The BEP 15 protocol id that opens a connect request. */
export const UDP_PROTOCOL_ID = 0x41727101980n;

/**
 * A connect reply.
 *
 * @param txid Transaction id.
 * @param connectionId The connection id to give.
 * @returns The datagram.
 */
export function connectReply(txid: number, connectionId: bigint): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0);
  view.setUint32(4, txid);
  view.setBigUint64(8, connectionId);
  return out;
}

/**
 * An announce reply.
 *
 * @param txid Transaction id.
 * @param fields Interval, counts and the compact peer bytes.
 * @returns The datagram.
 */
export function announceReply(
  txid: number,
  fields: { interval?: number; leechers?: number; seeders?: number; peers?: Uint8Array } = {},
): Uint8Array {
  const peers = fields.peers ?? new Uint8Array(0);
  const out = new Uint8Array(20 + peers.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, txid);
  view.setInt32(8, fields.interval ?? 1800);
  view.setUint32(12, fields.leechers ?? 0);
  view.setUint32(16, fields.seeders ?? 0);
  out.set(peers, 20);
  return out;
}

/**
 * A scrape reply.
 *
 * @param txid Transaction id.
 * @param entries Seeders, completed, leechers per asked hash.
 * @returns The datagram.
 */
export function scrapeReply(txid: number, entries: [number, number, number][]): Uint8Array {
  const out = new Uint8Array(8 + 12 * entries.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 2);
  view.setUint32(4, txid);
  entries.forEach(([s, c, l], i) => {
    view.setUint32(8 + 12 * i, s);
    view.setUint32(12 + 12 * i, c);
    view.setUint32(16 + 12 * i, l);
  });
  return out;
}

/**
 * An error reply (action 3).
 *
 * @param txid Transaction id.
 * @param message The message.
 * @returns The datagram.
 */
export function errorReply(txid: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const out = new Uint8Array(8 + text.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 3);
  view.setUint32(4, txid);
  out.set(text, 8);
  return out;
}

/**
 * A well-behaved UDP tracker script: connects hand out ids 1000, 1001, ... (all accepted),
 * announces get `peers`, scrapes get `[5, 7, 3]` per hash. Announces and scrapes with an
 * unknown connection id get no answer.
 *
 * @param peers Compact peers to hand out.
 * @returns The script.
 */
export function wellBehavedUdp(peers: Uint8Array = new Uint8Array(0)): UdpScript {
  let next = 1000n;
  return async (packet, reply, tracker) => {
    if (packet.action === 0 && packet.connectionId === UDP_PROTOCOL_ID) {
      const id = next++;
      tracker.validIds.add(id);
      await reply(connectReply(packet.txid, id));
    } else if (!tracker.validIds.has(packet.connectionId)) {
      return;
    } else if (packet.action === 1) {
      await reply(announceReply(packet.txid, { interval: 900, leechers: 2, seeders: 1, peers }));
    } else if (packet.action === 2) {
      const count = (packet.data.length - 16) / 20;
      await reply(scrapeReply(packet.txid, Array.from({ length: count }, () => [5, 7, 3])));
    }
  };
}

/** A scripted UDP tracker on 127.0.0.1 (or another loopback address). */
export class ScriptedUdpTracker implements AsyncDisposable {
  /** Every datagram received, in order. */
  readonly packets: SeenUdpPacket[] = [];
  /** Connection ids the script considers valid (used by {@linkcode wellBehavedUdp}). */
  readonly validIds = new Set<bigint>();
  /** How to react; replace it at any time. */
  script: UdpScript;
  readonly #conn: Deno.DatagramConn;
  readonly #other: Deno.DatagramConn;
  readonly #loop: Promise<void>;
  readonly #hostname: string;
  #closed = false;

  /**
   * Starts the tracker.
   *
   * @param script How to react.
   * @param hostname Loopback address to bind.
   */
  constructor(script: UdpScript = wellBehavedUdp(), hostname = "127.0.0.1") {
    this.script = script;
    this.#hostname = hostname;
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.#other = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.#loop = this.#receive();
  }

  /** The port it listens on. */
  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  /** `udp://HOST:PORT/announce`. */
  get url(): string {
    const host = this.#hostname.includes(":") ? `[${this.#hostname}]` : this.#hostname;
    return `udp://${host}:${this.port}/announce`;
  }

  /**
   * Sends a datagram from the tracker's socket.
   *
   * @param bytes The datagram.
   * @param to The destination.
   */
  async send(bytes: Uint8Array, to: Deno.NetAddr): Promise<void> {
    await this.#conn.send(bytes, to);
  }

  /**
   * Sends a datagram from another socket of the same host (another port): an impostor.
   *
   * @param bytes The datagram.
   * @param to The destination.
   */
  async sendFromOtherPort(bytes: Uint8Array, to: Deno.NetAddr): Promise<void> {
    await this.#other.send(bytes, to);
  }

  /**
   * Waits until at least `count` datagrams have arrived.
   *
   * @param count How many.
   * @param ms Deadline.
   * @returns The `count`-th datagram.
   */
  async waitForPackets(count: number, ms = WAIT_MS): Promise<SeenUdpPacket> {
    await waitUntil(() => this.packets.length >= count, `${count} UDP tracker datagrams`, ms);
    return this.packets[count - 1]!;
  }

  /** Closes the sockets and waits for the receive loop to end. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#conn.close();
      this.#other.close();
    }
    await this.#loop;
  }

  /** Same as {@linkcode ScriptedUdpTracker.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #receive(): Promise<void> {
    for (;;) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await this.#conn.receive();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
      const addr = from as Deno.NetAddr;
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      const packet: SeenUdpPacket = {
        data,
        from: addr,
        connectionId: data.length >= 8 ? view.getBigUint64(0) : -1n,
        action: data.length >= 12 ? view.getUint32(8) : -1,
        txid: data.length >= 16 ? view.getUint32(12) : -1,
      };
      this.packets.push(packet);
      try {
        await this.script(packet, (bytes) => this.send(bytes, addr), this);
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }
}

/**
 * Compact IPv4 peer bytes for "a.b.c.d:port" addresses.
 *
 * @param addresses The peers.
 * @returns 6 bytes per peer.
 */
export function compact4(...addresses: string[]): Uint8Array {
  const out = new Uint8Array(6 * addresses.length);
  addresses.forEach((address, i) => {
    const [ip, port] = address.split(":") as [string, string];
    out.set(ip.split(".").map(Number), 6 * i);
    out[6 * i + 4] = Number(port) >> 8;
    out[6 * i + 5] = Number(port) & 0xff;
  });
  return out;
}
