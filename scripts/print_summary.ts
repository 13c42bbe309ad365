/**
 * Prints CI's one-line result, `N passed, N failed, N skipped`, from the JUnit
 * XML report `deno test --junit-path` writes. Every `<testcase>` counts (test
 * steps appear as their own test cases): one with a `<failure>` or `<error>` has
 * failed, one with `<skipped>` was skipped (ignored), any other has passed.
 *
 * ```sh
 * deno run --allow-read scripts/print_summary.ts junit.xml [--failed-step NAME]... [--test-exit-code N]
 * ```
 *
 * `--failed-step NAME` counts a failed CI step outside the tests (such as
 * `deno task check`) as one more failure. `--test-exit-code N` with a non-zero
 * `N` counts one failure when the report shows none (the run crashed, timed out
 * or failed outside any test). A missing report counts as one failure. The
 * explanations go to stderr; stdout gets only the summary line. Exits 1 when
 * anything failed.
 *
 * @module
 */

/** Counts of a test run. */
export interface Summary {
  /** Test cases that passed. */
  passed: number;
  /** Test cases (and CI steps) that failed. */
  failed: number;
  /** Test cases that were skipped. */
  skipped: number;
}

/**
 * Counts the test cases of a JUnit XML report.
 *
 * @example
 * ```ts
 * import { summarizeJunit } from "./print_summary.ts";
 * const xml = `<testsuites><testsuite>
 *   <testcase name="a"></testcase>
 *   <testcase name="b"><failure message="x">x</failure></testcase>
 *   <testcase name="c"><skipped/></testcase>
 *   <testcase name="d"/>
 * </testsuite></testsuites>`;
 * console.log(summarizeJunit(xml)); // { passed: 2, failed: 1, skipped: 1 }
 * ```
 *
 * @param xml The report.
 * @returns How many test cases passed, failed and were skipped.
 */
export function summarizeJunit(xml: string): Summary {
  const summary: Summary = { passed: 0, failed: 0, skipped: 0 };
  // Text inside the report is XML-escaped, so a literal "</testcase>" only closes an element.
  const testcase = /<testcase\b[^>]*?(?:\/>|>([\s\S]*?)<\/testcase\s*>)/g;
  for (const match of xml.matchAll(testcase)) {
    const body = match[1] ?? "";
    if (/<(?:failure|error)\b/.test(body)) summary.failed++;
    else if (/<skipped\b/.test(body)) summary.skipped++;
    else summary.passed++;
  }
  return summary;
}

/**
 * Formats the summary line.
 *
 * @example
 * ```ts
 * import { formatSummary } from "./print_summary.ts";
 * console.log(formatSummary({ passed: 3, failed: 1, skipped: 0 })); // "3 passed, 1 failed, 0 skipped"
 * ```
 *
 * @param summary The counts.
 * @returns `N passed, N failed, N skipped`.
 */
export function formatSummary(summary: Summary): string {
  return `${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`;
}

/** Parsed command line of the script. */
interface Args {
  junitPath: string;
  failedSteps: string[];
  testExitCode: number;
}

function parseArgs(args: string[]): Args {
  const failedSteps: string[] = [];
  let junitPath: string | undefined;
  let testExitCode = 0;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--failed-step" || arg === "--test-exit-code") {
      const value = args[++i];
      if (value === undefined) throw new TypeError(`Invalid arguments: ${arg} needs a value`);
      if (arg === "--failed-step") failedSteps.push(value);
      else testExitCode = Number(value);
    } else if (arg !== undefined && junitPath === undefined && !arg.startsWith("--")) {
      junitPath = arg;
    } else {
      throw new TypeError(`Invalid arguments: unexpected '${arg}'`);
    }
  }
  if (junitPath === undefined) {
    throw new TypeError(
      "Invalid arguments: usage: print_summary.ts JUNIT_XML [--failed-step NAME]... [--test-exit-code N]",
    );
  }
  return { junitPath, failedSteps, testExitCode };
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  let summary: Summary;
  try {
    summary = summarizeJunit(await Deno.readTextFile(args.junitPath));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    console.error(`No test report at ${args.junitPath}: the test run did not finish`);
    summary = { passed: 0, failed: 1, skipped: 0 };
  }
  if (args.testExitCode !== 0 && summary.failed === 0) {
    console.error(`deno test exited with code ${args.testExitCode} although no test case failed`);
    summary.failed++;
  }
  for (const step of args.failedSteps) {
    console.error(`CI step failed: ${step}`);
    summary.failed++;
  }
  console.log(formatSummary(summary));
  return summary.failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
