import assert from "node:assert/strict";
import { BanList } from "../../lib/peer/ban_list.ts";

const piece = (fill: number, blocks = 2) => new Uint8Array(blocks * 16384).fill(fill);

Deno.test("BanList bans the sole sender of a failed piece", () => {
  const bans = new BanList();
  assert.deepEqual(bans.pieceFailed(3, piece(1), ["10.0.0.1:1", "10.0.0.1:1"]).map((v) => v.address), [
    "10.0.0.1:1",
  ]);
});

Deno.test("BanList finds the liar among two senders once the piece passes (smart ban)", () => {
  const bans = new BanList();
  const bad = piece(7);
  bad.fill(9, 16384); // block 1 came from the liar
  assert.deepEqual(bans.pieceFailed(0, bad, ["10.0.0.1:1", "10.0.0.2:1"]), []);
  const verdicts = bans.pieceVerified(0, piece(7), ["10.0.0.1:1", "10.0.0.1:1"]);
  assert.deepEqual(verdicts.map((v) => v.address), ["10.0.0.2:1"]);
  assert.match(verdicts[0]!.reason, /corrupt block of piece 0/);
});

Deno.test("BanList bans on count only a clearly worse peer, and good pieces earn credit", () => {
  const bans = new BanList();
  const pair = ["10.0.0.1:1", "10.0.0.2:1"];
  for (let i = 0; i < 10; i++) assert.deepEqual(bans.pieceFailed(i, piece(i), pair), [], "a tie bans nobody");
  const good = new BanList();
  for (let i = 0; i < 4; i++) good.pieceFailed(i, piece(i), pair);
  good.pieceVerified(99, piece(0), ["10.0.0.1:1"]); // credit for peer 1
  const verdicts = good.pieceFailed(4, piece(4), pair);
  assert.deepEqual(verdicts.map((v) => v.address), ["10.0.0.2:1"]);
});

Deno.test("BanList bans exact endpoints on loopback and whole IPs elsewhere", () => {
  const bans = new BanList();
  bans.ban("127.0.0.1:5000");
  assert.equal(bans.isBanned("127.0.0.1:5000"), true);
  assert.equal(bans.isBanned("127.0.0.1:5001"), false);
  bans.ban("192.0.2.1:6881");
  assert.equal(bans.isBanned("192.0.2.1:7000"), true);
  assert.equal(bans.ban("192.0.2.1:1"), false, "already banned");
});
