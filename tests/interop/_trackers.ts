/**
 * Trackers for interop tests: Debian's opentracker as a child process, shoal's built-in
 * tracker in the test's own process, a way to wait until a tracker knows a swarm's peers,
 * and torrents made with a tracker URL inside.
 *
 * Debian's opentracker is built with a whitelist: it refuses every torrent not listed in
 * the file given with `-w` (a path inside the `-d` directory it chroots to), so
 * {@linkcode startOpentracker} writes one. opentracker drops privileges to `nobody`, so the
 * directory and the file must be readable by others. It reads that file in a thread of its
 * own after its sockets listen: until then it refuses every torrent, so the helper only
 * returns once an announce for a probe info-hash (listed too, used by nobody else) is
 * accepted.
 *
 * @module
 */

import { join } from "node:path";
import { parseMetainfo } from "../../mod.ts";
import { Logger } from "../../lib/log.ts";
import type { LogRecord } from "../../lib/types.ts";
import { httpAnnounce, httpScrape, scrapeUrl } from "../../lib/tracker/http_tracker.ts";
import { TrackerServer } from "../../lib/tracker/server.ts";
import type { ScrapeEntry } from "../../lib/tracker/types.ts";
import { toHex } from "../../lib/net/bytes.ts";
import { makePayload, makeTorrentWithLibtorrent, type PayloadFile } from "./_harness.ts";
import type { PreparedTorrent } from "./_download_helpers.ts";

const OPENTRACKER = "/usr/bin/opentracker";
const DEFAULT_READY_MS = 10_000;
const STOP_GRACE_MS = 5_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Tells whether Debian's opentracker is installed, so tests can be skipped with a clear reason.
 *
 * @example
 * ```ts
 * import { hasOpentracker } from "./_trackers.ts";
 * Deno.test({ name: "something with opentracker", ignore: !(await hasOpentracker()), fn() {} });
 * ```
 *
 * @returns True when `/usr/bin/opentracker` exists.
 */
export function hasOpentracker(): Promise<boolean> {
  return Deno.stat(OPENTRACKER).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/**
 * A port free for both TCP and UDP on 127.0.0.1 at the time of the call (opentracker serves
 * both on one port number). Another process could take it before it is used, which is
 * unlikely on a test machine.
 *
 * @example
 * ```ts
 * import { freeTcpUdpPort } from "./_trackers.ts";
 * console.log(freeTcpUdpPort() > 0); // true
 * ```
 *
 * @returns A port number.
 */
export function freeTcpUdpPort(): number {
  for (let tries = 0; tries < 50; tries++) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (tcp.addr as Deno.NetAddr).port;
    try {
      const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
      udp.close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    } finally {
      tcp.close();
    }
  }
  throw new Error("Cannot find a port free for both TCP and UDP");
}

/** Options of {@linkcode startOpentracker}. */
export interface OpentrackerOptions {
  /** Info-hashes the tracker accepts: 20 bytes, or 40 hex characters. */
  infoHashes: readonly (string | Uint8Array)[];
  /**
   * Port for HTTP and UDP on 127.0.0.1 (say, reserved with {@linkcode freeTcpUdpPort} to put
   * the URL in a torrent first).
   *
   * @default {freeTcpUdpPort()}
   */
  port?: number;
  /**
   * Deadline for the listen socket and the whitelist to be loaded.
   *
   * @default {10000}
   */
  readyTimeoutMs?: number;
}

/** A running opentracker. Stop it in a `finally` or with `await using`. */
export interface RunningOpentracker extends AsyncDisposable {
  /** The HTTP and UDP port on 127.0.0.1. */
  readonly port: number;
  /** Its process id. */
  readonly pid: number;
  /** `http://127.0.0.1:PORT/announce`. */
  readonly httpUrl: string;
  /** `udp://127.0.0.1:PORT/announce`. */
  readonly udpUrl: string;
  /**
   * The last 4000 characters it printed, for assertion messages.
   *
   * @returns The text.
   */
  output(): string;
  /**
   * Stops it by pid (`SIGTERM`, then `SIGKILL`) and removes its folder. Safe to call more than once.
   *
   * @returns A promise that settles once it has exited and its folder is gone.
   */
  stop(): Promise<void>;
}

