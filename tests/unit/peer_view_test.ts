import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import type { ConsoleSize } from "../../cli/common.ts";
import { scriptedKeys } from "../../cli/keys.ts";
import { peerFlags, peerTable } from "../../cli/peer_view.ts";
import type { PeerInfo } from "../../mod.ts";
import { captureIO } from "../_cli_io.ts";
import { withSlowSeed } from "../_slow_seed.ts";

// The peer table (columns, flags, width, height), and the live view's keys: `p` shows it,
// Ctrl+C as a byte interrupts like SIGINT.

function peer(address: string, over: Partial<PeerInfo> = {}): PeerInfo {
  return {
    address,
    client: "LT1250",
    direction: "out",
    transport: "tcp",
    encryption: "rc4",
    downloadRate: 0,
    uploadRate: 0,
    downloaded: 0,
    uploaded: 0,
    percent: 50,
    flags: { amChoking: true, amInterested: false, peerChoking: true, peerInterested: false },
    outstanding: 0,
    ...over,
  };
}

Deno.test("peer flags: D/d/K for our side, U/u/? for theirs", () => {
  const f = (amChoking: boolean, amInterested: boolean, peerChoking: boolean, peerInterested: boolean) =>
    peerFlags({ amChoking, amInterested, peerChoking, peerInterested });
  assert.equal(f(false, true, false, true), "DU");
  assert.equal(f(true, true, true, true), "du");
  assert.equal(f(false, false, false, false), "K?");
  assert.equal(f(true, false, true, false), "..");
});

Deno.test("the peer table: fastest first, every column, within the width and the height", () => {
  const peers = [
    peer("10.0.0.1:6881", { downloadRate: 1000, direction: "in", encryption: "none" }),
    peer("10.0.0.2:51413", {
      downloadRate: 2_000_000,
      uploadRate: 5000,
      percent: 100,
      flags: { amChoking: false, amInterested: true, peerChoking: false, peerInterested: true },
    }),
    peer("[2001:db8::1]:6881", { client: "TR3000", encryption: "plaintext" }),
  ];
  const lines = peerTable(peers, { columns: 100 });
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /^address\s+client\s+dir\s+net\s+enc\s+flags\s+down\s+up\s+have$/);
  assert.match(
    lines[1]!,
    /^10\.0\.0\.2:51413\s+LT1250\s+out\s+tcp\s+rc4\s+DU\s+1\.91 MiB\/s\s+4\.88 KiB\/s\s+100\.0%$/,
  );
  assert.match(
    lines[2]!,
    /^10\.0\.0\.1:6881\s+LT1250\s+in\s+tcp\s+plain\s+\.\.\s+1000 B\/s\s+0 B\/s\s+50\.0%$/,
  );
  assert.match(lines[3]!, /^\[2001:db8::1\]:6881\s+TR3000\s+out\s+tcp\s+plain/);
  for (const columns of [40, 80, 120]) {
    for (const line of peerTable(peers, { columns })) {
      assert.ok(line.length <= columns - 1, `${columns}: ${line}`);
    }
  }
  // Too narrow for every column: the least useful go, whole (net first); rates stay.
  assert.match(
    peerTable(peers, { columns: 76 })[0]!,
    /^address\s+client\s+dir\s+enc\s+flags\s+down\s+up\s+have$/,
  );
  assert.match(peerTable(peers, { columns: 56 })[0]!, /^address\s+flags\s+down\s+up$/);
  const many = Array.from({ length: 30 }, (_, i) => peer(`10.0.1.${i}:6881`, { downloadRate: i }));
  const short = peerTable(many, { columns: 80, maxLines: 6 });
  assert.equal(short.length, 6);
  assert.match(short[1]!, /^10\.0\.1\.29:6881/);
  assert.equal(short[5], "  ... and 26 more");
  assert.deepEqual(peerTable([], { columns: 80 }), ["  (no peers connected)"]);
});

const PLAIN = ["--encryption", "disable"];
const SEED = { pieces: 48, uploadLimit: 512 * 1024 };
const SIZE: ConsoleSize = { columns: 100, rows: 30 };

Deno.test("key p in the live view shows the peer table, redrawn in place", async () => {
  await withSlowSeed(SEED, async (seed) => {
    const { io, err } = captureIO({
      isTerminal: true,
      consoleSize: () => SIZE,
      keys: scriptedKeys(["p"], 300),
    });
    const code = await main(seed.downloadArgs("out", ...PLAIN), io);
    assert.equal(code, 0, err());
    assert.match(err(), /address\s+client\s+dir\s+net\s+enc\s+flags\s+down\s+up\s+have/);
    assert.match(err(), /127\.0\.0\.1:\d+\s+shoal [\d.]+\s+out\s+tcp\s+plain\s+D/);
    assert.match(err(), new RegExp("\x1b\\[\\d+A"), "the table is redrawn by moving the cursor up");
  });
});

Deno.test("without --peers or a key, no peer table is drawn; with --peers it is", async () => {
  await withSlowSeed(SEED, async (seed) => {
    const plain = captureIO({ isTerminal: true, consoleSize: () => SIZE });
    assert.equal(await main(seed.downloadArgs("a", ...PLAIN), plain.io), 0, plain.err());
    assert.doesNotMatch(plain.err(), /address\s+client/);
    const shown = captureIO({ isTerminal: false });
    assert.equal(await main(seed.downloadArgs("b", ...PLAIN, "--peers"), shown.io), 0, shown.err());
    assert.match(shown.err(), /^address\s+client\s+dir/m, "off a terminal the table is printed as a block");
  });
});

Deno.test("Ctrl+C read as a key (a terminal in raw mode) interrupts the download: exit 130", async () => {
  await withSlowSeed(SEED, async (seed) => {
    const controller = new AbortController();
    const { io, err } = captureIO({
      isTerminal: true,
      consoleSize: () => SIZE,
      keys: scriptedKeys(["\x03"], 500),
      signal: controller.signal,
      interrupt: () => controller.abort(new DOMException("Interrupted", "AbortError")),
    });
    const started = performance.now();
    const code = await main(seed.downloadArgs("out", ...PLAIN), io);
    assert.equal(code, 130, err());
    assert.match(err(), /Interrupted with \d+\/48 pieces/);
    assert.ok(performance.now() - started < 2500, "the download ran on after the key");
  });
});
