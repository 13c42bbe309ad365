/**
 * `deno task install` for real: installs the `shoal` command into a temporary root, then runs
 * `shoal --help`, `shoal info` and a download from a `shoal share` on 127.0.0.1 through PATH,
 * with exactly the permissions the task grants.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ENV_NAMES } from "../../cli/config_file.ts";
import { LineProcess, REPO_ROOT } from "../interop/_download_helpers.ts";
import { type CommandRun, HERMETIC_ENV, runCommand } from "../_cli_io.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/valid/02_multi_file_nested.torrent", import.meta.url));
const DEADLINE_MS = 60_000;

function run(command: string, args: string[], env: Record<string, string>, cwd: string): Promise<CommandRun> {
  return runCommand(command, args, { cwd, env, timeoutMs: DEADLINE_MS });
}

Deno.test("deno task install grants only net, read, write, two sys calls and the config's variables", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json"))).tasks;
  const command: string = tasks.install.command;
  assert.match(command, /^deno install -g -f -n shoal /);
  assert.doesNotMatch(command, /(^| )(-A|--allow-all|--allow-run|--allow-ffi|--allow-import)\b/);
  // networkInterfaces: share's magnet lists this machine's addresses; statfs: the free space
  // check before a download starts.
  assert.match(command, / --allow-sys=networkInterfaces,statfs /);
  assert.match(command, / --config deno.json cli\.ts$/, "the config carries the unstable net API");
  const env = / --allow-env=(\S+) /.exec(command)?.[1]?.split(",") ?? [];
  // The config's variables, and COLUMNS: the live view's width when the terminal size is unknown.
  assert.deepEqual(
    env.toSorted(),
    [...ENV_NAMES, "COLUMNS"].toSorted(),
    "--allow-env lists what the config and the live view read",
  );
  assert.equal(
    tasks.compile.command.replace(/^deno compile --output dist\/shoal /, "deno install -g -f -n shoal "),
    command,
  );
});

Deno.test("the installed shoal command shows help, reads a torrent and downloads from a shoal share", async () => {
  const root = await Deno.makeTempDir({ prefix: "shoal_install_" });
  try {
    const installed = await run(Deno.execPath(), ["task", "install"], { DENO_INSTALL_ROOT: root }, REPO_ROOT);
    assert.equal(installed.code, 0, installed.stderr);
    const env = { ...HERMETIC_ENV, PATH: `${join(root, "bin")}:${Deno.env.get("PATH") ?? ""}` };

    const help = await run("shoal", ["--help"], env, root);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: shoal <command>/);

    const info = await run("shoal", ["info", FIXTURE], env, root);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /Info-hash:\s+[0-9a-f]{40}/);

    await Deno.mkdir(join(root, "data", "payload", "sub"), { recursive: true });
    const a = new Uint8Array(300_000).map((_, i) => (i * 13 + 5) & 0xff);
    await Deno.writeFile(join(root, "data", "payload", "a.bin"), a);
    await Deno.writeTextFile(join(root, "data", "payload", "sub", "b.txt"), "shoal\n".repeat(1000));
    // DHT and local discovery stay on: they need the unstable net API the install must carry.
    await using share = new LineProcess(
      "installed shoal share",
      "shoal",
      ["share", "payload", "-o", join(root, "payload.torrent"), "--bind", "127.0.0.1", "-q"],
      join(root, "data"),
      env,
    );
    const listening = await share.waitForLine(
      (l) => /^Listening on port \d+/.test(l),
      DEADLINE_MS,
      "listening",
    );
    const port = Number(/(\d+)/.exec(listening)?.[1]);

    const download = await run(
      "shoal",
      [
        "download",
        join(root, "payload.torrent"),
        "-o",
        "out",
        "--peer",
        `127.0.0.1:${port}`,
        "--bind",
        "127.0.0.1",
        "-q",
      ],
      env,
      root,
    );
    assert.equal(download.code, 0, `${download.stderr}\n${share.tail()}`);
    assert.deepEqual(await Deno.readFile(join(root, "out", "payload", "a.bin")), a);
    assert.equal(
      await Deno.readTextFile(join(root, "out", "payload", "sub", "b.txt")),
      "shoal\n".repeat(1000),
    );
    for (const text of [download.stderr, share.tail()]) {
      assert.doesNotMatch(text, /unstable-net|NotCapable|Requires \w+ access/, text);
    }
    await share.stop();

    // Listening on every interface, share names them in the magnet: that needs
    // --allow-sys=networkInterfaces (no peer source is used: DHT and LSD are off).
    const everywhere = await run(
      "shoal",
      [
        "share",
        "payload",
        "-o",
        join(root, "again.torrent"),
        "--no-dht",
        "--no-lsd",
        "--seed-time",
        "0",
        "-q",
      ],
      env,
      join(root, "data"),
    );
    assert.equal(everywhere.code, 0, everywhere.stderr);
    const external = Deno.networkInterfaces().find((nic) =>
      nic.family === "IPv4" && !nic.address.startsWith("127.")
    );
    if (external !== undefined) assert.match(everywhere.stdout, new RegExp(`x\\.pe=${external.address}:`));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
