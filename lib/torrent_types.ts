/**
 * The public types of a `Torrent`: its state, statistics, peer snapshots, events and
 * options. Kept apart from `torrent.ts` so the lifecycle code stays readable.
 *
 * @module
 */

import type { Logger } from "./log.ts";
import type { TokenBucket } from "./peer/rate_limiter.ts";
import type { UdpTrackerClient } from "./tracker/udp_tracker.ts";
import type { Encryption, PeerExtension, PieceSelector, StorageFactory, Transport } from "./types.ts";
import type { FilePriority } from "./file_priority.ts";
import type { CheckProgress } from "./storage/resume.ts";

export type { CheckProgress } from "./storage/resume.ts";

/**
 * Where a torrent is in its life: `"checking"` its data at start-up, then `"downloading"` or
 * `"seeding"`; `"paused"` by `Torrent.pause()` (storage open, no peers) until `resume()`;
 * `"stopped"` or in `"error"` for good.
 */
export type TorrentState = "checking" | "downloading" | "seeding" | "paused" | "stopped" | "error";

/** A snapshot of a torrent's progress. */
export interface TorrentStats {
  /** Current state. */
  readonly state: TorrentState;
  /** Verified pieces. */
  readonly completedPieces: number;
  /** Number of pieces. */
  readonly pieceCount: number;
  /** Verified bytes (pad files included). */
  readonly completedBytes: number;
  /** Total bytes. */
  readonly totalBytes: number;
  /** Completion, 0 to 100. */
  readonly percent: number;
  /** Piece bytes received this session (duplicates and failures included). */
  readonly downloaded: number;
  /** Piece bytes sent this session. */
  readonly uploaded: number;
  /** Bytes per second received recently. */
  readonly downloadRate: number;
  /** Bytes per second sent recently. */
  readonly uploadRate: number;
  /** Connected peers. */
  readonly peers: number;
  /** Seconds until done at the current rate, or null when unknown. */
  readonly eta: number | null;
  /** Pieces that failed their hash check this session. */
  readonly failedPieces: number;
  /**
   * Bytes of blocks received this session and thrown away: duplicates (a block that arrived
   * twice, e.g. from two peers in end-game), and blocks no longer needed or never asked for.
   */
  readonly duplicateBytes: number;
  /** Bytes of the pieces that failed their hash check this session (downloaded again). */
  readonly failedBytes: number;
  /** `duplicateBytes + failedBytes`: what `downloaded` holds beyond the useful bytes. */
  readonly wastedBytes: number;
  /** Bytes held in piece buffers (partial pieces and pieces being written). */
  readonly bufferedBytes: number;
  /** Seconds from the end of the start-up check to the last piece verified (or to now, if not done). */
  readonly activeSeconds: number;
  /** Pieces selected for download by the file priorities (`pieceCount` when no file is skipped). */
  readonly wantedPieces: number;
  /** Bytes of those pieces; `percent` and `eta` are measured against them. */
  readonly wantedBytes: number;
  /** True when every wanted piece is verified (the download is done, even if files were skipped). */
  readonly done: boolean;
}

/**
 * How a peer connection is carried: the name of the session's {@linkcode Transport}
 * (`"tcp"`, `"memory"` in simulations, later `"utp"`).
 */
export type PeerTransport = "tcp" | "utp" | "memory" | (string & Record<never, never>);

/** A snapshot of one connected peer. */
export interface PeerInfo {
  /** "host:port". */
  readonly address: string;
  /** The peer id's client prefix, printable. */
  readonly client: string;
  /** `"out"` when we dialled the peer, `"in"` when it connected to us. */
  readonly direction: "in" | "out";
  /** The transport carrying the connection (TCP only, for now; uTP may be added). */
  readonly transport: PeerTransport;
  /**
   * What protects the payload: `"rc4"` (MSE encryption), `"plaintext"` (an MSE handshake,
   * then the payload in clear), `"none"` (a plain BitTorrent handshake), or the name another
   * encryption plugin reports.
   */
  readonly encryption: string;
  /** Bytes per second from the peer. */
  readonly downloadRate: number;
  /** Bytes per second to the peer. */
  readonly uploadRate: number;
  /** Bytes received from the peer. */
  readonly downloaded: number;
  /** Bytes sent to the peer. */
  readonly uploaded: number;
  /** Percentage of the torrent the peer has. */
  readonly percent: number;
  /** Choke and interest flags: `amChoking`, `amInterested`, `peerChoking`, `peerInterested`. */
  readonly flags: {
    amChoking: boolean;
    amInterested: boolean;
    peerChoking: boolean;
    peerInterested: boolean;
  };
  /** Requests in flight to the peer. */
  readonly outstanding: number;
}

/** What the start-up data check found (`torrent.startupCheck`, the `checked` event). */
export interface StartupCheck {
  /** Pieces we have: checked in this run, or trusted from resume data. */
  readonly have: number;
  /** Number of pieces of the torrent. */
  readonly pieceCount: number;
  /** Pieces whose state was taken from resume data without reading. */
  readonly trusted: number;
  /** Pieces read and hash-checked. */
  readonly rechecked: number;
  /** True when resume data was found and fitted the torrent. */
  readonly usedResume: boolean;
  /**
   * Pieces the resume data recorded as had that failed their check (the data changed since),
   * ascending; they are downloaded again.
   */
  readonly failed: readonly number[];
}

