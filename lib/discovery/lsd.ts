/**
 * BEP 14, local service discovery: announces the torrents we share to the local network by
 * UDP multicast (239.192.152.143:6771 and [ff15::efc0:988f]:6771) and listens for others'
 * announces, so peers on one network find each other without a tracker.
 *
 * An announce is an HTTP-like request:
 *
 * ```text
 * BT-SEARCH * HTTP/1.1\r\n
 * Host: 239.192.152.143:6771\r\n
 * Port: <our listening port>\r\n
 * Infohash: <40 hex characters>\r\n      (one line per torrent, several allowed)
 * cookie: <random, to recognise our own announces>\r\n
 * \r\n
 * \r\n
 * ```
 *
 * Each torrent is announced when added and then every 5 minutes (never more than once a
 * minute), several per packet of at most 1400 bytes. Received packets are bounded (2 KiB,
 * 64 header lines), rate limited, and an announcing peer is reported at most once a minute
 * per torrent; the peer's address is the packet's source address with the announced port.
 *
 * The socket work is behind {@linkcode LsdChannel}, so the rules are tested without a
 * network. The default channels use `Deno.listenDatagram` (unstable `net` API) and its
 * multicast joins (`node:dgram`'s multicast calls do not work in Deno).
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import type { Logger } from "../log.ts";
import { formatAddress, parseIp } from "../net/address.ts";
import { receivePackets } from "../net/receive_loop.ts";
import { latin1, toHex } from "../net/bytes.ts";

/** The LSD port. */
export const LSD_PORT = 6771;
/** The IPv4 multicast group (organisation-local scope). */
export const LSD_IPV4_GROUP = "239.192.152.143";
/** The IPv6 multicast group (site-local scope). */
export const LSD_IPV6_GROUP = "ff15::efc0:988f";
/** Largest announce we send (BEP 14: avoid fragmentation). */
export const MAX_LSD_PACKET = 1400;
/** Largest announce we read; larger packets are ignored. */
export const MAX_LSD_RECEIVED = 2048;
/** Least time between two announces of one torrent, and between two reports of one peer, in ms. */
export const LSD_MIN_INTERVAL_MS = 60_000;
/** Default time between two announces of one torrent, in ms (BEP 14: every 5 minutes). */
export const LSD_DEFAULT_INTERVAL_MS = 5 * 60_000;

const REQUEST_LINE = "BT-SEARCH * HTTP/1.1";
const MAX_HEADER_LINES = 64;
const HEX40 = /^[0-9a-fA-F]{40}$/;
/** Bytes of one "Infohash: <40 hex>\r\n" line. */
const INFOHASH_LINE = 52;
/** Received packets processed in a burst, and per second after it. */
const RECEIVE_BURST = 20;
const RECEIVE_PER_SECOND = 5;
/** Remembered (torrent, peer) reports, for the once-a-minute rule. */
const MAX_SEEN = 1024;
/** How often due announces are looked for, in ms. */
const CHECK_MS = 10_000;

/** One LSD announce. */
export interface LsdAnnounce {
  /** The `Host` header ("" when absent). */
  readonly host: string;
  /** The announcing peer's listening port. */
  readonly port: number;
  /** Info-hashes as 40 lower-case hex characters, at least one. */
  readonly infoHashes: readonly string[];
  /** The `cookie` header, or null. */
  readonly cookie: string | null;
}

/** What {@linkcode formatLsdAnnounce} writes. */
export interface LsdAnnounceInit {
  /** The `Host` header: the group and port, like "239.192.152.143:6771". */
  readonly host: string;
  /** Our listening port. */
  readonly port: number;
  /** Info-hashes, 40 hex characters each. */
  readonly infoHashes: readonly string[];
  /** Our cookie; absent or null: no `cookie` header. */
  readonly cookie?: string | null;
}

/**
 * Formats an LSD announce packet.
 *
 * @example
 * ```ts
 * import { formatLsdAnnounce, parseLsdAnnounce } from "./lsd.ts";
 * const packet = formatLsdAnnounce({
 *   host: "239.192.152.143:6771",
 *   port: 6881,
 *   infoHashes: ["0123456789abcdef0123456789abcdef01234567"],
 *   cookie: "c0ffee",
 * });
 * console.log(parseLsdAnnounce(packet)?.port); // 6881
 * ```
 *
 * @param announce What to announce.
 * @returns The packet bytes.
 * @throws {RangeError} for a port outside 1..65535, an info-hash that is not 40 hex characters,
 * or a cookie or host with characters outside printable ASCII.
 */
