/**
 * Assembling the info dictionary from `ut_metadata` pieces: which size to believe, which peer
 * to ask for which piece, the SHA-1 check, and what to do when it fails (ban the one sender,
 * or switch to one peer at a time and keep the pieces of the failed attempt, so the liars are
 * banned once the metadata is verified).
 *
 * @module
 */

import type { Logger } from "./log.ts";
import { equalBytes } from "./net/bytes.ts";
import type { MetadataPeer } from "./peer/metadata_peer.ts";
import { METADATA_PIECE_SIZE, metadataPieceCount, metadataPieceLength } from "./peer/ut_metadata.ts";
import { sha1 } from "./storage/verify.ts";

/** Most requests in flight to one peer. */
const PER_PEER_REQUESTS = 2;

/** Options for {@linkcode MetadataAssembler}. */
export interface MetadataAssemblerOptions {
  /** The info-hash the metadata must hash to. */
  infoHash: Uint8Array;
  /** Where the assembly logs (category `metadata`). */
  logger: Logger;
  /** Peers that may be asked for pieces now (connected, offering the metadata, not banned). */
  usable: () => MetadataPeer[];
  /** The connected peer at an address. */
  peer: (address: string) => MetadataPeer | undefined;
  /** Bans a peer that sent bad metadata (and closes it). */
  ban: (address: string, reason: string) => void;
  /** The assembled metadata hashed to the info-hash. */
  verified: (infoBytes: Uint8Array) => void;
  /** True once the fetch is over: nothing more is requested. */
  finished: () => boolean;
}

interface Assembly {
  readonly size: number;
  readonly count: number;
  readonly buffer: Uint8Array;
  readonly received: Uint8Array;
  receivedCount: number;
  /** Sender of each piece. */
  readonly from: string[];
}

/**
 * One fetch's assembly of the metadata.
 *
 * @example
 * ```ts ignore
 * const assembler = new MetadataAssembler({ infoHash, logger, usable, peer, ban, verified, finished });
 * assembler.schedule();                    // a peer offers the metadata: ask for pieces
 * assembler.received(peer, 0, data);       // a piece arrived: store it, ask for more, verify
 * ```
 */
export class MetadataAssembler {
  readonly #options: MetadataAssemblerOptions;
  #assembly: Assembly | null = null;
  /** After a failed hash with several senders: one peer sends everything. */
  #singleMode = false;
  #single: string | null = null;
  readonly #triedSingle = new Set<string>();
  /** Pieces of failed assemblies, by sender, to find liars once the metadata is verified. */
  readonly #suspects: { size: number; piece: number; peer: string; data: Uint8Array }[] = [];

  /** @param options The info-hash, the peers, and what to do with the result. */
  constructor(options: MetadataAssemblerOptions) {
    this.#options = options;
  }

  /** True once a size was chosen and pieces are being assembled. */
  get started(): boolean {
    return this.#assembly !== null;
  }

  /** Pieces received of the assembly in progress. */
  get piecesReceived(): number {
    return this.#assembly?.receivedCount ?? 0;
  }

  /** Pieces of the assembly in progress (0 before one started). */
  get pieceCount(): number {
    return this.#assembly?.count ?? 0;
  }

  /**
   * True when the assembly takes every piece from this one peer (after a failed hash).
   *
   * @param address The peer's "host:port".
   * @returns True if so.
   */
  isSingleSource(address: string): boolean {
    return this.#singleMode && this.#single === address;
  }

