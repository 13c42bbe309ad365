/**
 * One connection of a metadata fetch (BEP 9, for a magnet link): a handshaken peer that we ask
 * for pieces of the info dictionary through `ut_metadata`. It runs the BEP 10 extension
 * protocol, checks everything the peer says about the metadata (its `metadata_size`, each data
 * message's `total_size`, piece index and length) and drops the peer on the first lie, and it
 * keeps what the peer says about its pieces (`bitfield`, `have`, `have_all`) so the fetcher can
 * check it once the piece count is known. Other messages are ignored: no piece data is
 * exchanged on these connections.
 *
 * @module
 */

import { ProtocolError, ShoalError } from "../errors.ts";
import type { Duplex, ExtensionPeer, PeerExtension } from "../types.ts";
import { FrameParser } from "../wire/framing.ts";
import type { Handshake } from "../wire/handshake.ts";
import { supportsExtensions, supportsFast } from "../wire/handshake.ts";
import { encodeMessage, type Message } from "../wire/messages.ts";
import { ExtensionProtocol } from "./extension_protocol.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  metadataPieceCount,
  metadataPieceLength,
  UT_METADATA,
} from "./ut_metadata.ts";
import { hostOf } from "../net/address.ts";

/** Most `have` messages remembered per peer before the metadata is known. */
const MAX_HAVES = 65_536;
/** Data messages for pieces we did not ask this peer for, tolerated before dropping it. */
const MAX_UNSOLICITED = 8;

/** What a peer told us about its pieces before we knew how many there are. */
export interface PieceEvidence {
  /** Its `bitfield` payload (a copy), if it sent one. */
  readonly bitfield: Uint8Array | null;
  /** It sent `have_all`. */
  readonly all: boolean;
  /** Pieces it announced with `have` (at most 65,536 are kept). */
  readonly haves: readonly number[];
}

/** What a {@linkcode MetadataPeer} reports to its fetcher. */
export interface MetadataPeerEvents {
  /** The peer's extended handshake arrived with ut_metadata and a usable `metadata_size`. */
  ready(peer: MetadataPeer): void;
  /** A piece we asked this peer for arrived, checked against its `metadata_size` (view: copy it). */
  data(peer: MetadataPeer, piece: number, data: Uint8Array): void;
  /** The peer refused a piece. */
  reject(peer: MetadataPeer, piece: number): void;
  /**
   * The connection closed; `error` says why: a {@linkcode ProtocolError} when the peer broke
   * the protocol or lied, a `NO_METADATA` {@linkcode ShoalError} when it has no metadata to give.
   */
  closed(peer: MetadataPeer, error: Error | undefined): void;
}

/** Options for {@linkcode MetadataPeer}. */
export interface MetadataPeerOptions {
  /** Largest `metadata_size` accepted. */
  maxMetadataSize: number;
  /** Our listening port, sent as `p`. */
  listenPort?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
}

/**
 * A connection asking one peer for metadata.
 *
 * @example
 * ```ts ignore
 * const peer = new MetadataPeer(address, handshaken, events, { maxMetadataSize: 16 * 1024 * 1024 });
 * peer.start();
 * // events.ready(peer) → peer.request(0) → events.data(peer, 0, bytes)
 * ```
 */
export class MetadataPeer {
  /** "host:port". */
  readonly address: string;
  /** The peer's BitTorrent handshake. */
  readonly remote: Handshake;
  /** When the connection was made (ms). */
  readonly connectedAt: number;
  /** Pieces asked of this peer and not answered yet, with the time they were asked. */
  readonly requests: Map<number, number> = new Map();
  /** Pieces this peer refused. */
  readonly rejected: Set<number> = new Set();
  /** Requests that timed out (counted by the fetcher). */
  timeouts = 0;

  readonly #duplex: Duplex;
  readonly #events: MetadataPeerEvents;
  readonly #options: MetadataPeerOptions;
  readonly #now: () => number;
  readonly #ext: ExtensionProtocol;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writing: Promise<void> = Promise.resolve();
  #view: ExtensionPeer | null = null;
  #size: number | undefined;
  #closed = false;
  #unsolicited = 0;
  #bitfield: Uint8Array | null = null;
  #all = false;
  readonly #haves = new Set<number>();
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;

