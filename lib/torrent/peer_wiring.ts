/**
 * A torrent's peers: the swarm that finds and dials them, the connections (with what protects
 * each), the `PeerHost` adapter through which a connection reaches the picker and the piece
 * pipeline, the choke decision, peer exchange, and the `peers()` snapshot.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { ShoalError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseAddress } from "../net/address.ts";
import type { BanList } from "../peer/ban_list.ts";
import { chooseUnchoked } from "../peer/choker.ts";
import { clientCode, clientName } from "../peer/client_id.ts";
import { type AvailabilityChange, PeerConnection, type PeerHost } from "../peer/connection.ts";
import type { HandshakenPeer } from "../peer/handshake_read.ts";
import type { BlockRef, PiecePicker } from "../peer/piece_picker.ts";
import { RateLimiter, TokenBucket } from "../peer/rate_limiter.ts";
import { utMetadataServer } from "../peer/ut_metadata.ts";
import { UtPex } from "../peer/ut_pex.ts";
import { TORRENT_SWARM } from "../swarm/constants.ts";
import { Swarm } from "../swarm/swarm.ts";
import type { PeerInfo, RateLimits, TorrentOptions } from "../torrent_types.ts";
import type { Duplex, Metainfo, PeerExtension } from "../types.ts";
import {
  type Handshake,
  reservedBits,
  supportsDht,
  supportsExtensions,
  supportsFast,
} from "../wire/handshake.ts";
import type { EmitTorrentEvent } from "./internal.ts";
import type { PiecePipeline } from "./piece_pipeline.ts";

/** What the peer wiring needs from its torrent. */
export interface PeerWiringContext {
  /** The torrent. */
  readonly metainfo: Metainfo;
  /** The torrent's options (identity, limits, extensions, transport, DHT). */
  readonly options: TorrentOptions;
  /** Our verified pieces. */
  readonly have: Bitfield;
  /** The smart ban list (also the swarm's admission list). */
  readonly bans: BanList;
  /** Where peers and choking are logged. */
  readonly logger: Logger;
  /** Clock. */
  readonly now: () => number;
  /** Aborted when the torrent stops (dials in progress give up). */
  readonly signal: AbortSignal;
  /** Dispatches a torrent event. */
  readonly emit: EmitTorrentEvent;
  /** Downloading or seeding: peers may connect, be dialled and unchoked. */
  readonly active: () => boolean;
  /** Seeding: unchoke by upload, and a seed has nothing to trade with us. */
  readonly seeding: () => boolean;
  /** The pieces the file priorities want (null: every piece). */
  readonly wanted: () => Bitfield | null;
}

/**
 * Connects a torrent to its peers: see the module documentation.
 *
 * @example
 * ```ts ignore
 * const wiring = new PeerWiring(context);
 * wiring.begin(picker, pipeline); // once the start-up check is over
 * wiring.add(["127.0.0.1:6881"], "manual");
 * ```
 */
export class PeerWiring {
  readonly #ctx: PeerWiringContext;
  readonly #log: Logger;
  readonly #swarm: Swarm;
  readonly #peers = new Map<string, PeerConnection>();
  /** What protects each connected peer's payload (`HandshakenPeer.encryption`). */
  readonly #encryption = new Map<string, string>();
  readonly #extensions: PeerExtension[];
  /** BEP 11 peer exchange (null when off or private). */
  readonly #pex: UtPex | null = null;
  readonly #upBucket: TokenBucket;
  readonly #downBucket: TokenBucket;
  readonly #upLimiter: RateLimiter;
  readonly #downLimiter: RateLimiter;
  #picker: PiecePicker | null = null;
  #host: PeerHost<PeerConnection> | null = null;
  #optimistic: string | undefined;