export function formatLsdAnnounce(announce: LsdAnnounceInit): Uint8Array {
  const { host, port, infoHashes } = announce;
  const cookie = announce.cookie ?? null;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Cannot announce port ${port}: expected 1 to 65535`);
  }
  for (const [name, value] of [["host", host], ["cookie", cookie ?? ""]]) {
    if (!/^[\x21-\x7e]*$/.test(value!)) {
      throw new RangeError(`Cannot announce ${name} '${value}': not printable ASCII`);
    }
  }
  let text = `${REQUEST_LINE}\r\nHost: ${host}\r\nPort: ${port}\r\n`;
  for (const hash of infoHashes) {
    if (!HEX40.test(hash)) {
      throw new RangeError(`Cannot announce info-hash '${hash}': expected 40 hex characters`);
    }
    text += `Infohash: ${hash.toLowerCase()}\r\n`;
  }
  if (cookie !== null && cookie !== "") text += `cookie: ${cookie}\r\n`;
  text += "\r\n\r\n";
  return new TextEncoder().encode(text);
}

/**
 * Parses an LSD announce. Header names are case-insensitive, lines may end in CRLF or LF,
 * unknown headers and malformed `Infohash` values are ignored.
 *
 * @example
 * ```ts
 * import { parseLsdAnnounce } from "./lsd.ts";
 * const text = "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n" +
 *   "Infohash: 0123456789ABCDEF0123456789ABCDEF01234567\r\n\r\n\r\n";
 * console.log(parseLsdAnnounce(new TextEncoder().encode(text))?.infoHashes);
 * // ["0123456789abcdef0123456789abcdef01234567"]
 * console.log(parseLsdAnnounce(new TextEncoder().encode("M-SEARCH * HTTP/1.1\r\n\r\n"))); // null
 * ```
 *
 * @param packet The received bytes.
 * @returns The announce, or null when the packet is not one (too large, wrong request line,
 * malformed header, no valid port or no valid info-hash).
 */
export function parseLsdAnnounce(packet: Uint8Array): LsdAnnounce | null {
  if (packet.length > MAX_LSD_RECEIVED) return null;
  const text = latin1(packet); // every byte is one character
  const lines = text.split("\n");
  if (stripCr(lines[0]!) !== REQUEST_LINE) return null;
  let host = "";
  let port = 0;
  let cookie: string | null = null;
  const infoHashes: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = stripCr(lines[i]!);
    if (line === "") break;
    if (i > MAX_HEADER_LINES) return null;
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "host") host = value;
    else if (name === "port") {
      if (!/^[0-9]{1,5}$/.test(value)) return null;
      port = Number(value);
    } else if (name === "infohash") {
      const hash = value.toLowerCase();
      if (HEX40.test(hash) && !infoHashes.includes(hash)) infoHashes.push(hash);
    } else if (name === "cookie") cookie = value;
  }
  if (port < 1 || port > 65535 || infoHashes.length === 0) return null;
  return { host, port, infoHashes, cookie };
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/** A datagram endpoint local discovery talks through: one multicast group's sockets. */
export interface LsdChannel {
  /** Which group it reaches: 4 (239.192.152.143) or 6 ([ff15::efc0:988f]). */
  readonly family: 4 | 6;
  /** Sends one packet to the group. */
  send(packet: Uint8Array): Promise<void>;
  /** Packets received from the group, with their source address; ends when closed. */
  receive(): AsyncIterable<{ data: Uint8Array; hostname: string }>;
  /** Closes the sockets (ends `receive`). Must not throw. */
  close(): void;
}

/** What {@linkcode LocalDiscoveryOptions.open} is asked for. */
export interface LsdOpenRequest {
  /** IPv4 address of the interface to use; "0.0.0.0": the system's choice. */
  readonly interface: string;
  /** Open the IPv4 group. */
  readonly ipv4: boolean;
  /** Open the IPv6 group (on the system's default interface). */
  readonly ipv6: boolean;
  /** Where to report a group that cannot be opened. */
  readonly logger?: Logger | undefined;
}

/** What {@linkcode LocalDiscovery.receive} did with a packet. */
export type LsdOutcome = "peers" | "ignored" | "own" | "malformed" | "rate-limited";

/** Options for {@linkcode LocalDiscovery}. */
export interface LocalDiscoveryOptions {
  /** Our listening port, announced as `Port` (0: we only listen for others). */
  port: () => number;
  /** A peer announced a torrent we have, at "host:port". */
  onPeer: (infoHash: string, address: string) => void;
  /**
   * The address the session listens on; discovery follows it. All interfaces (absent, "::"
   * or "0.0.0.0"): both groups on the system's default interfaces. One IPv4 address: the
   * IPv4 group on that interface only (127.0.0.1 keeps discovery on loopback). Anything
   * else (one IPv6 address, a host name): discovery stays off.
   * @default {undefined} (all interfaces)
   */
  hostname?: string;
  /** Time between two announces of one torrent, in ms (raised to at least a minute). @default {300_000} */
  intervalMs?: number;
  /** Where to log (category `lsd`). */
  logger?: Logger;
  /** Clock. @default {Date.now} */
  now?: () => number;
  /** Our cookie. @default 16 random hex characters */
  cookie?: string;
  /** Opens the channels. @default {openMulticastChannels} */
  open?: (request: LsdOpenRequest) => Promise<LsdChannel[]>;
}

/**
 * A session's local service discovery: announces its torrents and reports peers that
 * announce them. Sockets open on the first {@linkcode LocalDiscovery.add}; failing to open
 * them is logged, never thrown.
 *
 * @example
 * ```ts ignore
 * import { LocalDiscovery } from "./lsd.ts";
 * const lsd = new LocalDiscovery({
 *   port: () => 6881,
 *   onPeer: (infoHash, address) => console.log(infoHash, address),
 * });
 * lsd.add("0123456789abcdef0123456789abcdef01234567");
 * await lsd.close();
 * ```
 */
export class LocalDiscovery implements AsyncDisposable {
  /** Our cookie: announces that carry it are our own. */
  readonly cookie: string;
  readonly #options: LocalDiscoveryOptions;
  readonly #now: () => number;
  readonly #interval: number;
  /** Info-hash → when we last announced it. */
  readonly #torrents = new Map<string, number>();
  /** "hash peer" → when we last reported it. */
  readonly #seen = new Map<string, number>();
  #channels: LsdChannel[] = [];
  #ready: Promise<void> | null = null;
  #flushing: Promise<unknown> = Promise.resolve();
  readonly #pumps: Promise<void>[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #tokens = RECEIVE_BURST;
  #refilled: number;
  #closed = false;

  /**
   * Creates the service (no sockets yet).
   *
   * @param options Port, where peers go, interface, clock.
   */
  constructor(options: LocalDiscoveryOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#interval = Math.max(LSD_MIN_INTERVAL_MS, options.intervalMs ?? LSD_DEFAULT_INTERVAL_MS);
    this.cookie = options.cookie ??
      toHex(randomBytes(8));
    this.#refilled = this.#now();
  }

  /** Info-hashes being announced. */
  get torrents(): string[] {
    return [...this.#torrents.keys()];
  }

  /**
   * Starts announcing a torrent (soon, then every interval) and reporting its peers.
   *
   * @param infoHash 40 hex characters.
   * @throws {RangeError} for an info-hash that is not 40 hex characters.
   */
  add(infoHash: string): void {
    if (!HEX40.test(infoHash)) {
      throw new RangeError(`Invalid info-hash '${infoHash}': expected 40 hex characters`);
    }
    if (this.#closed) return;
    const hash = infoHash.toLowerCase();
    if (!this.#torrents.has(hash)) this.#torrents.set(hash, -Infinity);
    this.#start();
    this.flush().catch((error) =>
      this.#options.logger?.warn("lsd", `Cannot announce: ${(error as Error).message}`)
    );
  }

  /**
   * Stops announcing a torrent.
   *
   * @param infoHash 40 hex characters.
   */
  remove(infoHash: string): void {
    this.#torrents.delete(infoHash.toLowerCase());
  }

  #start(): void {
    if (this.#ready !== null) return;
    const open = this.#options.open ?? openMulticastChannels;
    const hostname = this.#options.hostname;
    const all = hostname === undefined || hostname === "::" || hostname === "0.0.0.0";
    const ipv4 = all || parseIp(hostname!)?.length === 4;
    const logger = this.#options.logger;
    if (!ipv4) {
      logger?.info("lsd", "Local discovery is off: it needs an IPv4 listening address or all interfaces", {
        hostname: hostname ?? null,
      });
      this.#ready = Promise.resolve();
      return;
    }
    this.#ready = open({ interface: all ? "0.0.0.0" : hostname!, ipv4: true, ipv6: all, logger })
      .then((channels) => {
        if (this.#closed) {
          for (const c of channels) c.close();
          return;
        }
        this.#channels = channels;
        for (const channel of channels) this.#pumps.push(this.#pump(channel));
        if (channels.length > 0) {
          this.#timer = setInterval(() => {
            this.flush().catch((error) =>
              logger?.warn("lsd", `Cannot announce: ${(error as Error).message}`)
            );
          }, CHECK_MS);
          logger?.info("lsd", "Local discovery started", {
            groups: channels.map((c) => (c.family === 4 ? LSD_IPV4_GROUP : LSD_IPV6_GROUP)).join(","),
          });
        }
      }, (error) => {
        logger?.warn("lsd", `Local discovery is off: ${(error as Error).message}`);
      });
  }

  async #pump(channel: LsdChannel): Promise<void> {
    try {
      for await (const { data, hostname } of channel.receive()) {
        if (this.#closed) break;
        this.receive(data, hostname);
      }
    } catch (error) {
      if (!this.#closed) {
        this.#options.logger?.warn("lsd", `Local discovery stopped listening: ${(error as Error).message}`, {
          family: channel.family,
        });
      }
    }
  }

  /**
   * Sends announces for the torrents that are due (never announced, or not for an
   * interval), several info-hashes per packet, after any flush already running. The service
   * calls this itself; it is public for tests and for callers that want an announce now.
   *
   * @returns How many packets were sent.
   */
  flush(): Promise<number> {
    // One at a time, in call order: when a flush resolves, earlier ones are done too.
    const run = this.#flushing.then(() => this.#flushNow());
    this.#flushing = run.catch(() => 0);
    return run;
  }

  async #flushNow(): Promise<number> {
    if (this.#ready === null) return 0;
    await this.#ready;
    const port = this.#options.port();
    if (this.#closed || this.#channels.length === 0 || port <= 0) return 0;
    const now = this.#now();
    const due: string[] = [];
    for (const [hash, last] of this.#torrents) {
      if (now - last >= this.#interval) {
        due.push(hash);
        this.#torrents.set(hash, now);
      }
    }
    if (due.length === 0) return 0;
    let sent = 0;
    for (const channel of this.#channels) {
      const host = channel.family === 4 ? `${LSD_IPV4_GROUP}:${LSD_PORT}` : `[${LSD_IPV6_GROUP}]:${LSD_PORT}`;
      const base = formatLsdAnnounce({ host, port, infoHashes: [], cookie: this.cookie }).length;
      const perPacket = Math.max(1, Math.floor((MAX_LSD_PACKET - base) / INFOHASH_LINE));
      for (let i = 0; i < due.length; i += perPacket) {
        const packet = formatLsdAnnounce({
          host,
          port,
          infoHashes: due.slice(i, i + perPacket),
          cookie: this.cookie,
        });
        try {
          await channel.send(packet);
          sent++;
        } catch (error) {
          this.#options.logger?.debug("lsd", `Cannot send an announce: ${(error as Error).message}`, {
            family: channel.family,
          });
        }
      }
    }
    this.#options.logger?.debug("lsd", "Announced", { torrents: due.length, packets: sent, port });
    return sent;
  }

  /**
   * Handles one received packet: reports the announcing peer for each of our torrents it
   * names (at most once a minute per torrent and peer). The channels' loops call this; it is
   * public for tests and custom transports.
   *
   * @param data The packet.
   * @param hostname Its source address.
   * @returns What was done with it.
   */
  receive(data: Uint8Array, hostname: string): LsdOutcome {
    const now = this.#now();
    this.#tokens = Math.min(
      RECEIVE_BURST,
      this.#tokens + ((now - this.#refilled) / 1000) * RECEIVE_PER_SECOND,
    );
    this.#refilled = now;
    if (this.#tokens < 1) return "rate-limited";
    this.#tokens--;
    const announce = parseLsdAnnounce(data);
    if (announce === null) {
      this.#options.logger?.debug("lsd", "Ignored a malformed announce", {
        from: hostname,
        bytes: data.length,
      });
      return "malformed";
    }
    if (announce.cookie !== null && announce.cookie === this.cookie) return "own";
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
    const host = mapped ? mapped[1]! : hostname;
    // A source nobody can dial (a sender without an address on the interface) says nothing.
    if (host === "0.0.0.0" || host === "::" || host === "") return "ignored";
    const address = formatAddress(host, announce.port);
    let reported = 0;
    for (const hash of announce.infoHashes) {
      if (!this.#torrents.has(hash)) continue;
      const key = `${hash} ${address}`;
      const last = this.#seen.get(key);
      if (last !== undefined && now - last < LSD_MIN_INTERVAL_MS) continue;
      this.#seen.delete(key);
      this.#seen.set(key, now);
      if (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value!);
      reported++;
      this.#options.logger?.info("lsd", "Peer found by local discovery", {
        torrent: hash.slice(0, 12),
        peer: address,
      });
      this.#options.onPeer(hash, address);
    }
    return reported > 0 ? "peers" : "ignored";
  }

  /** Stops announcing and closes the sockets. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ready;
    for (const channel of this.#channels) channel.close();
    this.#channels = [];
    await Promise.allSettled(this.#pumps);
  }

  /** Same as {@linkcode LocalDiscovery.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Opens the multicast channels with `Deno.listenDatagram`: for each group, a socket bound to
 * port 6771 (shared with other programs through `reuseAddress`) that joins the group and
 * receives, and a socket that sends. On Linux a sender bound to an interface's address sends
 * multicast through that interface, which keeps discovery on loopback when the interface is
 * 127.0.0.1. A group that cannot be opened is logged and left out.
 *
 * @example
 * ```ts ignore
 * import { openMulticastChannels } from "./lsd.ts";
 * const channels = await openMulticastChannels({ interface: "127.0.0.1", ipv4: true, ipv6: false });
 * for (const c of channels) c.close();
 * ```
 *
 * @param request Which groups, on which interface.
 * @returns The channels that opened (possibly none).
 */
export async function openMulticastChannels(request: LsdOpenRequest): Promise<LsdChannel[]> {
  const logger = request.logger;
  if (typeof Deno.listenDatagram !== "function") {
    logger?.warn("lsd", "Local discovery is off: it needs Deno's unstable net API (--unstable-net)");
    return [];
  }
  const channels: LsdChannel[] = [];
  const groups: [4 | 6, boolean][] = [[4, request.ipv4], [6, request.ipv6]];
  for (const [family, wanted] of groups) {
    if (!wanted) continue;
    let listener: Deno.DatagramConn | undefined;
    let sender: Deno.DatagramConn | undefined;
    try {
      listener = Deno.listenDatagram({
        transport: "udp",
        hostname: family === 4 ? "0.0.0.0" : "::",
        port: LSD_PORT,
        reuseAddress: true,
        loopback: true,
      });
      if (family === 4) await listener.joinMulticastV4(LSD_IPV4_GROUP, request.interface);
      else await listener.joinMulticastV6(LSD_IPV6_GROUP, 0);
      sender = Deno.listenDatagram({
        transport: "udp",
        hostname: family === 4 ? request.interface : "::",
        port: 0,
        loopback: true,
      });
      channels.push(datagramChannel(family, listener, sender, logger));
    } catch (error) {
      closeQuietly(listener);
      closeQuietly(sender);
      const level = family === 4 ? "warn" : "info";
      logger?.log(level, "lsd", `Local discovery is off on IPv${family}: ${(error as Error).message}`, {
        interface: family === 4 ? request.interface : "default",
      });
    }
  }
  return channels;
}

function datagramChannel(
  family: 4 | 6,
  listener: Deno.DatagramConn,
  sender: Deno.DatagramConn,
  logger: Logger | undefined,
): LsdChannel {
  let closed = false;
  const target: Deno.NetAddr = {
    transport: "udp",
    hostname: family === 4 ? LSD_IPV4_GROUP : LSD_IPV6_GROUP,
    port: LSD_PORT,
  };
  return {
    family,
    async send(packet: Uint8Array): Promise<void> {
      await sender.send(packet, target);
    },
    async *receive(): AsyncGenerator<{ data: Uint8Array; hostname: string }> {
      // Ends when the socket is closed; a failed receive is retried with back-off.
      for await (
        const [data, from] of receivePackets(listener, { name: "LSD socket", category: "lsd", logger })
      ) {
        if (closed) return;
        yield { data, hostname: from.hostname };
      }
    },
    close(): void {
      closed = true;
      closeQuietly(listener);
      closeQuietly(sender);
    },
  };
}

function closeQuietly(conn: Deno.DatagramConn | undefined): void {
  try {
    conn?.close();
  } catch (error) {
    // Closing twice is the only expected failure.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
