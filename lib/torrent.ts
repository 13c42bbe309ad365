/**
 * One torrent's lifecycle: check existing data, download from many peers at once, verify
 * and store pieces, ban peers that send bad data, save resume data, then seed.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { Bitfield } from "./bitfield.ts";
import { PieceUnavailableError, ShoalError, StorageError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { BanList } from "./peer/ban_list.ts";
import { chooseUnchoked } from "./peer/choker.ts";
import { type AvailabilityChange, PeerConnection, type PeerHost } from "./peer/connection.ts";
import type { HandshakenPeer } from "./peer/handshake_read.ts";
import { parseAddress } from "./net/address.ts";
import { equalBytes } from "./net/bytes.ts";
import { type BlockRef, type CompletedPiece, PiecePicker } from "./peer/piece_picker.ts";
import { clientCode, clientName } from "./peer/client_id.ts";
import { RateMeter } from "./peer/rate.ts";
import { RateLimiter, TokenBucket } from "./peer/rate_limiter.ts";
import { Announcer, type TrackerStatus } from "./tracker/announcer.ts";
import { FileStorage } from "./storage/file_storage.ts";
import { fileStorage } from "./storage/file_storage_factory.ts";
import { openStorage } from "./storage/open_storage.ts";
import type { CheckedStorage } from "./storage/storage.ts";
import { DownloadLock, downloadLockPath } from "./storage/folder_lock.ts";
import { captureResume, readResume, restoreProgress, writeResumeAtomic } from "./storage/resume.ts";
import { sha1 } from "./storage/verify.ts";
import { OversizedFiles } from "./storage/oversized.ts";
import { type PieceLoss, VerifiedPieceReader } from "./storage/verified_reader.ts";
import type { Duplex, Metainfo, PeerExtension } from "./types.ts";
import { reservedBits, supportsDht, supportsExtensions, supportsFast } from "./wire/handshake.ts";
import { utMetadataServer } from "./peer/ut_metadata.ts";
import { UtPex } from "./peer/ut_pex.ts";
import { type FilePriority, piecesFor, wantedBytes } from "./file_priority.ts";
import { Swarm } from "./swarm/swarm.ts";
import { TORRENT_SWARM } from "./swarm/constants.ts";

export type {
  CheckProgress,
  PeerInfo,
  PeerTransport,
  RateLimits,
  StartupCheck,
  TorrentEventMap,
  TorrentOptions,
  TorrentState,
  TorrentStats,
} from "./torrent_types.ts";
import type {
  PeerInfo,
  RateLimits,
  StartupCheck,
  TorrentEventMap,
  TorrentOptions,
  TorrentState,
  TorrentStats,
} from "./torrent_types.ts";

const TICK_MS = 1000;

/**
 * A torrent being downloaded or seeded. Create it through a session
 * (`session.add(...)`), listen to its events, await {@linkcode Torrent.completed}.
 *
 * @example
 * ```ts ignore
 * const torrent = await session.add(await Deno.readFile("x.torrent"), { peers: ["127.0.0.1:6881"] });
 * torrent.addEventListener("progress", (e) => console.log((e as CustomEvent).detail.percent));
 * await torrent.completed;
 * ```
 */
export class Torrent extends EventTarget implements AsyncDisposable {
  /** The torrent's metadata. */
  readonly metainfo: Metainfo;
  /** Info-hash as hex. */
  readonly infoHash: string;
  /** Settles when every piece is verified (rejects on a fatal error or if stopped first). */
  readonly completed: Promise<void>;

