import assert from "node:assert/strict";
import { Bitfield } from "../../lib/bitfield.ts";
import { PluginError } from "../../lib/errors.ts";
import {
  BLOCK_SIZE,
  type BlockRef,
  type CompletedPiece,
  type PickerPeer,
  PiecePicker,
  type PiecePickerOptions,
} from "../../lib/peer/piece_picker.ts";
import { PeerConnection, type PeerHost } from "../../lib/peer/connection.ts";
import type { Duplex, PeerView, PieceSelector } from "../../lib/types.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Lowest wanted piece first: predictable, so tests can name the pieces they expect. */
const lowest: PieceSelector = {
  name: "lowest",
  *select(view, peer, max) {
    let n = 0;
    for (let i = 0; i < view.pieceCount && n < max; i++) {
      if (view.wants(i) && peer.has(i)) {
        yield i;
        n++;
      }
    }
  },
};

/** Highest wanted piece first. */
const highest: PieceSelector = {
  name: "highest",
  *select(view, peer, max) {
    let n = 0;
    for (let i = view.pieceCount - 1; i >= 0 && n < max; i--) {
      if (view.wants(i) && peer.has(i)) {
        yield i;
        n++;
      }
    }
  },
};

function makePicker(
  geometry: { pieceCount: number; pieceLength: number; totalLength: number },
  extra: Partial<PiecePickerOptions> = {},
): { picker: PiecePicker; have: Bitfield } {
  const have = extra.have ?? new Bitfield(geometry.pieceCount);
  const picker = new PiecePicker({ ...geometry, have, selector: lowest, ...extra });
  return { picker, have };
}

function seedPeer(picker: PiecePicker, id: string): PickerPeer {
  picker.peerHasAll();
  return { id, downloadRate: 0, seed: true, has: () => true };
}

function partialPeer(picker: PiecePicker, id: string, pieces: number[], pieceCount: number): PickerPeer {
  const bits = new Bitfield(pieceCount);
  for (const i of pieces) bits.set(i);
  picker.addBitfield(bits);
  return { id, downloadRate: 0, seed: false, has: (i) => bits.get(i) };
}

function dataFor(block: BlockRef, fill = block.piece + 1): Uint8Array {
  return new Uint8Array(block.length).fill(fill);
}

/** Delivers blocks in order and returns the completed piece, if one completed. */
function deliver(picker: PiecePicker, peerId: string, blocks: BlockRef[]): CompletedPiece | undefined {
  let completed: CompletedPiece | undefined;
  for (const b of blocks) {
    const outcome = picker.blockReceived(peerId, b.piece, b.begin, dataFor(b));
    assert.ok(outcome.accepted, `block ${b.piece}:${b.begin} was refused`);
    completed = outcome.completed ?? completed;
  }
  return completed;
}

const label = (blocks: BlockRef[]) => blocks.map((b) => `${b.piece}:${b.begin}+${b.length}`);

// ---------------------------------------------------------------------------------------------
// Geometry

Deno.test("PiecePicker gives the last short piece a short last block", () => {
  const { picker } = makePicker({ pieceCount: 3, pieceLength: 32768, totalLength: 2 * 32768 + 20000 });
  assert.equal(picker.pieceSize(0), 32768);
  assert.equal(picker.pieceSize(2), 20000);
  const peer = seedPeer(picker, "a");
  assert.deepEqual(label(picker.pick(peer, 100)), [
    "0:0+16384",
    "0:16384+16384",
    "1:0+16384",
    "1:16384+16384",
    "2:0+16384",
    "2:16384+3616",
  ]);
});

Deno.test("PiecePicker handles a last piece shorter than one block", () => {
  const { picker, have } = makePicker({ pieceCount: 2, pieceLength: 65536, totalLength: 65536 + 100 });
  const peer = partialPeer(picker, "a", [1], 2);
  const blocks = picker.pick(peer, 10);
  assert.deepEqual(label(blocks), ["1:0+100"]);
  const done = deliver(picker, "a", blocks);
  assert.ok(done);
  assert.equal(done.data.length, 100);
  picker.pieceVerified(done);
  assert.ok(have.get(1));
});