function hashHex(hash: string | Uint8Array): string {
  const hex = typeof hash === "string" ? hash.toLowerCase() : toHex(hash);
  if (!/^[0-9a-f]{40}$/.test(hex)) throw new RangeError(`Invalid info-hash: ${hex}`);
  return hex;
}

function hashBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
}

/**
 * Starts Debian's opentracker on 127.0.0.1 (`-i 127.0.0.1 -p PORT -P PORT`), accepting only
 * the given info-hashes (`-w`), chrooted to a temp folder. Resolves once it listens and has
 * loaded its whitelist.
 *
 * @example
 * ```ts ignore
 * import { startOpentracker } from "./_trackers.ts";
 * await using tracker = await startOpentracker({ infoHashes: ["ab".repeat(20)] });
 * console.log(tracker.httpUrl, tracker.udpUrl);
 * ```
 *
 * @param options The accepted info-hashes, the port and the deadline.
 * @returns The running tracker.
 */
export async function startOpentracker(options: OpentrackerOptions): Promise<RunningOpentracker> {
  const readyMs = options.readyTimeoutMs ?? DEFAULT_READY_MS;
  const probe = crypto.getRandomValues(new Uint8Array(20));
  const hashes = [...options.infoHashes.map(hashHex), toHex(probe)];
  const dir = await Deno.makeTempDir({ prefix: "shoal-opentracker-" });
  let child: Deno.ChildProcess;
  const port = options.port ?? freeTcpUdpPort();
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.writeTextFile(join(dir, "whitelist"), hashes.join("\n") + "\n");
    await Deno.chmod(join(dir, "whitelist"), 0o644);
    child = new Deno.Command(OPENTRACKER, {
      args: ["-i", "127.0.0.1", "-p", String(port), "-P", String(port), "-d", dir, "-w", "whitelist"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const pid = child.pid;
  let output = "";
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  const decoder = new TextDecoder();
  const drain = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(
      new WritableStream({ write: (chunk) => void (output = (output + decoder.decode(chunk)).slice(-4000)) }),
    );
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const signal = (name: Deno.Signal) => {
    if (exited !== undefined) return;
    try {
      Deno.kill(pid, name);
    } catch (error) {
      // ESRCH: it exited between the check and the signal.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    stopping ??= (async () => {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), STOP_GRACE_MS);
      try {
        await status;
        await drained;
      } finally {
        clearTimeout(timer);
        await Deno.remove(dir, { recursive: true });
      }
    })();
  const httpUrl = `http://127.0.0.1:${port}/announce`;
  try {
    const deadline = Date.now() + readyMs;
    let last = "";
    for (;;) {
      if (exited !== undefined) {
        throw new Error(`opentracker exited (code ${exited.code}) while starting:\n${output}`);
      }
      try {
        // A seed of the probe torrent: only this helper uses that info-hash.
        await httpAnnounce(httpUrl, {
          infoHash: probe,
          peerId: new TextEncoder().encode("-SH0000-probe-------"),
          port: 9,
          uploaded: 0,
          downloaded: 0,
          left: 0,
          event: "started",
          numwant: 0,
          key: 1,
        }, { timeoutMs: 2000 });
        break;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(`opentracker not ready within ${readyMs} ms: ${last}\n${output}`);
      }
      await delay(50);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    pid,
    httpUrl,
    udpUrl: `udp://127.0.0.1:${port}/announce`,
    output: () => output,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Asks an HTTP tracker (scrape) how many peers it knows for a torrent.
 *
 * @example
 * ```ts ignore
 * import { trackerCounts } from "./_trackers.ts";
 * const counts = await trackerCounts("http://127.0.0.1:6969/announce", "ab".repeat(20));
 * console.log(counts.seeders, counts.leechers);
 * ```
 *
 * @param httpAnnounceUrl The tracker's HTTP announce URL (the scrape URL is derived from it).
 * @param infoHash The torrent, as 40 hex characters.
 * @returns Seeders, leechers and completed downloads (zeros when the tracker does not know it).
 */
export async function trackerCounts(httpAnnounceUrl: string, infoHash: string): Promise<ScrapeEntry> {
  const url = scrapeUrl(httpAnnounceUrl);
  if (url === null) throw new TypeError(`Cannot scrape: ${httpAnnounceUrl} has no scrape URL`);
  const hex = hashHex(infoHash);
  const counts = await httpScrape(url, [hashBytes(hex)], { timeoutMs: 5000 });
  return counts.get(hex) ?? { seeders: 0, completed: 0, leechers: 0 };
}

/** Options of {@linkcode waitForTrackerPeers}. */
export interface WaitForTrackerPeersOptions {
  /**
   * Seeders the tracker must know.
   *
   * @default {0}
   */
  seeders?: number;
  /**
   * Peers (seeders and leechers) the tracker must know.
   *
   * @default {1}
   */
  peers?: number;
  /** Deadline in milliseconds. */
  timeoutMs: number;
  /** Recent output of whoever should have announced, added to the timeout message. */
  tail?: () => string;
}

/**
 * Polls an HTTP tracker's scrape (every 100 ms) until it knows enough peers of a torrent: a
 * test waits for a seeder's first announce this way before starting a leecher, so the
 * leecher's first announce already returns the seeder.
 *
 * @example
 * ```ts ignore
 * import { waitForTrackerPeers } from "./_trackers.ts";
 * await waitForTrackerPeers(tracker.httpUrl, made.infoHash, { seeders: 1, timeoutMs: 30_000 });
 * ```
 *
 * @param httpAnnounceUrl The tracker's HTTP announce URL.
 * @param infoHash The torrent, as 40 hex characters.
 * @param options How many peers and the deadline.
 * @returns The counts that satisfied the wait.
 */
export async function waitForTrackerPeers(
  httpAnnounceUrl: string,
  infoHash: string,
  options: WaitForTrackerPeersOptions,
): Promise<ScrapeEntry> {
  const deadline = Date.now() + options.timeoutMs;
  const seeders = options.seeders ?? 0;
  const peers = options.peers ?? 1;
  let last = "no answer yet";
  for (;;) {
    try {
      const counts = await trackerCounts(httpAnnounceUrl, infoHash);
      if (counts.seeders >= seeders && counts.seeders + counts.leechers >= peers) return counts;
      last = JSON.stringify(counts);
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Deno.errors.TimedOut(
        `Timed out after ${options.timeoutMs} ms: waiting for ${seeders} seeders and ${peers} peers of ` +
          `${infoHash} on ${httpAnnounceUrl}: ${last}${options.tail ? `\n${options.tail()}` : ""}`,
      );
    }
    await delay(100);
  }
}

/** One announce the built-in tracker answered, from its debug log. */
export interface SeenAnnounce {
  /** When, in milliseconds since the Unix epoch. */
  time: number;
  /** `"HTTP"` or `"UDP"`. */
  protocol: string;
  /** Info-hash, hex. */
  torrent: string;
  /** The announcing peer, `"IP:PORT"`. */
  peer: string;
  /** The event (`"started"`, `"completed"`, `"stopped"`, or `"none"`/empty for a regular one). */
  event: string;
  /** How many peers the answer held. */
  peers: number;
}

/** shoal's built-in tracker running in the test's process. */
export interface BuiltinTracker extends AsyncDisposable {
  /** The server. */
  readonly server: TrackerServer;
  /** `http://127.0.0.1:PORT/announce`. */
  readonly httpUrl: string;
  /** `udp://127.0.0.1:PORT/announce`. */
  readonly udpUrl: string;
  /** Every log record it wrote (debug and up). */
  readonly records: readonly LogRecord[];
  /**
   * The announces it answered, in order.
   *
   * @returns One entry per announce.
   */
  announces(): SeenAnnounce[];
  /**
   * Closes both endpoints. Safe to call more than once.
   *
   * @returns A promise that settles once nothing listens any more.
   */
  stop(): Promise<void>;
}

/** Options of {@linkcode startBuiltinTracker}. */
export interface BuiltinTrackerOptions {
  /**
   * Seconds between announces it asks for.
   *
   * @default {1800}
   */
  interval?: number;
  /**
   * Its `min interval`.
   *
   * @default {60}
   */
  minInterval?: number;
}

/**
 * Starts shoal's {@linkcode TrackerServer} on 127.0.0.1 with HTTP and UDP on free ports,
 * logging every announce at debug level into {@linkcode BuiltinTracker.records}.
 *
 * @example
 * ```ts ignore
 * import { startBuiltinTracker } from "./_trackers.ts";
 * await using tracker = await startBuiltinTracker();
 * console.log(tracker.httpUrl, tracker.udpUrl);
 * ```
 *
 * @param options Intervals.
 * @returns The running tracker.
 */
export async function startBuiltinTracker(options: BuiltinTrackerOptions = {}): Promise<BuiltinTracker> {
  const records: LogRecord[] = [];
  const server = new TrackerServer({
    bind: "127.0.0.1",
    httpPort: 0,
    udpPort: 0,
    logger: new Logger({ level: "debug", sinks: [(record) => void records.push(record)] }),
    ...(options.interval !== undefined ? { interval: options.interval } : {}),
    ...(options.minInterval !== undefined ? { minInterval: options.minInterval } : {}),
  });
  await server.start();
  const { http, udp } = server.announceUrls;
  if (http === undefined || udp === undefined) {
    await server.close();
    throw new Error(`Built-in tracker has no HTTP or no UDP URL: ${JSON.stringify(server.announceUrls)}`);
  }
  const stop = () => server.close();
  return {
    server,
    httpUrl: http,
    udpUrl: udp,
    records,
    announces: () =>
      records.filter((r) => /^(HTTP|UDP) announce$/.test(r.message)).map((r) => ({
        time: r.time,
        protocol: r.message.split(" ")[0]!,
        torrent: String(r.fields.torrent),
        peer: String(r.fields.peer),
        event: String(r.fields.event ?? ""),
        peers: Number(r.fields.peers),
      })),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Options of {@linkcode prepareTrackedTorrent}. */
export interface PrepareTrackedTorrentOptions {
  /** Announce URLs to put in the torrent (each its own tier). */
  trackers: readonly string[];
  /** The files to generate. */
  spec: readonly PayloadFile[];
  /**
   * Seed of the generated bytes.
   *
   * @default {1}
   */
  seed?: number;
  /**
   * Piece length in bytes.
   *
   * @default {65536}
   */
  pieceLength?: number;
  /**
   * The payload folder's name.
   *
   * @default {"payload"}
   */
  name?: string;
}

/**
 * Generates a payload under `dir/seed/<name>` and makes a v1 torrent of it with libtorrent,
 * with the given tracker URLs inside (`announce` / `announce-list`).
 *
 * @example
 * ```ts ignore
 * import { prepareTrackedTorrent } from "./_trackers.ts";
 * const prepared = await prepareTrackedTorrent(dir, { trackers: [url], spec: [{ path: "a.bin", size: 1 << 20 }] });
 * console.log(prepared.metainfo.announceList); // [[url]]
 * ```
 *
 * @param dir A temp folder owned by the test.
 * @param options Trackers, files, seed, piece length and name.
 * @returns Where the data and the torrent are (usable with `compareDownload`).
 */
export async function prepareTrackedTorrent(
  dir: string,
  options: PrepareTrackedTorrentOptions,
): Promise<PreparedTorrent> {
  const name = options.name ?? "payload";
  const seedDir = join(dir, "seed");
  const torrentPath = join(dir, `${name}.torrent`);
  await makePayload(join(seedDir, name), [...options.spec], options.seed ?? 1);
  await makeTorrentWithLibtorrent(join(seedDir, name), torrentPath, options.pieceLength ?? 64 * 1024, {
    trackers: [...options.trackers],
  });
  const metainfo = parseMetainfo(await Deno.readFile(torrentPath));
  return { seedDir, name, torrentPath, metainfo, spec: options.spec };
}
