/**
 * The serving side of one connection: a peer's `request`s are checked, queued and served in
 * order (through the upload rate limiter and the host's verified reads), and refused with
 * `reject_request` (BEP 6) when they cannot be. A peer that keeps asking for what it cannot
 * have, or floods far past the queue cap, is dropped.
 *
 * @module
 */

import { PieceUnavailableError, ProtocolError } from "../errors.ts";
import type { MessageWriter } from "./message_writer.ts";
import type { PeerHost } from "./peer_host.ts";
import type { BlockRef } from "./piece_picker.ts";
import type { RateMeter } from "./rate.ts";
import type { RateLimiter } from "./rate_limiter.ts";

/** Largest block a peer may request from us (libtorrent and Transmission ask for 16 KiB). */
export const MAX_REQUEST_LENGTH = 128 * 1024;
/** Most requests from one peer we queue before rejecting. */
export const MAX_INCOMING_REQUESTS = 1000;
/** Invalid requests (past the end, too long, for missing pieces, over the queue cap) tolerated before dropping the peer. */
export const MAX_BAD_REQUESTS = 100;

/** The connection an {@linkcode UploadQueue} serves, as the queue sees it. */
export interface UploadPeer {
  /** BEP 6 negotiated: refused requests are answered with `reject_request`. */
  readonly fast: boolean;
  /** We are choking the peer. */
  readonly amChoking: boolean;
  /** True once closed. */
  readonly closed: boolean;
  /** Bytes of piece data sent to this peer. */
  readonly up: RateMeter;
  /** Closes the connection (a read failed, or the peer broke a rule). */
  close(error?: Error): void;
}

/** Options for {@linkcode UploadQueue}. */
export interface UploadQueueOptions {
  /** Paces piece data we send. @default unlimited */
  uploadLimiter?: RateLimiter | undefined;
  /** Aborted when the connection closes: cancels waits on the limiter. */
  signal: AbortSignal;
}

/**
 * One peer's queued upload requests.
 *
 * @example
 * ```ts ignore
 * const uploads = new UploadQueue(peer, host, writer, { signal });
 * uploads.request({ piece: 0, begin: 0, length: 16384 }); // checked, queued, served
 * uploads.refuseAll(); // we choked the peer
 * ```
 */
export class UploadQueue {
  readonly #peer: UploadPeer;
  readonly #host: PeerHost;
  readonly #out: MessageWriter;
  readonly #options: UploadQueueOptions;
  readonly #incoming: BlockRef[] = [];
  #uploading = false;
  #badRequests = 0;
  #overflowRequests = 0;

  /**
   * @param peer The connection served.
   * @param host The torrent side: geometry, our pieces, reads.
   * @param out Where pieces and rejects are sent.
   * @param options The upload limiter and the connection's abort signal.
   */
  constructor(peer: UploadPeer, host: PeerHost, out: MessageWriter, options: UploadQueueOptions) {
    this.#peer = peer;
    this.#host = host;
    this.#out = out;
    this.#options = options;
  }

  /** Requests waiting to be served. */
  get length(): number {
    return this.#incoming.length;
  }

