import assert from "node:assert/strict";
import { join } from "node:path";
import { formatSummary, summarizeJunit } from "../../scripts/print_summary.ts";

const SCRIPT = new URL("../../scripts/print_summary.ts", import.meta.url).pathname;

/** A report shaped like the one `deno test --junit-path` writes, with a step and escaped text. */
const REPORT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="6" failures="3" errors="0" time="0.012">
    <testsuite name="./a_test.ts" tests="6" disabled="1" errors="0" failures="3">
        <testcase name="passes" classname="./a_test.ts" time="0.001" line="1" col="6">
        </testcase>
        <testcase name="fails &lt;&amp;&gt;" classname="./a_test.ts" time="0.001" line="2" col="6">
            <failure message="Uncaught Error: boom &lt;/testcase&gt;">Error: boom &lt;/testcase&gt;</failure>
        </testcase>
        <testcase name="ignored" classname="./a_test.ts" time="0.000" line="3" col="6">
            <skipped/>
        </testcase>
        <testcase name="steps" classname="./a_test.ts" time="0.002" line="4" col="6">
            <failure message="1 test step failed">1 test step failed.</failure>
        </testcase>
        <testcase name="steps &gt; inner ok" classname="./a_test.ts" time="0.000" line="4" col="43">
        </testcase>
        <testcase name="errored" classname="./a_test.ts"><error message="x">x</error></testcase>
        <testcase name="self-closing" classname="./a_test.ts"/>
    </testsuite>
</testsuites>
`;

async function runScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", SCRIPT, ...args],
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("summarizeJunit() counts passed, failed (failure or error) and skipped test cases", () => {
  assert.deepEqual(summarizeJunit(REPORT), { passed: 3, failed: 3, skipped: 1 });
});

Deno.test("summarizeJunit() gives zeros for a report without test cases", () => {
  assert.deepEqual(summarizeJunit("<testsuites></testsuites>"), { passed: 0, failed: 0, skipped: 0 });
});

Deno.test("formatSummary() writes the CI line", () => {
  assert.equal(formatSummary({ passed: 12, failed: 0, skipped: 2 }), "12 passed, 0 failed, 2 skipped");
});

Deno.test("print_summary.ts prints one line and exits 1 when a test failed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "junit.xml"), REPORT);
    const r = await runScript([join(dir, "junit.xml")]);
    assert.equal(r.stdout, "3 passed, 3 failed, 1 skipped\n");
    assert.equal(r.code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("print_summary.ts counts failed CI steps and a failing exit code without failed tests", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "junit.xml");
    await Deno.writeTextFile(path, `<testsuites><testcase name="a"></testcase></testsuites>`);
    const ok = await runScript([path]);
    assert.deepEqual([ok.stdout, ok.code], ["1 passed, 0 failed, 0 skipped\n", 0]);
    const r = await runScript([path, "--test-exit-code", "1", "--failed-step", "deno task check"]);
    assert.equal(r.stdout, "1 passed, 2 failed, 0 skipped\n");
    assert.match(r.stderr, /deno task check/);
    assert.equal(r.code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("print_summary.ts counts a missing report as one failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runScript([join(dir, "missing.xml"), "--test-exit-code", "1"]);
    assert.equal(r.stdout, "0 passed, 1 failed, 0 skipped\n");
    assert.match(r.stderr, /No test report/);
    assert.equal(r.code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
