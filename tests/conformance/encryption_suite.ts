/**
 * The conformance suite every {@linkcode Encryption} plugin must pass: the shipped MSE
 * policies and any user-style plugin. Connections are in-memory duplex pairs that re-chunk
 * the bytes in transit (one byte at a time, odd sizes, a split at every byte position of
 * the handshake), as TCP may. Incoming connections reach the plugin the way the core hands
 * them over: the first 20 bytes are read off to tell a plaintext handshake from an
 * encrypted one, then given back in front of the rest.
 *
 * For plugins that dial encrypted connections, one end runs `outgoing` and the other
 * `incoming` with a lookup, and data must round-trip both ways at every chunking, with
 * fresh buffers and without touching the writer's chunks. A lookup that knows no torrent
 * must fail the handshake on both ends; an abort must end it promptly; closing the duplex
 * must close the connection. Plugins that never dial encrypted connections skip those
 * tests (the reason is in the test name) and must still refuse garbage and aborts promptly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { prepend } from "../../lib/peer/handshake_read.ts";
import type { Duplex, Encryption, InfoHashLookup } from "../../lib/types.ts";
import { withDeadline } from "../_fake_peer.ts";

/** How long any one exchange in the suite may take. */
const DEADLINE_MS = 10_000;
/** How long a plugin may take to fail after its signal aborts or its peer closes. */
const PROMPT_MS = 2_000;
/** The first 20 bytes of a plaintext BitTorrent handshake. */
const PLAINTEXT_PREFIX = new Uint8Array([19, ...new TextEncoder().encode("BitTorrent protocol")]);

/** Where one direction of a {@linkcode duplexPair} cuts the bytes it carries. */
export type Chunking =
  /** Every chunk at most this many bytes. */
  | number
  /** Chunks as written, but never spanning these absolute byte offsets. */
  | { readonly splitAt: readonly number[] };

/** Options of {@linkcode duplexPair}. */
export interface DuplexPairOptions {
  /** How bytes are re-chunked in each direction. @default {Infinity} (as written) */
  chunking?: Chunking;
  /** Make the readable sides byte streams (BYOB-capable, like a TCP connection). @default {true} */
  byteStreams?: boolean;
  /**
   * Deliver what is written in one turn of the event loop as one chunk (before re-chunking),
   * as TCP coalesces segments: a handshake's last message and the first payload bytes then
   * arrive together. @default {false}
   */
  coalesce?: boolean;
}

/**
 * Two connected in-memory {@linkcode Duplex} ends: what one writes the other reads,
 * re-chunked. Writes are copied, so a writer may reuse its buffer. `close()` on either end
 * ends the other end's readable (EOF) and fails its own pending reads, like closing a socket.
 *
 * @example
 * ```ts
 * import { duplexPair } from "./encryption_suite.ts";
 * const [a, b] = duplexPair({ chunking: 1 });
 * const writer = a.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2]));
 * const reader = b.readable.getReader();
 * console.log((await reader.read()).value); // Uint8Array(1) [1]
 * ```
 *
 * @param options Chunking and stream kind.
 * @returns The two ends.
 */
export function duplexPair(options: DuplexPairOptions = {}): [Duplex, Duplex] {
  const ab = new Pipe(options);
  const ba = new Pipe(options);
  const end = (outbound: Pipe, inbound: Pipe): Duplex => ({
    readable: inbound.readable,
    writable: outbound.writable,
    close() {
      outbound.end();
      inbound.fail(new Error("Connection closed locally"));
    },
  });
  return [end(ab, ba), end(ba, ab)];
}

