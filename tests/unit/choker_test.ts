import assert from "node:assert/strict";
import { type ChokerPeer, chooseUnchoked } from "../../lib/peer/choker.ts";

function peer(id: string, downloadRate: number, uploadRate = 0, peerInterested = true): ChokerPeer {
  return { id, peerInterested, downloadRate, uploadRate };
}

const sorted = (ids: Set<string>) => [...ids].sort();

Deno.test("chooseUnchoked() never unchokes a peer that is not interested", () => {
  const peers = [peer("a", 100, 0, false), peer("b", 5), peer("c", 900, 0, false)];
  const { unchoke, optimistic } = chooseUnchoked(peers, { slots: 4, seeding: false, random: () => 0 });
  assert.deepEqual(sorted(unchoke), ["b"]);
  assert.equal(optimistic, undefined, "every interested peer already has a regular slot");
});

Deno.test("chooseUnchoked() unchokes nobody when nobody is interested", () => {
  const peers = [peer("a", 100, 0, false)];
  const { unchoke, optimistic } = chooseUnchoked(peers, { seeding: false, optimistic: "a" });
  assert.equal(unchoke.size, 0);
  assert.equal(optimistic, undefined);
  assert.equal(chooseUnchoked([], { seeding: true }).unchoke.size, 0);
});

Deno.test("chooseUnchoked() while downloading ranks peers by what they give us", () => {
  const peers = [peer("slow", 1, 999), peer("fast", 500, 0), peer("mid", 50, 0), peer("x", 10, 0)];
  // 3 slots: the 2 best by download rate, plus one optimistic among the rest.
  const { unchoke, optimistic } = chooseUnchoked(peers, { slots: 3, seeding: false, random: () => 0 });
  assert.ok(unchoke.has("fast") && unchoke.has("mid"));
  assert.equal(unchoke.size, 3);
  assert.ok(optimistic === "slow" || optimistic === "x");
  assert.ok(unchoke.has(optimistic));
});

Deno.test("chooseUnchoked() while seeding ranks peers by what we send them", () => {
  const peers = [peer("a", 999, 1), peer("b", 0, 300), peer("c", 0, 200), peer("d", 0, 2)];
  const { unchoke, optimistic } = chooseUnchoked(peers, { slots: 3, seeding: true, random: () => 0.99 });
  assert.ok(unchoke.has("b") && unchoke.has("c"));
  assert.equal(unchoke.size, 3);
  assert.ok(optimistic === "a" || optimistic === "d");
});

Deno.test("chooseUnchoked() keeps the current optimistic peer while it stays interested", () => {
  const peers = [peer("a", 500), peer("b", 400), peer("c", 1), peer("d", 2)];
  const first = chooseUnchoked(peers, { slots: 2, seeding: false, optimistic: "c", random: () => 0.99 });
  assert.equal(first.optimistic, "c");
  assert.deepEqual(sorted(first.unchoke), ["a", "c"]);
  // c lost interest: a new optimistic peer is drawn from the interested rest.
  const later = [peer("a", 500), peer("b", 400), peer("c", 1, 0, false), peer("d", 2)];
  const second = chooseUnchoked(later, { slots: 2, seeding: false, optimistic: "c", random: () => 0 });
  assert.notEqual(second.optimistic, "c");
  assert.ok(second.optimistic === "b" || second.optimistic === "d");
  assert.ok(!second.unchoke.has("c"));
});

Deno.test("chooseUnchoked() draws a new optimistic peer when the old one earned a regular slot", () => {
  const peers = [peer("a", 500), peer("b", 400), peer("c", 1)];
  const { unchoke, optimistic } = chooseUnchoked(peers, { slots: 2, seeding: false, optimistic: "a" });
  assert.ok(unchoke.has("a"));
  assert.ok(optimistic === "b" || optimistic === "c");
  assert.equal(unchoke.size, 2);
});

Deno.test("chooseUnchoked() unchokes everyone interested when slots are plenty", () => {
  const peers = [peer("a", 1), peer("b", 2), peer("c", 3)];
  const { unchoke } = chooseUnchoked(peers, { slots: 8, seeding: false, random: () => 0.5 });
  assert.deepEqual(sorted(unchoke), ["a", "b", "c"]);
});

Deno.test("chooseUnchoked() breaks rate ties by id, so the choice is stable", () => {
  const peers = [peer("d", 7), peer("b", 7), peer("c", 7), peer("a", 7)];
  for (let k = 0; k < 3; k++) {
    const { unchoke, optimistic } = chooseUnchoked(peers, { slots: 3, seeding: false, random: () => 0 });
    assert.ok(unchoke.has("a") && unchoke.has("b"));
    assert.equal(optimistic, "d"); // first of the rest in the order given
  }
});

Deno.test("chooseUnchoked() with fewer than one slot still gives one optimistic slot", () => {
  const peers = [peer("a", 10), peer("b", 20)];
  for (const slots of [0, -3]) {
    const { unchoke, optimistic } = chooseUnchoked(peers, { slots, seeding: false, random: () => 0 });
    assert.equal(unchoke.size, 1);
    assert.ok(optimistic !== undefined && unchoke.has(optimistic));
  }
});

Deno.test("chooseUnchoked() uses 4 slots by default", () => {
  const peers = [...Array(10).keys()].map((i) => peer(`p${i}`, i * 10));
  const { unchoke } = chooseUnchoked(peers, { seeding: false, random: () => 0 });
  assert.equal(unchoke.size, 4);
  for (const id of ["p9", "p8", "p7"]) assert.ok(unchoke.has(id), id);
});