  readonly #options: TorrentOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #have: Bitfield;
  readonly #host: PeerHost;
  #picker!: PiecePicker;
  /** The torrent's storage backend inside the core's checked layer. */
  #storage: CheckedStorage | null = null;
  /** Held from start to the end of the shutdown: one process at a time writes this data. */
  #lock: DownloadLock | null = null;
  /** The one shutdown run, shared by `stop()` and a fatal error (so files are closed once). */
  #stopping: Promise<void> | undefined;
  /** The running `start()`, which a shutdown waits for before closing what it opened. */
  #starting: Promise<unknown> | undefined;
  /** The last resume save, so saves never overlap (an older snapshot must not land last). */
  #resumeSave: Promise<void> = Promise.resolve();
  #state: TorrentState = "checking";
  readonly #peers = new Map<string, PeerConnection>();
  readonly #bans = new BanList();
  readonly #swarm: Swarm;
  readonly #down = new RateMeter(5);
  readonly #up = new RateMeter(5);
  readonly #abort = new AbortController();
  readonly #writes = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #optimistic: string | undefined;
  #failedPieces = 0;
  /** Bytes of blocks received but not used: duplicates, unrequested or no longer needed. */
  #duplicateBytes = 0;
  /** Bytes of pieces that failed their hash check. */
  #failedBytes = 0;
  #dirty = false;
  #lastResumeSave = 0;
  #resolve!: () => void;
  #reject!: (error: Error) => void;
  #settled = false;
  /** Serves pieces only once what was read matches the hash (see verified_reader.ts). */
  #reader: VerifiedPieceReader | null = null;
  /** Pieces we announced, then lost on disk: requests for them are refused, not held against peers. */
  readonly #lost = new Set<number>();
  /** Files longer than the torrent's, cut once complete (see oversized.ts). */
  #oversized: OversizedFiles | null = null;
  #startedAt = 0;
  #startupCheck: StartupCheck | undefined;
  #announcer: Announcer | null = null;
  #neededDownload = false;
  readonly #extensions: PeerExtension[];
  /** BEP 11 peer exchange (null when off or private). */
  readonly #pex: UtPex | null = null;
  /** What protects each connected peer's payload (`HandshakenPeer.encryption`). */
  readonly #encryption = new Map<string, string>();
  readonly #priorities: FilePriority[];
  #wanted: Bitfield | null = null;
  readonly #upBucket: TokenBucket;
  readonly #downBucket: TokenBucket;
  readonly #upLimiter: RateLimiter;
  readonly #downLimiter: RateLimiter;
  #completedAt = 0;

