/**
 * Fetching a magnet link's metadata (BEP 9): connect to several peers, ask those that offer
 * `ut_metadata` for the info dictionary in 16 KiB pieces spread over them, assemble it, and
 * accept it only when its SHA-1 is the info-hash.
 *
 * Faults are contained per peer. A peer whose extended handshake is not a dictionary, whose
 * `metadata_size` is 0, negative, not an integer or over the cap, or that sends a piece over
 * 16 KiB, a wrong `total_size` or a wrong piece length is dropped on the spot. A refused piece
 * is asked of others; a peer that refuses everything, or times out on requests twice, is dropped
 * and may be tried again later. When peers disagree on `metadata_size`, the size most of them
 * claim is assembled first. When the assembled metadata does not hash to the info-hash: if one
 * peer sent it all, that peer is banned; otherwise the fetch switches to one peer at a time
 * (each peer sends every piece), so the next failure names its peer, and once the metadata is
 * verified the peers whose earlier pieces differ from it are banned too.
 *
 * A `bitfield` (or `have_all`, `have`) that arrives before the metadata is kept and checked
 * once the piece count is known: peers whose bitfield does not fit the torrent are left out of
 * {@linkcode FetchedMetadata.peers}, and the others are listed seeds first, so the download
 * (which opens its own connections) starts with the best of them.
 *
 * @module
 */

import { decode } from "./bencode.ts";
import { MetainfoError, ProtocolError, ShoalError } from "./errors.ts";
import { Logger } from "./log.ts";
import type { MagnetLink } from "./magnet.ts";
import { MetadataPeer, type PieceEvidence } from "./peer/metadata_peer.ts";
import type { HandshakenPeer } from "./peer/handshake_read.ts";
import { toHex } from "./net/bytes.ts";
import { METADATA_PIECE_SIZE } from "./peer/ut_metadata.ts";
import { Announcer } from "./tracker/announcer.ts";
import type { UdpTrackerClient } from "./tracker/udp_tracker.ts";
import type { Encryption, Transport } from "./types.ts";
import { reservedBits } from "./wire/handshake.ts";
import { Swarm } from "./swarm/swarm.ts";
import { METADATA_SWARM } from "./swarm/constants.ts";
import { MetadataAssembler } from "./metadata_assembly.ts";
import { type MetadataFetchStatus, metadataTimeoutError } from "./metadata_status.ts";
import { type MetadataSource, rankSources } from "./metadata_sources.ts";

export { type MetadataFetchStatus, metadataTimeoutError, NO_METADATA_STATUS } from "./metadata_status.ts";
export type { MetadataSource } from "./metadata_sources.ts";

/** Options for {@linkcode fetchMetadata} and {@linkcode MetadataFetcher}. */
export interface FetchMetadataOptions {
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** Peers to try besides the link's `x.pe` ("host:port"). @default {[]} */
  peers?: readonly string[];
  /**
   * Announce to the link's `tr` trackers (each its own tier) and these extra tiers while
   * fetching; `left` is reported as 16 KiB, as libtorrent does before it knows the size.
   * Absent: no trackers.
   */
  trackers?: { port: number; udp?: UdpTrackerClient; extraTiers?: readonly (readonly string[])[] };
  /** Aborts the fetch (it rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Gives up after this many milliseconds (0: never). @default {0} */
  timeoutMs?: number;
  /** Where the fetch logs (category `metadata`). @default a logger with no sinks */
  logger?: Logger;
  /** Largest `metadata_size` accepted from a peer. @default {16 MiB} */
  maxMetadataSize?: number;
  /** Connection encryption plugin; absent: plaintext only. */
  encryption?: Encryption;
  /** How peers are dialled. @default {tcpTransport()} */
  transport?: Transport;
  /** Connections at once. @default {8} */
  maxConnections?: number;
  /** Deadline for dialling plus handshake, in ms. @default {10_000} */
  dialTimeoutMs?: number;
  /** Deadline for the peer's extended handshake after ours, in ms. @default {10_000} */
  handshakeTimeoutMs?: number;
  /** Deadline for the answer to one piece request, in ms. @default {15_000} */
  requestTimeoutMs?: number;
  /** Our listening port, sent as `p` in the extended handshake. */
  listenPort?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
  /**
   * Called with the fetch's state when it starts and about once a second while it runs (for a
   * progress display).
   */
  onStatus?: (status: MetadataFetchStatus) => void;
}

/** The result of a metadata fetch. */
export interface FetchedMetadata {
  /** The raw info dictionary; its SHA-1 is the info-hash. */
  readonly infoBytes: Uint8Array;
  /**
   * Peers to download from, best first: those met during the fetch whose piece information
   * fits the torrent (seeds first), then the other addresses heard of. Banned peers and peers
   * whose bitfield did not fit are left out.
   */
  readonly peers: readonly MetadataSource[];
}

