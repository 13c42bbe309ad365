import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import { ByteReader } from "../../lib/wire/byte_reader.ts";
import {
  DEFAULT_MAX_MESSAGE_LENGTH,
  FrameDecoder,
  FrameEncoder,
  FrameParser,
} from "../../lib/wire/framing.ts";
import {
  decodeHandshake,
  encodeHandshake,
  type Handshake,
  PROTOCOL,
  readHandshake,
  reservedBits,
  supportsDht,
  supportsExtensions,
  supportsFast,
} from "../../lib/wire/handshake.ts";
import {
  decodeMessage,
  encodedLength,
  encodeMessage,
  encodeMessageInto,
  type Message,
  MESSAGE_IDS,
} from "../../lib/wire/messages.ts";
import { seededRandom } from "../../lib/net/seeded_random.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Splits `bytes` at the given offsets (sorted, deduplicated); keeps empty chunks out. */
function rechunk(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Decodes `chunks` the way a connection does (lib/peer/connection.ts): a {@linkcode FrameParser}
 * with its defaults, every chunk read into one reused buffer that is scribbled over once
 * `push` returns, each message handled (here: copied) inside `emit`. Throws what the parser throws.
 */
function parseLikeConnection(chunks: readonly Uint8Array[], maxMessageLength?: number): Message[] {
  const parser = maxMessageLength === undefined ? new FrameParser() : new FrameParser({ maxMessageLength });
  const readBuffer = new Uint8Array(Math.max(1, ...chunks.map((c) => c.length)));
  const out: Message[] = [];
  for (const chunk of chunks) {
    readBuffer.set(chunk);
    parser.push(readBuffer.subarray(0, chunk.length), (m) => out.push(structuredClone(m)));
    readBuffer.fill(0xaa); // the next read overwrites it
  }
  parser.end();
  return out;
}

/**
 * Decodes `chunks` through both framing entry points, which must agree: the parser as the
 * connections run it ({@linkcode parseLikeConnection}) and the {@linkcode FrameDecoder}
 * stream wrapper over it, whose messages (views and all) are returned.
 */
async function decodeChunks(chunks: readonly Uint8Array[], maxMessageLength?: number): Promise<Message[]> {
  let parsed: Message[] | undefined;
  let parseError: unknown;
  try {
    parsed = parseLikeConnection(chunks, maxMessageLength);
  } catch (error) {
    parseError = error;
  }
  const decoder = maxMessageLength === undefined
    ? new FrameDecoder()
    : new FrameDecoder({ maxMessageLength });
  let decoded: Message[];
  try {
    decoded = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(decoder));
  } catch (error) {
    assert.ok(parseError instanceof Error, `FrameDecoder failed (${error}) but FrameParser did not`);
    assert.equal(parseError.constructor, (error as Error).constructor);
    assert.equal(parseError.message, (error as Error).message);
    throw error;
  }
  if (parseError !== undefined) throw parseError;
  assert.deepEqual(parsed, decoded, "FrameParser and FrameDecoder disagree");
  return decoded;
}

function bytesOf(length: number, seed: number): Uint8Array {
  const next = seededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** One message of every type, with payloads that exercise the edges. */
const EVERY_MESSAGE: readonly Message[] = [
  { type: "keepalive" },
  { type: "choke" },
  { type: "unchoke" },
  { type: "interested" },
  { type: "not_interested" },
  { type: "have", piece: 0xfffffffe },
  { type: "bitfield", bits: new Uint8Array([0xff, 0x80, 0x00, 0xc0]) },
  { type: "bitfield", bits: new Uint8Array(0) },
  { type: "request", piece: 1, begin: 16384, length: 16384 },
  { type: "piece", piece: 2, begin: 0x01020304, data: bytesOf(37, 1) },
  { type: "piece", piece: 3, begin: 0, data: new Uint8Array(0) },
  { type: "cancel", piece: 0xffffffff, begin: 32768, length: 16384 },
  { type: "port", port: 6881 },
  { type: "port", port: 65535 },
  { type: "suggest", piece: 42 },
  { type: "have_all" },
  { type: "have_none" },
  { type: "reject", piece: 7, begin: 49152, length: 16384 },
  { type: "allowed_fast", piece: 9 },
  { type: "extended", id: 0, payload: new TextEncoder().encode("d1:md11:ut_metadatai1eee") },
  { type: "extended", id: 3, payload: new Uint8Array(0) },
  { type: "unknown", id: 21, payload: new Uint8Array([1, 2, 3]) },
  { type: "unknown", id: 255, payload: new Uint8Array(0) },
];

const STREAM = concat(EVERY_MESSAGE.map(encodeMessage));

/** A source stream that never delivers a byte (and never ends). */
function silentStream(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({ pull: () => new Promise<void>(() => {}) });
}

/** A source whose chunks the test pushes by hand. */
function manualStream(): { stream: ReadableStream<Uint8Array>; push(bytes: Uint8Array): void; end(): void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) }, {
    highWaterMark: 0,
  });
  return { stream, push: (bytes) => controller.enqueue(bytes), end: () => controller.close() };
}

