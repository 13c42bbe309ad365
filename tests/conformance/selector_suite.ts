/**
 * The conformance suite every {@linkcode PieceSelector} must pass: the shipped ones, and any
 * user-style selector. It checks the contract of `select()` on many seeded random views, and
 * drives a whole simulated download through the core's {@linkcode PiecePicker} with several
 * peers to prove that the selector and the core together never stall, endgame included.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { PluginError } from "../../lib/errors.ts";
import { Bitfield } from "../../lib/bitfield.ts";
import { BLOCK_SIZE, type BlockRef, type PickerPeer, PiecePicker } from "../../lib/peer/piece_picker.ts";
import type { PeerView, PieceSelector, SelectionView } from "../../lib/types.ts";
import { seededRandom } from "../../lib/net/seeded_random.ts";
export { seededRandom };

/** What {@linkcode fakeView} builds a view from. */
export interface FakeViewOptions {
  /** Number of pieces. */
  pieceCount: number;
  /** Pieces we want. @default every piece */
  wants?: (piece: number) => boolean;
  /** Peers having each piece. @default {() => 1} */
  availability?: (piece: number) => number;
  /** Pieces already being downloaded. @default no piece */
  partial?: (piece: number) => boolean;
  /** Pieces we have. @default {0} */
  completedCount?: number;
  /** Seed of the view's random source. @default {1} */
  seed?: number;
}

/**
 * A {@linkcode SelectionView} for tests. Out-of-range pieces are never wanted.
 *
 * @example
 * ```ts
 * import { fakeView } from "./selector_suite.ts";
 * const view = fakeView({ pieceCount: 3, wants: (i) => i > 0 });
 * console.log(view.wants(0), view.wants(1), view.wants(3)); // false true false
 * ```
 *
 * @param options Pieces, wants, availability.
 * @returns The view.
 */
export function fakeView(options: FakeViewOptions): SelectionView {
  const n = options.pieceCount;
  const inRange = (i: number) => Number.isInteger(i) && i >= 0 && i < n;
  const wants = options.wants ?? (() => true);
  const availability = options.availability ?? (() => 1);
  const partial = options.partial ?? (() => false);
  return {
    pieceCount: n,
    completedCount: options.completedCount ?? 0,
    wants: (i) => inRange(i) && wants(i),
    availability: (i) => (inRange(i) ? availability(i) : 0),
    isPartial: (i) => inRange(i) && partial(i),
    random: seededRandom(options.seed ?? 1),
  };
}

/**
 * A {@linkcode PeerView} for tests.
 *
 * @example
 * ```ts
 * import { fakePeer } from "./selector_suite.ts";
 * console.log(fakePeer((i) => i === 2).has(2)); // true
 * ```
 *
 * @param has Which pieces the peer has.
 * @param id The peer's id.
 * @returns The peer.
 */
export function fakePeer(has: (piece: number) => boolean, id = "peer"): PeerView {
  return { id, downloadRate: 0, has };
}

/**
 * Runs `select()` and collects at most `limit` results, so a selector that ignores `max`
 * or yields forever cannot hang the suite.
 *
 * @example
 * ```ts
 * import { collect, fakePeer, fakeView } from "./selector_suite.ts";
 * import { sequential } from "../../plugins/selection/sequential.ts";
 * console.log(collect(sequential(), fakeView({ pieceCount: 5 }), fakePeer(() => true), 2)); // [0, 1]
 * ```
 *
 * @param selector The selector.
 * @param view The view.
 * @param peer The peer.
 * @param max The `max` argument.
 * @param limit Most results to collect. @default {max + 1}
 * @returns The pieces, in order.
 */
export function collect(
  selector: PieceSelector,
  view: SelectionView,
  peer: PeerView,
  max: number,
  limit = max + 1,
): number[] {
  const out: number[] = [];
  if (limit <= 0) {
    // Still call select() (it must not throw), but take nothing.
    selector.select(view, peer, max);
    return out;
  }
  for (const i of selector.select(view, peer, max)) {
    out.push(i);
    if (out.length >= limit) break;
  }
  return out;
}

