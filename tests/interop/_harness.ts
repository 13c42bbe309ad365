/**
 * Drives real BitTorrent clients (libtorrent through `lt_peer.py`, Transmission
 * through `transmission-cli`) for interop tests and benchmarks, plus the file
 * helpers those tests need (deterministic payloads, hashing, comparison).
 *
 * Every child process is spawned with `Deno.Command` with stdin piped, its stdout
 * parsed line by line and its stderr kept in a ring buffer that error messages
 * include. Every wait has a deadline; every peer is stopped by pid
 * (`SIGTERM`, then `SIGKILL`) by {@linkcode RunningPeer.stop}.
 *
 * Transmission cannot be told about a peer: `transmission-cli` takes no peer
 * address, `transmission-daemon` has no RPC to add one, and it ignores
 * 127.0.0.0/8 peers learned from a tracker. A Transmission leecher therefore only
 * downloads when the other side (shoal, or a libtorrent seeder started with
 * `peers`) dials it. Transmission is also slow on loopback: it unchokes a new peer
 * only at its next rechoke (up to about 10 s) and ramps up slowly, so keep its
 * payloads small (a few MiB).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** The interpreter that has the Debian libtorrent bindings. */
const PYTHON = "/usr/bin/python3";
/** The libtorrent peer script beside this file. */
const LT_PEER = fileURLToPath(new URL("./lt_peer.py", import.meta.url));
const MIB = 1024 * 1024;
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

/** A client process serving on a loopback port. Stop it in a `finally` or with `await using`. */
export interface RunningPeer {
  /** The TCP port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Its process id. */
  readonly pid: number;
  /**
   * Recent output of the process (last stdout lines and stderr), for assertion messages.
   *
   * @returns The output as text.
   */
  tail(): string;
  /**
   * Stops the process: closes its stdin, sends `SIGTERM`, then `SIGKILL` after a
   * deadline, and waits for it to exit. Safe to call more than once.
   *
   * @returns A promise that settles when the process has exited and its temp files are gone.
   */
  stop(): Promise<void>;
  /** Same as {@linkcode RunningPeer.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Encryption policy of a libtorrent peer (`out_enc_policy` and `in_enc_policy`).
 * `"forced"` accepts only MSE connections and only the RC4 method; `"enabled"`
 * tries MSE first on outgoing connections, accepts plaintext too, and prefers the
 * plaintext method inside MSE (RC4 would cost seconds of CPU per GiB);
 * `"disabled"` speaks plain BitTorrent only.
 */
export type LibtorrentEncryption = "forced" | "enabled" | "disabled";

/** Encryption mode of Transmission (`-er`, `-ep`, `-et`). */
export type TransmissionEncryption = "required" | "preferred" | "tolerated";

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/**
 * Rejects with `Deno.errors.TimedOut` if `promise` does not settle within `ms`.
 * The timer is always cleared, so it never keeps a test alive.
 *
 * @example
 * ```ts
 * import { withTimeout } from "./_harness.ts";
 * const value = await withTimeout(Promise.resolve(42), 1000, "the answer");
 * console.log(value); // 42
 * ```
 *
 * @param promise The promise to wait for.
 * @param ms Deadline in milliseconds.
 * @param what What is awaited, for the error message.
 * @returns The promise's value.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Deno.errors.TimedOut(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reserves a free TCP port on 127.0.0.1 by binding port 0, reading the port and
 * closing the listener. Another process could take it before it is used, which is
 * unlikely on a test machine.
 *
 * @example
 * ```ts
 * import { freePort } from "./_harness.ts";
 * const port = await freePort();
 * console.log(port > 0); // true
 * ```
 *
 * @returns A port number.
 */
export function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return Promise.resolve(port);
}

/**
 * Tells whether some socket listens on TCP `port`, from `/proc/net/tcp` and
 * `/proc/net/tcp6`, without connecting to it.
 */
async function isListening(port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(table);
    for (const row of text.split("\n").slice(1)) {
      // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
      const cols = row.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === "0A") return true;
    }
  }
  return false;
}