// ---------------------------------------------------------------------------------------------
// messages.ts

Deno.test("MESSAGE_IDS holds the wire ids of BEP 3, 5, 6 and 10", () => {
  assert.deepEqual({ ...MESSAGE_IDS }, {
    choke: 0,
    unchoke: 1,
    interested: 2,
    not_interested: 3,
    have: 4,
    bitfield: 5,
    request: 6,
    piece: 7,
    cancel: 8,
    port: 9,
    suggest: 13,
    have_all: 14,
    have_none: 15,
    reject: 16,
    allowed_fast: 17,
    extended: 20,
  });
  assert.ok(Object.isFrozen(MESSAGE_IDS));
});

Deno.test("every message type round-trips through encodeMessage() and decodeMessage()", () => {
  for (const message of EVERY_MESSAGE) {
    const frame = encodeMessage(message);
    assert.equal(frame.length, encodedLength(message), message.type);
    const length = new DataView(frame.buffer, frame.byteOffset).getUint32(0);
    assert.equal(length, frame.length - 4, message.type);
    assert.deepEqual(decodeMessage(frame.subarray(4)), message, message.type);
  }
});

Deno.test("encodeMessage() writes the exact bytes of BEP 3", () => {
  assert.deepEqual(encodeMessage({ type: "keepalive" }), new Uint8Array([0, 0, 0, 0]));
  assert.deepEqual(encodeMessage({ type: "unchoke" }), new Uint8Array([0, 0, 0, 1, 1]));
  assert.deepEqual(encodeMessage({ type: "have", piece: 258 }), new Uint8Array([0, 0, 0, 5, 4, 0, 0, 1, 2]));
  assert.deepEqual(
    encodeMessage({ type: "request", piece: 1, begin: 0x4000, length: 0x4000 }),
    new Uint8Array([0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]),
  );
  assert.deepEqual(
    encodeMessage({ type: "piece", piece: 1, begin: 2, data: new Uint8Array([9, 8]) }),
    new Uint8Array([0, 0, 0, 11, 7, 0, 0, 0, 1, 0, 0, 0, 2, 9, 8]),
  );
  assert.deepEqual(
    encodeMessage({ type: "port", port: 0x1ae1 }),
    new Uint8Array([0, 0, 0, 3, 9, 0x1a, 0xe1]),
  );
  assert.deepEqual(
    encodeMessage({ type: "extended", id: 2, payload: new Uint8Array([0x64, 0x65]) }),
    new Uint8Array([0, 0, 0, 4, 20, 2, 0x64, 0x65]),
  );
});

Deno.test("encodeMessageInto() writes at an offset and returns the bytes written", () => {
  const target = new Uint8Array(3 + 9 + 5).fill(0xaa);
  const a = encodeMessageInto({ type: "have", piece: 1 }, target, 3);
  const b = encodeMessageInto({ type: "interested" }, target, 3 + a);
  assert.equal(a, 9);
  assert.equal(b, 5);
  assert.deepEqual(target.subarray(0, 3), new Uint8Array([0xaa, 0xaa, 0xaa]));
  assert.deepEqual(
    target.subarray(3),
    concat([encodeMessage({ type: "have", piece: 1 }), encodeMessage({ type: "interested" })]),
  );
});