/** One direction of a {@linkcode duplexPair}. */
class Pipe {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly #chunking: Chunking;
  readonly #coalesce: boolean;
  #controller!: ReadableStreamDefaultController<Uint8Array> | ReadableByteStreamController;
  #offset = 0;
  #done = false;
  /** Written this turn, not yet delivered (coalescing only). */
  #queued: Uint8Array[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: DuplexPairOptions) {
    this.#chunking = options.chunking ?? Infinity;
    this.#coalesce = options.coalesce ?? false;
    const byteStreams = options.byteStreams ?? true;
    const start = (c: ReadableStreamDefaultController<Uint8Array> | ReadableByteStreamController) => {
      this.#controller = c;
    };
    this.readable = byteStreams
      ? new ReadableStream({ type: "bytes", start })
      : new ReadableStream<Uint8Array>({ start }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.#done) throw new Error("Cannot write: the connection is closed");
        if (!this.#coalesce) return this.#deliver(chunk);
        this.#queued.push(chunk.slice());
        this.#timer ??= setTimeout(() => this.#flush(), 0);
      },
      close: () => this.end(),
      abort: () => this.end(),
    });
  }

  #deliver(chunk: Uint8Array): void {
    for (const piece of this.#cut(chunk)) this.#controller.enqueue(piece);
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#done) return;
    const total = this.#queued.reduce((n, c) => n + c.length, 0);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const c of this.#queued) {
      joined.set(c, at);
      at += c.length;
    }
    this.#queued = [];
    this.#deliver(joined);
  }

  /** Fresh copies of `chunk`, cut according to the chunking. */
  *#cut(chunk: Uint8Array): Generator<Uint8Array> {
    let at = 0;
    while (at < chunk.length) {
      let size = chunk.length - at;
      if (typeof this.#chunking === "number") size = Math.min(size, this.#chunking);
      else {
        for (const split of this.#chunking.splitAt) {
          const rel = split - (this.#offset + at);
          if (rel > 0 && rel < size) size = rel;
        }
      }
      yield chunk.slice(at, at + size);
      at += size;
    }
    this.#offset += chunk.length;
  }

  /** Ends the stream for the reader (EOF after what is queued). */
  end(): void {
    if (this.#done) return;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#flush();
    }
    this.#done = true;
    try {
      this.#controller.close();
    } catch (error) {
      // A byte stream refuses to close with a partly filled BYOB request: fail it instead.
      if (!(error instanceof TypeError)) throw error;
      this.#controller.error(new Error("Connection closed"));
    }
  }

  /** Fails the reader's pending and future reads. */
  fail(reason: Error): void {
    clearTimeout(this.#timer);
    this.#done = true;
    try {
      this.#controller.error(reason);
    } catch (error) {
      // Already closed or errored: nothing left to fail.
      if (!(error instanceof TypeError)) throw error;
    }
  }
}

/** The info-hash the suite's connections are for. */
export const SUITE_INFO_HASH: Uint8Array = new Uint8Array(
  createHash("sha1").update("shoal encryption conformance").digest(),
);

/**
 * The lookup a session builds: SHA-1("req2" + info-hash) → info-hash.
 *
 * @example
 * ```ts
 * import { lookupFor, SUITE_INFO_HASH } from "./encryption_suite.ts";
 * const lookup = lookupFor(SUITE_INFO_HASH);
 * console.log(lookup(new Uint8Array(20))); // undefined
 * ```
 *
 * @param infoHashes The torrents to know.
 * @returns The lookup.
 */
export function lookupFor(...infoHashes: Uint8Array[]): InfoHashLookup {
  const known = new Map<string, Uint8Array>();
  for (const infoHash of infoHashes) {
    known.set(hex(createHash("sha1").update("req2").update(infoHash).digest()), infoHash);
  }
  return (obfuscated) => known.get(hex(obfuscated));
}

/**
 * Does to an accepted connection what the core does before an encryption plugin sees it:
 * reads the first 20 bytes, then gives them back in front of the rest.
 *
 * @example
 * ```ts ignore
 * const { first, raw } = await peekLikeCore(accepted);
 * ```
 *
 * @param raw The accepted connection.
 * @returns The first 20 bytes, and the connection with them put back.
 */
export async function peekLikeCore(raw: Duplex): Promise<{ first: Uint8Array; raw: Duplex }> {
  const reader = raw.readable.getReader();
  let first = new Uint8Array(0);
  while (first.length < 20) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Connection closed after ${first.length} of the first 20 bytes`);
    const joined = new Uint8Array(first.length + value.length);
    joined.set(first);
    joined.set(value, first.length);
    first = joined;
  }
  reader.releaseLock();
  // What the core's reader took beyond 20 bytes goes back too (the core reads exactly 20).
  return {
    first: first.slice(0, 20),
    raw: { readable: prepend(first, raw.readable), writable: raw.writable, close: () => raw.close() },
  };
}

/** Two ends of an encrypted connection. */
export interface Connected {
  /** The dialling end, as `outgoing` returned it. */
  readonly a: Duplex;
  /** The accepting end, as `incoming` returned it. */
  readonly b: Duplex;
  /** The info-hash `incoming` found. */
  readonly infoHash: Uint8Array;
  /** The first 20 bytes the dialling end sent. */
  readonly first: Uint8Array;
}

/** Options of {@linkcode connectPair}. */
export interface ConnectOptions extends DuplexPairOptions {
  /** The accepting end's lookup. @default {lookupFor(SUITE_INFO_HASH)} */
  lookup?: InfoHashLookup;
  /** The accepting end's plugin. @default the dialling end's */
  responder?: Encryption;
  /**
   * Bytes the accepting end writes as soon as its handshake is done, before the dialling
   * end has finished its own (read them first from `a`).
   */
  earlyData?: Uint8Array;
}

/**
 * Runs `outgoing` on one end of a {@linkcode duplexPair} and `incoming` on the other, each
 * with a deadline. Rejects with the first failure (and closes both ends).
 *
 * @example
 * ```ts ignore
 * const { a, b, infoHash } = await connectPair(mse(), { chunking: 1 });
 * ```
 *
 * @param plugin The dialling end's plugin.
 * @param options Chunking, stream kind, lookup, responder.
 * @returns Both ends.
 */
export async function connectPair(plugin: Encryption, options: ConnectOptions = {}): Promise<Connected> {
  const [rawA, rawB] = duplexPair(options);
  const signal = AbortSignal.timeout(DEADLINE_MS);
  const responder = options.responder ?? plugin;
  const lookup = options.lookup ?? lookupFor(SUITE_INFO_HASH);
  const outgoing = plugin.outgoing(rawA, SUITE_INFO_HASH, signal);
  const incoming = peekLikeCore(rawB).then(async ({ first, raw }) => {
    const result = await responder.incoming(raw, lookup, signal);
    if (options.earlyData) {
      const writer = result.duplex.writable.getWriter();
      await writer.write(options.earlyData);
      writer.releaseLock();
    }
    return { first, result };
  });
  const [out, inc] = await Promise.allSettled([outgoing, incoming]);
  if (out.status === "rejected" || inc.status === "rejected") {
    rawA.close();
    rawB.close();
    throw out.status === "rejected" ? out.reason : (inc as PromiseRejectedResult).reason;
  }
  return {
    a: out.value,
    b: inc.value.result.duplex,
    infoHash: inc.value.result.infoHash,
    first: inc.value.first,
  };
}

/**
 * Sends `data` from one end and reads it at the other, concurrently. The writer reuses one
 * scratch buffer and checks after every write that the plugin left it untouched; the reader
 * keeps every chunk it gets and compares only at the end, so a plugin that reuses a chunk
 * after handing it on is caught.
 *
 * @example
 * ```ts ignore
 * await transfer(connected.a, connected.b, new Uint8Array(1000));
 * ```
 *
 * @param from The sending end.
 * @param to The receiving end.
 * @param data What to send.
 * @param writeSizes Sizes of the successive writes (cycled).
 */
export async function transfer(
  from: Duplex,
  to: Duplex,
  data: Uint8Array,
  writeSizes: readonly number[] = [68, 1, 7, 300, 16397, 65536],
): Promise<void> {
  const writer = from.writable.getWriter();
  const reader = to.readable.getReader();
  const writing = (async () => {
    const scratch = new Uint8Array(Math.max(...writeSizes));
    let at = 0;
    for (let k = 0; at < data.length; k++) {
      const size = Math.min(writeSizes[k % writeSizes.length]!, data.length - at);
      const piece = scratch.subarray(0, size);
      piece.set(data.subarray(at, at + size));
      await writer.write(piece);
      assert.deepEqual(piece, data.subarray(at, at + size), "the plugin changed the chunk it was given");
      piece.fill(0xee); // a plugin that kept the chunk would now send these bytes
      at += size;
    }
    writer.releaseLock();
  })();
  const reading = (async () => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    while (total < data.length) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Stream ended after ${total} of ${data.length} bytes`);
      chunks.push(value);
      total += value.length;
    }
    reader.releaseLock();
    const received = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      received.set(chunk, at);
      at += chunk.length;
    }
    assert.equal(total, data.length, "received more bytes than were sent");
    assert.ok(equal(received, data), "received bytes differ from what was sent");
  })();
  await withDeadline(Promise.all([writing, reading]), DEADLINE_MS, `${data.length} bytes to arrive`);
}

