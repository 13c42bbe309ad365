/**
 * A simulated swarm (libtorrent's simulator is the model): many shoal sessions in one
 * process on a {@linkcode MemoryNetwork}, each on its own address (10.0.x.y) with its own
 * link, torrents held in memory, no trackers, DHT or LSD (peers are given, then spread by
 * PEX). Choices the harness makes (which peers a newcomer is told about, the payload) come
 * from the network's seeded random source, so a seed gives the same swarm each run.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encode } from "../lib/bencode.ts";
import { parseMetainfo } from "../lib/metainfo.ts";
import { type LinkOptions, MemoryNetwork } from "../lib/net/memory_transport.ts";
import { DescriptorBudget } from "../lib/net/descriptor_budget.ts";
import { BaseSession } from "../lib/session.ts";
import type { Torrent } from "../lib/torrent.ts";
import type { Metainfo, StorageFactory, TransportConnection } from "../lib/types.ts";
import { ByteReader } from "../lib/wire/byte_reader.ts";
import { encodeHandshake, HANDSHAKE_LENGTH, reservedBits } from "../lib/wire/handshake.ts";
import { decodeMessage, encodeMessage } from "../lib/wire/messages.ts";
import { rarestFirst } from "../plugins/selection/rarest_first.ts";
import { memoryStorage } from "../plugins/storage/memory.ts";

/** Options for {@linkcode SimSwarm.create}. */
export interface SimSwarmOptions {
  /** Seed of the network's random source. @default {1} */
  seed?: number;
  /** Payload size in bytes. @default {1 MiB} */
  size?: number;
  /** Piece length. @default {32 KiB} */
  pieceLength?: number;
  /** Link of peers that name none. @default {{ latencyMs: 2 }} */
  link?: LinkOptions;
}

/** Options for {@linkcode SimSwarm.addPeer}. */
export interface SimPeerOptions {
  /** Starts with all the data. @default {false} */
  seed?: boolean;
  /** This peer's link. */
  link?: LinkOptions;
  /** Addresses to dial. @default the seeds and up to 4 random others */
  peers?: readonly string[];
  /** Joins by magnet link (metadata from peers) instead of the .torrent. @default {false} */
  magnet?: boolean;
  /** Upload slots. @default {4} */
  uploadSlots?: number;
  /** Exchange peers (ut_pex). @default {true} */
  pex?: boolean;
}

/** One simulated shoal peer. */
export interface SimPeer {
  /** "10.0.x.y:6881". */
  readonly address: string;
  readonly session: BaseSession;
  /** The torrent once added (a magnet peer's after its metadata arrived). */
  readonly torrent: Promise<Torrent>;
  /** Whether it is still in the swarm. */
  gone: boolean;
}

/** A swarm of shoal sessions on one in-memory network. */
export class SimSwarm implements AsyncDisposable {
  readonly net: MemoryNetwork;
  readonly meta: Metainfo;
  readonly payload: Uint8Array;
  readonly peers: SimPeer[] = [];
  readonly #link: LinkOptions;
  readonly #dir: string;
  readonly #budget = new DescriptorBudget({ limit: undefined });
  #next = 1;

  private constructor(
    net: MemoryNetwork,
    meta: Metainfo,
    payload: Uint8Array,
    link: LinkOptions,
    dir: string,
  ) {
    this.net = net;
    this.meta = meta;
    this.payload = payload;
    this.#link = link;
    this.#dir = dir;
  }