Deno.test("PiecePicker assembles a piece from blocks arriving out of order", () => {
  const { picker } = makePicker({ pieceCount: 1, pieceLength: 40000, totalLength: 40000 });
  const peer = seedPeer(picker, "a");
  const blocks = picker.pick(peer, 10);
  assert.equal(blocks.length, 3);
  let done: CompletedPiece | undefined;
  for (const b of [blocks[2]!, blocks[0]!, blocks[1]!]) {
    const data = new Uint8Array(b.length).map((_, k) => (b.begin + k) & 0xff);
    const outcome = picker.blockReceived("a", b.piece, b.begin, data);
    assert.ok(outcome.accepted);
    assert.ok(outcome.wasRequested);
    done = outcome.completed ?? done;
  }
  assert.ok(done);
  assert.deepEqual(done.contributors, ["a", "a", "a"]);
  for (let k = 0; k < 40000; k++) assert.equal(done.data[k], k & 0xff);
});

Deno.test("PiecePicker refuses blocks of the wrong length, offset or piece", () => {
  const { picker } = makePicker({ pieceCount: 2, pieceLength: 32768, totalLength: 65536 });
  const peer = seedPeer(picker, "a");
  picker.pick(peer, 2); // both blocks of piece 0
  const refused = [
    picker.blockReceived("a", 0, 0, new Uint8Array(100)), // short
    picker.blockReceived("a", 0, 1, new Uint8Array(BLOCK_SIZE)), // unaligned
    picker.blockReceived("a", 0, 32768, new Uint8Array(BLOCK_SIZE)), // past the end
    picker.blockReceived("a", 1, 0, new Uint8Array(BLOCK_SIZE)), // piece not started
    picker.blockReceived("a", 7, 0, new Uint8Array(BLOCK_SIZE)), // no such piece
  ];
  for (const outcome of refused) assert.equal(outcome.accepted, false);
  // The short block was requested from "a": it is given back, and can be picked again.
  assert.equal(picker.isRequested("a", 0, 0), false);
  assert.deepEqual(label(picker.pick(peer, 1)), ["0:0+16384"]);
});

// ---------------------------------------------------------------------------------------------
// Order

Deno.test("PiecePicker finishes partial pieces before starting new ones", () => {
  // The selector prefers high pieces, but once piece 0 is started its blocks come first.
  const { picker } = makePicker({ pieceCount: 4, pieceLength: 65536, totalLength: 4 * 65536 }, {
    selector: highest,
  });
  const a = partialPeer(picker, "a", [0], 4);
  const b = seedPeer(picker, "b");
  assert.deepEqual(label(picker.pick(a, 1)), ["0:0+16384"]);
  assert.equal(picker.partialCount, 1);
  assert.deepEqual(label(picker.pick(b, 3)), ["0:16384+16384", "0:32768+16384", "0:49152+16384"]);
  assert.equal(picker.partialCount, 1);
  // Piece 0 has nothing left to request: b moves on to what the selector wants.
  assert.deepEqual(label(picker.pick(b, 1)), ["3:0+16384"]);
});

Deno.test("PiecePicker does not hand out duplicates before endgame", () => {
  const { picker } = makePicker({ pieceCount: 2, pieceLength: 32768, totalLength: 65536 });
  const a = seedPeer(picker, "a");
  const b = partialPeer(picker, "b", [0], 2);
  assert.equal(picker.pick(a, 2).length, 2); // all of piece 0; piece 1 is not started
  assert.deepEqual(picker.pick(b, 10), []);
});

