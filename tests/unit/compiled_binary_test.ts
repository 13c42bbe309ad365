/**
 * `deno task compile` for real: builds `dist/shoal`, then runs `--help`, `info` and a download
 * from the binary's own `share` on 127.0.0.1, and checks that `--selector ./file.ts` explains
 * why a compiled binary cannot load it.
 *
 * `deno compile` needs the `denort` runtime: from `DENORT_BIN` when set, from Deno's cache, or
 * downloaded from dl.deno.land. When none of these can work the test is ignored, and its name
 * and a warning say why (it never passes without running).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LineProcess, REPO_ROOT } from "../interop/_download_helpers.ts";
import { type CommandRun, HERMETIC_ENV, runCommand } from "../_cli_io.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/valid/02_multi_file_nested.torrent", import.meta.url));
const BINARY = join(REPO_ROOT, "dist", "shoal");
const DEADLINE_MS = 120_000;

/** Why `deno compile` cannot get its runtime here, or `undefined` when it can. */
async function runtimeMissing(): Promise<string | undefined> {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort !== undefined && denort !== "") {
    try {
      await Deno.stat(denort);
      return undefined;
    } catch (error) {
      return `DENORT_BIN=${denort} cannot be read (${(error as Error).message})`;
    }
  }
  const zip = `denort-${Deno.build.target}.zip`;
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  const denoDir: string = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
  const cached = join(denoDir, "dl", "release", `v${Deno.version.deno}`, zip);
  try {
    await Deno.stat(cached);
    return undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    await Promise.race([
      Deno.resolveDns("dl.deno.land", "A"),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 3 s")), 3000)),
    ]);
    return undefined;
  } catch (error) {
    return `deno compile needs ${zip}: not in ${cached}, no DENORT_BIN, and dl.deno.land cannot be ` +
      `resolved (${
        (error as Error).message
      }); set DENORT_BIN to a denort binary of Deno ${Deno.version.deno}`;
  }
}

const missing = await runtimeMissing();
if (missing !== undefined) console.warn(`compiled_binary_test: ignored: ${missing}`);

function run(args: string[], cwd: string): Promise<CommandRun> {
  return runCommand(BINARY, args, { cwd, timeoutMs: DEADLINE_MS });
}

Deno.test({
  name: "the compiled shoal binary runs --help, info and a download" +
    (missing === undefined ? "" : ` (ignored: ${missing})`),
  ignore: missing !== undefined,
  async fn() {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["task", "compile"],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(DEADLINE_MS * 3),
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    const root = await Deno.makeTempDir({ prefix: "shoal_compiled_" });
    try {
      const help = await run(["--help"], root);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /Usage: shoal <command>/);

      const info = await run(["info", FIXTURE], root);
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, /Info-hash:\s+[0-9a-f]{40}/);

      await Deno.mkdir(join(root, "data", "payload"), { recursive: true });
      const a = new Uint8Array(300_000).map((_, i) => (i * 11 + 3) & 0xff);
      await Deno.writeFile(join(root, "data", "payload", "a.bin"), a);
      await using share = new LineProcess(
        "compiled shoal share",
        BINARY,
        ["share", "payload", "-o", join(root, "payload.torrent"), "--bind", "127.0.0.1", "-q"],
        join(root, "data"),
        { ...HERMETIC_ENV },
      );
      const listening = await share.waitForLine(
        (l) => /^Listening on port \d+/.test(l),
        DEADLINE_MS,
        "listening",
      );
      const port = Number(/(\d+)/.exec(listening)?.[1]);
      const args = [
        join(root, "payload.torrent"),
        "--peer",
        `127.0.0.1:${port}`,
        "--bind",
        "127.0.0.1",
        "-q",
      ];
      const download = await run(["download", ...args, "-o", "out"], root);
      assert.equal(download.code, 0, `${download.stderr}\n${share.tail()}`);
      assert.deepEqual(await Deno.readFile(join(root, "out", "payload", "a.bin")), a);
      assert.doesNotMatch(
        `${download.stderr}\n${share.tail()}`,
        /unstable-net|NotCapable|Requires \w+ access/,
      );

      // A user's module is not in the binary: the error says so and what to do.
      await Deno.writeTextFile(
        join(root, "mine.ts"),
        "export const selector = { name: 'x', select: () => [] };\n",
      );
      const own = await run(["download", ...args, "-o", "out2", "--selector", "./mine.ts"], root);
      assert.notEqual(own.code, 0);
      assert.match(
        own.stderr,
        /Plugin '\.\/mine\.ts' failed: cannot load the module: .*compiled shoal binary/,
      );
      assert.doesNotMatch(own.stderr, /^\s+at /m);
      await share.stop();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