interface Scenario {
  readonly label: string;
  readonly options: FakeViewOptions;
  readonly has: (piece: number) => boolean;
  readonly max: number;
}

/** Seeded random scenarios: sizes, wants, partial pieces, availability, progress and `max` all vary. */
function scenarios(count: number, seed: number): Scenario[] {
  const r = seededRandom(seed);
  const out: Scenario[] = [];
  for (let k = 0; k < count; k++) {
    const pieceCount = 1 + Math.floor(r() * (k % 4 === 0 ? 2000 : 200));
    const pWant = [0, 0.05, 0.5, 0.95, 1][k % 5]!;
    const pHas = [1, 0.5, 0.1, 0, 0.9][Math.floor(k / 5) % 5]!;
    const wanted = new Uint8Array(pieceCount);
    const has = new Uint8Array(pieceCount);
    const partial = new Uint8Array(pieceCount);
    const avail = new Uint16Array(pieceCount);
    for (let i = 0; i < pieceCount; i++) {
      wanted[i] = r() < pWant ? 1 : 0;
      has[i] = r() < pHas ? 1 : 0;
      partial[i] = r() < 0.1 ? 1 : 0;
      avail[i] = Math.floor(r() * 12);
    }
    const completedCount = r() < 0.5 ? 0 : Math.floor(r() * pieceCount);
    const max = [0, 1, 2, 5, 16, 300][k % 6]!;
    out.push({
      label: `scenario ${k} (${pieceCount} pieces, max ${max})`,
      options: {
        pieceCount,
        wants: (i) => wanted[i] === 1,
        availability: (i) => avail[i]!,
        partial: (i) => partial[i] === 1,
        completedCount,
        seed: seed + k,
      },
      has: (i) => has[i] === 1,
      max,
    });
  }
  return out;
}

function eligibleCount(s: Scenario): number {
  let n = 0;
  const view = fakeView(s.options);
  for (let i = 0; i < s.options.pieceCount; i++) if (view.wants(i) && s.has(i)) n++;
  return n;
}

/** The contract every answer must meet, checked on one answer. */
function checkAnswer(picks: number[], view: SelectionView, peer: PeerView, max: number, label: string): void {
  assert.ok(picks.length <= Math.max(0, max), `${label}: returned ${picks.length} pieces for max ${max}`);
  const seen = new Set<number>();
  for (const i of picks) {
    assert.ok(Number.isInteger(i), `${label}: returned ${i}, which is not an integer`);
    assert.ok(view.wants(i), `${label}: returned piece ${i}, which the view does not want`);
    assert.ok(peer.has(i), `${label}: returned piece ${i}, which the peer does not have`);
    assert.ok(!seen.has(i), `${label}: returned piece ${i} twice`);
    seen.add(i);
  }
}

/** Options for {@linkcode simulateDownload}. */
export interface SimulationOptions {
  /** Seed for the picker's random source and the delivery order. @default {1} */
  seed?: number;
  /** Number of pieces. @default {37} */
  pieceCount?: number;
  /** Bytes per piece. @default {32768} */
  pieceLength?: number;
  /** Bytes in the last piece. @default {5000} */
  lastPieceLength?: number;
  /** Most rounds before the simulation is declared stalled. @default {20000} */
  maxRounds?: number;
}

/** What {@linkcode simulateDownload} observed. */
export interface SimulationResult {
  /** Rounds until every piece was verified. */
  readonly rounds: number;
  /** Blocks handed to a second peer while a first still had them in flight (endgame). */
  readonly duplicates: number;
  /** Pieces failed on purpose (as if their hash did not match) and downloaded again. */
  readonly failedOnPurpose: number;
  /** Selector faults the picker reported (a conformant selector has none). */
  readonly faults: readonly PluginError[];
}