Deno.test("PiecePicker never picks for a peer that lacks the piece, nor when max is 0", () => {
  const { picker } = makePicker({ pieceCount: 3, pieceLength: 32768, totalLength: 3 * 32768 });
  const a = partialPeer(picker, "a", [], 3);
  assert.deepEqual(picker.pick(a, 10), []);
  const b = partialPeer(picker, "b", [2], 3);
  assert.deepEqual(picker.pick(b, 0), []);
  assert.deepEqual(picker.pick(b, -5), []);
  assert.deepEqual(label(picker.pick(b, 10)), ["2:0+16384", "2:16384+16384"]);
});

Deno.test("PiecePicker tracks availability from bitfields, haves and seeds", () => {
  const { picker } = makePicker({ pieceCount: 3, pieceLength: 32768, totalLength: 3 * 32768 });
  const bits = new Bitfield(3);
  bits.set(1);
  picker.addBitfield(bits);
  picker.addHave(2);
  picker.addHave(1);
  picker.peerHasAll();
  assert.deepEqual([0, 1, 2].map((i) => picker.view.availability(i)), [1, 3, 2]);
  picker.removeBitfield(bits);
  picker.peerLostAll();
  assert.deepEqual([0, 1, 2].map((i) => picker.view.availability(i)), [0, 1, 1]);
});

// ---------------------------------------------------------------------------------------------
// Release

Deno.test("release() makes a requested block available to other peers", () => {
  const { picker } = makePicker({ pieceCount: 1, pieceLength: 32768, totalLength: 32768 });
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  const [first] = picker.pick(a, 1);
  assert.ok(first);
  assert.ok(picker.isRequested("a", 0, 0));
  picker.release("a", 0, 0);
  assert.equal(picker.isRequested("a", 0, 0), false);
  assert.equal(picker.partialCount, 0, "a piece with nothing requested or received stays partial");
  assert.deepEqual(label(picker.pick(b, 5)), ["0:0+16384", "0:16384+16384"]);
});

Deno.test("release() of one block keeps the blocks already received", () => {
  const { picker } = makePicker({ pieceCount: 1, pieceLength: 49152, totalLength: 49152 });
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  const blocks = picker.pick(a, 3);
  assert.equal(deliver(picker, "a", [blocks[0]!]), undefined);
  picker.release("a", 0, 16384);
  picker.release("a", 0, 32768);
  assert.equal(picker.partialCount, 1);
  assert.ok(picker.view.wants(0));
  const again = picker.pick(b, 5);
  assert.deepEqual(label(again), ["0:16384+16384", "0:32768+16384"]);
  const done = deliver(picker, "b", again);
  assert.ok(done);
  assert.deepEqual(done.contributors, ["a", "b", "b"]);
});

Deno.test("release() by a peer that never requested the block changes nothing", () => {
  const { picker } = makePicker({ pieceCount: 1, pieceLength: 32768, totalLength: 32768 });
  const a = seedPeer(picker, "a");
  picker.pick(a, 2);
  picker.release("b", 0, 0);
  picker.release("a", 5, 0);
  picker.release("a", 0, 3);
  assert.ok(picker.isRequested("a", 0, 0));
  assert.ok(picker.isRequested("a", 0, 16384));
});

// ---------------------------------------------------------------------------------------------
// Endgame

Deno.test("PiecePicker endgame hands a second peer duplicates, never a third", () => {
  const { picker } = makePicker({ pieceCount: 2, pieceLength: 32768, totalLength: 32768 + 20000 });
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  const c = seedPeer(picker, "c");
  const all = picker.pick(a, 10);
  assert.equal(all.length, 4);
  assert.deepEqual(picker.pick(a, 10), [], "a peer is never given a block it already has in flight");
  const dup = picker.pick(b, 10);
  assert.deepEqual(label(dup), label(all));
  for (const block of all) {
    assert.ok(picker.isRequested("a", block.piece, block.begin));
    assert.ok(picker.isRequested("b", block.piece, block.begin));
  }
  assert.deepEqual(picker.pick(c, 10), [], "a third requester was given a block");
});