/**
 * Waits until something listens on TCP port `port` of 127.0.0.1. On Linux it
 * reads `/proc/net/tcp*` instead of connecting: Transmission resets the next
 * connection from an address whose previous connection closed before its
 * handshake, so a probing connect would break the test's own first connection.
 * Elsewhere it falls back to connecting.
 *
 * @example
 * ```ts
 * import { waitForPort } from "./_harness.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * await waitForPort((listener.addr as Deno.NetAddr).port, 1000);
 * listener.close();
 * ```
 *
 * @param port The port.
 * @param timeoutMs Deadline in milliseconds.
 * @returns A promise that resolves once the port is listening.
 */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const useProc = Deno.build.os === "linux";
  let last: unknown;
  while (Date.now() < deadline) {
    if (useProc) {
      if (await isListening(port)) return;
    } else {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch (e) {
        last = e;
      }
    }
    await delay(50);
  }
  throw new Deno.errors.TimedOut(`Timed out after ${timeoutMs} ms: port ${port} listening`, { cause: last });
}

/** A fixed-size buffer of the most recent text lines. */
class LineRing {
  readonly #max: number;
  #lines: string[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.#max) this.#lines.splice(0, this.#lines.length - this.#max);
  }

  text(): string {
    return this.#lines.join("\n");
  }
}

/** Splits a byte stream into lines at `\n` or `\r` (Transmission redraws its status with `\r`). */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const parts = rest.split(/[\r\n]/);
    rest = parts.pop() ?? "";
    for (const part of parts) {
      const line = part.trimEnd();
      if (line !== "") yield line;
    }
  }
  if (rest.trim() !== "") yield rest.trimEnd();
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

interface LineWaiter {
  match: (line: string) => boolean;
  what: string;
  resolve: (line: string) => void;
  reject: (reason: unknown) => void;
}

/** A spawned client: stdout lines are matched by waiters, stderr is kept in a ring. */
class Child {
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #history: string[] = [];
  readonly #stdoutTail = new LineRing(40);
  readonly #stderrTail = new LineRing(60);
  readonly #waiters = new Set<LineWaiter>();
  readonly #listeners = new Set<(line: string) => void>();
  readonly #pumps: Promise<void>;
  readonly #status: Promise<Deno.CommandStatus>;
  #exited: Deno.CommandStatus | undefined;
  #stdoutDone = false;
  #stopping: Promise<void> | undefined;

