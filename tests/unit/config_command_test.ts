import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { CONFIG_ENV, CONFIG_KEYS } from "../../cli/config_file.ts";
import { captureIO } from "../_cli_io.ts";

async function withConfig(
  config: unknown,
  fn: (env: (name: string) => string | undefined, home: string) => Promise<void>,
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "shoal_config_cmd_" });
  try {
    await Deno.mkdir(join(home, ".config", "shoal"), { recursive: true });
    await Deno.writeTextFile(join(home, ".config", "shoal", "config.json"), JSON.stringify(config));
    const vars: Record<string, string> = { HOME: home, SHOAL_BIND: "127.0.0.1" };
    await fn((name) => vars[name], home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test("shoal config shows each setting and where it comes from", async () => {
  await withConfig({ port: 1111, dht: false, "up-limit": "500k" }, async (env) => {
    const { io, out, err } = captureIO({ env });
    assert.equal(await main(["config"], io), 0, err());
    const text = out();
    assert.match(text, /^Config file: ~\/\.config\/shoal\/config\.json$/m);
    assert.match(text, /^ {2}port +1111 +config file$/m);
    assert.match(text, /^ {2}bind +127\.0\.0\.1 +SHOAL_BIND$/m);
    assert.match(text, /^ {2}up-limit +500 KiB\/s +config file$/m);
    assert.match(text, /^ {2}dht +false +config file$/m);
    assert.match(text, /^ {2}max-peers +50 +default$/m);
    for (const key of CONFIG_KEYS) assert.match(text, new RegExp(`^ {2}${key} `, "m"), `no row for ${key}`);
  });
});

Deno.test("shoal config --json gives the same as JSON", async () => {
  await withConfig({ port: 1111 }, async (env) => {
    const { io, out, err } = captureIO({ env });
    assert.equal(await main(["config", "--json"], io), 0, err());
    const json = JSON.parse(out());
    assert.match(json.file, /\.config\/shoal\/config\.json$/);
    assert.deepEqual(json.settings.port, { value: "1111", from: "config file" });
    assert.deepEqual(json.settings.bind, { value: "127.0.0.1", from: "SHOAL_BIND" });
    assert.deepEqual(Object.keys(json.settings), [...CONFIG_KEYS]);
  });
});

Deno.test("shoal config reports a bad file in one line, exit 1", async () => {
  await withConfig({ "max-peers": 0 }, async (env) => {
    const { io, out, err } = captureIO({ env });
    assert.equal(await main(["config"], io), 1);
    assert.equal(out(), "");
    assert.equal(
      err(),
      'error: ~/.config/shoal/config.json: "max-peers" must be a whole number from 1 to 10000 (not 0)\n',
    );
  });
});

Deno.test("shoal config --help documents every key and variable", async () => {
  const { io, out } = captureIO();
  assert.equal(await main(["config", "--help"], io), 0);
  for (const key of CONFIG_KEYS) assert.ok(out().includes(`"${key}"`), `${key} missing from the help`);
  for (const name of Object.keys(CONFIG_ENV)) {
    assert.ok(out().includes(name), `${name} missing from the help`);
  }
});