/**
 * Deterministic pseudo-random bytes.
 *
 * @example
 * ```ts
 * import { noise } from "./encryption_suite.ts";
 * console.log(noise(4, 1).length); // 4
 * ```
 *
 * @param length Byte count.
 * @param seed Any integer.
 * @returns The bytes.
 */
export function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Resolves with the rejection of `promise`, failing when it resolves or takes too long. */
async function rejection(promise: Promise<unknown>, ms: number, what: string): Promise<unknown> {
  const outcome = await withDeadline(
    promise.then((value) => ({ value }), (error: unknown) => ({ error })),
    ms,
    what,
  );
  assert.ok("error" in outcome, `${what}: succeeded but should have failed`);
  return outcome.error;
}

/** Reads `expected.length` bytes from `end` and compares them with `expected`. */
async function readExactly(end: Duplex, expected: Uint8Array, where: string): Promise<void> {
  const reader = end.readable.getReader();
  const got = new Uint8Array(expected.length);
  let at = 0;
  while (at < expected.length) {
    const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, `early data (${where})`);
    if (done) throw new Error(`${where}: stream ended after ${at} of ${expected.length} early bytes`);
    assert.ok(at + value.length <= expected.length, `${where}: more bytes than the early data`);
    got.set(value, at);
    at += value.length;
  }
  reader.releaseLock();
  assert.ok(equal(got, expected), `${where}: the early data arrived changed`);
}