interface SimPeer {
  readonly peer: PickerPeer;
  /** Pieces it has, or null for a seed. */
  readonly bits: Bitfield | null;
  /** Blocks it delivers per round (fractions: one block every 1/speed rounds). */
  readonly speed: number;
  /** Round at which it disconnects, if any. */
  readonly leavesAt: number;
  readonly depth: number;
  outstanding: BlockRef[];
  credit: number;
  gone: boolean;
}

function expectedByte(piece: number, offset: number): number {
  return (piece * 31 + offset * 7 + (offset >>> 8)) & 0xff;
}

function blockData(block: BlockRef): Uint8Array {
  const data = new Uint8Array(block.length);
  for (let k = 0; k < block.length; k++) data[k] = expectedByte(block.piece, block.begin + k);
  return data;
}

/**
 * Downloads a whole simulated torrent through a {@linkcode PiecePicker} driven directly:
 * five peers with different bitfields and speeds (one a slow seed, one leaving half-way),
 * blocks delivered in a seeded random order, every seventh piece failing its first hash
 * check. Throws if it stalls, if a delivered piece is wrong, or if the core breaks a rule
 * (a block requested from a peer that lacks it, more than two requesters for a block).
 *
 * @example
 * ```ts
 * import { simulateDownload } from "./selector_suite.ts";
 * import { sequential } from "../../plugins/selection/sequential.ts";
 * const result = simulateDownload(sequential(), { seed: 3 });
 * console.log(result.faults.length); // 0
 * ```
 *
 * @param selector The selector under test.
 * @param options Geometry and seed.
 * @returns What happened.
 */