  /**
   * @param address "host:port" of the peer.
   * @param peer The handshaken connection.
   * @param events Where to report.
   * @param options Limits.
   */
  constructor(
    address: string,
    peer: { duplex: Duplex; remote: Handshake },
    events: MetadataPeerEvents,
    options: MetadataPeerOptions,
  ) {
    this.address = address;
    this.remote = peer.remote;
    this.#duplex = peer.duplex;
    this.#events = events;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.connectedAt = this.#now();
    this.#writer = peer.duplex.writable.getWriter();
    const client: PeerExtension = {
      name: UT_METADATA,
      onHandshake: (view) => this.#onHandshake(view),
      onMessage: (view, payload) => this.#onMessage(view, payload),
    };
    this.#ext = new ExtensionProtocol({
      id: address,
      sendExtended: (id, payload) => this.#send({ type: "extended", id, payload }),
      close: (error) => this.close(error),
    }, {
      extensions: [client],
      ...(options.listenPort ? { listenPort: options.listenPort } : {}),
    });
  }

  /** The peer's `metadata_size`, once its extended handshake has arrived. */
  get metadataSize(): number | undefined {
    return this.#size;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** What the peer said about its pieces so far. */
  get evidence(): PieceEvidence {
    return { bitfield: this.#bitfield, all: this.#all, haves: [...this.#haves] };
  }

  /**
   * Sends our extended handshake (and `have_none` when both sides speak BEP 6) and starts
   * reading. Call once. A peer without the extension protocol is closed at once with a
   * {@linkcode ShoalError} of code `NO_METADATA` (it may still be a good peer to download from).
   */
  start(): void {
    if (!supportsExtensions(this.remote.reserved)) {
      this.close(new ShoalError("NO_METADATA", "Peer does not support the extension protocol (BEP 10)"));
      return;
    }
    if (supportsFast(this.remote.reserved)) this.#send({ type: "have_none" });
    this.#ext.sendHandshake(hostOf(this.address));
    this.#readLoop().catch((error) => this.close(error instanceof Error ? error : new Error(String(error))));
  }

  /**
   * Asks the peer for one piece of the metadata.
   *
   * @param piece Piece index (below the piece count of its `metadata_size`).
   */
  request(piece: number): void {
    if (this.#closed || this.#view === null) return;
    this.requests.set(piece, this.#now());
    this.#view.send(encodeMetadataMessage({ type: "request", piece }));
  }

  async #readLoop(): Promise<void> {
    const parser = new FrameParser();
    const reader = this.#duplex.readable.getReader();
    this.#reader = reader;
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value, (m) => this.#handle(m));
      }
      if (!this.#closed) parser.end();
      this.close();
    } finally {
      reader.releaseLock();
    }
  }

  #handle(m: Message): void {
    if (this.#closed) return;
    switch (m.type) {
      case "extended":
        this.#ext.receive(m.id, m.payload);
        return;
      // A bitfield, have_all or have_none replaces what the peer said before, wherever it comes
      // (aria2 sends a fresh bitfield instead of a burst of haves): kept (bounded by the frame limit)
      // and checked once the piece count is known.
      case "bitfield":
        this.#bitfield = m.bits.slice();
        this.#all = false;
        this.#haves.clear();
        return;
      case "have_all":
      case "have_none":
        this.#bitfield = null;
        this.#all = m.type === "have_all";
        this.#haves.clear();
        return;
      case "have":
        if (this.#haves.size < MAX_HAVES) this.#haves.add(m.piece);
        return;
      case "piece":
        throw new ProtocolError("Peer sent piece data we did not ask for");
      default:
        return; // choke state, requests and the rest mean nothing before the metadata
    }
  }

  #onHandshake(view: ExtensionPeer): void {
    this.#view = view;
    // A peer without the metadata (another magnet-link leecher, an old client) is no use here,
    // but it has done nothing wrong: closed with NO_METADATA, not a ProtocolError.
    if (!view.supported) {
      this.close(new ShoalError("NO_METADATA", "Peer does not offer ut_metadata"));
      return;
    }
    const raw = view.handshake.get("metadata_size");
    if (raw === undefined) {
      this.close(new ShoalError("NO_METADATA", "Peer offers ut_metadata but sent no metadata_size"));
      return;
    }
    const max = this.#options.maxMetadataSize;
    if (typeof raw !== "number" || !Number.isInteger(raw) || raw <= 0 || raw > max) {
      const shown = typeof raw === "number" || typeof raw === "bigint" ? String(raw) : "not an integer";
      throw new ProtocolError(`Peer's metadata_size ${shown} is not in 1..${max}`);
    }
    if (this.#size !== undefined && this.#size !== raw) {
      throw new ProtocolError(`Peer changed its metadata_size from ${this.#size} to ${raw}`);
    }
    const announced = this.#size === undefined;
    this.#size = raw;
    if (announced) this.#events.ready(this);
  }

  #onMessage(view: ExtensionPeer, payload: Uint8Array): void {
    const message = decodeMetadataMessage(payload);
    switch (message.type) {
      case "request":
        // We have no metadata to give.
        view.send(encodeMetadataMessage({ type: "reject", piece: message.piece }));
        return;
      case "reject":
        if (this.requests.delete(message.piece)) {
          this.rejected.add(message.piece);
          this.#events.reject(this, message.piece);
        }
        return;
      case "data": {
        const size = this.#size;
        if (size === undefined || !this.requests.has(message.piece)) {
          if (++this.#unsolicited > MAX_UNSOLICITED) {
            throw new ProtocolError(`Peer sent ${this.#unsolicited} metadata pieces we did not ask for`);
          }
          return;
        }
        if (message.totalSize !== size) {
          throw new ProtocolError(
            `Peer's total_size ${message.totalSize} differs from its metadata_size ${size}`,
          );
        }
        const expected = metadataPieceLength(size, message.piece);
        if (message.piece >= metadataPieceCount(size) || message.data.length !== expected) {
          throw new ProtocolError(
            `Peer sent ${message.data.length} bytes for metadata piece ${message.piece}, expected ${expected}`,
          );
        }
        this.requests.delete(message.piece);
        this.#events.data(this, message.piece, message.data);
        return;
      }
      case "unknown":
        return;
    }
  }

  #send(m: Message): void {
    if (this.#closed) return;
    const bytes = encodeMessage(m);
    this.#writing = this.#writing.then(() => this.#writer.write(bytes)).catch((error) => {
      this.close(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /**
   * Closes the connection (idempotent).
   *
   * @param error Why, when it was not a clean close.
   */
  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader?.cancel().catch(() => {/* the stream is already broken: nothing more to read */});
    this.#duplex.close();
    this.#events.closed(this, error);
  }
}
