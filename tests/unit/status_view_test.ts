import assert from "node:assert/strict";
import { ProgressLine } from "../../cli/common.ts";
import { statusFields, statusLine } from "../../cli/status_view.ts";
import type { Session, Torrent, TorrentStats } from "../../mod.ts";

// The status line fits the terminal (fields dropped least important first), says "complete"
// rather than "seeding" when the run is about to exit, and ProgressLine redraws it in place.

const STATS: TorrentStats = {
  state: "downloading",
  completedPieces: 500,
  pieceCount: 1220,
  completedBytes: 8_610_000,
  totalBytes: 19_995_000,
  percent: 43.06,
  downloaded: 9_100_000,
  uploaded: 1_234_567,
  downloadRate: 1_258_291,
  uploadRate: 65_536,
  peers: 12,
  eta: 754,
  failedPieces: 0,
  duplicateBytes: 0,
  failedBytes: 0,
  wastedBytes: 0,
  bufferedBytes: 0,
  activeSeconds: 7,
  wantedPieces: 1220,
  wantedBytes: 19_995_000,
  done: false,
};

const torrent = {
  infoHash: "ab".repeat(20),
  trackers: () => [
    { state: "working" },
    { state: "error" },
  ],
} as unknown as Torrent;
const session = {
  dht: { nodeCount: 312, status: () => ({ peersFound: 41, lookups: 3 }) },
} as unknown as Session;

/** Field names in priority order, most important first. */
const ORDER = ["percent", "sizes", "down", "up", "peers", "eta", "trackers", "dht"];

Deno.test("the status line fits 40, 80, 120 and 200 columns, dropping the least important fields first", () => {
  const names = statusFields(STATS, { torrent, session }).map((f) => f.name);
  assert.deepEqual([...names].sort(), [...ORDER].sort());
  const markers: Record<string, RegExp> = {
    percent: /43\.1%/,
    sizes: /8\.2\d? ?Mi?B?\/19\.\d+ ?Mi?B?/,
    down: /down 1\.2/,
    up: /up 64/,
    peers: /peers 12/,
    eta: /ETA 12m34s/,
    trackers: /trackers 1\/2/,
    dht: /dht 312/,
  };
  const kept: Record<number, string[]> = {};
  for (const columns of [40, 80, 120, 200]) {
    const line = statusLine(STATS, { torrent, session, columns });
    assert.ok(line.length <= columns - 1, `${columns} columns: ${line.length} characters: ${line}`);
    const present = ORDER.filter((name) => markers[name]!.test(line));
    // What is kept is a prefix of the priority order: nothing less important survives a drop.
    assert.deepEqual(present, ORDER.slice(0, present.length), `${columns} columns: ${line}`);
    kept[columns] = present;
  }
  assert.ok(kept[40]!.length >= 3, `40 columns keeps percent, sizes and a rate: ${kept[40]}`);
  assert.ok(kept[40]!.length < ORDER.length);
  assert.ok(kept[80]!.length >= 6, `80 columns keeps up to the ETA: ${kept[80]}`);
  assert.equal(kept[200]!.length, ORDER.length);
  assert.match(
    statusLine(STATS, { torrent, session, columns: 200 }),
    /down 1\.20 MiB\/s/,
    "full text at 200",
  );
  for (const columns of [12, 20, 25]) {
    const line = statusLine(STATS, { torrent, session, columns });
    assert.ok(line.length <= columns - 1, `${columns}: ${line}`);
    assert.match(line, /43\.1%/);
  }
});

Deno.test("a complete torrent's line says complete, and seeding only when seeding follows", () => {
  const done: TorrentStats = { ...STATS, state: "seeding", percent: 100, done: true, eta: 0 };
  const exiting = statusLine(done, { columns: 200 });
  assert.match(exiting, /complete/);
  assert.doesNotMatch(exiting, /seeding/);
  assert.doesNotMatch(exiting, /ETA/);
  assert.match(statusLine(done, { columns: 200, seeding: true }), /seeding, uploaded 1\.18 MiB/);
  assert.match(statusLine(STATS, { columns: 200, seeding: true }), /ETA/);
  // On a narrow terminal the state stays, before the rates.
  assert.match(statusLine(done, { columns: 40 }), /^100\.0% {2}[0-9. KMGiB]+\/[0-9. KMGiB]+ {2}complete$/);
  assert.match(
    statusLine(done, { columns: 40, seeding: true }),
    /^100\.0% {2}[0-9. KMGiB]+\/[0-9. KMGiB]+ {2}seeding, up /,
  );
});