  /**
   * Creates the wiring; no peer connects before {@linkcode PeerWiring.begin}.
   *
   * @param ctx What it needs from the torrent.
   */
  constructor(ctx: PeerWiringContext) {
    this.#ctx = ctx;
    this.#log = ctx.logger;
    const { options, metainfo } = ctx;
    this.#swarm = new Swarm({
      policy: { ...TORRENT_SWARM, maxConnections: options.maxPeers ?? TORRENT_SWARM.maxConnections },
      peerId: options.peerId,
      handshake: () => this.handshake(),
      logger: this.#log,
      category: "swarm",
      active: ctx.active,
      onPeer: (address, peer) => this.#startPeer(address, peer),
      bans: ctx.bans,
      admit: options.admit,
      countConnection: options.countConnection,
      countDial: options.countDial,
      dial: options,
      signal: ctx.signal,
      now: ctx.now,
    });
    this.#extensions = [...(options.extensions ?? [])];
    // BEP 9: serve our metadata to magnet-link peers, except for private torrents (as libtorrent).
    if (!metainfo.private) this.#extensions.push(utMetadataServer(metainfo.infoBytes));
    if (!metainfo.private && options.pex !== false) {
      this.#pex = new UtPex({
        peers: () =>
          [...this.#peers.values()].map((p) => ({
            id: p.id,
            outgoing: this.#swarm.isOutgoing(p.id),
            seed: p.seed,
            handshake: p.extensionProtocol?.handshake,
          })),
        addPeers: (addresses) => this.add(addresses, "pex"),
        now: ctx.now,
        logger: this.#log,
      });
      this.#extensions.push(this.#pex);
    }
    this.#upBucket = new TokenBucket({ rate: options.uploadLimit ?? 0 });
    this.#downBucket = new TokenBucket({ rate: options.downloadLimit ?? 0 });
    const global = options.globalBuckets;
    this.#upLimiter = new RateLimiter(global ? [this.#upBucket, global.upload] : [this.#upBucket]);
    this.#downLimiter = new RateLimiter(global ? [this.#downBucket, global.download] : [this.#downBucket]);
  }

  /** Connected peers. */
  get size(): number {
    return this.#peers.size;
  }

  /**
   * Connects the picker and the pipeline: from now on connections are made.
   *
   * @param picker The torrent's picker.
   * @param pipeline The torrent's piece pipeline.
   */
  begin(picker: PiecePicker, pipeline: PiecePipeline): void {
    this.#picker = picker;
    this.#host = this.#makeHost(picker, pipeline);
  }

  /**
   * Adds peers to connect to (see `Torrent.addPeers`).
   *
   * @param addresses Peer addresses.
   * @param source Where they came from.
   * @returns How many were new.
   */
  add(addresses: Iterable<string>, source: string): number {
    return this.#swarm.add(addresses, source);
  }

  /**
   * The handshake we send for this torrent.
   *
   * @returns Info-hash, peer id and reserved bits.
   */
  handshake(): Handshake {
    return {
      infoHash: this.#ctx.metainfo.infoHash,
      peerId: this.#ctx.options.peerId,
      reserved: reservedBits({ fast: true, extensions: true, dht: this.#ctx.options.dht !== undefined }),
    };
  }

  /**
   * Whether a new incoming connection from this address is taken.
   *
   * @param address "host:port".
   * @returns True if the torrent is active, the address not banned and a slot free.
   */
  accepts(address: string): boolean {
    return this.#ctx.active() && this.#swarm.admits(address);
  }

  /**
   * Takes over an incoming connection whose handshakes are done.
   *
   * @param address "host:port" of the peer.
   * @param peer The handshaken connection.
   */
  attach(address: string, peer: HandshakenPeer): void {
    if (!this.accepts(address)) {
      peer.duplex.close();
      return;
    }
    this.#swarm.accept(address, peer, false);
  }

  /**
   * Bans an address (a smart ban verdict) and closes its connection.
   *
   * @param address "host:port".
   * @param reason Why.
   */
  ban(address: string, reason: string): void {
    if (!this.#swarm.ban(address, reason)) return;
    this.#ctx.emit("peer-banned", { address, reason });
    this.#peers.get(address)?.close(new ShoalError("BANNED", `Banned: ${reason}`));
  }

  /**
   * Cancels a block requested from a peer (an endgame duplicate arrived).
   *
   * @param peer "host:port".
   * @param piece Piece index.
   * @param begin Offset in the piece.
   */
  cancel(peer: string, piece: number, begin: number): void {
    this.#peers.get(peer)?.cancel(piece, begin);
  }

  /**
   * Announces a verified piece to the peers that lack it.
   *
   * @param piece Piece index.
   */
  sendHave(piece: number): void {
    for (const p of this.#peers.values()) if (!p.has(piece)) p.sendHave(piece);
  }

  /**
   * Has each connection recompute whether it is interested.
   *
   * @param onlyInterested Only the connections that are interested now.
   */
  refreshInterest(onlyInterested = false): void {
    for (const p of this.#peers.values()) if (!onlyInterested || p.amInterested) p.refreshInterest();
  }

  /** The download is complete: seeds are closed (nothing to trade), the rest re-judged. */
  completed(): void {
    for (const p of [...this.#peers.values()]) {
      if (p.seed) p.close();
      else p.refreshInterest();
    }
  }

  /**
   * The once-a-second peer work: each connection's timers, peer exchange, a rechoke every
   * 10 ticks and a new optimistic unchoke every 30.
   *
   * @param now The current time.
   * @param ticks Ticks so far.
   */
  tick(now: number, ticks: number): void {
    for (const p of [...this.#peers.values()]) p.tick(now);
    this.#pex?.tick(now);
    if (ticks % 10 === 0) this.#choke();
    if (ticks % 30 === 0) this.#optimistic = undefined;
  }

  /** Dials candidates while there is room. */
  connectMore(): void {
    this.#swarm.connectMore();
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const p of [...this.#peers.values()]) p.close();
  }

  /**
   * Closes every connection for a pause (the torrent is inactive by now, so none is dialled or
   * accepted); their addresses may be dialled again as soon as the torrent resumes.
   */
  pause(): void {
    const addresses = [...this.#peers.keys()];
    this.closeAll();
    for (const address of addresses) this.#swarm.forgive(address);
  }

  /**
   * Changes the torrent's rate limits (0 removes a limit).
   *
   * @param limits New limits in bytes per second; absent ones are kept.
   */
  setLimits(limits: RateLimits): void {
    if (limits.upload !== undefined) this.#upBucket.setRate(limits.upload);
    if (limits.download !== undefined) this.#downBucket.setRate(limits.download);
  }

  /**
   * Snapshots of the connected peers.
   *
   * @returns One per connection.
   */
  peers(): PeerInfo[] {
    const pieceCount = this.#ctx.metainfo.pieceCount;
    return [...this.#peers.values()].map((p) => ({
      address: p.id,
      client: clientName(p.peerId),
      direction: this.#swarm.isOutgoing(p.id) ? "out" : "in",
      transport: this.#ctx.options.transport?.name ?? "tcp",
      encryption: this.#encryption.get(p.id) ?? "none",
      downloadRate: p.downloadRate,
      uploadRate: p.uploadRate,
      downloaded: p.down.total,
      uploaded: p.up.total,
      percent: p.seed ? 100 : (p.bitfield.count() / Math.max(1, pieceCount)) * 100,
      flags: {
        amChoking: p.amChoking,
        amInterested: p.amInterested,
        peerChoking: p.peerChoking,
        peerInterested: p.peerInterested,
      },
      outstanding: p.outstanding,
    }));
  }

  /** A connection the swarm took (self, duplicate and banned ones are dropped already). */
  #startPeer(address: string, { duplex, remote, encryption }: HandshakenPeer): void {
    const host = this.#host;
    if (host === null) { // the swarm is inactive before begin(): never reached
      duplex.close();
      return;
    }
    const { options } = this.#ctx;
    const dht = options.dht;
    const conn = new PeerConnection(duplex as Duplex, host, {
      id: address,
      peerId: remote.peerId,
      fast: supportsFast(remote.reserved),
      extensions: supportsExtensions(remote.reserved),
      uploadLimiter: this.#upLimiter,
      downloadLimiter: this.#downLimiter,
      extensionProtocol: {
        extensions: this.#extensions,
        ...(options.listenPort ? { listenPort: options.listenPort } : {}),
        onFault: (extension, error) =>
          this.#log.warn("plugin", `Extension '${extension.name}' failed: ${(error as Error).message}`, {
            plugin: extension.name,
            peer: address,
          }),
      },
      ...(dht && supportsDht(remote.reserved)
        ? {
          dhtPort: dht.port,
          onDhtPort: (port: number) => dht.addNode(`${parseAddress(address).hostname}:${port}`),
        }
        : {}),
    });
    this.#peers.set(address, conn);
    this.#encryption.set(address, encryption);
    this.#log.info("peer", "Peer connected", { peer: address, client: clientCode(remote.peerId) });
    this.#ctx.emit("peer-connected", { address });
    conn.start();
    this.#choke();
  }

  /** The connection-facing side of the torrent. */
  #makeHost(picker: PiecePicker, pipeline: PiecePipeline): PeerHost<PeerConnection> {
    const ctx = this.#ctx;
    return {
      pieceCount: ctx.metainfo.pieceCount,
      have: ctx.have,
      pieceSize: (piece: number) => picker.pieceSize(piece),
      isInteresting: (peer: PeerConnection) => this.#isInteresting(picker, peer),
      pick: (peer: PeerConnection, max: number) => picker.pick(peer, max),
      release: (peer: PeerConnection, block: BlockRef) => picker.release(peer.id, block.piece, block.begin),
      block: (peer: PeerConnection, piece: number, begin: number, data: Uint8Array) =>
        pipeline.block(peer, piece, begin, data),
      availabilityChanged: (peer: PeerConnection, change: AvailabilityChange) => {
        if (change.replaced?.all) picker.peerLostAll();
        else if (change.replaced) picker.removeBitfield(change.replaced.bits);
        if (change.all) picker.peerHasAll();
        else if (change.bits) picker.addBitfield(change.bits);
        else if (change.piece !== undefined) {
          if (peer.seed) {
            // The have completed its bitfield: count it as a seed from now on.
            picker.removeBitfield(peer.bitfield);
            picker.peerHasAll();
          } else picker.addHave(change.piece);
        }
        if (ctx.seeding() && peer.seed) peer.close();
      },
      readBlock: (piece: number, begin: number, length: number) => pipeline.readBlock(piece, begin, length),
      lost: (piece: number) => pipeline.isLost(piece),
      prefetch: (piece: number) => pipeline.prefetch(piece),
      interestChanged: (_peer: PeerConnection) => this.#choke(),
      closed: (peer: PeerConnection, error: Error | undefined) => this.#onClosed(peer, error),
      now: ctx.now,
    };
  }

  #isInteresting(picker: PiecePicker, peer: PeerConnection): boolean {
    if (picker.complete) return false;
    if (peer.seed) return true;
    const have = this.#ctx.have;
    const wanted = this.#ctx.wanted();
    for (const i of peer.bitfield) if (!have.get(i) && (wanted?.get(i) ?? true)) return true;
    return false;
  }

  #onClosed(peer: PeerConnection, error: Error | undefined): void {
    if (this.#peers.get(peer.id) !== peer) return;
    this.#peers.delete(peer.id);
    this.#encryption.delete(peer.id);
    this.#swarm.closed(peer.id);
    const picker = this.#picker;
    if (picker !== null) {
      if (peer.seed) picker.peerLostAll();
      else picker.removeBitfield(peer.bitfield);
    }
    const reason = error?.message;
    this.#log.info("peer", reason ? `Peer disconnected: ${reason}` : "Peer disconnected", { peer: peer.id });
    this.#ctx.emit("peer-disconnected", reason ? { address: peer.id, reason } : { address: peer.id });
    if (this.#optimistic === peer.id) this.#optimistic = undefined;
    this.#choke();
  }

  #choke(): void {
    if (!this.#ctx.active()) return;
    const peers = [...this.#peers.values()];
    const options = this.#ctx.options;
    const { unchoke, optimistic } = chooseUnchoked(peers, {
      slots: options.uploadSlots ?? 8,
      seeding: this.#ctx.seeding(),
      optimistic: this.#optimistic,
      now: this.#ctx.now(),
      ...(options.random ? { random: options.random } : {}),
    });
    const changed = optimistic !== this.#optimistic || peers.some((p) => p.amChoking === unchoke.has(p.id));
    this.#optimistic = optimistic;
    for (const p of peers) p.setChoking(!unchoke.has(p.id));
    if (changed && unchoke.size > 0) {
      this.#log.info("choker", "Rechoked", {
        unchoked: [...unchoke].join(","),
        optimistic: optimistic ?? null,
        interested: peers.filter((p) => p.peerInterested).length,
      });
    }
  }
}