  /**
   * A peer closed: if it was the single source, another is chosen at the next schedule.
   *
   * @param address The peer's "host:port".
   */
  peerClosed(address: string): void {
    if (this.#single === address) this.#single = null;
  }

  /** Chooses the size to assemble (the one most peers claim) and requests pieces from the peers. */
  schedule(): void {
    if (this.#options.finished()) return;
    const usable = this.#options.usable();
    if (this.#assembly === null) {
      if (usable.length === 0) return;
      // The size most peers claim first (liars rarely agree with each other).
      const votes = new Map<number, number>();
      for (const p of usable) votes.set(p.metadataSize!, (votes.get(p.metadataSize!) ?? 0) + 1);
      const size = [...votes].sort((a, b) => b[1] - a[1])[0]![0];
      const count = metadataPieceCount(size);
      this.#assembly = {
        size,
        count,
        buffer: new Uint8Array(size),
        received: new Uint8Array(count),
        receivedCount: 0,
        from: new Array(count).fill(""),
      };
      this.#options.logger.debug("metadata", "Assembling metadata", { size, pieces: count });
    }
    const a = this.#assembly;
    const sized = usable.filter((p) => p.metadataSize === a.size);
    if (sized.length === 0) {
      // Nobody left who claims this size: start over with what the others claim.
      if (usable.length > 0) {
        this.#assembly = null;
        this.schedule();
      }
      return;
    }
    if (this.#singleMode) {
      if (this.#single === null || !sized.some((p) => p.address === this.#single)) {
        const next = sized.find((p) => !this.#triedSingle.has(p.address)) ?? sized[0]!;
        this.#single = next.address;
        this.#triedSingle.add(next.address);
        this.#reset(a);
        this.#options.logger.info("metadata", "Fetching all metadata from one peer", { peer: next.address });
      }
      this.#fill(this.#options.peer(this.#single)!, a, []);
      return;
    }
    for (const peer of sized) this.#fill(peer, a, sized);
  }

  /**
   * A piece arrived: it is stored, more are asked for, and the whole is verified once complete.
   *
   * @param peer The sender.
   * @param piece The piece index.
   * @param data The piece's bytes (copied).
   */
  received(peer: MetadataPeer, piece: number, data: Uint8Array): void {
    const a = this.#assembly;
    if (a === null || peer.metadataSize !== a.size || a.received[piece]) return;
    if (this.#singleMode && peer.address !== this.#single) return;
    a.buffer.set(data, piece * METADATA_PIECE_SIZE);
    a.received[piece] = 1;
    a.receivedCount++;
    a.from[piece] = peer.address;
    if (a.receivedCount < a.count) {
      this.schedule();
      return;
    }
    if (equalBytes(sha1(a.buffer), this.#options.infoHash)) {
      this.#options.verified(a.buffer);
      return;
    }
    const senders = [...new Set(a.from)];
    this.#options.logger.warn("metadata", "Metadata does not match the info-hash", {
      peers: senders.join(","),
    });
    if (senders.length === 1) {
      this.#options.ban(senders[0]!, "sent metadata that does not match the info-hash");
    } else {
      // Keep the pieces of the first failed assembly (one metadata's worth) to find liars later.
      if (this.#suspects.length === 0) {
        for (let p = 0; p < a.count; p++) {
          const begin = p * METADATA_PIECE_SIZE;
          const data = a.buffer.slice(begin, begin + metadataPieceLength(a.size, p));
          this.#suspects.push({ size: a.size, piece: p, peer: a.from[p]!, data });
        }
      }
      this.#singleMode = true;
      this.#single = null;
    }
    this.#reset(a);
    this.schedule();
  }

  /**
   * Smart ban: pieces sent before that differ from the verified metadata name their senders.
   *
   * @param infoBytes The verified metadata.
   */
  banLiars(infoBytes: Uint8Array): void {
    for (const s of this.#suspects) {
      if (s.size !== infoBytes.length) {
        this.#options.ban(s.peer, "claimed a metadata_size that was not the real one");
        continue;
      }
      const begin = s.piece * METADATA_PIECE_SIZE;
      if (!equalBytes(s.data, infoBytes.subarray(begin, begin + s.data.length))) {
        this.#options.ban(s.peer, `sent a corrupt metadata piece ${s.piece}`);
      }
    }
  }

  /** Requests pieces of `a` from `peer`, up to its share; `others` are checked for duplicates. */
  #fill(peer: MetadataPeer, a: Assembly, others: readonly MetadataPeer[]): void {
    for (let piece = 0; piece < a.count && peer.requests.size < PER_PEER_REQUESTS; piece++) {
      if (a.received[piece] || peer.requests.has(piece) || peer.rejected.has(piece)) continue;
      if (others.some((o) => o !== peer && o.requests.has(piece))) continue;
      peer.request(piece);
    }
  }

  #reset(a: Assembly): void {
    a.received.fill(0);
    a.receivedCount = 0;
    a.from.fill("");
  }
}