  /**
   * Creates the instance.
   *
   * @param metainfo The parsed torrent.
   * @param options Where to store it, plugins, identity.
   */
  constructor(metainfo: Metainfo, options: TorrentOptions) {
    super();
    this.metainfo = metainfo;
    this.infoHash = metainfo.infoHashHex;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger.child({ torrent: metainfo.infoHashHex.slice(0, 12) });
    this.#have = new Bitfield(metainfo.pieceCount);
    this.#host = this.#makeHost();
    this.#swarm = new Swarm({
      policy: { ...TORRENT_SWARM, maxConnections: options.maxPeers ?? TORRENT_SWARM.maxConnections },
      peerId: options.peerId,
      handshake: () => this.handshake(),
      logger: this.#log,
      category: "swarm",
      active: () => this.#state === "downloading" || this.#state === "seeding",
      onPeer: (address, peer) => this.#startPeer(address, peer),
      bans: this.#bans,
      admit: options.admit,
      countConnection: options.countConnection,
      countDial: options.countDial,
      dial: options,
      signal: this.#abort.signal,
      now: () => this.#now(),
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
        addPeers: (addresses) => this.addPeers(addresses, "pex"),
        now: () => this.#now(),
        logger: this.#log,
      });
      this.#extensions.push(this.#pex);
    }
    this.#priorities = metainfo.files.map((_, i) => options.filePriorities?.[i] ?? "normal");
    this.#upBucket = new TokenBucket({ rate: options.uploadLimit ?? 0 });
    this.#downBucket = new TokenBucket({ rate: options.downloadLimit ?? 0 });
    const global = options.globalBuckets;
    this.#upLimiter = new RateLimiter(global ? [this.#upBucket, global.upload] : [this.#upBucket]);
    this.#downLimiter = new RateLimiter(global ? [this.#downBucket, global.download] : [this.#downBucket]);
    this.completed = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A caller that never awaits `completed` must not crash the process with an unhandled rejection.
    this.completed.catch(() => {/* reported through the "error" event and the logger */});
  }

  /** Current state. */
  get state(): TorrentState {
    return this.#state;
  }

  /** Our verified pieces (read-only view; do not modify). */
  get have(): Bitfield {
    return this.#have;
  }

  /**
   * The resume file's path. Resume data is kept only for storage that reports its files
   * (`fileStat`, as file storage does); other storage is verified piece by piece at start-up.
   */
  get resumePath(): string {
    const dir = this.#options.resumeDir ?? join(this.#options.downloadDir, ".shoal");
    return join(dir, `${this.infoHash}.resume`);
  }

  /** What the start-up data check found (undefined until it is over). */
  get startupCheck(): StartupCheck | undefined {
    return this.#startupCheck;
  }

  /**
   * Opens storage, checks existing data (using resume data when it can be trusted) and starts
   * connecting to peers. Called by the session. Progress of the check goes to `checking`
   * events; `options.signal` stops it at the next piece (start() then rejects with the
   * signal's reason, and no resume data is written: the old file stays as it was).
   *
   * @param options A signal that stops the data check.
   * @returns How many pieces were found complete, trusted from resume data or re-checked.
   */
  start(
    options: { signal?: AbortSignal } = {},
  ): Promise<{ have: number; trusted: number; rechecked: number }> {
    const starting = this.#start(options.signal);
    this.#starting = starting;
    return starting;
  }

  /**
   * The folder below which resume files are never reached through a symbolic link: the resume
   * folder the user chose, else the download folder (so a planted `.shoal` link is refused).
   */
  get #resumeRoot(): string {
    return resolve(this.#options.resumeDir ?? this.#options.downloadDir);
  }

  async #start(stop?: AbortSignal): Promise<{ have: number; trusted: number; rechecked: number }> {
    const meta = this.metainfo;
    const signal = stop ? AbortSignal.any([this.#abort.signal, stop]) : this.#abort.signal;
    try {
      // First of all: another process using this data means we must not touch anything.
      const lock = downloadLockPath(this.#options.downloadDir, this.#options.resumeDir, this.infoHash);
      this.#lock = await DownloadLock.acquire(lock.root, lock.path, {
        folder: this.#options.downloadDir,
        torrent: meta.name,
      });
      this.#abort.signal.throwIfAborted();
      const skipped = new Set(this.#priorities.flatMap((p, i) => (p === "skip" ? [i] : [])));
      // File storage refuses a download that cannot fit before it creates anything.
      this.#storage = await openStorage(this.#options.storage ?? fileStorage(), meta, {
        downloadDir: resolve(this.#options.downloadDir),
        skipFiles: skipped,
        checkFreeSpace: this.#options.checkFreeSpace !== false,
        signal,
      });
      // Stopped while the files were opening: the shutdown closes them once this settles.
      this.#abort.signal.throwIfAborted();
      // Storage that cannot report its files keeps no resume data: every piece is verified.
      const stats = this.#storage.canStat;
      const resume = stats
        ? await readResume(this.resumePath, meta, {
          root: this.#resumeRoot,
          onProblem: (problem) => this.#log.warn("storage", `Ignoring resume data: ${problem.message}`),
        })
        : null;
      const restored = await restoreProgress(this.#storage, meta, resume, {
        signal,
        onProgress: (progress) => this.#emit("checking", progress),
        ...(stats ? {} : { fileStats: false }),
      });
      signal.throwIfAborted();
      for (const i of restored.have) this.#have.set(i);
      this.#reader = new VerifiedPieceReader(this.#storage, meta, {
        onLost: (loss) => this.#piecesLost(loss),
        onProblem: (message) => this.#log.warn("storage", message),
      });
      const backend = this.#storage.backend;
      if (backend instanceof FileStorage) {
        this.#oversized = await OversizedFiles.find(backend, meta, this.#have, this.#log);
        await this.#oversized.trimComplete(this.#have);
      }
      this.#log.info("storage", "Checked existing data", {
        have: restored.have.size,
        trusted: restored.trusted,
        rechecked: restored.rechecked,
        ...(restored.failed.length > 0 ? { failed: restored.failed.length } : {}),
      });
      this.#startupCheck = {
        have: restored.have.size,
        pieceCount: meta.pieceCount,
        trusted: restored.trusted,
        rechecked: restored.rechecked,
        usedResume: restored.usedResume,
        failed: restored.failed,
      };
      this.#emit("checked", this.#startupCheck);
      this.#picker = new PiecePicker({
        pieceCount: meta.pieceCount,
        pieceLength: meta.pieceLength,
        totalLength: meta.totalLength,
        have: this.#have,
        selector: this.#options.selector,
        ...(this.#options.random ? { random: this.#options.random } : {}),
        ...(this.#options.maxBufferedBytes ? { maxBufferedBytes: this.#options.maxBufferedBytes } : {}),
        onSelectorFault: (error) => this.#log.warn("plugin", error.message, { plugin: error.plugin }),
      });
      this.#applyPriorities();
      this.#state = this.#isDone() ? "seeding" : "downloading";
      this.#neededDownload = !this.#isDone();
      this.#startedAt = this.#now();
      this.#startAnnouncing();
      this.#timer = setInterval(() => this.#tick(), TICK_MS);
      if (this.#isDone()) this.#finish();
      else {
        await this.#saveResume().catch((error) =>
          this.#log.warn("storage", `Cannot save resume data: ${(error as Error).message}`)
        );
      }
      return { have: restored.have.size, trusted: restored.trusted, rechecked: restored.rechecked };
    } catch (error) {
      // start() rejects with it: whoever called reports it, the log only records it.
      this.#fail(error instanceof Error ? error : new Error(String(error)), { thrown: true });
      throw error;
    }
  }

  #startAnnouncing(): void {
    const trackers = this.#options.trackers;
    if (trackers === undefined) return;
    const seen = new Set<string>();
    const tiers = [...this.metainfo.announceList, ...(trackers.extraTiers ?? [])]
      .map((tier) => tier.filter((url) => !seen.has(url) && seen.add(url)))
      .filter((tier) => tier.length > 0);
    if (tiers.length === 0) return;
    this.#announcer = new Announcer({
      tiers,
      infoHash: this.metainfo.infoHash,
      peerId: this.#options.peerId,
      port: trackers.port,
      udp: trackers.udp,
      logger: this.#log,
      stats: () => ({
        uploaded: this.#up.total,
        downloaded: this.#down.total,
        left: this.#wantedLeft(),
      }),
      onPeers: (peers, tracker) => {
        const added = this.addPeers(peers, "tracker");
        this.#log.debug("tracker", "Peers from tracker", { tracker, peers: peers.length, new: added });
      },
      ...(this.#options.random ? { random: this.#options.random } : {}),
    });
    this.#announcer.start();
  }

  /** The state of each tracker (empty when the torrent has none or trackers are off). */
  trackers(): TrackerStatus[] {
    return this.#announcer?.status() ?? [];
  }

  /**
   * Adds peers to connect to ("host:port" or "[v6]:port"). This is the seam every peer source
   * uses (manual peers, trackers, and later DHT, PEX and local discovery). Invalid addresses
   * throw a `PeerAddressError` for manual peers and are skipped for other sources; at most 2000
   * addresses are kept.
   *
   * @param addresses Peer addresses.
   * @param source Where they came from, for logs (`manual`, `tracker`, ...).
   * @returns How many were new.
   */
  addPeers(addresses: Iterable<string>, source = "manual"): number {
    return this.#swarm.add(addresses, source);
  }

  /** The handshake we send for this torrent. */
  handshake(): { infoHash: Uint8Array; peerId: Uint8Array; reserved: Uint8Array } {
    return {
      infoHash: this.metainfo.infoHash,
      peerId: this.#options.peerId,
      reserved: reservedBits({ fast: true, extensions: true, dht: this.#options.dht !== undefined }),
    };
  }

  /**
   * Whether this torrent takes a new incoming connection from this address.
   *
   * @param address "host:port".
   * @returns True if it is not banned and a slot is free.
   */
  accepts(address: string): boolean {
    return this.#state !== "stopped" && this.#state !== "error" && this.#state !== "checking" &&
      this.#swarm.admits(address);
  }

  /**
   * Takes over a connection whose handshakes are done (incoming, from the session).
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

  /** A connection the swarm took (self, duplicate and banned ones are dropped already). */
  #startPeer(address: string, { duplex, remote, encryption }: HandshakenPeer): void {
    const dht = this.#options.dht;
    const conn = new PeerConnection(duplex as Duplex, this.#host, {
      id: address,
      peerId: remote.peerId,
      fast: supportsFast(remote.reserved),
      extensions: supportsExtensions(remote.reserved),
      uploadLimiter: this.#upLimiter,
      downloadLimiter: this.#downLimiter,
      extensionProtocol: {
        extensions: this.#extensions,
        ...(this.#options.listenPort ? { listenPort: this.#options.listenPort } : {}),
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
    this.#emit("peer-connected", { address });
    conn.start();
    this.#choke();
  }

  /** The connection-facing side of the torrent. */

  #makeHost(): PeerHost {
    const pieceCount = this.metainfo.pieceCount;
    const have = this.#have;
    return {
      pieceCount,
      have,
      pieceSize: (piece: number) => this.#picker.pieceSize(piece),
      isInteresting: (peer: PeerConnection) => this.#isInteresting(peer),
      pick: (peer: PeerConnection, max: number) => this.#picker.pick(peer, max),
      release: (peer: PeerConnection, block: BlockRef) =>
        this.#picker.release(peer.id, block.piece, block.begin),
      block: (peer: PeerConnection, piece: number, begin: number, data: Uint8Array) =>
        this.#onBlock(peer, piece, begin, data),
      availabilityChanged: (peer: PeerConnection, change: AvailabilityChange) => {
        if (change.replaced?.all) this.#picker.peerLostAll();
        else if (change.replaced) this.#picker.removeBitfield(change.replaced.bits);
        if (change.all) this.#picker.peerHasAll();
        else if (change.bits) this.#picker.addBitfield(change.bits);
        else if (change.piece !== undefined) {
          if (peer.seed) {
            // The have completed its bitfield: count it as a seed from now on.
            this.#picker.removeBitfield(peer.bitfield);
            this.#picker.peerHasAll();
          } else this.#picker.addHave(change.piece);
        }
        if (this.#state === "seeding" && peer.seed) peer.close();
      },
      readBlock: (piece: number, begin: number, length: number) => this.#readBlock(piece, begin, length),
      lost: (piece: number) => this.#lost.has(piece),
      prefetch: (piece: number) => {
        if (!this.#have.get(piece)) return;
        this.#reader?.read(piece).catch(
          () => {/* the read is retried, and its error reported, when the block is served */},
        );
      },
      interestChanged: (_peer: PeerConnection) => this.#choke(),
      closed: (peer: PeerConnection, error: Error | undefined) => this.#onClosed(peer, error),
      now: () => this.#now(),
    };
  }

  #isInteresting(peer: PeerConnection): boolean {
    if (this.#isDone()) return false;
    if (peer.seed) return true;
    for (const i of peer.bitfield) if (!this.#have.get(i) && (this.#wanted?.get(i) ?? true)) return true;
    return false;
  }

  #onBlock(peer: PeerConnection, piece: number, begin: number, data: Uint8Array): void {
    this.#down.add(data.length, this.#now());
    const outcome = this.#picker.blockReceived(peer.id, piece, begin, data);
    if (!outcome.accepted) this.#duplicateBytes += data.length;
    for (const id of outcome.cancel) this.#peers.get(id)?.cancel(piece, begin);
    if (outcome.completed) this.#track(this.#finishPiece(outcome.completed));
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error) =>
      this.#fail(error instanceof Error ? error : new Error(String(error)))
    )
      .finally(() => this.#writes.delete(tracked));
    this.#writes.add(tracked);
  }

  async #finishPiece(done: CompletedPiece): Promise<void> {
    const meta = this.metainfo;
    const { piece, data } = done;
    // node:crypto's SHA-1 measured faster here than crypto.subtle, even with several digests in
    // flight, and it needs no copy of the piece.
    const digest = sha1(data);
    const expected = meta.pieceHashes.subarray(piece * 20, piece * 20 + 20);
    if (!equalBytes(digest, expected)) {
      this.#pieceFailed(done);
      return;
    }
    try {
      await this.#storage!.write(piece, 0, data);
    } catch (error) {
      this.#picker.pieceFailed(done);
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    // Good pieces earn their senders credit; earlier bad blocks of this piece name the liars.
    for (const verdict of this.#bans.pieceVerified(piece, data, done.contributors)) {
      this.#ban(verdict.address, verdict.reason);
    }
    this.#picker.pieceVerified(done);
    this.#lost.delete(piece);
    this.#dirty = true;
    this.#log.debug("storage", "Piece verified", { piece, peers: [...new Set(done.contributors)].join(",") });
    this.#emit("piece-verified", { piece });
    for (const p of this.#peers.values()) if (!p.has(piece)) p.sendHave(piece);
    if (this.#isDone()) {
      this.#finish();
    } else if (this.#have.count() % 16 === 0) {
      for (const p of this.#peers.values()) if (p.amInterested) p.refreshInterest();
    }
  }

  #pieceFailed(done: CompletedPiece): void {
    const { piece, data, contributors } = done;
    this.#failedPieces++;
    this.#failedBytes += data.length;
    const peers = [...new Set(contributors)];
    this.#log.warn("storage", "Piece failed its hash check", { piece, peers: peers.join(",") });
    this.#emit("piece-failed", { piece, peers });
    for (const verdict of this.#bans.pieceFailed(piece, data, contributors)) {
      this.#ban(verdict.address, verdict.reason);
    }
    this.#picker.pieceFailed(done);
  }

  #ban(address: string, reason: string): void {
    if (!this.#swarm.ban(address, reason)) return;
    this.#emit("peer-banned", { address, reason });
    this.#peers.get(address)?.close(new ShoalError("BANNED", `Banned: ${reason}`));
  }

  /**
   * A block for serving, cut from its whole piece: the reader reads each piece once, checks its
   * hash before any block of it is sent, and keeps it in a small LRU cache (peers ask for a
   * piece's blocks in a row; `prefetch` starts the read as soon as a request is queued).
   */
  async #readBlock(piece: number, begin: number, length: number): Promise<Uint8Array> {
    if (!this.#have.get(piece)) {
      throw new PieceUnavailableError(piece, `Piece ${piece} is no longer available`);
    }
    const data = await this.#reader!.read(piece);
    this.#up.add(length, this.#now());
    return data.subarray(begin, begin + length);
  }

  /** Pieces changed or vanished on disk: stop serving them and download them again. */
  #piecesLost(loss: PieceLoss): void {
    const pieces = loss.pieces.filter((p) => this.#have.get(p));
    if (pieces.length === 0 || this.#picker === undefined) return;
    for (const p of pieces) {
      this.#picker.pieceLost(p);
      this.#lost.add(p);
      this.#reader?.forget(p);
    }
    this.#dirty = true;
    const files = loss.files.map((f) => this.metainfo.files[f]!.safePath);
    const again = pieces.some((p) => this.#wanted?.get(p) ?? true);
    this.#log.warn(
      "storage",
      `${loss.message}; not serving ${pieces.length === 1 ? "it" : "them"}` +
        (again ? ", downloading again" : ""),
      { pieces: pieces.length, files: files.join(",") },
    );
    this.#emit("piece-lost", { pieces, reason: loss.kind, files });
    if (this.#state === "seeding" && !this.#isDone()) {
      this.#state = "downloading";
      this.#completedAt = 0;
    }
    for (const p of this.#peers.values()) p.refreshInterest();
  }

  #onClosed(peer: PeerConnection, error: Error | undefined): void {
    if (this.#peers.get(peer.id) !== peer) return;
    this.#peers.delete(peer.id);
    this.#encryption.delete(peer.id);
    this.#swarm.closed(peer.id);
    if (this.#picker) {
      if (peer.seed) this.#picker.peerLostAll();
      else this.#picker.removeBitfield(peer.bitfield);
    }
    const reason = error?.message;
    this.#log.info("peer", reason ? `Peer disconnected: ${reason}` : "Peer disconnected", { peer: peer.id });
    this.#emit("peer-disconnected", reason ? { address: peer.id, reason } : { address: peer.id });
    if (this.#optimistic === peer.id) this.#optimistic = undefined;
    this.#choke();
  }

  #choke(): void {
    if (this.#state !== "downloading" && this.#state !== "seeding") return;
    const peers = [...this.#peers.values()];
    const { unchoke, optimistic } = chooseUnchoked(peers, {
      slots: this.#options.uploadSlots ?? 8,
      seeding: this.#state === "seeding",
      optimistic: this.#optimistic,
      now: this.#now(),
      ...(this.#options.random ? { random: this.#options.random } : {}),
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

  #tick(): void {
    const now = this.#now();
    this.#ticks++;
    for (const p of [...this.#peers.values()]) p.tick(now);
    this.#pex?.tick(now);
    if (this.#ticks % 10 === 0) this.#choke();
    if (this.#ticks % 30 === 0) this.#optimistic = undefined;
    if (this.#ticks % 30 === 15 && this.#state === "downloading" && this.#peers.size < 5) {
      this.#announcer?.announceNow(); // short of peers: ask again (the tracker's min interval is respected)
    }
    this.#swarm.connectMore();
    const interval = (this.#options.resumeInterval ?? 15) * 1000;
    if (this.#dirty && now - this.#lastResumeSave >= interval) {
      this.#saveResume().catch((error) =>
        this.#log.warn("storage", `Cannot save resume data: ${error.message}`)
      );
    }
    this.#emit("progress", this.stats());
  }

  #finish(): void {
    if (this.#state === "stopped" || this.#state === "error") return;
    this.#state = "seeding";
    this.#completedAt = this.#now();
    if (this.#neededDownload) this.#announcer?.completed();
    const stats = this.stats();
    this.#log.info("torrent", "Download complete", { pieces: this.metainfo.pieceCount });
    // Peers that are complete have nothing to trade with a seed.
    for (const p of [...this.#peers.values()]) {
      if (p.seed) p.close();
      else p.refreshInterest();
    }
    (async () => {
      await Promise.all([...this.#writes]);
      await this.#oversized?.trimComplete(this.#have);
      await this.#storage?.flush();
      await this.#saveResume();
    })().then(
      () => {
        this.#emit("progress", this.stats());
        this.#emit("done", stats);
        this.#settle();
      },
      (error) => this.#fail(error instanceof Error ? error : new Error(String(error))),
    );
  }

  #settle(error?: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    if (error) this.#reject(error);
    else this.#resolve();
  }

  #fail(error: Error, options: { thrown?: boolean } = {}): void {
    if (this.#state === "error" || this.#state === "stopped") return;
    this.#state = "error";
    // A start() failure is thrown to the caller, who reports it (the CLI shows one line).
    if (options.thrown) this.#log.debug("torrent", `Torrent stopped: ${error.message}`);
    // `completed: "rejected"`: the same error rejects `completed`, so a caller that reports that
    // rejection (the CLI's one error line) can leave this record out of a display it shares.
    else if (!this.#settled) {
      this.#log.error("torrent", `Torrent stopped: ${error.message}`, { completed: "rejected" });
    } else this.#log.error("torrent", `Torrent stopped: ${error.message}`);
    this.#emit("error", { error });
    this.#settle(error);
    this.#shutdown().catch((e) =>
      this.#log.error("torrent", `Cannot shut down cleanly: ${(e as Error).message}`)
    );
  }

  #saveResume(): Promise<void> {
    const storage = this.#storage;
    if (!storage?.canStat) return Promise.resolve();
    this.#dirty = false;
    this.#lastResumeSave = this.#now();
    const save = async () => {
      const data = await captureResume(storage, this.metainfo, this.#have);
      await writeResumeAtomic(this.resumePath, data, { root: this.#resumeRoot });
    };
    // One save at a time, in order: the previous one's failure was reported to its own caller.
    const next = this.#resumeSave.then(save, save);
    this.#resumeSave = next.catch(() => {/* reported by whoever awaited `next` */});
    return next;
  }

  /**
   * Changes this torrent's rate limits while it runs (0 removes a limit).
   *
   * @param limits New limits in bytes per second; absent ones are kept.
   */
  setLimits(limits: RateLimits): void {
    if (limits.upload !== undefined) this.#upBucket.setRate(limits.upload);
    if (limits.download !== undefined) this.#downBucket.setRate(limits.download);
  }

  /** The priority of each file, in `metainfo.files` order. */
  get filePriorities(): readonly FilePriority[] {
    return [...this.#priorities];
  }

  /**
   * Changes the priority of files while the torrent runs. Skipping a file stops new requests
   * for pieces only it touches (pieces already started are finished); un-skipping one after
   * the download was done resumes downloading (`completed` has settled already and stays so).
   *
   * @param files File indices (in `metainfo.files` order).
   * @param priority "skip", "normal" or "high".
   * @throws {RangeError} when an index is not a file of the torrent.
   */
  setFilePriority(files: number | readonly number[], priority: FilePriority): void {
    const list = typeof files === "number" ? [files] : files;
    for (const i of list) {
      if (!Number.isInteger(i) || i < 0 || i >= this.#priorities.length) {
        throw new RangeError(
          `File index ${i} is out of range: the torrent has ${this.#priorities.length} files`,
        );
      }
    }
    for (const i of list) this.#priorities[i] = priority;
    if (this.#picker === undefined) return; // applied by start()
    const wasDone = this.#isDone();
    this.#applyPriorities();
    if (this.#state === "seeding" && wasDone && !this.#isDone()) {
      this.#state = "downloading";
      this.#neededDownload = true;
      this.#completedAt = 0;
      this.#log.info("torrent", "Downloading again: files were selected", { files: list.join(",") });
    } else if (this.#state === "downloading" && this.#isDone()) {
      this.#finish();
    }
    for (const p of this.#peers.values()) p.refreshInterest();
  }

  #applyPriorities(): void {
    const { wanted, high } = piecesFor(this.metainfo, this.#priorities);
    this.#wanted = wanted;
    this.#picker.setPriorities(wanted, high);
    if (wanted !== null) {
      this.#log.info("torrent", "File selection", {
        skipped: this.#priorities.filter((p) => p === "skip").length,
        wantedPieces: wanted.count(),
      });
    }
  }

  /** Every wanted piece is verified. */
  #isDone(): boolean {
    return this.#picker === undefined ? this.#have.isComplete() : this.#picker.complete;
  }

  #wantedLeft(): number {
    const wanted = wantedBytes(this.metainfo, this.#wanted, this.#have);
    return wanted.total - wanted.done;
  }

  /** A snapshot of progress and rates. */
  stats(): TorrentStats {
    const now = this.#now();
    const meta = this.metainfo;
    let completedBytes = this.#have.count() * meta.pieceLength;
    if (meta.pieceCount > 0 && this.#have.get(meta.pieceCount - 1)) {
      completedBytes -= meta.pieceCount * meta.pieceLength - meta.totalLength;
    }
    const downloadRate = this.#down.rate(now);
    const wanted = wantedBytes(meta, this.#wanted, this.#have);
    const left = wanted.total - wanted.done;
    return {
      state: this.#state,
      completedPieces: this.#have.count(),
      pieceCount: meta.pieceCount,
      completedBytes,
      totalBytes: meta.totalLength,
      percent: wanted.total === 0 ? 100 : (wanted.done / wanted.total) * 100,
      downloaded: this.#down.total,
      uploaded: this.#up.total,
      downloadRate,
      uploadRate: this.#up.rate(now),
      peers: this.#peers.size,
      eta: left === 0 ? 0 : downloadRate > 0 ? left / downloadRate : null,
      failedPieces: this.#failedPieces,
      duplicateBytes: this.#duplicateBytes,
      failedBytes: this.#failedBytes,
      wastedBytes: this.#duplicateBytes + this.#failedBytes,
      bufferedBytes: this.#picker?.bufferedBytes ?? 0,
      activeSeconds: ((this.#completedAt || now) - (this.#startedAt || now)) / 1000,
      wantedPieces: wanted.pieces,
      wantedBytes: wanted.total,
      done: wanted.donePieces === wanted.pieces,
    };
  }

  /** Snapshots of the connected peers. */
  peers(): PeerInfo[] {
    return [...this.#peers.values()].map((p) => ({
      address: p.id,
      client: clientName(p.peerId),
      direction: this.#swarm.isOutgoing(p.id) ? "out" : "in",
      transport: this.#options.transport?.name ?? "tcp",
      encryption: this.#encryption.get(p.id) ?? "none",
      downloadRate: p.downloadRate,
      uploadRate: p.uploadRate,
      downloaded: p.down.total,
      uploaded: p.up.total,
      percent: p.seed ? 100 : (p.bitfield.count() / Math.max(1, this.metainfo.pieceCount)) * 100,
      flags: {
        amChoking: p.amChoking,
        amInterested: p.amInterested,
        peerChoking: p.peerChoking,
        peerInterested: p.peerInterested,
      },
      outstanding: p.outstanding,
    }));
  }

  /**
   * Closes every connection, waits for writes, saves resume data and closes files. Calling it
   * again, or while a fatal error is shutting the torrent down, waits for that same shutdown.
   *
   * @throws {StorageError} when the files could not be closed cleanly (data not made durable).
   */
  async stop(): Promise<void> {
    this.#state = "stopped";
    try {
      await this.#shutdown();
    } finally {
      // No-op when `completed` already settled (done, or failed with the fatal error).
      this.#settle(new ShoalError("STOPPED", "Torrent was stopped before it completed"));
    }
  }

  /** Starts the shutdown once; every later call gets the same promise. */
  #shutdown(): Promise<void> {
    this.#stopping ??= this.#runShutdown();
    return this.#stopping;
  }

  async #runShutdown(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const announcing = this.#announcer?.stop(3000);
    this.#abort.abort(new ShoalError("STOPPED", "Torrent stopped"));
    for (const p of [...this.#peers.values()]) p.close();
    // A start() still opening files sees the abort and settles; what it opened is closed below.
    await this.#starting?.catch(() => {/* start() reports its own failure to its caller */});
    await Promise.allSettled([...this.#writes]);
    await announcing;
    try {
      await this.#closeStorage();
    } finally {
      // Last: the data is safe to hand to another process only once the files are closed.
      await this.#lock?.release();
    }
  }

  async #closeStorage(): Promise<void> {
    const storage = this.#storage;
    if (storage) {
      // Only a started torrent has progress worth saving: an aborted check would save none.
      if (this.#picker !== undefined) {
        try {
          await this.#saveResume();
        } catch (error) {
          this.#log.warn("storage", `Cannot save resume data: ${(error as Error).message}`);
        }
      }
      // The reference stays: late reads and writes get "storage is closed", never a null.
      await storage.close().catch((error: unknown) => {
        throw error instanceof StorageError
          ? error
          : new StorageError(`Cannot close files: ${String(error)}`);
      });
    }
  }

  /** Same as {@linkcode Torrent.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #emit<K extends keyof TorrentEventMap>(type: K, detail: TorrentEventMap[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
