import assert from "node:assert/strict";
import { lowestFirst } from "../../fixtures/plugins/lowest_first.ts";
import { highestFirst } from "../../fixtures/plugins/highest_first.ts";
import { rarestFirst } from "../../plugins/selection/rarest_first.ts";
import { sequential } from "../../plugins/selection/sequential.ts";
import { collect, fakePeer, fakeView, selectorSuite } from "./selector_suite.ts";

selectorSuite("rarestFirst()", () => rarestFirst());
selectorSuite("rarestFirst({ randomFirstPieces: 0 })", () => rarestFirst({ randomFirstPieces: 0 }));
selectorSuite("sequential()", () => sequential());
selectorSuite("sequential({ from: 10 })", () => sequential({ from: 10 }));
selectorSuite("lowestFirst (fixtures/plugins/lowest_first.ts)", () => lowestFirst);
selectorSuite("highestFirst (fixtures/plugins/highest_first.ts)", () => highestFirst);

// ---------------------------------------------------------------------------------------------
// What each selector promises beyond the contract

const AVAILABILITY = [5, 3, 9, 1, 4, 1, 7, 2, 8, 6];
const all = fakePeer(() => true);

Deno.test("rarestFirst({ randomFirstPieces: 0 }) picks the rarest piece", () => {
  const selector = rarestFirst({ randomFirstPieces: 0 });
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]!, seed });
    const [first] = collect(selector, view, all, 1);
    assert.ok(
      first === 3 || first === 5,
      `seed ${seed}: picked ${first}, availability ${AVAILABILITY[first!]}`,
    );
  }
});

Deno.test("rarestFirst({ randomFirstPieces: 0 }) orders several picks by rarity", () => {
  const selector = rarestFirst({ randomFirstPieces: 0 });
  const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]! });
  const picks = collect(selector, view, all, 4);
  assert.deepEqual(picks.map((i) => AVAILABILITY[i]), [1, 1, 2, 3]);
  assert.deepEqual([...picks.slice(0, 2)].sort(), [3, 5]);
});

Deno.test("rarestFirst({ randomFirstPieces: 0 }) ignores rare pieces the peer lacks", () => {
  const selector = rarestFirst({ randomFirstPieces: 0 });
  const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]! });
  const peer = fakePeer((i) => i !== 3 && i !== 5);
  assert.deepEqual(collect(selector, view, peer, 1), [7]);
});

Deno.test("rarestFirst() prefers partial pieces over rarer new ones", () => {
  const selector = rarestFirst({ randomFirstPieces: 0 });
  const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]!, partial: (i) => i === 8 });
  assert.deepEqual(collect(selector, view, all, 1), [8]);
  assert.equal(collect(selector, view, all, 3)[0], 8);
});

Deno.test("rarestFirst() picks at random, not by rarity, while few pieces are complete", () => {
  const firsts = new Set<number>();
  for (let seed = 1; seed <= 40; seed++) {
    const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]!, completedCount: 0, seed });
    firsts.add(collect(rarestFirst(), view, all, 1)[0]!);
  }
  assert.ok(firsts.size >= 4, `only ${[...firsts]} were ever picked first`);
  // Once enough pieces are complete, rarity decides.
  const view = fakeView({ pieceCount: 10, availability: (i) => AVAILABILITY[i]!, completedCount: 4 });
  assert.ok([3, 5].includes(collect(rarestFirst(), view, all, 1)[0]!));
});

Deno.test("sequential() picks pieces in order", () => {
  const view = fakeView({ pieceCount: 10, wants: (i) => i !== 2, availability: (i) => AVAILABILITY[i]! });
  assert.deepEqual(collect(sequential(), view, all, 4), [0, 1, 3, 4]);
  assert.deepEqual(collect(sequential(), view, fakePeer((i) => i > 5), 2), [6, 7]);
});

Deno.test("sequential({ from }) starts at the given piece and wraps around", () => {
  const view = fakeView({ pieceCount: 10 });
  assert.deepEqual(collect(sequential({ from: 8 }), view, all, 4), [8, 9, 0, 1]);
  assert.deepEqual(collect(sequential({ from: 50 }), view, all, 2), [0, 1]);
});

Deno.test("lowestFirst from fixtures/plugins picks pieces in order", () => {
  const view = fakeView({ pieceCount: 10, wants: (i) => i % 2 === 1 });
  assert.equal(lowestFirst.name, "lowest-first");
  assert.deepEqual(collect(lowestFirst, view, all, 3), [1, 3, 5]);
});