export function simulateDownload(selector: PieceSelector, options: SimulationOptions = {}): SimulationResult {
  const seed = options.seed ?? 1;
  const pieceCount = options.pieceCount ?? 37;
  const pieceLength = options.pieceLength ?? 32768;
  const lastPieceLength = options.lastPieceLength ?? 5000;
  const totalLength = (pieceCount - 1) * pieceLength + lastPieceLength;
  const maxRounds = options.maxRounds ?? 20000;
  const random = seededRandom(seed ^ 0x5eed);
  const have = new Bitfield(pieceCount);
  const faults: PluginError[] = [];
  const picker = new PiecePicker({
    pieceCount,
    pieceLength,
    totalLength,
    have,
    selector,
    random: seededRandom(seed),
    onSelectorFault: (error) => faults.push(error),
  });

  const bitsWhere = (pred: (i: number) => boolean) => {
    const bits = new Bitfield(pieceCount);
    for (let i = 0; i < pieceCount; i++) if (pred(i)) bits.set(i);
    return bits;
  };
  const spare = seededRandom(seed + 99);
  const specs: { id: string; bits: Bitfield | null; speed: number; leavesAt: number }[] = [
    { id: "even", bits: bitsWhere((i) => i % 2 === 0), speed: 3, leavesAt: Infinity },
    { id: "odd", bits: bitsWhere((i) => i % 2 === 1 || i === 0), speed: 2, leavesAt: Infinity },
    { id: "thirds", bits: bitsWhere((i) => i % 3 === 0), speed: 1, leavesAt: Infinity },
    { id: "slow-seed", bits: null, speed: 0.25, leavesAt: Infinity },
    { id: "leaver", bits: bitsWhere(() => spare() < 0.5), speed: 4, leavesAt: 6 },
  ];
  const peers: SimPeer[] = specs.map((s) => {
    const bits = s.bits;
    const peer: PickerPeer = {
      id: s.id,
      downloadRate: s.speed * BLOCK_SIZE,
      seed: bits === null,
      has: (i) => bits === null || bits.get(i),
    };
    if (bits === null) picker.peerHasAll();
    else picker.addBitfield(bits);
    return {
      peer,
      bits,
      speed: s.speed,
      leavesAt: s.leavesAt,
      depth: 8,
      outstanding: [],
      credit: 0,
      gone: false,
    };
  });
  const byId = new Map(peers.map((p) => [p.peer.id, p]));
  /** Peers each block is in flight from, by "piece:begin". */
  const inFlight = new Map<string, Set<string>>();
  const keyOf = (piece: number, begin: number) => `${piece}:${begin}`;
  const failedOnce = new Set<number>();
  let duplicates = 0;
  let failedOnPurpose = 0;

  for (let round = 1; round <= maxRounds; round++) {
    // Departures: everything in flight goes back to the picker.
    for (const p of peers) {
      if (p.gone || round < p.leavesAt) continue;
      p.gone = true;
      for (const b of p.outstanding) {
        picker.release(p.peer.id, b.piece, b.begin);
        inFlight.get(keyOf(b.piece, b.begin))?.delete(p.peer.id);
      }
      p.outstanding = [];
      if (p.bits === null) picker.peerLostAll();
      else picker.removeBitfield(p.bits);
    }
    // Requests.
    for (const p of peers) {
      if (p.gone) continue;
      const room = p.depth - p.outstanding.length;
      if (room <= 0) continue;
      const blocks = picker.pick(p.peer, room);
      assert.ok(blocks.length <= room, `pick() returned ${blocks.length} blocks for max ${room}`);
      for (const b of blocks) {
        assert.ok(
          p.peer.has(b.piece),
          `Block of piece ${b.piece} requested from ${p.peer.id}, which lacks it`,
        );
        assert.ok(!have.get(b.piece), `Block of piece ${b.piece} requested after the piece was verified`);
        const size = picker.pieceSize(b.piece);
        assert.equal(b.begin % BLOCK_SIZE, 0);
        assert.equal(
          b.length,
          Math.min(BLOCK_SIZE, size - b.begin),
          `Wrong length for ${keyOf(b.piece, b.begin)}`,
        );
        const k = keyOf(b.piece, b.begin);
        const holders = inFlight.get(k) ?? new Set<string>();
        assert.ok(!holders.has(p.peer.id), `Block ${k} requested twice from ${p.peer.id}`);
        if (holders.size > 0) duplicates++;
        holders.add(p.peer.id);
        assert.ok(holders.size <= 2, `Block ${k} requested from ${holders.size} peers at once`);
        inFlight.set(k, holders);
        p.outstanding.push(b);
      }
    }
    if (peers.every((p) => p.outstanding.length === 0)) {
      throw new Error(
        `Download stalled at round ${round}: ${have.count()}/${pieceCount} pieces verified, ` +
          `${picker.partialCount} partial, nothing requested from any peer`,
      );
    }
    // Deliveries, in a seeded random order.
    for (const p of peers) {
      if (p.gone) continue;
      p.credit = Math.min(p.credit + p.speed, Math.max(1, p.speed));
      while (p.credit >= 1 && p.outstanding.length > 0) {
        p.credit--;
        const at = Math.floor(random() * p.outstanding.length);
        const [b] = p.outstanding.splice(at, 1) as [BlockRef];
        const k = keyOf(b.piece, b.begin);
        inFlight.get(k)?.delete(p.peer.id);
        const outcome = picker.blockReceived(p.peer.id, b.piece, b.begin, blockData(b));
        assert.ok(outcome.accepted, `Block ${k} from ${p.peer.id} was not accepted`);
        assert.ok(outcome.wasRequested, `Block ${k} from ${p.peer.id} was not marked requested`);
        for (const other of outcome.cancel) {
          const o = byId.get(other);
          assert.ok(o !== undefined, `cancel names an unknown peer ${other}`);
          const before = o.outstanding.length;
          o.outstanding = o.outstanding.filter((x) => !(x.piece === b.piece && x.begin === b.begin));
          assert.equal(
            o.outstanding.length,
            before - 1,
            `cancel names ${other}, which did not have ${k} in flight`,
          );
          inFlight.get(k)?.delete(other);
        }
        assert.equal(inFlight.get(k)?.size ?? 0, 0, `Block ${k} arrived but is still in flight elsewhere`);
        const done = outcome.completed;
        if (done === undefined) continue;
        assert.equal(done.piece, b.piece);
        assert.equal(done.data.length, picker.pieceSize(b.piece));
        for (let off = 0; off < done.data.length; off++) {
          if (done.data[off] !== expectedByte(done.piece, off)) {
            throw new Error(`Piece ${done.piece} assembled wrongly at offset ${off}`);
          }
        }
        if (done.piece % 7 === 3 && !failedOnce.has(done.piece)) {
          failedOnce.add(done.piece);
          failedOnPurpose++;
          picker.pieceFailed(done);
        } else {
          picker.pieceVerified(done);
        }
      }
    }
    if (picker.complete) {
      assert.equal(have.count(), pieceCount);
      assert.equal(picker.partialCount, 0, "Partial pieces left after completion");
      assert.equal(picker.bufferedBytes, 0, "Piece buffers still out after completion");
      for (const p of peers) if (!p.gone) assert.deepEqual(picker.pick(p.peer, 8), []);
      return { rounds: round, duplicates, failedOnPurpose, faults };
    }
  }
  throw new Error(`Download did not finish in ${maxRounds} rounds: ${have.count()}/${pieceCount} pieces`);
}