/** A tiny terminal: printable characters (wrapping at the width), \r, \n, ESC[K, ESC[nA, ESC[J. */
class Screen {
  readonly lines: string[] = [""];
  row = 0;
  col = 0;
  wraps = 0;
  constructor(readonly columns: number) {}

  write(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === "\r") this.col = 0;
      else if (c === "\n") {
        // A terminal's output processing (onlcr) makes a line feed a carriage return too.
        this.col = 0;
        this.#down();
      } else if (c === "\x1b") {
        // deno-lint-ignore no-control-regex
        const m = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i));
        assert.ok(m, `unknown escape at ${JSON.stringify(text.slice(i, i + 8))}`);
        i += m[0].length - 1;
        const n = m[1] === "" ? 1 : Number(m[1]);
        if (m[2] === "K") this.lines[this.row] = this.lines[this.row]!.slice(0, this.col);
        else if (m[2] === "A") this.row = Math.max(0, this.row - n);
        else if (m[2] === "J") {
          this.lines[this.row] = this.lines[this.row]!.slice(0, this.col);
          this.lines.length = this.row + 1;
        } else assert.fail(`unexpected escape ${m[0]}`);
      } else {
        if (this.col >= this.columns) {
          this.wraps++;
          this.#down();
          this.col = 0;
        }
        const line = this.lines[this.row]!.padEnd(this.col);
        this.lines[this.row] = line.slice(0, this.col) + c + line.slice(this.col + 1);
        this.col++;
      }
    }
  }

  #down(): void {
    this.row++;
    if (this.lines.length <= this.row) this.lines.push("");
  }
}

function terminalIO(screen: Screen, rows = 24) {
  let now = 0;
  const decoder = new TextDecoder();
  return {
    io: {
      stdout: new WritableStream<Uint8Array>(),
      stderr: new WritableStream<Uint8Array>({ write: (c) => screen.write(decoder.decode(c)) }),
      isTerminal: true,
      now: () => now,
      consoleSize: () => ({ columns: screen.columns, rows }),
    },
    tick: () => {
      now += 1000;
    },
  };
}

Deno.test("a paused torrent's line says paused instead of an ETA, and whether it is complete", () => {
  const paused: TorrentStats = { ...STATS, state: "paused", peers: 0, downloadRate: 0, eta: null };
  const line = statusLine(paused, { columns: 200, seeding: true });
  assert.match(line, /paused/);
  assert.doesNotMatch(line, /ETA|complete|seeding/);
  const done: TorrentStats = { ...paused, percent: 100, done: true, eta: 0 };
  assert.match(statusLine(done, { columns: 200, seeding: true }), /paused, complete/);
  assert.match(statusLine(paused, { columns: 40 }), /paused/);
});

Deno.test("ProgressLine redraws in place: no wrap, no debris of a longer line, no added lines", async () => {
  const screen = new Screen(40);
  const { io, tick } = terminalIO(screen);
  const progress = new ProgressLine(io);
  progress.update("x".repeat(100));
  tick();
  progress.update("short");
  tick();
  progress.update("a status line", ["row 1", "row 2 is quite a lot longer than forty columns", "row 3"]);
  tick();
  progress.update("a status line", ["only row"]);
  tick();
  progress.print("a log record\n");
  tick();
  progress.update("again", ["row A", "row B"]);
  await progress.done("final");
  assert.equal(screen.wraps, 0, "a line wrapped");
  assert.deepEqual(screen.lines, ["a log record", "final", ""]);
});

Deno.test("ProgressLine keeps the block within the terminal's rows, and done() erases it", async () => {
  const screen = new Screen(80);
  const { io } = terminalIO(screen, 5);
  const progress = new ProgressLine(io);
  progress.update("status", Array.from({ length: 20 }, (_, i) => `peer ${i}`));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(screen.lines, ["status", "peer 0", "peer 1", "peer 2", "peer 3"]);
  await progress.done();
  assert.deepEqual(screen.lines, ["status", ""]);
});

Deno.test("off a terminal, the block is printed every 10 s at most, status lines every 2 s", async () => {
  const chunks: string[] = [];
  let now = 0;
  const progress = new ProgressLine({
    stdout: new WritableStream(),
    stderr: new WritableStream({ write: (c) => void chunks.push(new TextDecoder().decode(c)) }),
    isTerminal: false,
    now: () => now,
  });
  for (let t = 0; t <= 20_000; t += 1000) {
    now = t;
    progress.update(`line ${t}`, ["peer table"]);
  }
  await progress.done();
  const text = chunks.join("");
  assert.equal(text.split("\n").filter((l) => l.startsWith("line")).length, 11);
  assert.equal(text.split("\n").filter((l) => l === "peer table").length, 3);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(text, /\x1b|\r/);
});
