import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { downloadSummary } from "../../cli/summary_view.ts";
import { captureIO, HERMETIC_ENV } from "../_cli_io.ts";
import { withSlowSeed } from "../_slow_seed.ts";

// The download's live view as a user sees it: in a real pseudo-terminal of 80 columns the
// status line never passes the width and redraws add no lines; the end of a download says
// "complete" (not "seeding") and sums up rate, waste, upload and duration; `--log jsonl:-`
// carries progress records for scripts.

const ROOT = new URL("../../", import.meta.url).pathname;
const PIECES = 64;

// deno-lint-ignore no-control-regex
const CSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

Deno.test("in an 80-column pseudo-terminal every drawn line fits and redraws add no lines", async () => {
  // A short folder name: the header line names it, and should not wrap at 80 columns either.
  await withSlowSeed(
    { pieces: PIECES, uploadLimit: 512 * 1024, prefix: "lv" },
    async ({ torrentPath, port, dir }) => {
      // The DHT and a (dead) tracker are on, so the full line has every field and is past 80.
      const command = [
        "stty cols 80 rows 24;",
        "exec",
        Deno.execPath(),
        "run -A",
        join(ROOT, "cli.ts"),
        "download",
        torrentPath,
        "-o",
        join(dir, "out"),
        "--peer",
        `127.0.0.1:${port}`,
        "--bind 127.0.0.1 --no-lsd --tracker udp://127.0.0.1:9/announce",
      ].join(" ");
      const output = await new Deno.Command("script", {
        args: ["-qfec", command, "/dev/null"],
        env: { ...HERMETIC_ENV, NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, text + new TextDecoder().decode(output.stderr));
      const drawn = text.replace(CSI, "").split(/[\r\n]/).filter((line) => line !== "");
      const status = drawn.filter((line) => /^\s*\d+\.\d% {2}/.test(line));
      assert.ok(status.length >= 5, `only ${status.length} status lines drawn:\n${drawn.join("\n")}`);
      for (const line of drawn) {
        assert.ok(line.length <= 80, `a line of ${line.length} columns: ${JSON.stringify(line)}`);
      }
      for (const line of status) {
        assert.ok(
          line.length <= 79,
          `status line of ${line.length} columns: ${line}`,
        );
      }
      // Line feeds: the header, any warnings, the final status line and the summary; not one per redraw.
      const feeds = text.split("\n").length - 1;
      assert.ok(feeds <= 12, `${feeds} line feeds for ${status.length} redraws:\n${text.replace(CSI, "")}`);
      assert.match(status.at(-1)!, /complete/);
    },
  );
});

Deno.test("a download that exits ends on 'complete', then sums up rate, waste, upload and duration", async () => {
  await withSlowSeed({ pieces: PIECES, uploadLimit: 0 }, async (seed) => {
    const { io, err } = captureIO();
    const code = await main(seed.downloadArgs("out"), io);
    assert.equal(code, 0, err());
    const lines = err().split("\n");
    const complete = lines.findIndex((l) => l.startsWith("Complete: "));
    assert.ok(complete > 0, err());
    const last = lines[complete - 1]!;
    assert.match(last, /100\.0%.*complete/, "the last status line");
    assert.doesNotMatch(last, /seeding/, "a download that exits is not seeding");
    assert.match(
      lines[complete]!,
      new RegExp(`^Complete: ${PIECES}/${PIECES} pieces verified, 2 MiB downloaded this run in [0-9.]+ s$`),
    );
    assert.match(
      lines[complete + 1]!,
      /^ {2}Average [0-9.]+ [KMG]?i?B\/s; (\d+ ms|[0-9.]+ s|\d+m\d+s) in all \(data check and connecting included\)$/,
    );
    assert.equal(lines[complete + 2], "  Wasted: nothing (every byte received was used)");
    assert.equal(lines[complete + 3], "  Uploaded 0 B (ratio 0.00)");
  });
});

Deno.test("with --seed the last status line says seeding, and the seeding summary gives duration and ratio", async () => {
  await withSlowSeed({ pieces: PIECES, uploadLimit: 0 }, async (seed) => {
    const { io, err } = captureIO();
    const code = await main(seed.downloadArgs("out", "--seed", "--seed-time", "1"), io);
    assert.equal(code, 0, err());
    const lines = err().split("\n");
    const complete = lines.findIndex((l) => l.startsWith("Complete: "));
    assert.match(lines[complete - 1]!, /seeding, uploaded 0 B/);
    assert.ok(
      lines.some((l) =>
        /^Stopped seeding \(--seed-time 1 s reached\): uploaded 0 B, ratio 0\.00, seeded for [12]s/.test(l)
      ),
      err(),
    );
  });
});

Deno.test("--log jsonl:- carries progress records under the default --log-level, not shown on stderr", async () => {
  await withSlowSeed({ pieces: PIECES, uploadLimit: 1024 * 1024 }, async (seed) => {
    const { io, out, err } = captureIO();
    const code = await main(seed.downloadArgs("out", "--log", "jsonl:-", "--log", "pretty"), io);
    assert.equal(code, 0, err());
    const records = out().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    const progress = records.filter((r) => r.category === "progress");
    assert.ok(progress.length >= 2, `${progress.length} progress records: ${out()}`);
    for (const r of progress) {
      assert.equal(r.level, "info");
      for (
        const field of ["percent", "completedBytes", "wantedBytes", "downloadRate", "uploadRate", "peers"]
      ) {
        assert.equal(typeof r.fields[field], "number", `${field} in ${JSON.stringify(r)}`);
      }
    }
    const lastRecord = progress.at(-1);
    assert.equal(lastRecord.fields.percent, 100);
    assert.equal(lastRecord.fields.state, "seeding");
    assert.doesNotMatch(err(), /progress/i, "progress records printed on stderr");
  });
});

Deno.test("the summary names what was wasted: duplicate blocks and pieces that failed their check", () => {
  const text = downloadSummary({
    state: "seeding",
    completedPieces: 1220,
    pieceCount: 1220,
    completedBytes: 20_000_000,
    totalBytes: 20_000_000,
    percent: 100,
    downloaded: 22_838_000,
    uploaded: 10_000_000,
    downloadRate: 0,
    uploadRate: 0,
    peers: 0,
    eta: 0,
    failedPieces: 3,
    duplicateBytes: 2_100_000,
    failedBytes: 738_000,
    wastedBytes: 2_838_000,
    bufferedBytes: 0,
    activeSeconds: 12.5,
    wantedPieces: 1220,
    wantedBytes: 20_000_000,
    done: true,
  }, { command: "download", elapsedSeconds: 14 });
  assert.equal(
    text,
    "Complete: 1220/1220 pieces verified, 21.78 MiB downloaded this run in 12.50 s\n" +
      "  Average 1.74 MiB/s; 14.0 s in all (data check and connecting included)\n" +
      "  Wasted 2.71 MiB of the 21.78 MiB received:\n" +
      "    2.00 MiB in duplicate or unneeded blocks\n" +
      "    720.70 KiB in 3 pieces that failed the hash check (downloaded again)\n" +
      "  Uploaded 9.54 MiB (ratio 0.50)\n",
  );
  for (const line of text.split("\n")) assert.ok(line.length <= 80, line);
});