  constructor(name: string, command: string, args: string[], env?: Record<string, string>) {
    this.name = name;
    const options: Deno.CommandOptions = { args, stdin: "piped", stdout: "piped", stderr: "piped" };
    if (env !== undefined) options.env = env;
    this.#child = new Deno.Command(command, options).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#status = this.#child.status.then((status) => {
      this.#exited = status;
      return status;
    });
    this.#pumps = Promise.all([this.#pumpStdout(), this.#pumpStderr()]).then(() => {});
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #pumpStdout(): Promise<void> {
    for await (const line of lines(this.#child.stdout)) {
      this.#history.push(line);
      if (this.#history.length > 2000) this.#history.splice(0, 1000);
      this.#stdoutTail.push(line);
      for (const listener of this.#listeners) listener(line);
      for (const w of this.#waiters) {
        if (w.match(line)) {
          this.#waiters.delete(w);
          w.resolve(line);
        }
      }
    }
    this.#stdoutDone = true;
    const status = await this.#status;
    for (const w of this.#waiters) {
      w.reject(new Error(`${this.name} exited (code ${status.code}) before: ${w.what}\n${this.tail()}`));
    }
    this.#waiters.clear();
  }

  /** Calls `listener` with every future stdout line. */
  onLine(listener: (line: string) => void): void {
    this.#listeners.add(listener);
  }

  async #pumpStderr(): Promise<void> {
    for await (const line of lines(this.#child.stderr)) this.#stderrTail.push(line);
  }

  /** Recent stdout and stderr. */
  tail(): string {
    return `--- ${this.name} (pid ${this.pid}) stdout tail ---\n${this.#stdoutTail.text()}\n` +
      `--- ${this.name} stderr tail ---\n${this.#stderrTail.text()}`;
  }

  /** Resolves with the first stdout line (already seen or future) that matches. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const seen = this.#history.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#stdoutDone) {
      return Promise.reject(new Error(`${this.name} exited before: ${what}\n${this.tail()}`));
    }
    let waiter: LineWaiter | undefined;
    const found = new Promise<string>((resolve, reject) => {
      waiter = { match, what, resolve, reject };
      this.#waiters.add(waiter);
    });
    return withTimeout(found, timeoutMs, `${this.name}: ${what}`).catch((e: unknown) => {
      if (waiter !== undefined) this.#waiters.delete(waiter);
      if (e instanceof Deno.errors.TimedOut) {
        throw new Deno.errors.TimedOut(`${e.message}\n${this.tail()}`, { cause: e });
      }
      throw e;
    });
  }

  /** Resolves with the first JSON event of the given kind; rejects on an `error` event. */
  async waitForEvent(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const line = await this.waitForLine(
      (l) => {
        const e = parseEvent(l);
        return e !== undefined && (e.event === event || e.event === "error" || e.event === "timeout");
      },
      timeoutMs,
      `"${event}" event`,
    );
    const e = parseEvent(line) ?? {};
    if (e.event !== event) {
      throw new Error(`${this.name} reported ${e.event}: ${String(e.message ?? line)}\n${this.tail()}`);
    }
    return e;
  }

  /** The exit status, once the process has exited. */
  get exited(): Deno.CommandStatus | undefined {
    return this.#exited;
  }

  /** Waits for the process to exit on its own. */
  async wait(timeoutMs: number): Promise<Deno.CommandStatus> {
    const status = await withTimeout(this.#status, timeoutMs, `${this.name} exit`);
    await this.#pumps;
    return status;
  }

  /** Closes stdin, sends SIGTERM, then SIGKILL after `graceMs`, and waits for the exit. */
  stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stopping ??= this.#stop(graceMs);
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    await this.#stdin.close().catch((e: unknown) => {
      // The process may already have exited and closed its end: nothing left to close.
      if (!(e instanceof Deno.errors.BrokenPipe) && !(e instanceof TypeError)) throw e;
    });
    if (this.#exited === undefined) this.#signal("SIGTERM");
    try {
      await withTimeout(this.#status, graceMs, `${this.name} exit after SIGTERM`);
    } catch (e) {
      if (!(e instanceof Deno.errors.TimedOut)) throw e;
      this.#signal("SIGKILL");
      await this.#status;
    }
    await this.#pumps;
  }

  #signal(signal: Deno.Signal): void {
    try {
      Deno.kill(this.pid, signal);
    } catch (e) {
      // ESRCH: it exited between the check and the signal.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
}

function parseEvent(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : undefined;
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}

function numberField(event: Record<string, unknown>, key: string): number {
  const value = event[key];
  if (typeof value !== "number") {
    throw new TypeError(`Invalid lt_peer.py event: '${key}' is not a number: ${JSON.stringify(event)}`);
  }
  return value;
}

function runningPeer(child: Child, port: number, cleanup?: () => Promise<void>): RunningPeer {
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= child.stop().finally(cleanup);
    return stopped;
  };
  return { port, pid: child.pid, tail: () => child.tail(), stop, [Symbol.asyncDispose]: stop };
}

async function succeeds(command: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, { args, stdin: "null", stdout: "null", stderr: "null" })
      .output();
    return out.success;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) return false;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// libtorrent
// ---------------------------------------------------------------------------

/**
 * Tells whether `/usr/bin/python3` can import libtorrent, so tests can be
 * skipped with a clear reason where it is missing.
 *
 * @example
 * ```ts
 * import { hasLibtorrent } from "./_harness.ts";
 * Deno.test({ name: "something with libtorrent", ignore: !(await hasLibtorrent()), fn() {} });
 * ```
 *
 * @returns True when the bindings are importable.
 */
export function hasLibtorrent(): Promise<boolean> {
  return succeeds(PYTHON, ["-c", "import libtorrent"]);
}

/** Options of {@linkcode makeTorrentWithLibtorrent}. */
export interface MakeTorrentOptions {
  /**
   * Tracker announce URLs to put in the torrent.
   *
   * @default {[]}
   */
  trackers?: string[];
}

/** What {@linkcode makeTorrentWithLibtorrent} made. */
export interface MadeTorrent {
  /** The v1 info-hash as 40 lower-case hex characters. */
  infoHash: string;
  /** Number of pieces. */
  pieces: number;
  /** Total payload size in bytes. */
  size: number;
}

/**
 * Makes a v1 .torrent of a file or folder with libtorrent (`lt_peer.py create`).
 * The torrent's name is the last component of `payloadPath`, so a seeder's data
 * folder is `dirname(payloadPath)`.
 *
 * @example
 * ```ts
 * import { makePayload, makeTorrentWithLibtorrent } from "./_harness.ts";
 * const dir = await Deno.makeTempDir();
 * await makePayload(dir, [{ path: "one.bin", size: 65536 }], 1);
 * const made = await makeTorrentWithLibtorrent(`${dir}/one.bin`, `${dir}/one.torrent`, 16384);
 * console.log(made.pieces); // 4
 * ```
 *
 * @param payloadPath The file or folder to describe.
 * @param outPath Where to write the .torrent.
 * @param pieceLength Piece length in bytes (a power of two, at least 16 KiB).
 * @param options Trackers.
 * @returns The info-hash, piece count and size.
 */
export async function makeTorrentWithLibtorrent(
  payloadPath: string,
  outPath: string,
  pieceLength: number,
  options: MakeTorrentOptions = {},
): Promise<MadeTorrent> {
  const args = [
    LT_PEER,
    "create",
    "--payload",
    payloadPath,
    "--out",
    outPath,
    "--piece-length",
    `${pieceLength}`,
  ];
  for (const url of options.trackers ?? []) args.push("--tracker", url);
  const child = new Child("lt_peer.py create", PYTHON, args);
  try {
    const e = await child.waitForEvent("created", 300_000);
    const infoHash = e.info_hash;
    if (typeof infoHash !== "string") throw new TypeError(`Invalid created event: ${JSON.stringify(e)}`);
    return { infoHash, pieces: numberField(e, "pieces"), size: numberField(e, "size") };
  } finally {
    await child.stop();
  }
}

/** Options of {@linkcode startLibtorrentSeeder}. */
export interface LibtorrentSeederOptions {
  /** The .torrent file. */
  torrentPath: string;
  /** The folder that holds the torrent's data (the torrent's name is inside it). */
  dataDir: string;
  /**
   * Encryption policy (see {@linkcode LibtorrentEncryption}).
   *
   * @default {"enabled"}
   */
  enc?: LibtorrentEncryption;
  /**
   * Port to listen on; 0 lets the system choose (the chosen port is read back).
   *
   * @default {0}
   */
  port?: number;
  /**
   * Peers (`"127.0.0.1:PORT"`) the seeder dials once a second until one connects,
   * for leechers that cannot be told about it (Transmission).
   *
   * @default {[]}
   */
  peers?: string[];
  /** Aborting stops the seeder (and rejects while it is starting). */
  signal?: AbortSignal;
  /**
   * DHT nodes (`"127.0.0.1:PORT"`) to bootstrap libtorrent's DHT from; the DHT is on (on the
   * listen port, UDP) only when this is given, and the torrent is announced every 5 s.
   *
   * @default {[]}
   */
  dhtBootstrap?: string[];
  /**
   * Deadline for the recheck and the listen socket.
   *
   * @default {60000}
   */
  readyTimeoutMs?: number;
}

/**
 * Starts a libtorrent seeder: it rechecks the data, and resolves once it is
 * seeding and listening on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { startLibtorrentSeeder } from "./_harness.ts";
 * await using seeder = await startLibtorrentSeeder({ torrentPath: "x.torrent", dataDir: "data" });
 * console.log(seeder.port);
 * ```
 *
 * @param opts What to seed and how.
 * @returns The running seeder.
 */
export async function startLibtorrentSeeder(opts: LibtorrentSeederOptions): Promise<RunningPeer> {
  opts.signal?.throwIfAborted();
  const args = [LT_PEER, "seed", "--torrent", opts.torrentPath, "--save-path", opts.dataDir];
  args.push("--port", `${opts.port ?? 0}`, "--enc", opts.enc ?? "enabled");
  for (const peer of opts.peers ?? []) args.push("--peer", peer);
  for (const node of opts.dhtBootstrap ?? []) args.push("--dht-bootstrap", node);
  const child = new Child("libtorrent seeder", PYTHON, args);
  const onAbort = () => void child.stop();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const ready = await child.waitForEvent("ready", opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    opts.signal?.throwIfAborted();
    return runningPeer(child, numberField(ready, "port"), () => {
      opts.signal?.removeEventListener("abort", onAbort);
      return Promise.resolve();
    });
  } catch (e) {
    opts.signal?.removeEventListener("abort", onAbort);
    await child.stop();
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw e;
  }
}

/** Options of {@linkcode runLibtorrentLeecher}. */
export interface LibtorrentLeecherOptions {
  /** The .torrent file (not read when `magnet` is given). */
  torrentPath: string;
  /**
   * Start from this magnet link instead of the .torrent: libtorrent fetches the metadata from
   * peers (BEP 9) first; `onMetadata` is called when it has it.
   */
  magnet?: string;
  /** Called once a `magnet` leecher has the metadata, with the seconds it took. */
  onMetadata?: (seconds: number) => void;
  /** The folder to download into. */
  dataDir: string;
  /** Peers to dial, as `"127.0.0.1:PORT"` (redialled while none is connected). */
  peers: string[];
  /** Deadline for the whole download. */
  timeoutMs: number;
  /**
   * Encryption policy.
   *
   * @default {"enabled"}
   */
  enc?: LibtorrentEncryption;
  /**
   * Port the leecher listens on, so a seeder can dial it; 0 lets the system choose.
   *
   * @default {0}
   */
  port?: number;
  /** Called with each progress report (about once a second). */
  onProgress?: (progress: LeechProgress) => void;
  /** Aborting stops the leecher (the returned promise then rejects). */
  signal?: AbortSignal;
  /**
   * DHT nodes (`"127.0.0.1:PORT"`) to bootstrap libtorrent's DHT from; with it the leecher
   * finds peers through the DHT (`peers` may then be empty).
   *
   * @default {[]}
   */
  dhtBootstrap?: string[];
}

/** A progress report of a libtorrent leecher. */
export interface LeechProgress {
  /** Fraction done, 0 to 1. */
  progress: number;
  /** Verified bytes. */
  bytes: number;
  /** Payload download rate, bytes per second. */
  rate: number;
  /** Connected peers. */
  peers: number;
}

/** What a finished libtorrent download measured, in the leecher's own process. */
export interface LeechResult {
  /** Seconds from adding the torrent to having every piece verified. */
  seconds: number;
  /** Bytes downloaded and verified. */
  bytes: number;
  /** User + system CPU seconds the leecher process used during the download. */
  cpuSeconds: number;
  /** Peak resident set size of the leecher process, in bytes. */
  peakRssBytes: number;
  /** "ip:port" of the peers it was seen connected to that it learned through peer exchange (BEP 11). */
  pexPeers: string[];
}

/**
 * Runs a libtorrent leecher until it has the whole torrent, then stops it.
 *
 * @example
 * ```ts
 * import { runLibtorrentLeecher } from "./_harness.ts";
 * const r = await runLibtorrentLeecher({
 *   torrentPath: "x.torrent",
 *   dataDir: "out",
 *   peers: ["127.0.0.1:6881"],
 *   timeoutMs: 60_000,
 * });
 * console.log(r.seconds);
 * ```
 *
 * @param opts What to download, from whom, and the deadline.
 * @returns Time, size, CPU and memory of the download.
 */
export async function runLibtorrentLeecher(opts: LibtorrentLeecherOptions): Promise<LeechResult> {
  const args = [LT_PEER, "leech", "--save-path", opts.dataDir];
  if (opts.magnet !== undefined) args.push("--magnet", opts.magnet);
  else args.push("--torrent", opts.torrentPath);
  args.push("--port", `${opts.port ?? 0}`, "--enc", opts.enc ?? "enabled");
  // The script's own deadline is a backstop a little after ours.
  args.push("--timeout", `${Math.ceil(opts.timeoutMs / 1000) + 5}`);
  for (const peer of opts.peers) args.push("--peer", peer);
  for (const node of opts.dhtBootstrap ?? []) args.push("--dht-bootstrap", node);
  opts.signal?.throwIfAborted();
  const child = new Child("libtorrent leecher", PYTHON, args);
  const onAbort = () => void child.stop();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const onMetadata = opts.onMetadata;
  if (onMetadata !== undefined) {
    child.onLine((line) => {
      const e = parseEvent(line);
      if (e?.event === "metadata") onMetadata(numberField(e, "seconds"));
    });
  }
  const onProgress = opts.onProgress;
  if (onProgress !== undefined) {
    child.onLine((line) => {
      const e = parseEvent(line);
      if (e?.event !== "progress") return;
      onProgress({
        progress: numberField(e, "progress"),
        bytes: numberField(e, "bytes"),
        rate: numberField(e, "rate"),
        peers: numberField(e, "peers"),
      });
    });
  }
  try {
    const done = await child.waitForEvent("done", opts.timeoutMs);
    return {
      seconds: numberField(done, "seconds"),
      bytes: numberField(done, "bytes"),
      cpuSeconds: numberField(done, "cpu_seconds"),
      peakRssBytes: numberField(done, "peak_rss_bytes"),
      pexPeers: Array.isArray(done.pex_peers) ? done.pex_peers.map(String) : [],
    };
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await child.stop();
  }
}

// ---------------------------------------------------------------------------
// Transmission
// ---------------------------------------------------------------------------

/**
 * Tells whether `transmission-cli` (and `stdbuf`, which the harness uses to read
 * its status live) can run, so tests can be skipped with a clear reason.
 *
 * @example
 * ```ts
 * import { hasTransmission } from "./_harness.ts";
 * Deno.test({ name: "something with Transmission", ignore: !(await hasTransmission()), fn() {} });
 * ```
 *
 * @returns True when Transmission is installed.
 */
export async function hasTransmission(): Promise<boolean> {
  return await succeeds("transmission-cli", ["--version"]) && await succeeds("stdbuf", ["--version"]);
}

/** Options shared by the Transmission starters. */
export interface TransmissionOptions {
  /** The .torrent file. */
  torrentPath: string;
  /** The download folder (for a seeder: the folder that holds the torrent's data). */
  dataDir: string;
  /**
   * Peer port on 127.0.0.1; a free one is picked when absent.
   *
   * @default {await freePort()}
   */
  port?: number;
  /**
   * Encryption mode.
   *
   * @default {"preferred"}
   */
  encryption?: TransmissionEncryption;
  /**
   * Deadline for verification and the listen socket.
   *
   * @default {60000}
   */
  readyTimeoutMs?: number;
}

/** A running Transmission; a leecher keeps seeding after it completes. */
export interface TransmissionPeer extends RunningPeer {
  /**
   * Waits until Transmission reports "Seeding" (for a leecher: it has every piece).
   *
   * @param timeoutMs Deadline in milliseconds.
   * @returns A promise that resolves once it seeds.
   */
  waitUntilSeeding(timeoutMs: number): Promise<void>;
}

/** The `settings.json` of an isolated loopback Transmission. */
function transmissionSettings(port: number, encryption: TransmissionEncryption): Record<string, unknown> {
  return {
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "dht-enabled": false,
    "lpd-enabled": false,
    "pex-enabled": false,
    "utp-enabled": false,
    "port-forwarding-enabled": false,
    "rpc-enabled": false,
    "blocklist-enabled": false,
    "peer-port": port,
    "peer-port-random-on-start": false,
    "speed-limit-up-enabled": false,
    "speed-limit-down-enabled": false,
    "alt-speed-enabled": false,
    "ratio-limit-enabled": false,
    "idle-seeding-limit-enabled": false,
    "download-queue-enabled": false,
    "seed-queue-enabled": false,
    "start-added-torrents": true,
    "peer-limit-global": 200,
    "peer-limit-per-torrent": 100,
    "encryption": { tolerated: 0, preferred: 1, required: 2 }[encryption],
    "message-level": 2,
  };
}

async function startTransmission(
  role: "seeder" | "leecher",
  opts: TransmissionOptions,
): Promise<TransmissionPeer> {
  const port = opts.port ?? await freePort();
  const encryption = opts.encryption ?? "preferred";
  const readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const configDir = await Deno.makeTempDir({ prefix: "shoal-transmission-" });
  const removeConfig = () => Deno.remove(configDir, { recursive: true });
  let child: Child | undefined;
  try {
    await Deno.writeTextFile(
      join(configDir, "settings.json"),
      JSON.stringify(transmissionSettings(port, encryption), null, 2),
    );
    const flag = { required: "-er", preferred: "-ep", tolerated: "-et" }[encryption];
    // transmission-cli block-buffers its status when stdout is a pipe; stdbuf makes
    // it unbuffered so "Seeding" is seen when it is printed (stdbuf execs it: same pid).
    child = new Child(`transmission ${role}`, "stdbuf", [
      "-o0",
      "transmission-cli",
      "-g",
      configDir,
      "-w",
      opts.dataDir,
      "-p",
      `${port}`,
      flag,
      opts.torrentPath,
    ]);
    const started = child;
    const seeding = (timeoutMs: number) =>
      started.waitForLine((l) => l.startsWith("Seeding"), timeoutMs, `"Seeding" status`).then(() => {});
    // It verifies local data first ("Verifying local files ..."), then says "Seeding", or
    // "Progress: ..." (every 200 ms) when data is missing: fail fast on several in a row.
    if (role === "seeder") {
      let downloading = 0;
      const line = await started.waitForLine(
        (l) => {
          downloading = l.startsWith("Progress:") ? downloading + 1 : 0;
          return l.startsWith("Seeding") || downloading >= 10;
        },
        readyTimeoutMs,
        `"Seeding" status`,
      );
      if (!line.startsWith("Seeding")) {
        throw new Error(`Transmission seeder not ready: data in ${opts.dataDir} is incomplete: ${line}`);
      }
    }
    await waitForPort(port, readyTimeoutMs).catch((e: unknown) => {
      throw new Error(`Transmission ${role} not listening on port ${port}\n${started.tail()}`, { cause: e });
    });
    const peer = runningPeer(started, port, removeConfig);
    return { ...peer, waitUntilSeeding: seeding };
  } catch (e) {
    await child?.stop();
    await removeConfig();
    throw e;
  }
}

/**
 * Starts `transmission-cli` seeding a torrent whose data is in `dataDir`, with its
 * own temp config folder (loopback only, no DHT/LPD/PEX/uTP/port mapping/RPC).
 * Resolves once it has verified the data, says "Seeding" and accepts TCP connections.
 *
 * @example
 * ```ts
 * import { startTransmissionSeeder } from "./_harness.ts";
 * await using seeder = await startTransmissionSeeder({ torrentPath: "x.torrent", dataDir: "data" });
 * console.log(seeder.port);
 * ```
 *
 * @param opts What to seed and how.
 * @returns The running seeder.
 */
export function startTransmissionSeeder(opts: TransmissionOptions): Promise<TransmissionPeer> {
  return startTransmission("seeder", opts);
}

/**
 * Starts `transmission-cli` downloading a torrent into `dataDir`, listening on
 * `port`. Transmission cannot be given a peer: it downloads only from peers that
 * dial it (shoal, or a libtorrent seeder started with `peers`). Resolves once the
 * port accepts connections; use {@linkcode TransmissionPeer.waitUntilSeeding} or
 * {@linkcode waitForFile} to wait for the data. Transmission writes `name.part`
 * until a file is complete and does not create zero-byte files.
 *
 * @example
 * ```ts
 * import { startTransmissionLeecher } from "./_harness.ts";
 * await using leecher = await startTransmissionLeecher({ torrentPath: "x.torrent", dataDir: "out" });
 * // ... make shoal dial 127.0.0.1:leecher.port ...
 * await leecher.waitUntilSeeding(60_000);
 * ```
 *
 * @param opts What to download and on which port.
 * @returns The running leecher.
 */
export function startTransmissionLeecher(opts: TransmissionOptions): Promise<TransmissionPeer> {
  return startTransmission("leecher", opts);
}

/**
 * Makes a .torrent with `transmission-create`: a second, independent source of
 * test torrents.
 *
 * @example
 * ```ts
 * import { makeTorrentWithTransmission } from "./_harness.ts";
 * await makeTorrentWithTransmission("data/one.bin", "one.torrent", 32768);
 * ```
 *
 * @param payloadPath The file or folder to describe.
 * @param outPath Where to write the .torrent.
 * @param pieceLength Piece length in bytes (a multiple of 1 KiB).
 * @returns A promise that resolves once the file is written.
 */
export async function makeTorrentWithTransmission(
  payloadPath: string,
  outPath: string,
  pieceLength: number,
): Promise<void> {
  const out = await withTimeout(
    new Deno.Command("transmission-create", {
      args: ["-o", outPath, "-s", `${pieceLength / 1024}`, payloadPath],
      stdin: "null",
    }).output(),
    300_000,
    "transmission-create",
  );
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`Cannot create torrent with transmission-create: exit code ${out.code}: ${stderr}`);
  }
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/** One file of a generated payload. */
export interface PayloadFile {
  /** Path relative to the payload folder, `/`-separated. */
  path: string;
  /** Size in bytes. */
  size: number;
}