  /** Builds the network and the torrent. */
  static async create(options: SimSwarmOptions = {}): Promise<SimSwarm> {
    const net = new MemoryNetwork({ seed: options.seed ?? 1 });
    const size = options.size ?? 1 << 20;
    const pieceLength = options.pieceLength ?? 32 << 10;
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += 4) {
      const x = (net.random() * 2 ** 32) >>> 0;
      payload[i] = x;
      payload[i + 1] = x >>> 8;
      payload[i + 2] = x >>> 16;
      payload[i + 3] = x >>> 24;
    }
    const hashes = new Uint8Array(Math.ceil(size / pieceLength) * 20);
    for (let p = 0; p * pieceLength < size; p++) {
      const piece = payload.subarray(p * pieceLength, Math.min(size, (p + 1) * pieceLength));
      hashes.set(createHash("sha1").update(piece).digest(), p * 20);
    }
    const info = { length: size, name: "sim.bin", "piece length": pieceLength, pieces: hashes };
    const meta = parseMetainfo(encode({ info }));
    const dir = await Deno.makeTempDir({ prefix: "shoal-sim-" });
    return new SimSwarm(net, meta, payload, options.link ?? { latencyMs: 2 }, dir);
  }

  /** Addresses of the peers in the swarm that have all the data from the start. */
  seeds: string[] = [];

  /** Adds a shoal peer; resolves once it listens (its torrent may still be starting). */
  async addPeer(options: SimPeerOptions = {}): Promise<SimPeer> {
    const n = this.#next++;
    const ip = `10.0.${n >> 8}.${n & 255}`;
    const transport = this.net.host(ip, { ...this.#link, ...options.link });
    const session = new BaseSession({
      downloadDir: this.#dir,
      selector: rarestFirst(),
      transport,
      bind: ip,
      port: 6881,
      trackers: false,
      lsd: false,
      dht: false,
      checkFreeSpace: false,
      descriptorBudget: this.#budget,
      uploadSlots: options.uploadSlots ?? 4,
      pex: options.pex ?? true,
      dialTimeoutMs: 3000,
      storage: options.seed ? this.#filled() : memoryStorage(),
    });
    await session.listen();
    const address = `${ip}:6881`;
    const live = this.peers.filter((p) => !p.gone).map((p) => p.address);
    const others = live.filter((a) => !this.seeds.includes(a));
    const chosen: string[] = [];
    while (chosen.length < Math.min(4, others.length)) {
      const pick = others[Math.floor(this.net.random() * others.length)]!;
      if (!chosen.includes(pick)) chosen.push(pick);
    }
    const peers = options.peers ?? [...this.seeds.filter((a) => live.includes(a)), ...chosen];
    const torrent = options.magnet
      ? session.add(`magnet:?xt=urn:btih:${this.meta.infoHashHex}`, {
        peers,
        resumeDir: `${this.#dir}/${ip}`,
      })
      : session.add(this.meta, { peers, resumeDir: `${this.#dir}/${ip}` });
    const peer: SimPeer = { address, session, torrent, gone: false };
    torrent.catch(() => {/* awaited by the test through peer.torrent */});
    if (options.seed) this.seeds.push(address);
    this.peers.push(peer);
    return peer;
  }

  /** Takes a peer out (its session closes, its connections end). */
  async remove(peer: SimPeer): Promise<void> {
    peer.gone = true;
    await peer.session.close();
  }

  /** Waits until every peer still in the swarm has completed, or throws after `ms`. */
  async allComplete(ms: number, peers: readonly SimPeer[] = this.peers): Promise<void> {
    const live = peers.filter((p) => !p.gone);
    await deadline(
      Promise.all(live.map(async (p) => (await p.torrent).completed)),
      ms,
      () => {
        const done = live.filter((p) => p.session.torrents[0]?.stats().done).length;
        return `${done} of ${live.length} peers complete`;
      },
    );
  }

  /** Bytes each peer uploaded so far, by address. */
  async uploaded(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const p of this.peers) out.set(p.address, (await p.torrent).stats().uploaded);
    return out;
  }

  /** A corrupt peer: has every piece, sends random bytes for each block asked for. */
  corruptPeer(): string {
    const n = this.#next++;
    const ip = `10.0.${n >> 8}.${n & 255}`;
    const listener = this.net.host(ip, this.#link).listen({ hostname: ip, port: 6881 });
    this.#closers.push(() => listener.close());
    (async () => {
      for await (const conn of listener) this.#serveGarbage(conn).catch(() => conn.close());
    })();
    return `${ip}:6881`;
  }

  readonly #closers: (() => void)[] = [];

  async #serveGarbage(conn: TransportConnection): Promise<void> {
    const reader = new ByteReader(conn.readable);
    const writer = conn.writable.getWriter();
    const theirs = await reader.readExactly(HANDSHAKE_LENGTH);
    await writer.write(encodeHandshake({
      infoHash: theirs.slice(28, 48),
      peerId: new TextEncoder().encode("-XX0001-corruptcorru"),
      reserved: reservedBits({ fast: true, extensions: false }),
    }));
    await writer.write(encodeMessage({ type: "have_all" }));
    await writer.write(encodeMessage({ type: "unchoke" }));
    for (;;) {
      const length = new DataView((await reader.readExactly(4)).slice().buffer).getUint32(0);
      const message = decodeMessage((await reader.readExactly(length)).slice());
      if (message.type !== "request") continue;
      const data = new Uint8Array(message.length);
      for (let i = 0; i < data.length; i += 64) data[i] = (this.net.random() * 256) | 0;
      await writer.write(encodeMessage({ type: "piece", piece: message.piece, begin: message.begin, data }));
    }
  }

  /** Storage that opens with the whole payload in it. */
  #filled(): StorageFactory {
    return memoryStorage({
      onOpen: (backend, meta) => {
        for (let p = 0; p < meta.pieceCount; p++) {
          const start = p * meta.pieceLength;
          void backend.write(
            p,
            0,
            this.payload.slice(start, Math.min(meta.totalLength, start + meta.pieceLength)),
          );
        }
      },
    });
  }

  /** Closes every session and removes the folder. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const close of this.#closers) close();
    await Promise.allSettled(this.peers.map((p) => p.session.close()));
    await Deno.remove(this.#dir, { recursive: true });
  }
}

/** Resolves as `promise` does, or rejects after `ms` with what `status()` says. */
export async function deadline<T>(promise: Promise<T>, ms: number, status: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${status()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
