import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// The README's TypeScript examples are what a new user copies first: each one must type-check
// against the library as it is (an option renamed or an event retyped breaks this test).

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The ```ts blocks of a Markdown text, with their 1-based starting lines. */
function tsBlocks(markdown: string): { code: string; line: number }[] {
  const blocks: { code: string; line: number }[] = [];
  for (const m of markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    blocks.push({ code: m[1]!, line: markdown.slice(0, m.index!).split("\n").length });
  }
  return blocks;
}

Deno.test("tsBlocks() finds ts blocks only", () => {
  const text = "# x\n```ts\nconst a = 1;\n```\n```sh\nls\n```\n\n```ts\nlet b;\n```\n";
  assert.deepEqual(tsBlocks(text), [{ code: "const a = 1;\n", line: 2 }, { code: "let b;\n", line: 9 }]);
});

Deno.test("every TypeScript example in README.md type-checks", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const blocks = tsBlocks(readme);
  assert.ok(blocks.length >= 4, `only ${blocks.length} ts blocks in README.md`);
  const dir = await Deno.makeTempDir({ prefix: "shoal_readme_" });
  try {
    const files: string[] = [];
    for (const [i, block] of blocks.entries()) {
      // Relative imports in the README are relative to the repository root.
      const code = block.code.replace(
        /from "(\.\/[^"]+)"/g,
        (_, path: string) => `from "${pathToFileURL(join(ROOT, path)).href}"`,
      );
      const file = join(dir, `readme_line_${block.line}_${i}.ts`);
      await Deno.writeTextFile(file, code);
      files.push(file);
    }
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", join(ROOT, "deno.json"), ...files],
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