/** A 32-bit mixing function (splitmix-style finaliser). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Fills `block` with xorshift32 output seeded from `seed`. */
function fillRandom(block: Uint8Array, seed: number): void {
  const words = new Uint32Array(block.buffer, block.byteOffset, block.byteLength >>> 2);
  let x = mix32(seed) || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * Writes deterministic pseudo-random files under `dir`. The same `seed` and spec
 * give the same bytes; every 1 KiB of every MiB of every file differs, so a
 * misplaced block is always detected. Writes about 1 GiB in a few seconds.
 *
 * @example
 * ```ts
 * import { makePayload, sha1File } from "./_harness.ts";
 * const dir = await Deno.makeTempDir();
 * await makePayload(dir, [{ path: "a/b.bin", size: 5000 }], 7);
 * console.log((await sha1File(`${dir}/a/b.bin`)).length); // 40
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir The folder to write into (created if missing).
 * @param spec Files and sizes.
 * @param seed Any 32-bit integer.
 * @returns A promise that resolves once every file is written.
 */
export async function makePayload(dir: string, spec: PayloadFile[], seed: number): Promise<void> {
  const base = new Uint8Array(MIB);
  const block = new Uint8Array(MIB);
  const view = new DataView(block.buffer);
  for (const [fileIndex, entry] of spec.entries()) {
    const path = join(dir, ...entry.path.split("/"));
    await Deno.mkdir(dirname(path), { recursive: true });
    fillRandom(base, mix32(seed) ^ mix32(fileIndex + 1));
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      for (let mib = 0, offset = 0; offset < entry.size; mib++, offset += MIB) {
        block.set(base);
        const tag = mix32(seed ^ mix32(fileIndex * 0x10001 + mib + 1));
        for (let k = 0; k < MIB; k += 1024) view.setUint32(k, mix32(tag + k) ^ view.getUint32(k));
        await writeAll(file, block.subarray(0, Math.min(MIB, entry.size - offset)));
      }
    } finally {
      file.close();
    }
  }
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = await file.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/**
 * SHA-1 of a file, streamed in 1 MiB reads.
 *
 * @example
 * ```ts
 * import { sha1File } from "./_harness.ts";
 * const path = await Deno.makeTempFile();
 * console.log(await sha1File(path)); // da39a3ee5e6b4b0d3255bfef95601890afd80709
 * await Deno.remove(path);
 * ```
 *
 * @param path The file.
 * @returns The hash as 40 lower-case hex characters.
 */
export async function sha1File(path: string): Promise<string> {
  const hash = createHash("sha1");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(MIB);
  for (;;) {
    const n = await readFull(file, buf);
    if (n > 0) hash.update(buf.subarray(0, n));
    if (n < buf.length) break;
  }
  return hash.digest("hex");
}

/**
 * Compares two files byte by byte, streaming (never whole files in memory).
 *
 * @example
 * ```ts
 * import { filesEqual } from "./_harness.ts";
 * const a = await Deno.makeTempFile();
 * console.log(await filesEqual(a, a)); // true
 * await Deno.remove(a);
 * ```
 *
 * @param a One file.
 * @param b The other file.
 * @returns True when both have the same size and bytes.
 */
export async function filesEqual(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([Deno.stat(a), Deno.stat(b)]);
  if (sa.size !== sb.size) return false;
  using fa = await Deno.open(a, { read: true });
  using fb = await Deno.open(b, { read: true });
  const ba = new Uint8Array(MIB);
  const bb = new Uint8Array(MIB);
  for (;;) {
    const [na, nb] = await Promise.all([readFull(fa, ba), readFull(fb, bb)]);
    if (na !== nb) return false;
    for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
    if (na < MIB) return true;
  }
}

/**
 * Waits until `path` exists with `size` bytes and, when given, the expected
 * SHA-1 (polling every 100 ms; a sparse or partly written file is waited out).
 *
 * @example
 * ```ts
 * import { waitForFile } from "./_harness.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * await waitForFile(path, 3, "a9993e364706816aba3e25717850c26c9cd0d89d", 1000);
 * await Deno.remove(path);
 * ```
 *
 * @param path The file to watch.
 * @param size Its expected size in bytes.
 * @param expectedSha1 Its expected SHA-1 (hex), if it should be checked.
 * @param timeoutMs Deadline in milliseconds.
 * @returns A promise that resolves once the file is complete.
 */
export async function waitForFile(
  path: string,
  size: number,
  expectedSha1: string | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "it does not exist";
  while (Date.now() < deadline) {
    try {
      const st = await Deno.stat(path);
      if (st.size !== size) {
        last = `size ${st.size}`;
      } else if (expectedSha1 === undefined) {
        return;
      } else {
        const sha1 = await sha1File(path);
        if (sha1 === expectedSha1.toLowerCase()) return;
        last = `SHA-1 ${sha1}`;
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await delay(100);
  }
  throw new Deno.errors.TimedOut(
    `Timed out after ${timeoutMs} ms: waiting for ${path} (${size} bytes` +
      `${expectedSha1 === undefined ? "" : `, SHA-1 ${expectedSha1}`}): ${last}`,
  );
}