Deno.test("encodeMessageInto() throws a RangeError when the message does not fit", () => {
  assert.throws(() => encodeMessageInto({ type: "have", piece: 1 }, new Uint8Array(10), 2), RangeError);
  assert.throws(() => encodeMessageInto({ type: "choke" }, new Uint8Array(10), -1), RangeError);
});

Deno.test("encodeMessage() rejects fields out of range", () => {
  const bad: Message[] = [
    { type: "have", piece: -1 },
    { type: "have", piece: 2 ** 32 },
    { type: "have", piece: 1.5 },
    { type: "request", piece: 0, begin: Number.NaN, length: 1 },
    { type: "cancel", piece: 0, begin: 0, length: 2 ** 32 },
    { type: "piece", piece: 0, begin: -5, data: new Uint8Array(1) },
    { type: "port", port: 65536 },
    { type: "extended", id: 256, payload: new Uint8Array(0) },
    { type: "unknown", id: -1, payload: new Uint8Array(0) },
  ];
  for (const message of bad) assert.throws(() => encodeMessage(message), RangeError, JSON.stringify(message));
});

Deno.test("decodeMessage() rejects bodies whose length does not fit their type", () => {
  const cases: Array<[number, number, string]> = [
    // [id, body length, expected message fragment]
    [0, 2, "Cannot decode choke message: length 2, expected 1"],
    [1, 5, "Cannot decode unchoke message: length 5, expected 1"],
    [2, 2, "interested message: length 2, expected 1"],
    [3, 13, "not_interested message: length 13, expected 1"],
    [4, 4, "Cannot decode have message: length 4, expected 5"],
    [4, 6, "have message: length 6, expected 5"],
    [6, 12, "request message: length 12, expected 13"],
    [6, 14, "request message: length 14, expected 13"],
    [7, 8, "Cannot decode piece message: length 8, expected at least 9"],
    [7, 1, "piece message: length 1, expected at least 9"],
    [8, 17, "cancel message: length 17, expected 13"],
    [9, 2, "port message: length 2, expected 3"],
    [9, 5, "port message: length 5, expected 3"],
    [13, 1, "suggest message: length 1, expected 5"],
    [14, 2, "have_all message: length 2, expected 1"],
    [15, 5, "have_none message: length 5, expected 1"],
    [16, 9, "reject message: length 9, expected 13"],
    [17, 4, "allowed_fast message: length 4, expected 5"],
    [20, 1, "Cannot decode extended message: length 1, expected at least 2"],
  ];
  for (const [id, length, expected] of cases) {
    const body = new Uint8Array(length);
    body[0] = id;
    assert.throws(() => decodeMessage(body), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, `id ${id} length ${length}`);
      assert.ok(e.message.includes(expected), `${e.message} should include ${expected}`);
      return true;
    });
  }
});

Deno.test("decodeMessage() turns unknown ids into unknown messages", () => {
  for (const id of [10, 11, 12, 18, 19, 21, 100, 255]) {
    const body = new Uint8Array([id, 5, 6, 7]);
    assert.deepEqual(decodeMessage(body), { type: "unknown", id, payload: new Uint8Array([5, 6, 7]) });
  }
});

Deno.test("decodeMessage() returns views, not copies, for byte payloads", () => {
  const body = encodeMessage({ type: "piece", piece: 1, begin: 0, data: new Uint8Array(100).fill(3) })
    .subarray(4);
  const message = decodeMessage(body);
  assert.ok(message.type === "piece");
  assert.equal(message.data.buffer, body.buffer);
  assert.equal(message.data.byteOffset, body.byteOffset + 9);
  const bitfield = decodeMessage(new Uint8Array([5, 0xf0]));
  assert.ok(bitfield.type === "bitfield");
  assert.equal(bitfield.bits.byteOffset, 1);
});

Deno.test("decodeMessage() reads an empty body as a keep-alive", () => {
  assert.deepEqual(decodeMessage(new Uint8Array(0)), { type: "keepalive" });
});

// ---------------------------------------------------------------------------------------------
// framing.ts

Deno.test("FrameDecoder decodes many messages from one chunk", async () => {
  assert.deepEqual(await decodeChunks([STREAM]), EVERY_MESSAGE);
});

