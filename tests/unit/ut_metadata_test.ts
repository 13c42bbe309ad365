import assert from "node:assert/strict";
import { join } from "node:path";
import { decode, encode } from "../../lib/bencode.ts";
import { createTorrent } from "../../lib/create.ts";
import { ProtocolError } from "../../lib/errors.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  METADATA_PIECE_SIZE,
  metadataPieceCount,
  metadataPieceLength,
  utMetadataServer,
} from "../../lib/peer/ut_metadata.ts";
import type { ExtensionPeer } from "../../lib/types.ts";
import { BaseSession } from "../../lib/session.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { FakePeer } from "../_fake_peer.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** An ExtensionPeer that records what is sent and whether it was closed. */
function fakeView(id = "127.0.0.1:1"): ExtensionPeer & { sent: Uint8Array[]; closedWith: string | null } {
  const view = {
    id,
    handshake: new Map<string, unknown>(),
    supported: true,
    sent: [] as Uint8Array[],
    closedWith: null as string | null,
    send(payload: Uint8Array) {
      view.sent.push(payload.slice());
      return true;
    },
    close(reason: string) {
      view.closedWith = reason;
    },
  };
  return view;
}

Deno.test("metadata messages round-trip through encode and decode", () => {
  assert.deepEqual(decodeMetadataMessage(encodeMetadataMessage({ type: "request", piece: 5 })), {
    type: "request",
    piece: 5,
  });
  assert.deepEqual(decodeMetadataMessage(encodeMetadataMessage({ type: "reject", piece: 0 })), {
    type: "reject",
    piece: 0,
  });
  const data = new Uint8Array(METADATA_PIECE_SIZE).fill(7);
  const m = decodeMetadataMessage(encodeMetadataMessage({ type: "data", piece: 2, totalSize: 40000, data }));
  assert.equal(m.type, "data");
  if (m.type !== "data") return;
  assert.equal(m.piece, 2);
  assert.equal(m.totalSize, 40000);
  assert.deepEqual(m.data, data);
});