/** Refused pieces after which a peer is no use to the fetch. */
const MAX_REJECTS = 3;
/** Requests timed out after which a peer is dropped. */
const MAX_TIMEOUTS = 2;

/**
 * Fetches a magnet link's metadata from peers.
 *
 * @example
 * ```ts ignore
 * import { fetchMetadata } from "./metadata_fetch.ts";
 * import { parseMagnet } from "./magnet.ts";
 * const link = parseMagnet("magnet:?xt=urn:btih:...&x.pe=127.0.0.1:6881");
 * const { infoBytes } = await fetchMetadata(link, { peerId, signal: AbortSignal.timeout(60_000) });
 * ```
 *
 * @param link The magnet link (its info-hash, `x.pe` peers and `tr` trackers are used).
 * @param options Identity, other peer sources, limits.
 * @returns The verified info dictionary and the peers worth downloading from.
 * @throws {ShoalError} when aborted or timed out (code `METADATA_TIMEOUT`).
 * @throws {MetainfoError} when the verified metadata is not a bencoded dictionary.
 */
export function fetchMetadata(
  link: Pick<MagnetLink, "infoHash" | "peers" | "trackers">,
  options: FetchMetadataOptions,
): Promise<FetchedMetadata> {
  const fetcher = new MetadataFetcher(link, options);
  fetcher.start();
  return fetcher.result;
}

/**
 * The state of one metadata fetch; {@linkcode fetchMetadata} is the usual way in. More peers
 * can be fed in while it runs with {@linkcode MetadataFetcher.addPeers}.
 *
 * @example
 * ```ts ignore
 * const fetcher = new MetadataFetcher(link, { peerId });
 * fetcher.start();
 * fetcher.addPeers(["127.0.0.1:51413"], "lsd");
 * const { infoBytes } = await fetcher.result;
 * ```
 */
export class MetadataFetcher {
  /** Settles with the metadata, or rejects when aborted or timed out. */
  readonly result: Promise<FetchedMetadata>;

  readonly #infoHash: Uint8Array;
  readonly #options: FetchMetadataOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #maxSize: number;
  readonly #peers = new Map<string, MetadataPeer>();
  readonly #swarm: Swarm;
  /** Peers that broke the protocol: never asked again, not handed on. */
  readonly #faulty = new Set<string>();
  /** What each peer said about its pieces, kept after it closes. */
  readonly #evidence = new Map<string, PieceEvidence>();
  readonly #abort = new AbortController();
  readonly #trackerTiers: string[][];
  #announcer: Announcer | null = null;
  readonly #assembler: MetadataAssembler;
  #timer: ReturnType<typeof setInterval> | undefined;
  #deadline: ReturnType<typeof setTimeout> | undefined;
  #done = false;
  /** Pieces each peer refused in all (a peer is dropped at MAX_REJECTS). */
  readonly #rejects = new Map<string, number>();
  #onAbort: (() => void) | undefined;
  #resolve!: (value: FetchedMetadata) => void;
  #reject!: (error: Error) => void;