Deno.test("FrameDecoder gives identical messages for a split at every byte position", async () => {
  for (let cut = 1; cut < STREAM.length; cut++) {
    assert.deepEqual(await decodeChunks(rechunk(STREAM, [cut])), EVERY_MESSAGE, `split at ${cut}`);
  }
});

Deno.test("FrameDecoder gives identical messages when fed one byte at a time", async () => {
  const cuts = Array.from({ length: STREAM.length }, (_, i) => i);
  assert.deepEqual(await decodeChunks(rechunk(STREAM, cuts)), EVERY_MESSAGE);
});

Deno.test("FrameDecoder gives identical messages for every pair of split positions in a short stream", async () => {
  const messages: Message[] = [
    { type: "have", piece: 5 },
    { type: "keepalive" },
    { type: "piece", piece: 1, begin: 2, data: new Uint8Array([1, 2, 3]) },
    { type: "choke" },
  ];
  const stream = concat(messages.map(encodeMessage));
  for (let a = 1; a < stream.length; a++) {
    for (let b = a + 1; b < stream.length; b++) {
      assert.deepEqual(await decodeChunks(rechunk(stream, [a, b])), messages, `split at ${a} and ${b}`);
    }
  }
});

Deno.test("FrameDecoder gives identical messages for random splits", async () => {
  const next = seededRandom(20240601);
  for (let round = 0; round < 300; round++) {
    const count = 1 + Math.floor(next() * 20);
    const cuts = Array.from({ length: count }, () => Math.floor(next() * STREAM.length));
    assert.deepEqual(await decodeChunks(rechunk(STREAM, cuts)), EVERY_MESSAGE, `cuts ${cuts.join(",")}`);
  }
});

Deno.test("FrameDecoder hands out views of the chunk when a body fits in it and copies straddling ones", async () => {
  const whole = encodeMessage({ type: "piece", piece: 0, begin: 0, data: bytesOf(1000, 2) });
  const [inside] = await decodeChunks([whole]);
  assert.ok(inside?.type === "piece");
  assert.equal(inside.data.buffer, whole.buffer);

  const chunks = rechunk(whole, [500]);
  const [straddling] = await decodeChunks(chunks);
  assert.ok(straddling?.type === "piece");
  assert.notEqual(straddling.data.buffer, whole.buffer);
  assert.deepEqual(straddling.data, whole.subarray(13));
});

Deno.test("FrameDecoder assembles a body larger than its initial buffer from small chunks", async () => {
  const message: Message = { type: "bitfield", bits: bytesOf(300_000, 3) };
  const frame = encodeMessage(message);
  const cuts = Array.from({ length: Math.ceil(frame.length / 997) }, (_, i) => i * 997);
  assert.deepEqual(await decodeChunks(rechunk(frame, cuts)), [message]);
});

Deno.test("FrameDecoder assembles a large body that arrives in a few big chunks", async () => {
  const message: Message = { type: "bitfield", bits: bytesOf(500_000, 5) };
  const frame = encodeMessage(message);
  for (const cuts of [[10], [10, 250_000], [3, 70_000, 70_001, 400_000], [65_540, 131_090, 262_200]]) {
    assert.deepEqual(await decodeChunks(rechunk(frame, cuts)), [message], `cuts ${cuts.join(",")}`);
  }
});

Deno.test("FrameParser reuses its assembly buffer for the next straddling body; FrameDecoder does not", async () => {
  const frames = [1, 2].map((seed) =>
    encodeMessage({ type: "piece", piece: 0, begin: 0, data: bytesOf(1000, seed) })
  );
  const chunks = frames.flatMap((frame) => rechunk(frame, [500]));
  const seen: { buffer: ArrayBufferLike; copy: Uint8Array }[] = [];
  const parser = new FrameParser();
  for (const chunk of chunks) {
    parser.push(chunk, (m) => {
      assert.ok(m.type === "piece");
      seen.push({ buffer: m.data.buffer, copy: m.data.slice() });
    });
  }
  parser.end();
  assert.equal(seen.length, 2);
  assert.equal(seen[0]!.buffer, seen[1]!.buffer, "the second body is assembled where the first was");
  assert.deepEqual(seen[0]!.copy, frames[0]!.subarray(13));
  assert.deepEqual(seen[1]!.copy, frames[1]!.subarray(13));

  const decoded = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(new FrameDecoder()));
  assert.ok(decoded[0]?.type === "piece" && decoded[1]?.type === "piece");
  assert.notEqual(decoded[0].data.buffer, decoded[1].data.buffer);
  assert.deepEqual(decoded[0].data, frames[0]!.subarray(13));
});