Deno.test("blockReceived() in endgame names the other requester to cancel", () => {
  const { picker, have } = makePicker({ pieceCount: 1, pieceLength: 32768, totalLength: 32768 });
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  const blocks = picker.pick(a, 2);
  picker.pick(b, 2);
  const first = picker.blockReceived("b", 0, 0, dataFor(blocks[0]!));
  assert.ok(first.accepted);
  assert.deepEqual(first.cancel, ["a"]);
  assert.equal(picker.isRequested("a", 0, 0), false);
  // The loser's copy arriving late is not stored again.
  const late = picker.blockReceived("a", 0, 0, dataFor(blocks[0]!, 99));
  assert.equal(late.accepted, false);
  const second = picker.blockReceived("a", 0, 16384, dataFor(blocks[1]!));
  assert.deepEqual(second.cancel, ["b"]);
  assert.ok(second.completed);
  assert.deepEqual(second.completed.contributors, ["b", "a"]);
  assert.ok(second.completed.data.every((x) => x === 1), "the late copy overwrote the first");
  picker.pieceVerified(second.completed);
  assert.ok(have.get(0));
  assert.ok(picker.complete);
  assert.deepEqual(picker.pick(a, 5), []);
});

Deno.test("PiecePicker endgame lets a third peer in once a requester releases", () => {
  const { picker } = makePicker({ pieceCount: 1, pieceLength: 16384, totalLength: 16384 });
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  const c = seedPeer(picker, "c");
  picker.pick(a, 1);
  picker.pick(b, 1);
  assert.deepEqual(picker.pick(c, 1), []);
  picker.release("a", 0, 0);
  assert.deepEqual(label(picker.pick(c, 1)), ["0:0+16384"]);
});

// ---------------------------------------------------------------------------------------------
// Memory

