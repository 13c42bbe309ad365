/**
 * One peer: the BEP 3 / BEP 6 message state machine both ways, request pipelining,
 * keep-alives and time-outs, over a {@linkcode Duplex} that has already exchanged handshakes.
 * Everything a peer sends is checked here; a violation closes this connection only.
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import { ProtocolError } from "../errors.ts";
import type { Duplex } from "../types.ts";
import { DEFAULT_MAX_MESSAGE_LENGTH, FrameParser } from "../wire/framing.ts";
import type { Message } from "../wire/messages.ts";
import { BLOCK_SIZE, type BlockRef, type PickerPeer } from "./piece_picker.ts";
import { RateMeter } from "./rate.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import { ExtensionProtocol, type ExtensionProtocolOptions } from "./extension_protocol.ts";
import { hostOf } from "../net/address.ts";
import { byobReader } from "../net/byob_reader.ts";
import { MessageWriter } from "./message_writer.ts";
import type { AvailabilityChange, PeerHost } from "./peer_host.ts";
import { UploadQueue } from "./upload_queue.ts";

export type { AvailabilityChange, PeerHost } from "./peer_host.ts";
export { MAX_BAD_REQUESTS, MAX_INCOMING_REQUESTS, MAX_REQUEST_LENGTH } from "./upload_queue.ts";

/** Options for {@linkcode PeerConnection}. */
export interface PeerConnectionOptions {
  /** "host:port" of the peer, for logs and bans. */
  id: string;
  /** The remote peer id from its handshake. */
  peerId: Uint8Array;
  /** Both sides set the BEP 6 Fast bit. */
  fast: boolean;
  /** Both sides set the BEP 10 extension bit. */
  extensions: boolean;
  /** Largest accepted message. @default {1 MiB + 13} */
  maxMessageLength?: number;
  /** Requests in flight at first, before the rate is known. @default {32} */
  initialQueueDepth?: number;
  /** Most requests in flight. @default {500} */
  maxQueueDepth?: number;
  /** Seconds of data to keep requested, to size the queue from the rate. @default {3} */
  queueSeconds?: number;
  /** Paces piece data we send (per torrent, then global). @default unlimited */
  uploadLimiter?: RateLimiter;
  /** Paces what we read from the peer (per torrent, then global). @default unlimited */
  downloadLimiter?: RateLimiter;
  /** BEP 10 extensions offered to the peer (used when both sides set the extension bit). */
  extensionProtocol?: ExtensionProtocolOptions;
  /** Our DHT's UDP port, sent in a BEP 5 `port` message at start (give it only to peers that set the DHT bit). */
  dhtPort?: number;
  /** Receives the DHT port a peer sends in a BEP 5 `port` message. */
  onDhtPort?: (port: number) => void;
}

const READ_BUFFER_SIZE = 256 * 1024;

const key = (piece: number, begin: number): number => piece * 65536 + begin / BLOCK_SIZE;

/**
 * A connected, handshaken peer.
 *
 * @example
 * ```ts ignore
 * const peer = new PeerConnection(duplex, host, { id: "127.0.0.1:6881", peerId, fast: true, extensions: true });
 * peer.start();          // sends our bitfield, starts the read loop
 * await peer.finished;   // resolves when the connection is closed
 * ```
 */
export class PeerConnection implements PickerPeer {
  /** "host:port". */
  readonly id: string;
  /** The remote peer id. */
  readonly peerId: Uint8Array;
  /** BEP 6 negotiated. */
  readonly fast: boolean;
  /** BEP 10 negotiated. */
  readonly extensions: boolean;
  /** Pieces the peer has (meaningless while {@linkcode seed} is true). */
  readonly bitfield: Bitfield;
  /** We are choking the peer. */
  amChoking = true;
  /** We are interested in the peer. */
  amInterested = false;
  /** The peer is choking us. */
  peerChoking = true;
  /** The peer is interested in us. */
  peerInterested = false;
  /** Bytes of piece data received from this peer. */
  readonly down: RateMeter = new RateMeter(5);
  /** Bytes of piece data sent to this peer. */
  readonly up: RateMeter = new RateMeter(5);
  /** Resolves when the connection has closed. */
  readonly finished: Promise<void>;