Deno.test("FrameParser, as a connection runs it over one reused read buffer, survives a split at every byte", () => {
  for (let cut = 1; cut < STREAM.length; cut++) {
    assert.deepEqual(parseLikeConnection(rechunk(STREAM, [cut])), EVERY_MESSAGE, `split at ${cut}`);
  }
  const bytes = Array.from({ length: STREAM.length }, (_, i) => i);
  assert.deepEqual(parseLikeConnection(rechunk(STREAM, bytes)), EVERY_MESSAGE);
});

Deno.test("FrameDecoder rejects a length prefix of 0xFFFFFFFF split at any position", async () => {
  const prefix = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x07]);
  for (const cuts of [[1], [2], [3], [4], [1, 2, 3]]) {
    await assert.rejects(
      decodeChunks(rechunk(prefix, cuts)),
      /length 4294967295 exceeds maximum/,
      `cuts ${cuts}`,
    );
  }
});

Deno.test("FrameDecoder rejects an oversized length prefix before the body arrives", async () => {
  await assert.rejects(
    decodeChunks([new Uint8Array([0xff, 0xff, 0xff, 0xff])]),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(
        e.message,
        `Cannot decode message: length 4294967295 exceeds maximum ${DEFAULT_MAX_MESSAGE_LENGTH}`,
      );
      return true;
    },
  );
  // Also when the prefix itself is split, and with no body byte ever sent.
  await assert.rejects(
    decodeChunks([new Uint8Array([0x00, 0x20]), new Uint8Array([0x00, 0x00])]),
    ProtocolError,
  );
});

Deno.test("FrameDecoder accepts a body of exactly maxMessageLength and rejects one byte more", async () => {
  const fits: Message = { type: "piece", piece: 0, begin: 0, data: new Uint8Array(91) }; // body 100 bytes
  assert.deepEqual(await decodeChunks([encodeMessage(fits)], 100), [fits]);
  const tooBig: Message = { type: "piece", piece: 0, begin: 0, data: new Uint8Array(92) };
  await assert.rejects(decodeChunks([encodeMessage(tooBig)], 100), /length 101 exceeds maximum 100/);
  assert.equal(DEFAULT_MAX_MESSAGE_LENGTH, 1024 * 1024 + 13);
});

Deno.test("FrameDecoder rejects an invalid maxMessageLength", () => {
  assert.throws(() => new FrameDecoder({ maxMessageLength: -1 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxMessageLength: 2 ** 32 }), RangeError);
  assert.throws(() => new FrameParser({ maxMessageLength: -1 }), RangeError);
});

Deno.test("FrameDecoder errors the stream on a body with the wrong length for its type", async () => {
  const bad = new Uint8Array([0, 0, 0, 4, 4, 0, 0, 1]); // have with a 3-byte payload
  await assert.rejects(
    decodeChunks([encodeMessage({ type: "choke" }), bad]),
    /have message: length 4, expected 5/,
  );
});

Deno.test("FrameDecoder errors the stream when input ends in the middle of a message", async () => {
  const frame = encodeMessage({ type: "have", piece: 1 });
  await assert.rejects(decodeChunks([frame.subarray(0, 6)]), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Stream ended in the middle of a message: got 2 of 5 bytes");
    return true;
  });
  await assert.rejects(decodeChunks([frame.subarray(0, 3)]), /middle of a length prefix: got 3 of 4 bytes/);
  assert.deepEqual(await decodeChunks([]), []);
});

Deno.test("FrameDecoder turns unknown ids into unknown messages", async () => {
  const frame = new Uint8Array([0, 0, 0, 3, 99, 1, 2]);
  assert.deepEqual(await decodeChunks([frame]), [{
    type: "unknown",
    id: 99,
    payload: new Uint8Array([1, 2]),
  }]);
});

