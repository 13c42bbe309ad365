/**
 * Benchmark runner: `deno task bench [filter...]` runs every benchmark whose name contains
 * one of the filters (all of them without a filter), one after another, printing each
 * line of their reports.
 *
 * @module
 */

/** A benchmark module: `run` measures and reports its results line by line. */
export interface BenchModule {
  run(report: (line: string) => void): Promise<void>;
}

/** The benchmarks, by name. Add new ones here. */
export const BENCHES: Readonly<Record<string, () => Promise<BenchModule>>> = {
  create: () => import("./create_bench.ts"),
  download: () => import("./download_bench.ts"),
  seed: () => import("./seed_bench.ts"),
  mse: () => import("./mse_bench.ts"),
};

/**
 * Runs the benchmarks selected by `filters`.
 *
 * @param filters Substrings of benchmark names; empty runs them all.
 * @param report Where result lines go.
 * @returns The number of benchmarks that failed.
 */
export async function runBenches(
  filters: readonly string[],
  report: (line: string) => void,
): Promise<number> {
  const names = Object.keys(BENCHES).filter((name) =>
    filters.length === 0 || filters.some((f) => name.includes(f))
  );
  if (names.length === 0) {
    report(`No benchmark matches ${filters.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}`);
    return 1;
  }
  let failed = 0;
  for (const name of names) {
    report(`== ${name}`);
    try {
      const bench = await BENCHES[name]!();
      await bench.run((line) => report(`  ${line}`));
    } catch (e) {
      failed++;
      report(`  FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }
  return failed;
}

if (import.meta.main) {
  const failed = await runBenches(Deno.args, (line) => console.log(line));
  Deno.exit(failed === 0 ? 0 : 1);
}