/**
 * Registers the conformance tests for one selector with `Deno.test`.
 *
 * @example
 * ```ts ignore
 * import { selectorSuite } from "./selector_suite.ts";
 * import { sequential } from "../../plugins/selection/sequential.ts";
 * selectorSuite("sequential()", () => sequential());
 * ```
 *
 * @param name How the selector is named in test names.
 * @param factory Makes a fresh selector (called once per test, or more).
 */
export function selectorSuite(name: string, factory: () => PieceSelector): void {
  const cases = scenarios(300, 20240611);

  Deno.test(`${name}: has a non-empty name`, () => {
    const selector = factory();
    assert.equal(typeof selector.name, "string");
    assert.ok(selector.name.length > 0);
  });

  Deno.test(`${name}: select() only returns pieces the view wants and the peer has, without duplicates`, () => {
    const selector = factory();
    for (const s of cases) {
      const view = fakeView(s.options);
      const peer = fakePeer(s.has);
      const picks = collect(selector, view, peer, s.max, Math.max(s.max, 1) + 1);
      checkAnswer(picks, view, peer, s.max, s.label);
    }
  });

  Deno.test(`${name}: select() never returns more than max pieces`, () => {
    const selector = factory();
    const view = fakeView({ pieceCount: 500, availability: (i) => i % 9 });
    const peer = fakePeer(() => true);
    for (const max of [1, 2, 3, 7, 64, 499, 500, 501, 10_000]) {
      const picks = collect(selector, view, peer, max, max + 1);
      assert.ok(picks.length <= max, `max ${max}: returned ${picks.length}`);
      assert.ok(picks.length > 0, `max ${max}: returned nothing`);
    }
  });

  Deno.test(`${name}: select() returns nothing when max is 0 or negative`, () => {
    const selector = factory();
    const view = fakeView({ pieceCount: 50 });
    const peer = fakePeer(() => true);
    for (const max of [0, -1]) assert.deepEqual(collect(selector, view, peer, max, 5), [], `max ${max}`);
  });

  Deno.test(`${name}: select() returns something whenever some piece is eligible`, () => {
    const selector = factory();
    let checked = 0;
    for (const s of cases) {
      if (s.max < 1 || eligibleCount(s) === 0) continue;
      const picks = collect(selector, fakeView(s.options), fakePeer(s.has), s.max);
      assert.ok(
        picks.length > 0,
        `${s.label}: returned nothing, but ${eligibleCount(s)} pieces were eligible`,
      );
      checked++;
    }
    assert.ok(checked > 100, `only ${checked} scenarios had an eligible piece`);
  });

  Deno.test(`${name}: select() returns nothing for a peer that has nothing`, () => {
    const selector = factory();
    for (const completedCount of [0, 10]) {
      const view = fakeView({ pieceCount: 64, completedCount });
      assert.deepEqual(collect(selector, view, fakePeer(() => false), 10), []);
    }
  });

  Deno.test(`${name}: select() returns nothing when nothing is wanted`, () => {
    const selector = factory();
    const view = fakeView({ pieceCount: 64, wants: () => false, completedCount: 64 });
    assert.deepEqual(collect(selector, view, fakePeer(() => true), 10), []);
  });

  Deno.test(`${name}: select() handles a torrent of one piece`, () => {
    const selector = factory();
    const peer = fakePeer(() => true);
    assert.deepEqual(collect(selector, fakeView({ pieceCount: 1 }), peer, 1), [0]);
    assert.deepEqual(collect(selector, fakeView({ pieceCount: 1 }), peer, 5), [0]);
    assert.deepEqual(collect(selector, fakeView({ pieceCount: 1, partial: () => true }), peer, 1), [0]);
    assert.deepEqual(collect(selector, fakeView({ pieceCount: 1, wants: () => false }), peer, 1), []);
    assert.deepEqual(collect(selector, fakeView({ pieceCount: 1 }), fakePeer(() => false), 1), []);
  });

  Deno.test(`${name}: select() handles a torrent of 100000 pieces`, () => {
    const selector = factory();
    const n = 100_000;
    for (const completedCount of [0, 5000]) {
      const view = fakeView({
        pieceCount: n,
        wants: (i) => i % 97 !== 0,
        availability: (i) => 1 + ((i * 2654435761) >>> 0) % 40,
        partial: (i) => i % 5003 === 1,
        completedCount,
      });
      const peer = fakePeer((i) => i % 2 === 1);
      for (const max of [1, 8, 128]) {
        const picks = collect(selector, view, peer, max);
        checkAnswer(picks, view, peer, max, `${n} pieces, max ${max}`);
        assert.ok(picks.length > 0, `${n} pieces, max ${max}: returned nothing`);
      }
      // Only the very last piece is eligible.
      const last = fakePeer((i) => i === n - 1);
      assert.deepEqual(collect(selector, view, last, 4), [n - 1]);
    }
  });

  Deno.test(`${name}: select() is deterministic given a seeded view.random`, () => {
    for (const s of cases.slice(0, 60)) {
      const a = collect(factory(), fakeView(s.options), fakePeer(s.has), s.max);
      const b = collect(factory(), fakeView(s.options), fakePeer(s.has), s.max);
      assert.deepEqual(a, b, s.label);
    }
  });

  Deno.test(`${name}: a simulated download through the piece picker completes every piece`, () => {
    for (const seed of [1, 2, 3]) {
      const result = simulateDownload(factory(), { seed });
      assert.deepEqual(result.faults.map((e) => e.message), [], `seed ${seed}: selector faults`);
      assert.ok(result.failedOnPurpose > 0, `seed ${seed}: no piece went through a failed hash check`);
      assert.ok(result.duplicates > 0, `seed ${seed}: endgame never handed out a duplicate request`);
    }
  });

  Deno.test(`${name}: a simulated download of one short piece completes`, () => {
    const result = simulateDownload(factory(), { pieceCount: 1, lastPieceLength: 100 });
    assert.deepEqual(result.faults.map((e) => e.message), []);
  });

  Deno.test(`${name}: a simulated download of pieces larger than a block completes`, () => {
    const result = simulateDownload(factory(), {
      pieceCount: 12,
      pieceLength: 256 * 1024,
      lastPieceLength: BLOCK_SIZE * 3 + 1,
      seed: 9,
    });
    assert.deepEqual(result.faults.map((e) => e.message), []);
  });
}