  /**
   * Handles a peer's `request`: refused, queued or dropped as the rules say.
   *
   * @param m The request.
   * @throws {ProtocolError} when the peer has sent too many invalid or excess requests.
   */
  request(m: { piece: number; begin: number; length: number }): void {
    const size = m.piece < this.#host.pieceCount ? this.#host.pieceSize(m.piece) : 0;
    let problem: string | undefined;
    if (m.piece >= this.#host.pieceCount) problem = `piece ${m.piece} does not exist`;
    else if (m.length <= 0 || m.length > MAX_REQUEST_LENGTH) {
      problem = `length ${m.length} is not in 1..131072`;
    } else if (m.begin + m.length > size) problem = `offset ${m.begin} + ${m.length} is past the piece's end`;
    else if (!this.#host.have.get(m.piece)) {
      if (this.#host.lost?.(m.piece)) {
        // We announced it, then lost it on disk: refuse the request; the peer did nothing wrong.
        this.#reject(m);
        return;
      }
      problem = `we do not have piece ${m.piece}`;
    } else if (this.#incoming.length >= MAX_INCOMING_REQUESTS) {
      // Over the queue cap: refused. Clients that pipeline hard (libtorrent can keep 1500 requests out)
      // overshoot now and then, so this drops only a peer that floods far beyond the cap.
      this.#reject(m);
      if (++this.#overflowRequests > MAX_INCOMING_REQUESTS) {
        throw new ProtocolError(
          `Peer kept requesting with more than ${MAX_INCOMING_REQUESTS} requests queued (${this.#overflowRequests} refused)`,
        );
      }
      return;
    }
    if (problem !== undefined) {
      // Refuse; a peer that keeps asking for what it cannot have is dropped.
      this.#reject(m);
      if (++this.#badRequests > MAX_BAD_REQUESTS) {
        throw new ProtocolError(`Peer sent ${this.#badRequests} invalid requests; the last: ${problem}`);
      }
      return;
    }
    if (this.#peer.amChoking) {
      // A request that crossed our choke on the wire is normal: refuse it quietly.
      this.#reject(m);
      return;
    }
    this.#incoming.push({ piece: m.piece, begin: m.begin, length: m.length });
    this.#pump();
  }

  /**
   * Handles a peer's `cancel`: the matching queued request is dropped.
   *
   * @param piece Piece index.
   * @param begin Block offset.
   * @param length Block length.
   */
  cancel(piece: number, begin: number, length: number): void {
    const i = this.#incoming.findIndex((r) => r.piece === piece && r.begin === begin && r.length === length);
    if (i >= 0) this.#incoming.splice(i, 1);
  }

  /** We choked the peer: every queued request is refused (reject_request with Fast, else dropped). */
  refuseAll(): void {
    if (this.#peer.fast) {
      for (const r of this.#incoming) this.#reject(r);
    }
    this.#incoming.length = 0;
  }

  /** Forgets every queued request (the connection closed). */
  clear(): void {
    this.#incoming.length = 0;
  }

  /** Sends reject_request for a request when Fast was negotiated. */
  #reject(r: { piece: number; begin: number; length: number }): void {
    if (this.#peer.fast) this.#out.send({ type: "reject", piece: r.piece, begin: r.begin, length: r.length });
  }

  /** Asks the host to start reading the next two pieces in the queue, so disk and network overlap. */
  #readAhead(current: number): void {
    const prefetch = this.#host.prefetch;
    if (prefetch === undefined) return;
    let last = current;
    let started = 0;
    for (const r of this.#incoming) {
      if (r.piece === last) continue;
      last = r.piece;
      prefetch.call(this.#host, r.piece);
      if (++started === 2) break;
    }
  }

  /** Refuses a request and every other queued one for its piece (reject_request with Fast, else dropped). */
  #refuseQueued(r: BlockRef): void {
    const refused = [r];
    for (let i = this.#incoming.length - 1; i >= 0; i--) {
      if (this.#incoming[i]!.piece === r.piece) refused.push(...this.#incoming.splice(i, 1));
    }
    if (!this.#peer.fast || this.#peer.closed) return;
    for (const q of refused) this.#reject(q);
  }

  #pump(): void {
    if (this.#uploading) return;
    this.#uploading = true;
    const peer = this.#peer;
    (async () => {
      try {
        while (!peer.closed && !peer.amChoking && this.#incoming.length > 0) {
          const r = this.#incoming.shift()!;
          this.#readAhead(r.piece);
          if (this.#options.uploadLimiter) {
            await this.#options.uploadLimiter.take(r.length, this.#options.signal);
            if (peer.closed || peer.amChoking) break;
          }
          let data: Uint8Array;
          try {
            data = await this.#host.readBlock(r.piece, r.begin, r.length);
          } catch (error) {
            if (!(error instanceof PieceUnavailableError)) throw error;
            // The piece changed or vanished on disk (the host logged it): refuse what is queued for
            // it and go on serving the rest; the peer asked for a piece we had announced.
            this.#refuseQueued(r);
            continue;
          }
          if (peer.closed || peer.amChoking) break;
          this.#out.send({ type: "piece", piece: r.piece, begin: r.begin, data });
          peer.up.add(data.length, this.#host.now());
          if (this.#out.queuedBytes > 1024 * 1024) await this.#out.flushing;
        }
      } finally {
        this.#uploading = false;
      }
    })().catch((error) => peer.close(error instanceof Error ? error : new Error(String(error))));
  }
}
