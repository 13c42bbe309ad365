/**
 * A scripted fake BitTorrent peer for hostile-input tests: it listens on 127.0.0.1, accepts
 * the connection shoal dials, and lets a test read and write raw bytes and messages with a
 * deadline on every wait. It does only what the test tells it to, right or wrong.
 *
 * @module
 */

import { encodeHandshake, type Handshake, HANDSHAKE_LENGTH, reservedBits } from "../lib/wire/handshake.ts";
import { decodeMessage, encodeMessage, type Message } from "../lib/wire/messages.ts";

/** Default deadline of every wait, in milliseconds. */
export const FAKE_PEER_TIMEOUT_MS = 5000;

/** Thrown when a wait of the fake peer passes its deadline. */
export class FakePeerTimeout extends Error {
  /** @param message What was being waited for. */
  constructor(message: string) {
    super(message);
    this.name = "FakePeerTimeout";
  }
}

/**
 * Resolves or rejects like `promise`, or rejects with {@linkcode FakePeerTimeout} after `ms`.
 * The timer is always cleared.
 *
 * @example
 * ```ts
 * import { withDeadline } from "./_fake_peer.ts";
 * console.log(await withDeadline(Promise.resolve(1), 100, "a value")); // 1
 * ```
 *
 * @param promise What to wait for.
 * @param ms Deadline in milliseconds.
 * @param what Names the wait in the error message.
 * @returns The promise's value.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FakePeerTimeout(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A promise-based sleep whose timer is cleared if `signal` aborts.
 *
 * @example
 * ```ts
 * import { sleep } from "./_fake_peer.ts";
 * await sleep(1);
 * ```
 *
 * @param ms Milliseconds.
 * @param signal Cuts the sleep short (resolves early).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** One accepted connection of a {@linkcode FakePeer}. */
export class FakeConnection {
  /** The TCP connection. */
  readonly conn: Deno.Conn;
  /** "host:port" of the remote side (shoal's outgoing socket). */
  readonly remote: string;
  #buffer: Uint8Array = new Uint8Array(0);
  #eof = false;
  #closed = false;
  #pending: Promise<void> | null = null;

  /** @param conn The accepted connection. */
  constructor(conn: Deno.Conn) {
    this.conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = `${addr.hostname}:${addr.port}`;
  }

  /** True once the remote side has closed its end (EOF seen) or the read failed. */
  get eof(): boolean {
    return this.#eof;
  }