/** Resolves once `readable` ends or fails (the connection is gone). */
async function drained(readable: ReadableStream<Uint8Array>): Promise<void> {
  const reader = readable.getReader();
  try {
    while (!(await reader.read()).done) { /* discard */ }
  } catch (error) {
    // A failed read means the connection is gone too, which is what is awaited.
    assert.ok(error instanceof Error);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Chunkings every round trip runs at (sizes in bytes; Infinity keeps writes whole). */
export const CHUNKINGS: readonly number[] = [1, 2, 3, 5, 8, 13, 20, 64, 97, 1000, 1460, 16384, Infinity];
/** A split at every offset up to here covers every handshake (pads of up to 512 bytes). */
const LONGEST_HANDSHAKE = 96 + 512 + 20 + 20 + 8 + 4 + 2 + 512 + 2 + 68;

/** Options of {@linkcode encryptionSuite}. */
export interface EncryptionSuiteOptions {
  /**
   * Split the handshake at every byte position up to this offset (a round trip each).
   * @default {LONGEST_HANDSHAKE} (1244, enough for MSE)
   */
  splitPositions?: number;
}

/**
 * Registers the conformance tests for one plugin.
 *
 * @example
 * ```ts ignore
 * import { encryptionSuite } from "./encryption_suite.ts";
 * import { mse } from "../../plugins/encryption/mse.ts";
 * encryptionSuite("mse({ policy: 'require' })", () => mse({ policy: "require" }));
 * ```
 *
 * @param label Names the plugin in test names.
 * @param make Makes a fresh instance of the plugin.
 * @param options Tuning.
 */
export function encryptionSuite(
  label: string,
  make: () => Encryption,
  options: EncryptionSuiteOptions = {},
): void {
  const dials = make().outgoingAttempts.includes("encrypted");

  Deno.test(`${label}: declares a name, its outgoing attempts and whether it takes plaintext`, () => {
    const plugin = make();
    assert.equal(typeof plugin.name, "string");
    assert.ok(plugin.name.length > 0, "the name is empty");
    assert.ok(plugin.outgoingAttempts.length > 0, "no outgoing attempt: it could never dial");
    for (const attempt of plugin.outgoingAttempts) {
      assert.ok(attempt === "encrypted" || attempt === "plaintext");
    }
    assert.equal(new Set(plugin.outgoingAttempts).size, plugin.outgoingAttempts.length, "repeated attempts");
    assert.equal(typeof plugin.acceptsPlaintext, "boolean");
    if (!plugin.acceptsPlaintext) {
      assert.ok(
        !plugin.outgoingAttempts.includes("plaintext"),
        "it dials plaintext but refuses plaintext: peers like itself could never connect to it",
      );
    }
  });

  Deno.test(`${label}: incoming() refuses garbage promptly`, async () => {
    for (const size of [20, 100, 700, 4000]) {
      const plugin = make();
      const [peer, ours] = duplexPair();
      const writer = peer.writable.getWriter();
      const garbage = noise(size, size);
      garbage[0] = 0x13 ^ 0xff; // never the start of a plaintext handshake
      await writer.write(garbage);
      await writer.close();
      const { raw } = await peekLikeCore(ours);
      await rejection(
        plugin.incoming(raw, lookupFor(SUITE_INFO_HASH), AbortSignal.timeout(DEADLINE_MS)),
        PROMPT_MS,
        `incoming() given ${size} bytes of garbage`,
      );
      ours.close();
    }
  });

  Deno.test(`${label}: incoming() fails promptly when its signal aborts`, async () => {
    const plugin = make();
    for (const early of [true, false]) {
      const [peer, ours] = duplexPair();
      const writer = peer.writable.getWriter();
      const opening = noise(96, 3); // looks like the start of an encrypted handshake, then silence
      opening[0] = 0x13 ^ 0xff;
      await writer.write(opening);
      const { raw } = await peekLikeCore(ours);
      const controller = new AbortController();
      if (early) controller.abort(new Error("Stopped by the test"));
      const running = plugin.incoming(raw, lookupFor(SUITE_INFO_HASH), controller.signal);
      if (!early) setTimeout(() => controller.abort(new Error("Stopped by the test")), 20);
      await rejection(running, PROMPT_MS, `incoming() after an abort (${early ? "before" : "during"} it)`);
      ours.close();
    }
  });

  if (!dials) {
    Deno.test({
      name: `${label}: encrypted round trips (skipped: it never dials encrypted connections)`,
      ignore: true,
      fn() {},
    });
    return;
  }

  Deno.test(`${label}: data round-trips both ways at every chunking`, async () => {
    for (const byteStreams of [true, false]) {
      for (const chunking of CHUNKINGS) {
        const size = chunking < 64 ? 3000 : 300_000;
        const c = await connectPair(make(), { chunking, byteStreams });
        const where = `chunking ${chunking}, ${byteStreams ? "byte" : "default"} streams`;
        assert.deepEqual(c.infoHash, SUITE_INFO_HASH, where);
        assert.notDeepEqual(
          c.first,
          PLAINTEXT_PREFIX,
          `${where}: the dialling end sent a plaintext handshake`,
        );
        await Promise.all([
          transfer(c.a, c.b, noise(size, chunking === Infinity ? 1 : chunking)),
          transfer(c.b, c.a, noise(size + 17, 7)),
        ]);
        // A second exchange on the same streams: nothing was lost between reads.
        await transfer(c.a, c.b, noise(1000, 99));
        c.a.close();
        c.b.close();
      }
    }
  });

  Deno.test(`${label}: payload that arrives with the end of the handshake is not lost`, async () => {
    for (const chunking of [1, 7, 1460, Infinity]) {
      const early = noise(5000, 5);
      const c = await connectPair(make(), { chunking, coalesce: true, earlyData: early });
      await readExactly(c.a, early, `chunking ${chunking}`);
      await Promise.all([transfer(c.a, c.b, noise(3000, 1)), transfer(c.b, c.a, noise(3000, 2))]);
      c.a.close();
      c.b.close();
    }
  });

  Deno.test(`${label}: the handshake survives a split at every byte position`, async () => {
    const last = options.splitPositions ?? LONGEST_HANDSHAKE;
    for (let at = 1; at <= last; at++) {
      const c = await connectPair(make(), { chunking: { splitAt: [at] }, byteStreams: at % 2 === 0 });
      await Promise.all([transfer(c.a, c.b, noise(100, at)), transfer(c.b, c.a, noise(100, -at))]);
      c.a.close();
      c.b.close();
    }
  });

  Deno.test(`${label}: a lookup that knows no torrent fails the handshake on both ends`, async () => {
    const plugin = make();
    const [rawA, rawB] = duplexPair();
    const signal = AbortSignal.timeout(DEADLINE_MS);
    const outgoing = plugin.outgoing(rawA, SUITE_INFO_HASH, signal);
    const incoming = peekLikeCore(rawB).then(({ raw }) => plugin.incoming(raw, lookupFor(), signal));
    await rejection(incoming, PROMPT_MS * 2, "incoming() with an unknown torrent");
    rawB.close(); // what the core does with a connection whose handshake failed
    await rejection(outgoing, PROMPT_MS * 2, "outgoing() to a peer that does not know the torrent");
  });

  Deno.test(`${label}: outgoing() fails promptly when its signal aborts`, async () => {
    const plugin = make();
    for (const early of [true, false]) {
      const [ours, peer] = duplexPair(); // the peer never answers
      const controller = new AbortController();
      if (early) controller.abort(new Error("Stopped by the test"));
      const running = plugin.outgoing(ours, SUITE_INFO_HASH, controller.signal);
      if (!early) setTimeout(() => controller.abort(new Error("Stopped by the test")), 20);
      await rejection(running, PROMPT_MS, `outgoing() after an abort (${early ? "before" : "during"} it)`);
      ours.close();
      peer.close();
    }
  });

  Deno.test(`${label}: outgoing() fails when the peer closes the connection`, async () => {
    const plugin = make();
    const [ours, peer] = duplexPair();
    const running = plugin.outgoing(ours, SUITE_INFO_HASH, AbortSignal.timeout(DEADLINE_MS));
    peer.close();
    await rejection(running, PROMPT_MS, "outgoing() to a peer that hung up");
  });

  Deno.test(`${label}: closing either end's duplex closes the connection`, async () => {
    for (const side of ["a", "b"] as const) {
      const c = await connectPair(make());
      const [closing, other] = side === "a" ? [c.a, c.b] : [c.b, c.a];
      closing.close();
      await withDeadline(drained(other.readable), PROMPT_MS, `the other end to see end ${side} close`);
      other.close();
    }
  });
}