Deno.test("FrameEncoder output decodes back to the same messages", async () => {
  const bytes = await Array.fromAsync(ReadableStream.from(EVERY_MESSAGE).pipeThrough(new FrameEncoder()));
  assert.equal(bytes.length, EVERY_MESSAGE.length);
  assert.deepEqual(concat(bytes), STREAM);
  const decoded = await Array.fromAsync(
    ReadableStream.from(EVERY_MESSAGE).pipeThrough(new FrameEncoder()).pipeThrough(new FrameDecoder()),
  );
  assert.deepEqual(decoded, EVERY_MESSAGE);
});

Deno.test("FrameEncoder errors the stream on a field out of range", async () => {
  const messages: Message[] = [{ type: "have", piece: -1 }];
  await assert.rejects(
    Array.fromAsync(ReadableStream.from(messages).pipeThrough(new FrameEncoder())),
    RangeError,
  );
});

// ---------------------------------------------------------------------------------------------
// handshake.ts

const HANDSHAKE: Handshake = {
  infoHash: bytesOf(20, 10),
  peerId: new TextEncoder().encode("-SH0010-abcdefghijkl"),
  reserved: reservedBits({ fast: true, extensions: true, dht: true }),
};

Deno.test("PROTOCOL is the BEP 3 protocol prefix", () => {
  assert.deepEqual(PROTOCOL, concat([new Uint8Array([19]), new TextEncoder().encode("BitTorrent protocol")]));
});

Deno.test("reservedBits() sets the fast, extension and DHT bits and supports*() read them", () => {
  assert.deepEqual(reservedBits({}), new Uint8Array(8));
  assert.deepEqual(reservedBits({ fast: true }), new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x04]));
  assert.deepEqual(reservedBits({ extensions: true }), new Uint8Array([0, 0, 0, 0, 0, 0x10, 0, 0]));
  assert.deepEqual(reservedBits({ dht: true }), new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x01]));
  assert.deepEqual(
    reservedBits({ fast: true, extensions: true, dht: true }),
    new Uint8Array([0, 0, 0, 0, 0, 0x10, 0, 0x05]),
  );
  const none = new Uint8Array(8);
  assert.equal(supportsFast(none) || supportsExtensions(none) || supportsDht(none), false);
  // Other clients' bits (e.g. Azureus messaging in byte 0) do not confuse the checks.
  const others = new Uint8Array([0x80, 0xff, 0xff, 0xff, 0xff, 0xef, 0xff, 0xfa]);
  assert.equal(supportsFast(others) || supportsExtensions(others) || supportsDht(others), false);
  assert.ok(supportsFast(reservedBits({ fast: true })));
  assert.ok(supportsExtensions(reservedBits({ extensions: true })));
  assert.ok(supportsDht(reservedBits({ dht: true })));
});

Deno.test("encodeHandshake() and decodeHandshake() round-trip 68 bytes", () => {
  const bytes = encodeHandshake(HANDSHAKE);
  assert.equal(bytes.length, 68);
  assert.deepEqual(bytes.subarray(0, 20), PROTOCOL);
  assert.deepEqual(bytes.subarray(20, 28), HANDSHAKE.reserved);
  assert.deepEqual(bytes.subarray(28, 48), HANDSHAKE.infoHash);
  assert.deepEqual(bytes.subarray(48, 68), HANDSHAKE.peerId);
  const decoded = decodeHandshake(bytes);
  assert.deepEqual(decoded, HANDSHAKE);
  bytes.fill(0);
  assert.deepEqual(decoded, HANDSHAKE, "decoded fields are copies");
});

Deno.test("encodeHandshake() rejects fields of the wrong length", () => {
  assert.throws(() => encodeHandshake({ ...HANDSHAKE, infoHash: new Uint8Array(19) }), RangeError);
  assert.throws(() => encodeHandshake({ ...HANDSHAKE, peerId: new Uint8Array(21) }), RangeError);
  assert.throws(() => encodeHandshake({ ...HANDSHAKE, reserved: new Uint8Array(0) }), RangeError);
});