Deno.test("decodeMetadataMessage() rejects malformed messages", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["not bencode", bytes("xyz"), /Malformed/],
    ["a list", bytes("li0ee"), /not a dictionary/],
    ["no msg_type", bytes("d5:piecei0ee"), /msg_type/],
    ["string msg_type", bytes("d8:msg_type1:0e"), /msg_type/],
    ["negative piece", bytes("d8:msg_typei0e5:piecei-1ee"), /piece/],
    ["no piece", bytes("d8:msg_typei2ee"), /piece/],
    ["bytes after a request", bytes("d8:msg_typei0e5:piecei0eeXX"), /after a request/],
    ["data without total_size", bytes("d8:msg_typei1e5:piecei0eeXX"), /total_size/],
    ["negative total_size", bytes("d8:msg_typei1e5:piecei0e10:total_sizei-5eeXX"), /total_size/],
    ["a header over 1 KiB", bytes(`d1:x${1100}:${"a".repeat(1100)}8:msg_typei0e5:piecei0ee`), /Malformed/],
  ];
  for (const [what, payload, message] of cases) {
    assert.throws(() => decodeMetadataMessage(payload), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

Deno.test("decodeMetadataMessage() refuses a data piece over 16 KiB (a 17 KiB piece)", () => {
  const payload = encodeMetadataMessage({
    type: "data",
    piece: 0,
    totalSize: 20 * 1024,
    data: new Uint8Array(17 * 1024),
  });
  assert.throws(() => decodeMetadataMessage(payload), /17408 bytes exceeds the 16384-byte maximum/);
});

Deno.test("decodeMetadataMessage() passes unknown msg_types on, to be ignored", () => {
  assert.deepEqual(decodeMetadataMessage(bytes("d8:msg_typei7e5:piecei0ee")), {
    type: "unknown",
    msgType: 7,
  });
});

Deno.test("metadataPieceCount() and metadataPieceLength() split in 16 KiB pieces", () => {
  assert.equal(metadataPieceCount(1), 1);
  assert.equal(metadataPieceCount(16384), 1);
  assert.equal(metadataPieceCount(16385), 2);
  assert.equal(metadataPieceLength(16385, 0), 16384);
  assert.equal(metadataPieceLength(16385, 1), 1);
});

Deno.test("utMetadataServer() advertises metadata_size and serves every piece with total_size", () => {
  const info = new Uint8Array(40_000).map((_, i) => i % 251);
  const server = utMetadataServer(info);
  assert.equal(server.name, "ut_metadata");
  assert.deepEqual(server.handshakeFields?.(), { metadata_size: 40_000 });
  const view = fakeView();
  for (const piece of [0, 1, 2]) server.onMessage(view, encodeMetadataMessage({ type: "request", piece }));
  const assembled = new Uint8Array(40_000);
  view.sent.forEach((payload, piece) => {
    const m = decodeMetadataMessage(payload);
    assert.equal(m.type, "data");
    if (m.type !== "data") return;
    assert.equal(m.piece, piece);
    assert.equal(m.totalSize, 40_000);
    assert.equal(m.data.length, metadataPieceLength(40_000, piece));
    assembled.set(m.data, piece * METADATA_PIECE_SIZE);
  });
  assert.deepEqual(assembled, info);
  assert.equal(view.closedWith, null);
});

Deno.test("utMetadataServer() rejects pieces past the end and ignores data and reject messages", () => {
  const server = utMetadataServer(new Uint8Array(100));
  const view = fakeView();
  server.onMessage(view, encodeMetadataMessage({ type: "request", piece: 1 }));
  server.onMessage(view, encodeMetadataMessage({ type: "reject", piece: 0 }));
  server.onMessage(
    view,
    encodeMetadataMessage({ type: "data", piece: 0, totalSize: 1, data: new Uint8Array(1) }),
  );
  server.onMessage(view, bytes("d8:msg_typei9ee"));
  assert.equal(view.sent.length, 1);
  assert.deepEqual(decodeMetadataMessage(view.sent[0]!), { type: "reject", piece: 1 });
});

Deno.test("utMetadataServer() rejects a flood of requests, then drops the peer", () => {
  let now = 0;
  const server = utMetadataServer(new Uint8Array(100), { maxRequestsPerWindow: 3, now: () => now });
  const view = fakeView();
  const request = encodeMetadataMessage({ type: "request", piece: 0 });
  for (let i = 0; i < 3; i++) server.onMessage(view, request);
  assert.ok(view.sent.every((p) => decodeMetadataMessage(p).type === "data"));
  server.onMessage(view, request);
  assert.equal(decodeMetadataMessage(view.sent.at(-1)!).type, "reject");
  // A new window starts afresh.
  now = 60_000;
  server.onMessage(view, request);
  assert.equal(decodeMetadataMessage(view.sent.at(-1)!).type, "data");
  for (let i = 0; i < 12 && view.closedWith === null; i++) server.onMessage(view, request);
  assert.match(view.closedWith ?? "", /metadata requests within/);
  // Another peer is not affected.
  const other = fakeView("127.0.0.1:2");
  server.onMessage(other, request);
  assert.equal(decodeMetadataMessage(other.sent[0]!).type, "data");
});

Deno.test("utMetadataServer() drops a peer whose message is malformed (the handler throws a ProtocolError)", () => {
  const server = utMetadataServer(new Uint8Array(100));
  assert.throws(() => server.onMessage(fakeView(), bytes("i5e")), ProtocolError);
});

/** Connects a fake peer to a seeding session and returns the session's extended handshake. */
async function seedersExtendedHandshake(privateFlag: boolean): Promise<Map<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_ut_metadata_" });
  try {
    await Deno.writeFile(join(dir, "a.bin"), new Uint8Array(50_000).fill(3));
    const created = await createTorrent(join(dir, "a.bin"), {
      pieceLength: 16384,
      private: privateFlag,
      creationDate: null,
    });
    const meta = parseMetainfo(created.torrent);
    assert.equal(meta.private, privateFlag);
    // Plaintext (no encryption plugin), so the fake peer reads the handshake as is.
    await using session = new BaseSession({
      downloadDir: dir,
      bind: "127.0.0.1",
      selector: rarestFirst(),
    });
    await using fake = FakePeer.listen();
    await session.add(meta, { peers: [fake.address] });
    const conn = await fake.accept();
    await conn.readHandshake();
    await conn.sendHandshake(meta.infoHash);
    const m = await conn.waitForMessage((m) => m.type === "extended" && m.id === 0);
    if (m.type !== "extended") throw new Error("unreachable");
    return decode(m.payload) as Map<string, unknown>;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a torrent offers ut_metadata with its metadata_size in its extended handshake", async () => {
  const handshake = await seedersExtendedHandshake(false);
  const m = handshake.get("m") as Map<string, unknown>;
  assert.equal(typeof m.get("ut_metadata"), "number");
  assert.equal(typeof handshake.get("metadata_size"), "number");
});

Deno.test("a private torrent does not offer ut_metadata, as libtorrent does not", async () => {
  const handshake = await seedersExtendedHandshake(true);
  const m = handshake.get("m") as Map<string, unknown>;
  assert.equal(m.get("ut_metadata"), undefined);
  assert.equal(handshake.get("metadata_size"), undefined);
});

Deno.test("encodeMetadataMessage() writes the BEP 9 layout", () => {
  assert.equal(
    new TextDecoder().decode(
      encodeMetadataMessage({ type: "data", piece: 0, totalSize: 3, data: bytes("abc") }),
    ),
    "d8:msg_typei1e5:piecei0e10:total_sizei3eeabc",
  );
  assert.deepEqual(encode({ msg_type: 2, piece: 1 }), encodeMetadataMessage({ type: "reject", piece: 1 }));
});