  readonly #duplex: Duplex;
  readonly #host: PeerHost<PeerConnection>;
  readonly #options: PeerConnectionOptions;
  #seed = false;
  #closed = false;
  #queueDepth: number;
  /** Slow start: the queue grows by one per block received until the rate stops growing. */
  #slowStart = true;
  #lastRate = 0;
  readonly #outstanding = new Map<number, BlockRef>();
  /** Blocks we gave up on from this peer: arrivals are tolerated, not treated as hostile. */
  #released = new Set<number>();
  readonly #uploads: UploadQueue;
  /** When the peer connected (ms). */
  readonly connectedAt: number;
  /** When our current unchoke of the peer began (ms), or undefined while we choke it. */
  unchokedAt: number | undefined;
  /** When we last unchoked the peer (ms), or undefined if never. */
  lastUnchokedAt: number | undefined;
  #lastReceived: number;
  #lastBlock: number;
  #snubbed = false;
  #resolveFinished!: () => void;
  readonly #out: MessageWriter;
  #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader | null = null;
  /** BEP 10 state, when both sides support it. */
  readonly #ext: ExtensionProtocol | null;
  /** Aborted at close: cancels waits on the rate limiters. */
  readonly #abort = new AbortController();

  /**
   * @param duplex The connection, handshakes already exchanged.
   * @param host The torrent side.
   * @param options Identity and negotiated features.
   */
  constructor(duplex: Duplex, host: PeerHost<PeerConnection>, options: PeerConnectionOptions) {
    this.#duplex = duplex;
    this.#host = host;
    this.#options = options;
    this.id = options.id;
    this.peerId = options.peerId;
    this.fast = options.fast;
    this.extensions = options.extensions;
    this.bitfield = new Bitfield(host.pieceCount);
    this.#queueDepth = options.initialQueueDepth ?? 32;
    const now = host.now();
    this.connectedAt = now;
    this.#lastReceived = now;
    this.#lastBlock = now;
    this.#out = new MessageWriter(duplex, { now: () => host.now(), onError: (error) => this.close(error) });
    const signal = this.#abort.signal;
    this.#uploads = new UploadQueue(this, host, this.#out, { uploadLimiter: options.uploadLimiter, signal });
    this.#ext = options.extensions && options.extensionProtocol
      ? new ExtensionProtocol({
        id: options.id,
        sendExtended: (id, payload) => this.#out.send({ type: "extended", id, payload }),
        close: (error) => this.close(error),
      }, options.extensionProtocol)
      : null;
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
  }

  /** True when the peer has every piece. */
  get seed(): boolean {
    return this.#seed || (this.#host.pieceCount > 0 && this.bitfield.isComplete());
  }