Deno.test("maxBufferedBytes bounds the number of partial pieces", () => {
  const pieceLength = 32768;
  const { picker, have } = makePicker({ pieceCount: 10, pieceLength, totalLength: 10 * pieceLength }, {
    maxBufferedBytes: 3 * pieceLength,
  });
  const peers = [...Array(10).keys()].map((i) => partialPeer(picker, `p${i}`, [i], 10));
  const firstBlocks = peers.map((p) => picker.pick(p, 1));
  assert.deepEqual(firstBlocks.map((blocks) => blocks.length), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(picker.partialCount, 3);
  // Receiving data allocates buffers, never more than the cap.
  for (let i = 0; i < 3; i++) deliver(picker, `p${i}`, firstBlocks[i]!);
  assert.ok(picker.bufferedBytes <= 3 * pieceLength, `${picker.bufferedBytes} bytes buffered`);
  // Finishing a piece frees a slot for a new one.
  const rest = picker.pick(peers[0]!, 5);
  const done = deliver(picker, "p0", rest);
  assert.ok(done);
  picker.pieceVerified(done);
  assert.ok(have.get(0));
  assert.equal(picker.partialCount, 2);
  assert.equal(picker.pick(peers[3]!, 1).length, 1);
  assert.equal(picker.pick(peers[4]!, 1).length, 0);
});

Deno.test("maxBufferedBytes below two pieces still allows two partial pieces", () => {
  const { picker } = makePicker({ pieceCount: 4, pieceLength: 65536, totalLength: 4 * 65536 }, {
    maxBufferedBytes: 1,
  });
  const peers = [0, 1, 2].map((i) => partialPeer(picker, `p${i}`, [i], 4));
  assert.deepEqual(peers.map((p) => picker.pick(p, 1).length), [1, 1, 0]);
});

Deno.test("bufferedBytes returns to zero once every piece is verified", () => {
  const { picker } = makePicker({ pieceCount: 3, pieceLength: 32768, totalLength: 3 * 32768 - 5 });
  const a = seedPeer(picker, "a");
  for (let round = 0; round < 3; round++) {
    const blocks = picker.pick(a, 2);
    const done = deliver(picker, "a", blocks);
    assert.ok(done);
    assert.ok(picker.bufferedBytes > 0);
    picker.pieceVerified(done);
  }
  assert.ok(picker.complete);
  assert.equal(picker.bufferedBytes, 0);
});

// ---------------------------------------------------------------------------------------------
// Misbehaving selectors

function faultyPicker(selector: PieceSelector, pieceCount = 4) {
  const faults: PluginError[] = [];
  const have = new Bitfield(pieceCount);
  have.set(1);
  const picker = new PiecePicker({
    pieceCount,
    pieceLength: 32768,
    totalLength: pieceCount * 32768,
    have,
    selector,
    onSelectorFault: (error) => faults.push(error),
  });
  const peer = partialPeer(picker, "a", [0, 1, 2], pieceCount); // lacks piece 3
  return { picker, faults, peer };
}

function assertFaultsName(faults: PluginError[], plugin: string, count: number): void {
  assert.equal(faults.length, count, faults.map((f) => f.message).join("; "));
  for (const fault of faults) {
    assert.ok(fault instanceof PluginError);
    assert.equal(fault.plugin, plugin);
    assert.match(fault.message, new RegExp(`'${plugin}'`));
  }
}

Deno.test("PiecePicker contains a selector returning out-of-range, unwanted and unavailable pieces", () => {
  const bad: PieceSelector = {
    name: "liar",
    // -1, 99, 2.5, NaN: out of range; 1: already have; 3: the peer lacks it; then a valid one.
    select: () => [-1, 99, 2.5, NaN, 1, 3, 0],
  };
  const { picker, faults, peer } = faultyPicker(bad);
  const blocks = picker.pick(peer, 2);
  assert.deepEqual(label(blocks), ["0:0+16384", "0:16384+16384"]);
  assertFaultsName(faults, "liar", 6);
});

Deno.test("PiecePicker contains a selector returning the same piece twice", () => {
  const bad: PieceSelector = { name: "stutter", select: () => [2, 2, 0] };
  const { picker, faults, peer } = faultyPicker(bad);
  const blocks = picker.pick(peer, 10);
  assert.deepEqual(label(blocks), ["2:0+16384", "2:16384+16384", "0:0+16384", "0:16384+16384"]);
  // The repeated 2 is a fault; so is the whole stale answer when the picker asks again for more.
  assert.ok(faults.length >= 1);
  assertFaultsName(faults, "stutter", faults.length);
  assert.match(faults[0]!.message, /piece 2\b/);
});

Deno.test("PiecePicker contains a selector that throws, and keeps working", () => {
  let calls = 0;
  const flaky: PieceSelector = {
    name: "flaky",
    select(view, peer, max) {
      calls++;
      if (calls === 2) throw new Error("boom");
      return lowest.select(view, peer, max);
    },
  };
  const { picker, faults, peer } = faultyPicker(flaky);
  assert.deepEqual(label(picker.pick(peer, 2)), ["0:0+16384", "0:16384+16384"]);
  assert.deepEqual(picker.pick(peer, 2), []);
  assertFaultsName(faults, "flaky", 1);
  assert.match(faults[0]!.message, /boom/);
  assert.ok(faults[0]!.cause instanceof Error);
  assert.deepEqual(label(picker.pick(peer, 2)), ["2:0+16384", "2:16384+16384"]);
});

Deno.test("PiecePicker contains a selector that throws from inside its iterator", () => {
  const broken: PieceSelector = {
    name: "broken-generator",
    *select() {
      yield 0;
      throw new TypeError("iterator failed");
    },
  };
  const { picker, faults, peer } = faultyPicker(broken);
  // Piece 0 was taken before the failure; its blocks are kept.
  assert.deepEqual(label(picker.pick(peer, 4)), ["0:0+16384", "0:16384+16384"]);
  assertFaultsName(faults, "broken-generator", 1);
});

Deno.test("PiecePicker contains a selector that returns something not iterable", () => {
  const broken = { name: "not-iterable", select: () => 42 } as unknown as PieceSelector;
  const { picker, faults, peer } = faultyPicker(broken);
  assert.deepEqual(picker.pick(peer, 4), []);
  assertFaultsName(faults, "not-iterable", 1);
});

Deno.test("PiecePicker stops reading a selector that yields unusable pieces forever", () => {
  const endless: PieceSelector = {
    name: "endless",
    *select() {
      for (let k = 0; k < 1_000_000; k++) yield -1;
    },
  };
  const { picker, faults, peer } = faultyPicker(endless);
  assert.deepEqual(picker.pick(peer, 4), []);
  assert.ok(faults.length >= 1 && faults.length <= 100, `${faults.length} faults reported for one pick`);
  for (const f of faults) assert.equal(f.plugin, "endless");
});

// ---------------------------------------------------------------------------------------------
// Hash failures

Deno.test("a selector is given a frozen read-only view of the peer, never the connection", () => {
  const clock = 10_000;
  const host: PeerHost = {
    pieceCount: 4,
    have: new Bitfield(4),
    pieceSize: () => 16384,
    isInteresting: () => false,
    pick: () => [],
    release() {},
    block() {},
    availabilityChanged() {},
    readBlock: (_piece, _begin, length) => Promise.resolve(new Uint8Array(length)),
    interestChanged() {},
    closed() {},
    now: () => clock,
  };
  const duplex: Duplex = { readable: new ReadableStream(), writable: new WritableStream(), close() {} };
  const connection = new PeerConnection(duplex, host, {
    id: "10.0.0.1:6881",
    peerId: new Uint8Array(20),
    fast: true,
    extensions: false,
  });
  const seen: PeerView[] = [];
  const recording: PieceSelector = {
    name: "recording",
    select(view, peer, max) {
      seen.push(peer);
      return lowest.select(view, peer, max);
    },
  };
  const { picker } = makePicker({ pieceCount: 4, pieceLength: 16384, totalLength: 4 * 16384 }, {
    selector: recording,
  });
  connection.bitfield.set(1);
  picker.addBitfield(connection.bitfield);
  assert.deepEqual(label(picker.pick(connection, 1)), ["1:0+16384"]);
  assert.equal(seen.length, 1);
  const view = seen[0]!;
  assert.notEqual(view, connection as PeerView, "the selector got the live connection");
  assert.ok(!("close" in view), "the view offers close()");
  assert.ok(!("bitfield" in view) && !("setChoking" in view), "the view exposes connection state");
  assert.ok(Object.isFrozen(view));
  assert.throws(() => {
    (view as { id: string }).id = "10.0.0.2:6881";
  }, TypeError);
  // It reads the live peer: a piece announced later and a rate that changes show through.
  assert.equal(view.id, "10.0.0.1:6881");
  assert.equal(view.has(2), false);
  connection.bitfield.set(2);
  picker.addHave(2);
  assert.equal(view.has(2), true);
  assert.equal(view.downloadRate, 0);
  connection.down.add(5 * 16384, clock);
  assert.ok(view.downloadRate > 0);
  assert.equal(view.downloadRate, connection.downloadRate);
  // One view per peer, made once: the next pick hands the selector the same object.
  assert.deepEqual(label(picker.pick(connection, 1)), ["2:0+16384"]);
  assert.equal(seen.length, 2);
  assert.equal(seen[1], view);
});

Deno.test("pieceFailed() makes the piece downloadable again", () => {
  const { picker, have } = makePicker({ pieceCount: 2, pieceLength: 32768, totalLength: 65536 });
  const a = partialPeer(picker, "a", [1], 2);
  const b = partialPeer(picker, "b", [1], 2);
  const done = deliver(picker, "a", picker.pick(a, 5));
  assert.ok(done);
  assert.equal(picker.view.wants(1), false, "a piece being hashed is still wanted");
  assert.deepEqual(picker.pick(b, 5), [], "a piece being hashed was picked again");
  picker.pieceFailed(done);
  assert.equal(have.get(1), false);
  assert.ok(picker.view.wants(1));
  const again = picker.pick(b, 5);
  assert.deepEqual(label(again), ["1:0+16384", "1:16384+16384"]);
  const redone = deliver(picker, "b", again);
  assert.ok(redone);
  assert.deepEqual(redone.contributors, ["b", "b"]);
  picker.pieceVerified(redone);
  assert.ok(have.get(1));
  assert.equal(picker.bufferedBytes, 0);
});

Deno.test("PiecePicker never picks pieces it already has", () => {
  const have = new Bitfield(3);
  have.set(0);
  have.set(2);
  const { picker } = makePicker({ pieceCount: 3, pieceLength: 32768, totalLength: 3 * 32768 }, { have });
  const a = seedPeer(picker, "a");
  assert.deepEqual(label(picker.pick(a, 10)), ["1:0+16384", "1:16384+16384"]);
  assert.equal(picker.view.wants(0), false);
  assert.equal(picker.view.completedCount, 2);
});

// ---------------------------------------------------------------------------------------------
// File priorities: wanted and high-priority pieces

function bits(size: number, set: number[]): Bitfield {
  const b = new Bitfield(size);
  for (const i of set) b.set(i);
  return b;
}

Deno.test("setPriorities() keeps unwanted pieces out of wants() and pick(), and complete means every wanted piece", () => {
  const { picker, have } = makePicker({ pieceCount: 4, pieceLength: 16384, totalLength: 4 * 16384 });
  picker.setPriorities(bits(4, [1, 3]), null);
  assert.deepEqual([0, 1, 2, 3].map((i) => picker.view.wants(i)), [false, true, false, true]);
  assert.equal(picker.missingCount, 2);
  const a = seedPeer(picker, "a");
  const blocks = picker.pick(a, 10);
  assert.deepEqual(label(blocks), ["1:0+16384", "3:0+16384"]);
  for (const b of blocks) {
    const done = deliver(picker, "a", [b]);
    assert.ok(done);
    picker.pieceVerified(done);
  }
  assert.equal(picker.missingCount, 0);
  assert.ok(picker.complete, "every wanted piece is verified");
  assert.equal(have.count(), 2);
  assert.deepEqual(picker.pick(a, 10), [], "nothing more is requested");
  // Wanting everything again reopens the rest.
  picker.setPriorities(null, null);
  assert.equal(picker.complete, false);
  assert.deepEqual(label(picker.pick(a, 10)), ["0:0+16384", "2:0+16384"]);
});

Deno.test("setPriorities() starts high-priority pieces before the selector's own order", () => {
  const { picker } = makePicker({ pieceCount: 6, pieceLength: 16384, totalLength: 6 * 16384 });
  picker.setPriorities(null, bits(6, [4, 5]));
  const a = seedPeer(picker, "a");
  // "lowest" would start with piece 0: the high pieces come first, then the others in order.
  assert.deepEqual(label(picker.pick(a, 3)), ["4:0+16384", "5:0+16384", "0:0+16384"]);
});

Deno.test("endgame counts only wanted pieces", () => {
  const { picker } = makePicker({ pieceCount: 4, pieceLength: 16384, totalLength: 4 * 16384 });
  picker.setPriorities(bits(4, [2]), null);
  const a = seedPeer(picker, "a");
  const b = seedPeer(picker, "b");
  assert.deepEqual(label(picker.pick(a, 5)), ["2:0+16384"]);
  // Piece 2 is the only wanted one and it is in flight: b may duplicate it (endgame).
  assert.deepEqual(label(picker.pick(b, 5)), ["2:0+16384"]);
});