Deno.test("decodeHandshake() rejects a wrong length, protocol string length or protocol string", () => {
  const good = encodeHandshake(HANDSHAKE);
  assert.throws(() => decodeHandshake(good.subarray(0, 67)), /Invalid handshake: length 67, expected 68/);
  const badLength = good.slice();
  badLength[0] = 18;
  assert.throws(() => decodeHandshake(badLength), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Invalid handshake: protocol string length 18, expected 19");
    return true;
  });
  const badString = good.slice();
  badString[1] = "b".charCodeAt(0);
  assert.throws(
    () => decodeHandshake(badString),
    /Invalid handshake: unknown protocol string: "bitTorrent protocol"/,
  );
});

Deno.test("readHandshake() reads a handshake split across chunks and leaves the following bytes", async () => {
  const bytes = concat([encodeHandshake(HANDSHAKE), encodeMessage({ type: "have_all" })]);
  for (let cut = 1; cut < bytes.length; cut++) {
    const reader = new ByteReader(ReadableStream.from(rechunk(bytes, [cut, cut + 7])));
    assert.deepEqual(await readHandshake(reader, { timeoutMs: 5_000 }), HANDSHAKE, `split at ${cut}`);
    assert.deepEqual(await Array.fromAsync(reader.rest().pipeThrough(new FrameDecoder())), [{
      type: "have_all",
    }]);
  }
});

Deno.test("readHandshake() returns copies of the fields", async () => {
  const bytes = encodeHandshake(HANDSHAKE);
  const handshake = await readHandshake(new ByteReader(ReadableStream.from([bytes])));
  bytes.fill(0);
  assert.deepEqual(handshake, HANDSHAKE);
});

Deno.test("readHandshake() rejects a truncated handshake", async () => {
  const reader = new ByteReader(ReadableStream.from([encodeHandshake(HANDSHAKE).subarray(0, 40)]));
  await assert.rejects(readHandshake(reader, { timeoutMs: 5_000 }), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Unexpected end of stream: wanted 48 bytes, got 20");
    return true;
  });
});

Deno.test("readHandshake() rejects a wrong protocol string without waiting for the rest", async () => {
  // The source delivers 20 wrong bytes and then nothing: the check must not wait for byte 68.
  const source = manualStream();
  source.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost"));
  const reader = new ByteReader(source.stream);
  await assert.rejects(
    readHandshake(reader, { timeoutMs: 60_000 }),
    /protocol string length 71, expected 19/,
  );
  await reader.cancel();
});

Deno.test("readHandshake() times out when the peer sends nothing", async () => {
  const reader = new ByteReader(silentStream());
  await assert.rejects(readHandshake(reader, { timeoutMs: 20 }), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Handshake timed out after 20 ms");
    return true;
  });
  await reader.cancel();
});

Deno.test("readHandshake() rejects with the signal's reason when aborted", async () => {
  const reader = new ByteReader(silentStream());
  const controller = new AbortController();
  const reason = new Error("Shutting down");
  const pending = readHandshake(reader, { signal: controller.signal, timeoutMs: 60_000 });
  controller.abort(reason);
  await assert.rejects(pending, (e: unknown) => e === reason);
  await assert.rejects(readHandshake(reader, { signal: controller.signal }), (e: unknown) => e === reason);
  await reader.cancel();
});

// ---------------------------------------------------------------------------------------------
// byte_reader.ts

Deno.test("ByteReader.readExactly() reads across chunk boundaries", async () => {
  const bytes = bytesOf(50, 4);
  const reader = new ByteReader(ReadableStream.from(rechunk(bytes, [3, 4, 20, 21, 22, 49])));
  assert.deepEqual(await reader.readExactly(2), bytes.subarray(0, 2));
  assert.deepEqual(await reader.readExactly(25), bytes.subarray(2, 27));
  assert.deepEqual(await reader.readExactly(0), new Uint8Array(0));
  assert.deepEqual(await reader.readExactly(23), bytes.subarray(27, 50));
  await assert.rejects(reader.readExactly(1), /Unexpected end of stream: wanted 1 bytes, got 0/);
});