  /** Reads one chunk into the buffer; sets `eof` on end of stream or a reset. */
  #fill(): Promise<void> {
    this.#pending ??= (async () => {
      const chunk = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch (error) {
        // A reset or a read on a closed socket is the end of the stream for a test.
        if (
          error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe
        ) {
          n = null;
        } else {
          throw error;
        }
      } finally {
        this.#pending = null;
      }
      if (n === null) {
        this.#eof = true;
        return;
      }
      const joined = new Uint8Array(this.#buffer.length + n);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = joined;
    })();
    return this.#pending;
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @param n Byte count.
   * @param timeoutMs Deadline.
   * @returns The bytes, or null if the stream ended first.
   */
  async readExactly(n: number, timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<Uint8Array | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buffer.length < n) {
      if (this.#eof) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new FakePeerTimeout(`Timed out after ${timeoutMs} ms reading ${n} bytes`);
      await withDeadline(this.#fill(), left, `${n} bytes from shoal`);
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  /**
   * Reads shoal's 68-byte handshake.
   *
   * @param timeoutMs Deadline.
   * @returns The handshake fields.
   */
  async readHandshake(timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<Handshake> {
    const bytes = await this.readExactly(HANDSHAKE_LENGTH, timeoutMs);
    if (bytes === null) throw new Error("Shoal closed the connection before its handshake");
    if (bytes[0] !== 19) throw new Error(`Shoal's handshake starts with byte ${bytes[0]}`);
    return { reserved: bytes.slice(20, 28), infoHash: bytes.slice(28, 48), peerId: bytes.slice(48, 68) };
  }

  /**
   * Sends a handshake. By default it advertises the Fast and extension bits, as shoal does.
   *
   * @param infoHash The info-hash to claim.
   * @param options Peer id and reserved bytes.
   */
  async sendHandshake(
    infoHash: Uint8Array,
    options: { peerId?: Uint8Array; reserved?: Uint8Array } = {},
  ): Promise<void> {
    const peerId = options.peerId ?? new TextEncoder().encode("-FK0001-fakepeer0001");
    await this.write(encodeHandshake({
      infoHash,
      peerId,
      reserved: options.reserved ?? reservedBits({ fast: true, extensions: true }),
    }));
  }

  /**
   * Reads the next framed message.
   *
   * @param timeoutMs Deadline.
   * @returns The message, or null if the stream ended.
   */
  async readMessage(timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<Message | null> {
    const head = await this.readExactly(4, timeoutMs);
    if (head === null) return null;
    const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
    if (length > 2 * 1024 * 1024) throw new Error(`Shoal sent a message of ${length} bytes`);
    const body = await this.readExactly(length, timeoutMs);
    if (body === null) return null;
    return decodeMessage(body);
  }

  /**
   * Reads messages until one matches, discarding the others.
   *
   * @param match The test.
   * @param timeoutMs Deadline for the whole wait.
   * @returns The matching message.
   */
  async waitForMessage(match: (m: Message) => boolean, timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FakePeerTimeout(`Timed out after ${timeoutMs} ms waiting for a message`);
      const m = await this.readMessage(left);
      if (m === null) throw new Error("Shoal closed the connection while the fake peer waited for a message");
      if (match(m)) return m;
    }
  }

  /**
   * Writes bytes. Returns false instead of throwing when shoal has closed the connection.
   *
   * @param bytes What to send.
   * @returns True when written.
   */
  async write(bytes: Uint8Array): Promise<boolean> {
    let at = 0;
    try {
      while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
      return true;
    } catch (error) {
      if (
        error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BadResource
      ) {
        return false;
      }
      throw error;
    }
  }

  /**
   * Sends one framed message.
   *
   * @param message The message.
   * @returns True when written.
   */
  send(message: Message): Promise<boolean> {
    return this.write(encodeMessage(message));
  }

  /**
   * Waits until shoal closes the connection, discarding what it sends meanwhile.
   *
   * @param timeoutMs Deadline.
   * @throws {FakePeerTimeout} when the connection is still open at the deadline.
   */
  async waitForClose(timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#eof) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FakePeerTimeout(`Shoal did not close the connection within ${timeoutMs} ms`);
      await withDeadline(this.#fill(), left, "shoal to close the connection");
      this.#buffer = new Uint8Array(0);
    }
  }

  /** Closes the fake side (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /** Closes the connection and waits for a read in progress to settle. */
  async dispose(): Promise<void> {
    this.close();
    await this.#pending?.catch(() => {/* the read ends with the close; its error is not interesting */});
  }
}

/**
 * A listening fake peer. Accepts connections on 127.0.0.1 and hands them to the test in the
 * order they arrive.
 *
 * @example
 * ```ts ignore
 * await using fake = FakePeer.listen();
 * const torrent = await session.add(meta, { peers: [fake.address] });
 * const conn = await fake.accept();
 * await conn.readHandshake();
 * await conn.sendHandshake(meta.infoHash);
 * await conn.write(new Uint8Array([0xff, 0xff, 0xff, 0xf0]));
 * await conn.waitForClose();
 * ```
 */
export class FakePeer implements AsyncDisposable {
  /** The listener. */
  readonly listener: Deno.TcpListener;
  readonly #connections: FakeConnection[] = [];
  readonly #queue: FakeConnection[] = [];
  readonly #waiters: ((conn: FakeConnection) => void)[] = [];
  readonly #loop: Promise<void>;
  #closed = false;

  private constructor(listener: Deno.TcpListener) {
    this.listener = listener;
    this.#loop = this.#acceptLoop();
  }

  /**
   * Starts listening on 127.0.0.1 at a free port.
   *
   * @returns The fake peer.
   */
  static listen(): FakePeer {
    return new FakePeer(Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" }));
  }

  /** "127.0.0.1:PORT", to give shoal as a peer address. */
  get address(): string {
    return `127.0.0.1:${(this.listener.addr as Deno.NetAddr).port}`;
  }

  /** Every connection accepted so far. */
  get connections(): readonly FakeConnection[] {
    return this.#connections;
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.listener) {
        const fake = new FakeConnection(conn);
        if (this.#closed) {
          fake.close();
          continue;
        }
        this.#connections.push(fake);
        const waiter = this.#waiters.shift();
        if (waiter) waiter(fake);
        else this.#queue.push(fake);
      }
    } catch (error) {
      if (!this.#closed && !(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /**
   * Waits for the next connection from shoal.
   *
   * @param timeoutMs Deadline.
   * @returns The connection.
   */
  accept(timeoutMs = FAKE_PEER_TIMEOUT_MS): Promise<FakeConnection> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    let resolver!: (conn: FakeConnection) => void;
    const next = new Promise<FakeConnection>((resolve) => (resolver = resolve));
    this.#waiters.push(resolver);
    return withDeadline(next, timeoutMs, "shoal to connect to the fake peer").catch((error) => {
      const at = this.#waiters.indexOf(resolver);
      if (at >= 0) this.#waiters.splice(at, 1);
      throw error;
    });
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.listener.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    await this.#loop;
    await Promise.all(this.#connections.map((c) => c.dispose()));
  }

  /** Same as {@linkcode FakePeer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