  /** Bytes per second received recently. */
  get downloadRate(): number {
    return this.down.rate(this.#host.now());
  }

  /** Bytes per second sent recently. */
  get uploadRate(): number {
    return this.up.rate(this.#host.now());
  }

  /** Requests we have in flight to this peer. */
  get outstanding(): number {
    return this.#outstanding.size;
  }

  /** Requests from the peer waiting to be served. */
  get queuedUploads(): number {
    return this.#uploads.length;
  }

  /** True when the peer stopped sending data while requests were pending. */
  get snubbed(): boolean {
    return this.#snubbed;
  }

  /** The BEP 10 state (null when the peer does not speak the extension protocol). */
  get extensionProtocol(): ExtensionProtocol | null {
    return this.#ext;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Whether the peer has a piece.
   *
   * @param piece Piece index.
   * @returns True if so.
   */
  has(piece: number): boolean {
    return this.#seed || this.bitfield.get(piece);
  }

  /** Sends our bitfield (or have_all/have_none) and starts reading. Call once. */
  start(): void {
    const have = this.#host.have;
    const count = have.count();
    if (this.fast && count === 0) this.#out.send({ type: "have_none" });
    else if (this.fast && have.isComplete()) this.#out.send({ type: "have_all" });
    else if (count > 0) this.#out.send({ type: "bitfield", bits: have.toBytes() });
    this.#ext?.sendHandshake(hostOf(this.id));
    if (this.#options.dhtPort) this.#out.send({ type: "port", port: this.#options.dhtPort });
    this.#readLoop().catch((error) => this.close(error instanceof Error ? error : new Error(String(error))));
  }

  async #readLoop(): Promise<void> {
    const parser = new FrameParser({
      maxMessageLength: this.#options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH,
    });
    const handle = (m: Message) => this.#handle(m);
    const limiter = this.#options.downloadLimiter;
    const byob = byobReader(this.#duplex.readable);
    try {
      if (byob !== null) {
        // Read into one reused buffer: no allocation per chunk, so memory stays flat at any speed.
        this.#reader = byob;
        let buffer = new ArrayBuffer(READ_BUFFER_SIZE);
        while (!this.#closed) {
          const { value, done } = await byob.read(new Uint8Array(buffer));
          if (done || value === undefined) break;
          this.#lastReceived = this.#host.now();
          parser.push(value, handle);
          buffer = value.buffer as ArrayBuffer;
          // Waiting before the next read lets TCP slow the sender down to our limit.
          if (limiter) await limiter.take(value.byteLength, this.#abort.signal);
        }
      } else {
        const reader = this.#duplex.readable.getReader();
        this.#reader = reader;
        while (!this.#closed) {
          const { value, done } = await reader.read();
          if (done) break;
          this.#lastReceived = this.#host.now();
          parser.push(value, handle);
          if (limiter) await limiter.take(value.byteLength, this.#abort.signal);
        }
      }
      if (!this.#closed) parser.end();
      this.close();
    } finally {
      this.#reader?.releaseLock();
    }
  }

  #handle(m: Message): void {
    switch (m.type) {
      case "keepalive":
        return;
      // A bitfield, have_all or have_none may come at any time, not only first: aria2 sends a fresh
      // bitfield instead of a burst of haves, mid-connection. As libtorrent does, the latest one
      // replaces what the peer said before.
      case "bitfield":
        this.#announce(Bitfield.fromWire(m.bits, this.#host.pieceCount));
        return;
      case "have_all":
      case "have_none":
        if (!this.fast) throw new ProtocolError(`Peer sent ${m.type} without the Fast extension`);
        this.#announce(m.type === "have_all" ? "all" : "none");
        return;
      case "have": {
        if (m.piece >= this.#host.pieceCount) {
          throw new ProtocolError(
            `Peer sent have for piece ${m.piece}, but the torrent has ${this.#host.pieceCount}`,
          );
        }
        if (this.has(m.piece)) return;
        this.bitfield.set(m.piece);
        this.#host.availabilityChanged(this, { piece: m.piece });
        if (!this.amInterested && !this.#host.have.get(m.piece)) this.#updateInterest();
        else this.fill();
        return;
      }
      case "choke":
        this.peerChoking = true;
        this.#releaseAll();
        return;
      case "unchoke":
        this.peerChoking = false;
        this.fill();
        return;
      case "interested":
        this.peerInterested = true;
        this.#host.interestChanged(this);
        return;
      case "not_interested":
        this.peerInterested = false;
        this.#host.interestChanged(this);
        return;
      case "request":
        this.#uploads.request(m);
        return;
      case "cancel":
        this.#uploads.cancel(m.piece, m.begin, m.length);
        return;
      case "piece":
        this.#onPiece(m.piece, m.begin, m.data);
        return;
      case "reject": {
        if (!this.fast) throw new ProtocolError("Peer sent reject_request without the Fast extension");
        const k = key(m.piece, m.begin);
        const block = this.#outstanding.get(k);
        if (block !== undefined) {
          this.#outstanding.delete(k);
          this.#released.add(k); // should the block come after all, it is tolerated, not hostile
          this.#host.release(this, block);
          this.fill();
        }
        return;
      }
      case "allowed_fast":
      case "suggest":
        if (!this.fast) throw new ProtocolError(`Peer sent ${m.type} without the Fast extension`);
        if (m.piece >= this.#host.pieceCount) {
          throw new ProtocolError(`Peer sent ${m.type} for piece ${m.piece} out of range`);
        }
        return;
      case "extended":
        this.#ext?.receive(m.id, m.payload);
        return;
      case "port":
        if (m.port > 0) this.#options.onDhtPort?.(m.port);
        return;
      case "unknown":
        return;
    }
  }

  /** Replaces what we know of the peer's pieces with a bitfield, have_all or have_none. */
  #announce(next: Bitfield | "all" | "none"): void {
    const knewSome = this.#seed || !this.bitfield.isEmpty();
    const replaced = knewSome
      ? { all: this.#seed, bits: new Bitfield(this.bitfield.size, this.bitfield.toBytes()) }
      : undefined;
    this.bitfield.clearAll();
    this.#seed = next === "all" || (next !== "none" && next.isComplete());
    if (next !== "all" && next !== "none" && !this.#seed) { for (const i of next) this.bitfield.set(i); }
    if (!this.#seed && this.bitfield.isEmpty() && replaced === undefined) return; // have_none first: nothing to count
    const change: AvailabilityChange = this.#seed ? { all: true } : { bits: this.bitfield };
    if (replaced !== undefined) change.replaced = replaced;
    this.#host.availabilityChanged(this, change);
    this.#updateInterest();
  }

  #onPiece(piece: number, begin: number, data: Uint8Array): void {
    const k = key(piece, begin);
    const block = this.#outstanding.get(k);
    if (block === undefined) {
      if (!this.#released.has(k)) {
        throw new ProtocolError(`Peer sent a block we did not request: piece ${piece}, offset ${begin}`);
      }
      this.#released.delete(k);
    } else {
      if (data.length !== block.length) {
        throw new ProtocolError(
          `Peer sent ${data.length} bytes for a block of ${block.length}: piece ${piece}, offset ${begin}`,
        );
      }
      this.#outstanding.delete(k);
    }
    const now = this.#host.now();
    this.#lastBlock = now;
    this.#snubbed = false;
    if (this.#slowStart && this.#queueDepth < (this.#options.maxQueueDepth ?? 500)) this.#queueDepth++;
    this.down.add(data.length, now);
    this.#host.block(this, piece, begin, data);
    this.fill();
  }

  /** Requests more blocks if the pipeline has room. */
  fill(): void {
    if (this.#closed || this.peerChoking || !this.amInterested) return;
    const depth = this.#snubbed ? 1 : this.#queueDepth;
    const room = depth - this.#outstanding.size;
    // Top up in batches to amortise picking and writes, unless the pipe is nearly empty.
    if (room <= 0 || (room < Math.min(8, depth / 4) && this.#outstanding.size > 0)) return;
    const blocks = this.#host.pick(this, room);
    if (blocks.length === 0) {
      if (this.#outstanding.size === 0) this.#updateInterest(false);
      return;
    }
    if (this.#outstanding.size === 0) this.#lastBlock = this.#host.now();
    for (const b of blocks) {
      this.#outstanding.set(key(b.piece, b.begin), b);
      this.#out.send({ type: "request", piece: b.piece, begin: b.begin, length: b.length });
    }
  }

  /**
   * Cancels a block we requested from this peer (another peer delivered it first).
   *
   * @param piece Piece index.
   * @param begin Block offset.
   */
  cancel(piece: number, begin: number): void {
    const k = key(piece, begin);
    const block = this.#outstanding.get(k);
    if (block === undefined) return;
    this.#outstanding.delete(k);
    this.#released.add(k);
    this.#out.send({ type: "cancel", piece, begin, length: block.length });
  }

  #releaseAll(): void {
    for (const [k, block] of this.#outstanding) {
      this.#released.add(k);
      this.#host.release(this, block);
    }
    this.#outstanding.clear();
    if (this.#released.size > 4096) this.#released = new Set([...this.#released].slice(-2048));
  }

  #updateInterest(fill = true): void {
    const interested = this.#host.isInteresting(this);
    if (interested !== this.amInterested) {
      this.amInterested = interested;
      this.#out.send({ type: interested ? "interested" : "not_interested" });
    }
    if (fill) this.fill();
  }

  /** Re-evaluates our interest (call after our pieces change). */
  refreshInterest(): void {
    if (!this.#closed) this.#updateInterest();
  }

  /**
   * Tells the peer we have a piece.
   *
   * @param piece Piece index.
   */
  sendHave(piece: number): void {
    if (!this.#closed) this.#out.send({ type: "have", piece });
  }

  /**
   * Chokes or unchokes the peer.
   *
   * @param choke True to choke.
   */
  setChoking(choke: boolean): void {
    if (this.#closed || choke === this.amChoking) return;
    this.amChoking = choke;
    if (choke) this.unchokedAt = undefined;
    else this.unchokedAt = this.lastUnchokedAt = this.#host.now();
    this.#out.send({ type: choke ? "choke" : "unchoke" });
    if (choke) this.#uploads.refuseAll();
  }

  /**
   * Periodic housekeeping: keep-alives, time-outs, snub detection, queue depth.
   *
   * @param now Current time in milliseconds.
   */
  tick(now: number): void {
    if (this.#closed) return;
    if (now - this.#lastReceived > 150_000) {
      this.close(new ProtocolError("Peer timed out: nothing received for 150 s"));
      return;
    }
    if (now - this.#out.lastSent > 60_000) this.#out.send({ type: "keepalive" });
    if (this.#outstanding.size > 0 && now - this.#lastBlock > 20_000 && !this.#snubbed) {
      this.#snubbed = true;
      this.#releaseAll();
    }
    const max = this.#options.maxQueueDepth ?? 500;
    const seconds = this.#options.queueSeconds ?? 3;
    const rate = this.down.rate(now);
    const byRate = Math.ceil((rate * seconds) / BLOCK_SIZE);
    if (this.#slowStart && (this.#snubbed || (this.#lastRate > 0 && rate < this.#lastRate * 1.1))) {
      this.#slowStart = false;
    }
    this.#lastRate = rate;
    const floor = this.#options.initialQueueDepth ?? 32;
    this.#queueDepth = this.#slowStart
      ? Math.min(max, Math.max(this.#queueDepth, byRate))
      : Math.max(floor, Math.min(max, byRate));
    this.fill();
  }

  /**
   * Closes the connection (idempotent). Requests in flight are given back to the picker.
   *
   * @param error Why, when it was not a clean close.
   */
  close(error?: Error): void {
    if (this.#closed) return;
    this.#releaseAll();
    this.#closed = true;
    this.#out.stop();
    this.#abort.abort(new ProtocolError("Connection closed"));
    this.#ext?.closed();
    this.#uploads.clear();
    this.#reader?.cancel().catch(() => {/* the stream is already broken: nothing more to read */});
    this.#out.closeSocket();
    this.#host.closed(this, error);
    this.#resolveFinished();
  }
}