/** Events a `Torrent` dispatches, with their `detail`. */
export interface TorrentEventMap {
  /**
   * The start-up data check read and hash-checked more pieces: sent once before the first
   * piece (0 checked) and after each, only when pieces have to be read (resume data that
   * vouches for everything sends none). Listen before the check starts (the session's
   * `add(..., { onTorrent })`).
   */
  checking: CheckProgress;
  /** The start-up data check is over (sent before `start()` resolves). */
  checked: StartupCheck;
  /**
   * Sent once a second from the end of the start-up check until the torrent stops, and once
   * more right before `done` (with the complete statistics, `percent` 100). Not sent per
   * verified piece: listen to `piece-verified` for that.
   */
  progress: TorrentStats;
  /** A peer completed its handshake. */
  "peer-connected": { address: string };
  /** A peer went away; `reason` is set when it was an error. */
  "peer-disconnected": { address: string; reason?: string };
  /** A piece passed its hash check and was written. */
  "piece-verified": { piece: number };
  /** A piece failed its hash check; `peers` sent its blocks. */
  "piece-failed": { piece: number; peers: string[] };
  /**
   * Pieces we had stopped being servable: their bytes changed on disk (`"changed"`) or a file
   * shrank or vanished (`"missing"`). They are refused to peers and downloaded again if wanted.
   */
  "piece-lost": { pieces: number[]; reason: "changed" | "missing"; files: string[] };
  /** A peer was banned. */
  "peer-banned": { address: string; reason: string };
  /** Every piece is verified. */
  done: TorrentStats;
  /** A fatal error stopped the torrent. */
  error: { error: Error };
}

/** Options for `Torrent`. */
export interface TorrentOptions {
  /** Folder the torrent's files go in. */
  downloadDir: string;
  /** Opens the torrent's storage when it starts. @default {fileStorage()} */
  storage?: StorageFactory;
  /**
   * Before starting, refuse a download whose wanted files need more bytes than the folder's
   * file system has free (a `DiskFullError`). Turn it off where free space is
   * reported wrongly (some network and FUSE file systems).
   *
   * @default {true}
   */
  checkFreeSpace?: boolean;
  /** Piece selection plugin. */
  selector: PieceSelector;
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** Logger (records carry a `torrent` field). */
  logger: Logger;
  /** Most connections for this torrent. @default {50} */
  maxPeers?: number;
  /** Upload slots. @default {8} */
  uploadSlots?: number;
  /** Where resume data is kept. @default {`<downloadDir>/.shoal`} */
  resumeDir?: string;
  /** Seconds between resume saves while downloading. @default {15} */
  resumeInterval?: number;
  /** Cap on bytes held in piece buffers. @default {64 MiB} */
  maxBufferedBytes?: number;
  /** Clock. @default {Date.now} */
  now?: () => number;
  /** Random source. @default {Math.random} */
  random?: () => number;
  /** Asks the session whether a new connection is allowed (global limit). */
  admit?: (address: string) => boolean;
  /** Tells the session a connection opened (+1) or closed (-1). */
  countConnection?: (delta: number, address: string) => void;
  /** Tells the session an outgoing dial (connect plus handshake) started (+1) or ended (-1). */
  countDial?: (delta: number, address: string) => void;
  /** Deadline for dialling plus handshake, in ms. @default {10_000} */
  dialTimeoutMs?: number;
  /** How peers are dialled. @default {tcpTransport()} */
  transport?: Transport;
  /** This torrent's upload limit in bytes per second (0: none). @default {0} */
  uploadLimit?: number;
  /** This torrent's download limit in bytes per second (0: none). @default {0} */
  downloadLimit?: number;
  /** The session's global buckets, shared by every torrent. */
  globalBuckets?: { upload: TokenBucket; download: TokenBucket };
  /** Connection encryption plugin; absent: plaintext only. */
  encryption?: Encryption;
  /** BEP 10 extensions offered to peers (besides the core's own). */
  extensions?: readonly PeerExtension[];
  /** Our listening port, advertised in the extended handshake. */
  listenPort?: number;
  /** Exchange peers with peers (BEP 11 ut_pex); never on a private torrent. @default {true} */
  pex?: boolean;
  /**
   * Priority of each file, in `metainfo.files` order (missing entries: "normal"). Pieces that
   * only skipped files touch are not downloaded; the torrent is done when the rest are.
   * @default {all "normal"}
   */
  filePriorities?: readonly FilePriority[];
  /** Announce to the torrent's trackers (and these extra tiers) through this UDP client. Absent: no trackers. */
  trackers?: { udp: UdpTrackerClient; port: number; extraTiers?: readonly (readonly string[])[] };
  /**
   * The session's DHT (BEP 5): the handshake advertises it, peers that support it are sent our
   * DHT `port`, and the ports they send go to `addNode` ("host:port"). Absent: no DHT.
   */
  dht?: { port: number; addNode: (address: string) => void };
}

/** Upload and download limits in bytes per second; 0 removes a limit. */
export interface RateLimits {
  /** Upload limit. */
  upload?: number;
  /** Download limit. */
  download?: number;
}