  /**
   * Creates the fetch; nothing happens before {@linkcode MetadataFetcher.start}.
   *
   * @param link The magnet link's info-hash, peers and trackers.
   * @param options Identity, other peer sources, limits.
   */
  constructor(link: Pick<MagnetLink, "infoHash" | "peers" | "trackers">, options: FetchMetadataOptions) {
    if (link.infoHash.length !== 20) throw new TypeError("Info-hash must be 20 bytes");
    this.#infoHash = link.infoHash.slice();
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#maxSize = options.maxMetadataSize ?? 16 * 1024 * 1024;
    this.#log = (options.logger ?? new Logger()).child({ torrent: toHex(this.#infoHash).slice(0, 12) });
    this.#trackerTiers = [
      ...link.trackers.map((t) => [t]),
      ...(options.trackers?.extraTiers ?? []).map((t) => [...t]),
    ];
    this.#assembler = new MetadataAssembler({
      infoHash: this.#infoHash,
      logger: this.#log,
      usable: () => this.#usable(),
      peer: (address) => this.#peers.get(address),
      ban: (address, reason) => this.#ban(address, reason),
      verified: (infoBytes) => this.#succeed(infoBytes),
      finished: () => this.#done,
    });
    this.#swarm = new Swarm({
      policy: { ...METADATA_SWARM, maxConnections: options.maxConnections ?? METADATA_SWARM.maxConnections },
      peerId: options.peerId,
      handshake: () => ({
        infoHash: this.#infoHash,
        peerId: options.peerId,
        reserved: reservedBits({ fast: true, extensions: true }),
      }),
      logger: this.#log,
      category: "metadata",
      active: () => this.#timer !== undefined && !this.#done,
      onPeer: (address, peer) => this.#startPeer(address, peer),
      dial: options,
      signal: this.#abort.signal,
      now: this.#now,
    });
    this.result = new Promise<FetchedMetadata>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.result.catch(() => {/* the caller gets the rejection through `result` */});
    this.addPeers([...link.peers, ...(options.peers ?? [])], "magnet");
  }

  /** Starts connecting and announcing. */
  start(): void {
    if (this.#timer !== undefined || this.#done) return;
    const signal = this.#options.signal;
    if (signal?.aborted) {
      this.#fail(signal.reason instanceof Error ? signal.reason : new ShoalError("STOPPED", "Fetch aborted"));
      return;
    }
    this.#onAbort = () => {
      this.#fail(
        signal!.reason instanceof Error ? signal!.reason : new ShoalError("STOPPED", "Fetch aborted"),
      );
    };
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    const timeoutMs = this.#options.timeoutMs ?? 0;
    if (timeoutMs > 0) {
      this.#deadline = setTimeout(
        () => this.#fail(metadataTimeoutError(timeoutMs, this.status())),
        timeoutMs,
      );
    }
    const tick = Math.max(50, Math.min(1000, (this.#options.requestTimeoutMs ?? 15_000) / 4));
    this.#timer = setInterval(() => this.#tick(), tick);
    this.#startAnnouncing();
    this.#log.info("metadata", "Fetching metadata", { peers: this.#swarm.candidates.size });
    this.#swarm.connectMore();
    this.#options.onStatus?.(this.status());
  }

  /**
   * Where the fetch stands: peers heard of, tried, connected, offering the metadata.
   *
   * @returns A snapshot.
   */
  status(): MetadataFetchStatus {
    return {
      known: this.#swarm.candidates.size,
      tried: this.#swarm.tried,
      connected: this.#swarm.handshaken,
      active: this.#peers.size,
      offering: this.#usable().length,
      piecesReceived: this.#assembler.piecesReceived,
      pieceCount: this.#assembler.pieceCount,
    };
  }

  /**
   * Adds peers to ask. Invalid addresses are skipped; at most
   * `METADATA_SWARM.maxCandidates` (500) are kept.
   *
   * @param addresses "host:port" or "[v6]:port".
   * @param source Where they came from, for logs (an invalid address is skipped whatever the
   * source: "manual" ones are logged as "given", since the swarm refuses a manual typo).
   * @returns How many were new.
   */
  addPeers(addresses: Iterable<string>, source: string): number {
    return this.#swarm.add(addresses, source === "manual" ? "given" : source);
  }

  #startAnnouncing(): void {
    const trackers = this.#options.trackers;
    if (trackers === undefined || this.#trackerTiers.length === 0) return;
    this.#announcer = new Announcer({
      tiers: this.#trackerTiers,
      infoHash: this.#infoHash,
      peerId: this.#options.peerId,
      port: trackers.port,
      ...(trackers.udp ? { udp: trackers.udp } : {}),
      logger: this.#log,
      stats: () => ({ uploaded: 0, downloaded: 0, left: METADATA_PIECE_SIZE }),
      onPeers: (peers) => this.addPeers(peers, "tracker"),
    });
    this.#announcer.start();
  }

  #tick(): void {
    const now = this.#now();
    const requestTimeout = this.#options.requestTimeoutMs ?? 15_000;
    const handshakeTimeout = this.#options.handshakeTimeoutMs ?? 10_000;
    for (const peer of [...this.#peers.values()]) {
      if (peer.metadataSize === undefined && now - peer.connectedAt > handshakeTimeout) {
        peer.close(new ShoalError("TIMEOUT", `No extended handshake within ${handshakeTimeout} ms`));
        continue;
      }
      for (const [piece, at] of peer.requests) {
        if (now - at <= requestTimeout) continue;
        peer.requests.delete(piece);
        peer.timeouts++;
        this.#log.debug("metadata", "Metadata request timed out", { peer: peer.address, piece });
      }
      if (peer.timeouts >= MAX_TIMEOUTS) {
        peer.close(new ShoalError("TIMEOUT", `${peer.timeouts} metadata requests timed out`));
      }
    }
    // Pieces every peer refused and nobody is fetching: ask again (refusals are often "busy").
    if (this.#assembler.started && this.#usable().every((p) => p.requests.size === 0)) {
      for (const peer of this.#peers.values()) peer.rejected.clear();
    }
    this.#swarm.connectMore();
    this.#assembler.schedule();
    if (!this.#done) this.#options.onStatus?.(this.status());
  }

  /** A handshaken peer the swarm took: ask it for the metadata. */
  #startPeer(address: string, handshaken: HandshakenPeer): void {
    const peer = new MetadataPeer(address, handshaken, {
      ready: (p) => this.#onReady(p),
      data: (p, piece, data) => this.#assembler.received(p, piece, data),
      reject: (p, piece) => this.#onReject(p, piece),
      closed: (p, error) => this.#onClosed(p, error),
    }, {
      maxMetadataSize: this.#maxSize,
      now: this.#now,
      ...(this.#options.listenPort ? { listenPort: this.#options.listenPort } : {}),
    });
    this.#peers.set(address, peer);
    peer.start();
  }

  #onReady(peer: MetadataPeer): void {
    this.#log.debug("metadata", "Peer offers metadata", { peer: peer.address, size: peer.metadataSize! });
    this.#assembler.schedule();
  }

  #onReject(peer: MetadataPeer, piece: number): void {
    this.#log.debug("metadata", "Peer refused a metadata piece", { peer: peer.address, piece });
    const rejects = (this.#rejects.get(peer.address) ?? 0) + 1;
    this.#rejects.set(peer.address, rejects);
    // In single-peer mode the peer must send every piece: one refusal and the next peer is tried.
    if (rejects >= MAX_REJECTS || this.#assembler.isSingleSource(peer.address)) {
      peer.close(new ShoalError("REJECTED", `Peer refused ${rejects} metadata requests`));
      return;
    }
    this.#assembler.schedule();
  }

  #onClosed(peer: MetadataPeer, error: Error | undefined): void {
    if (this.#peers.get(peer.address) !== peer) return;
    this.#peers.delete(peer.address);
    this.#evidence.set(peer.address, peer.evidence);
    if (!this.#done) {
      if (error !== undefined) {
        this.#log.info("metadata", `Dropped peer: ${error.message}`, { peer: peer.address });
      }
      // A peer at fault (a protocol violation) or without metadata is not asked again; a slow or
      // busy one may be. Only the first kind is left out of the result.
      const faulty = error instanceof ProtocolError;
      if (faulty) this.#faulty.add(peer.address);
      const useless = error instanceof ShoalError && error.code === "NO_METADATA";
      this.#swarm.closed(peer.address, faulty || useless);
      this.#assembler.peerClosed(peer.address);
      this.#assembler.schedule();
      this.#swarm.connectMore();
    } else this.#swarm.closed(peer.address);
  }

  #ban(address: string, reason: string): void {
    if (!this.#swarm.ban(address, reason)) return;
    this.#peers.get(address)?.close(new ShoalError("BANNED", `Banned: ${reason}`));
  }

  /** Peers that may be asked for pieces of the current assembly. */
  #usable(): MetadataPeer[] {
    return [...this.#peers.values()].filter((p) =>
      !p.closed && p.metadataSize !== undefined && !this.#swarm.isBanned(p.address)
    );
  }

  #succeed(infoBytes: Uint8Array): void {
    let pieceCount: number;
    try {
      const info = decode(infoBytes, { maxBytes: this.#maxSize });
      const pieces = info instanceof Map ? info.get("pieces") : undefined;
      pieceCount = pieces instanceof Uint8Array ? Math.floor(pieces.length / 20) : 0;
      if (!(info instanceof Map)) throw new MetainfoError("Metadata is not a dictionary");
    } catch (error) {
      this.#fail(
        error instanceof MetainfoError
          ? error
          : new MetainfoError(`Verified metadata is not valid bencode: ${(error as Error).message}`, {
            cause: error,
          }),
      );
      return;
    }
    this.#assembler.banLiars(infoBytes);
    this.#log.info("metadata", "Metadata verified", { size: infoBytes.length, pieces: pieceCount });
    const peers = this.#rankPeers(pieceCount);
    this.#done = true;
    this.#cleanup().then(() => this.#resolve({ infoBytes: infoBytes.slice(), peers }));
  }

  /** Peers met (checked against the piece count) first, seeds first; then the others heard of. */
  #rankPeers(pieceCount: number): MetadataSource[] {
    for (const peer of this.#peers.values()) this.#evidence.set(peer.address, peer.evidence);
    return rankSources(this.#evidence, pieceCount, {
      leftOut: new Set(this.#faulty),
      isBanned: (address) => this.#swarm.isBanned(address),
      candidates: this.#swarm.candidates.addresses(),
      logger: this.#log,
    });
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#log.info("metadata", `Metadata fetch stopped: ${error.message}`);
    this.#cleanup().then(() => this.#reject(error));
  }

  async #cleanup(): Promise<void> {
    if (this.#onAbort) this.#options.signal?.removeEventListener("abort", this.#onAbort);
    clearInterval(this.#timer);
    clearTimeout(this.#deadline);
    this.#abort.abort(new ShoalError("STOPPED", "Metadata fetch finished"));
    for (const peer of [...this.#peers.values()]) peer.close();
    await this.#announcer?.stop(2000);
  }
}