Deno.test("ByteReader.readExactly() throws a ProtocolError on end of stream before n bytes", async () => {
  const reader = new ByteReader(ReadableStream.from([new Uint8Array(3), new Uint8Array(2)]));
  await assert.rejects(reader.readExactly(6), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.message, "Unexpected end of stream: wanted 6 bytes, got 5");
    return true;
  });
});

Deno.test("ByteReader.peek() does not consume", async () => {
  const reader = new ByteReader(ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])]));
  assert.deepEqual(await reader.peek(1), new Uint8Array([1]));
  assert.deepEqual(await reader.peek(3), new Uint8Array([1, 2, 3]));
  assert.equal(reader.buffered, 5);
  assert.deepEqual(await reader.readExactly(4), new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(await reader.peek(1), new Uint8Array([5]));
  assert.deepEqual(await reader.readExactly(1), new Uint8Array([5]));
});

Deno.test("ByteReader.rest() yields the buffered leftovers first, then the rest of the source", async () => {
  const source = ReadableStream.from([
    new Uint8Array([1, 2, 3]),
    new Uint8Array([4, 5]),
    new Uint8Array([6]),
  ]);
  const reader = new ByteReader(source);
  assert.deepEqual(await reader.peek(4), new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(await reader.readExactly(2), new Uint8Array([1, 2]));
  const rest = await Array.fromAsync(reader.rest());
  assert.deepEqual(rest, [new Uint8Array([3, 4]), new Uint8Array([5]), new Uint8Array([6])]);
  assert.equal(source.locked, false, "the source's lock is released at its end");
});

Deno.test("ByteReader is unusable after rest()", async () => {
  const reader = new ByteReader(ReadableStream.from([new Uint8Array([1])]));
  const rest = reader.rest();
  await assert.rejects(reader.readExactly(1), /unusable after rest/);
  await assert.rejects(reader.peek(1), TypeError);
  assert.throws(() => reader.rest(), TypeError);
  assert.deepEqual(await Array.fromAsync(rest), [new Uint8Array([1])]);
});

Deno.test("ByteReader refuses a second read while one is in progress", async () => {
  const source = manualStream();
  const reader = new ByteReader(source.stream);
  const first = reader.readExactly(2);
  await assert.rejects(reader.readExactly(1), /already has a read in progress/);
  source.push(new Uint8Array([7, 8]));
  assert.deepEqual(await first, new Uint8Array([7, 8]));
  await reader.cancel();
});

Deno.test("ByteReader keeps bytes that arrive after an aborted read", async () => {
  const source = manualStream();
  const reader = new ByteReader(source.stream);
  const controller = new AbortController();
  const aborted = reader.readExactly(2, controller.signal);
  controller.abort(new Error("Stop waiting"));
  await assert.rejects(aborted, /Stop waiting/);
  source.push(new Uint8Array([1, 2, 3]));
  source.end();
  assert.deepEqual(await reader.readExactly(3), new Uint8Array([1, 2, 3]));
});

Deno.test("ByteReader.rest() delivers a chunk whose read was pending when a read was aborted", async () => {
  const source = manualStream();
  const reader = new ByteReader(source.stream);
  const controller = new AbortController();
  const aborted = reader.peek(1, controller.signal);
  controller.abort(new Error("Stop"));
  await assert.rejects(aborted, /Stop/);
  const rest = reader.rest();
  source.push(new Uint8Array([9]));
  source.end();
  assert.deepEqual(await Array.fromAsync(rest), [new Uint8Array([9])]);
});

Deno.test("ByteReader.cancel() cancels the source with the reason", async () => {
  let cancelled: unknown;
  const source = new ReadableStream<Uint8Array>({
    pull: () => new Promise<void>(() => {}),
    cancel: (reason) => void (cancelled = reason),
  });
  const reader = new ByteReader(source);
  await reader.cancel("bye");
  assert.equal(cancelled, "bye");
  await assert.rejects(reader.readExactly(1), TypeError);
});

Deno.test("Cancelling the stream from ByteReader.rest() cancels the source", async () => {
  let cancelled: unknown;
  const source = new ReadableStream<Uint8Array>({
    pull: () => new Promise<void>(() => {}),
    cancel: (reason) => void (cancelled = reason),
  });
  await new ByteReader(source).rest().cancel("done");
  assert.equal(cancelled, "done");
});
