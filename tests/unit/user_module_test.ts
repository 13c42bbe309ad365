import assert from "node:assert/strict";
import { importUserModule } from "../../cli/user_module.ts";
import { PluginError } from "../../mod.ts";

const FIXTURES = new URL("../../fixtures/plugins/", import.meta.url).pathname;

Deno.test("importUserModule() loads a module by a path relative to the cwd", async () => {
  const module = await importUserModule("./lowest_first.ts", FIXTURES);
  assert.ok(Object.keys(module).length > 0);
});

Deno.test("importUserModule() names the module it cannot load", async () => {
  await assert.rejects(
    () => importUserModule("./missing.ts", FIXTURES, { standalone: false }),
    (error: unknown) => {
      assert.ok(error instanceof PluginError);
      assert.match(error.message, /^Plugin '\.\/missing\.ts' failed: cannot load the module: /);
      assert.doesNotMatch(error.message, /compiled/);
      return true;
    },
  );
});

Deno.test("importUserModule() in a compiled binary says how to use one's own module", async () => {
  await assert.rejects(
    () => importUserModule("./missing.ts", FIXTURES, { standalone: true }),
    /a compiled shoal binary loads only the modules built into it: build it with 'deno compile --include \.\/missing\.ts', or run shoal with Deno, as 'deno task install' installs it\)$/,
  );
});
