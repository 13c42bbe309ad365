import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { ConfigError, defaultConfigPath, ENV_NAMES, readConfig } from "../../cli/config_file.ts";
import { type ConfigSources, transferSettings } from "../../cli/transfer_options.ts";
import { UsageError } from "../../cli/common.ts";
import { createTorrent, parseMetainfo, Session } from "../../mod.ts";
import { captureIO, HERMETIC_ENV, runCommand } from "../_cli_io.ts";

/** A temporary home with `~/.config/shoal/config.json` holding `config` (if given). */
async function withHome(
  config: unknown,
  fn: (
    home: string,
    sources: ConfigSources & { env: (name: string) => string | undefined },
  ) => void | Promise<void>,
  vars: Record<string, string> = {},
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "shoal_config_" });
  try {
    if (config !== undefined) {
      await Deno.mkdir(join(home, ".config", "shoal"), { recursive: true });
      const text = typeof config === "string" ? config : JSON.stringify(config);
      await Deno.writeTextFile(join(home, ".config", "shoal", "config.json"), text);
    }
    const env: Record<string, string> = { HOME: home, ...vars };
    await fn(home, { env: (name) => env[name], cwd: home });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function configError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("defaultConfigPath() honours XDG_CONFIG_HOME, then HOME", () => {
  const lookup = (env: Record<string, string>) => (name: string) => env[name];
  assert.equal(
    defaultConfigPath(lookup({ HOME: "/home/a", XDG_CONFIG_HOME: "/xdg" })),
    "/xdg/shoal/config.json",
  );
  assert.equal(defaultConfigPath(lookup({ HOME: "/home/a" })), "/home/a/.config/shoal/config.json");
  // The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
  assert.equal(
    defaultConfigPath(lookup({ HOME: "/home/a", XDG_CONFIG_HOME: "rel" })),
    "/home/a/.config/shoal/config.json",
  );
  assert.equal(defaultConfigPath(lookup({})), undefined);
});

Deno.test("transferSettings() takes flags over environment over config file over defaults", async () => {
  const file = { port: 1111, "max-peers": 20, "up-limit": "500k", "down-limit": 2048, encryption: "require" };
  await withHome(file, (_home, sources) => {
    const fromFile = transferSettings("download", {}, sources);
    assert.equal(fromFile.port, 1111);
    assert.equal(fromFile.maxPeers, 20);
    assert.equal(fromFile.upLimit, 500 * 1024);
    assert.equal(fromFile.downLimit, 2048);
    assert.equal(fromFile.encryption, "require");
    assert.equal(fromFile.uploadSlots, 8, "a key the file leaves out keeps its default");

    const env: Record<string, string> = { HOME: _home, SHOAL_PORT: "2222" };
    const withEnv = { ...sources, env: (name: string) => env[name] };
    assert.equal(transferSettings("download", {}, withEnv).port, 2222);
    const flagged = transferSettings("download", { port: "3333", encryption: "allow" }, withEnv);
    assert.equal(flagged.port, 3333);
    assert.equal(flagged.encryption, "allow");
    assert.equal(flagged.maxPeers, 20);
  });
});

Deno.test("the config file turns DHT, PEX and LSD off and sets the DHT and log options", async () => {
  const file = {
    dht: false,
    pex: false,
    lsd: false,
    "space-check": false,
    "metadata-timeout": "2m",
    "log-level": "info",
    peers: true,
    quiet: true,
    bind: "127.0.0.1",
  };
  await withHome(file, (_home, sources) => {
    const settings = transferSettings("seed", {}, sources);
    assert.equal(settings.spaceCheck, false);
    assert.equal(settings.metadataTimeout, 120);
    assert.equal(settings.peersView, true);
    assert.equal(settings.dht, false);
    assert.equal(settings.pex, false);
    assert.equal(settings.lsd, false);
    assert.equal(settings.level, "info");
    assert.equal(settings.quiet, true);
    assert.equal(settings.bind, "127.0.0.1");
  });
  await withHome({ "dht-port": 6881, "dht-bootstrap": ["127.0.0.1:7000"] }, (_home, sources) => {
    assert.deepEqual(transferSettings("seed", {}, sources).dht, {
      port: 6881,
      bootstrap: ["127.0.0.1:7000"],
    });
  });
});

Deno.test("download-dir is relative to the config file's folder, ~/ to HOME, SHOAL_DOWNLOAD_DIR to the cwd", async () => {
  await withHome({ "download-dir": "dl" }, (home, sources) => {
    assert.equal(transferSettings("download", {}, sources).downloadDir, join(home, ".config", "shoal", "dl"));
  });
  await withHome({ "download-dir": "~/Downloads" }, (home, sources) => {
    assert.equal(transferSettings("download", {}, sources).downloadDir, join(home, "Downloads"));
  });
  await withHome(undefined, (home, sources) => {
    assert.equal(transferSettings("download", {}, sources).downloadDir, undefined);
    const env: Record<string, string> = { HOME: home, SHOAL_DOWNLOAD_DIR: "here" };
    const settings = transferSettings("download", {}, { env: (name) => env[name], cwd: "/srv" });
    assert.equal(settings.downloadDir, "/srv/here");
  });
});

Deno.test("config errors name the file and the key, the same checks as the flags", async () => {
  const cases: [unknown, RegExp][] = [
    [
      { port: 99999 },
      /^~\/\.config\/shoal\/config\.json: "port" must be a whole number from 0 to 65535 \(not 99999\)$/,
    ],
    [{ port: "6881" }, /"port" must be a whole number, not the string "6881"$/],
    [{ port: 1.5 }, /"port" must be a whole number from 0 to 65535 \(not 1\.5\)$/],
    [{ prot: 1 }, /unknown key "prot" \(known: port, bind, /],
    [{ "up-limit": "fast" }, /"up-limit" must be bytes per second, like 500k or 2m \(not "fast"\)$/],
    [{ encryption: "always" }, /"encryption" must be prefer, require, allow or disable \(not "always"\)$/],
    [{ dht: "no" }, /"dht" must be true or false, not the string "no"$/],
    [{ "dht-bootstrap": "a:1" }, /"dht-bootstrap" must be a list of strings, not the string "a:1"$/],
    [{ "dht-bootstrap": ["nohost"] }, /"dht-bootstrap" must be HOST:PORT, an IPv4 address or a name/],
    [{ "metadata-timeout": "soon" }, /"metadata-timeout" must be like 90, 30m, 2h or 1d \(not "soon"\)$/],
    [
      { "metadata-timeout": true },
      /"metadata-timeout" must be seconds, a number or a string like "30m", not true$/,
    ],
    [{ "log-level": "loud" }, /"log-level" must be debug, info, warn or error \(not "loud"\)$/],
    [{ "download-dir": "" }, /"download-dir" must name a folder/],
    ["{ port: 1 }", /config\.json: not valid JSON/],
    ["[1]", /config\.json: must hold a JSON object/],
  ];
  for (const [file, message] of cases) {
    await withHome(file, (_home, sources) => {
      configError(() => transferSettings("download", {}, sources), message);
    });
  }
  // A bad value is reported even when a flag overrides it this time.
  await withHome({ port: 99999 }, (_home, sources) => {
    configError(() => transferSettings("download", { port: "1" }, sources), /"port" must be/);
  });
});

Deno.test("a bad environment variable names the variable; a bad flag is still a usage error", async () => {
  await withHome(undefined, (_home, sources) => {
    configError(
      () =>
        transferSettings("seed", {}, { ...sources, env: (name) => name === "SHOAL_PORT" ? "x" : undefined }),
      /^SHOAL_PORT must be a whole number from 0 to 65535 \(not "x"\)$/,
    );
    assert.throws(() => transferSettings("seed", { port: "x" }, sources), UsageError);
    assert.throws(() => transferSettings("seed", { port: "x" }, sources), /Invalid --port: x \(a whole/);
  });
});

Deno.test("a missing --config or SHOAL_CONFIG file is an error, a missing default file is not", async () => {
  await withHome(undefined, (home, sources) => {
    assert.equal(transferSettings("seed", {}, sources).port, 0);
    configError(
      () => transferSettings("seed", { config: "nope.json" }, sources),
      /^Cannot read config file ~\/nope\.json: no such file$/,
    );
    configError(
      () =>
        transferSettings("seed", {}, {
          ...sources,
          env: (n) => n === "SHOAL_CONFIG" ? join(home, "x") : home,
        }),
      /Cannot read config file .*x: no such file/,
    );
  });
});

Deno.test("--config and SHOAL_CONFIG choose the file; without an environment only --config is read", async () => {
  await withHome({ port: 1111 }, async (home, sources) => {
    await Deno.writeTextFile(join(home, "other.json"), JSON.stringify({ port: 4444 }));
    assert.equal(transferSettings("seed", { config: "other.json" }, sources).port, 4444);
    const env: Record<string, string> = { HOME: home, SHOAL_CONFIG: join(home, "other.json") };
    assert.equal(transferSettings("seed", {}, { env: (name) => env[name] }).port, 4444);
    // No environment (in-process tests): the machine's config file is never read.
    assert.equal(transferSettings("seed", {}).port, 0);
    assert.equal(transferSettings("seed", { config: join(home, "other.json") }).port, 4444);
    assert.equal(readConfig({ cwd: home }).file, undefined);
  });
});

Deno.test("ENV_NAMES lists every variable the config reads", () => {
  const read = new Set<string>();
  readConfig({ cwd: "/", env: (name) => void read.add(name) });
  for (const name of read) assert.ok(ENV_NAMES.includes(name), `${name} is read but not in ENV_NAMES`);
});

Deno.test("download saves into the config file's download-dir when -o is not given", async () => {
  await withHome(undefined, async (home) => {
    await Deno.mkdir(join(home, "xdg", "shoal"), { recursive: true });
    await Deno.writeTextFile(
      join(home, "xdg", "shoal", "config.json"),
      JSON.stringify({
        "download-dir": "~/incoming",
        dht: false,
        lsd: false,
        bind: "127.0.0.1",
        quiet: true,
      }),
    );
    await Deno.mkdir(join(home, "seed"));
    const payload = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
    await Deno.writeFile(join(home, "seed", "p.bin"), payload);
    const made = await createTorrent(join(home, "seed", "p.bin"), { pieceLength: 32768 });
    await Deno.writeFile(join(home, "p.torrent"), made.torrent);
    await using seeder = new Session({ downloadDir: join(home, "seed"), bind: "127.0.0.1", dht: false });
    await seeder.add(parseMetainfo(made.torrent));
    const env: Record<string, string> = { HOME: home, XDG_CONFIG_HOME: join(home, "xdg") };
    const { io, err } = captureIO({ cwd: home, env: (name) => env[name] });
    const code = await main(["download", "p.torrent", "--peer", `127.0.0.1:${seeder.port}`], io);
    assert.equal(code, 0, err());
    assert.deepEqual(await Deno.readFile(join(home, "incoming", "p.bin")), payload);
  });
});

Deno.test("the real CLI takes its listening port from the config file", async () => {
  await withHome(undefined, async (home) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    await Deno.mkdir(join(home, "xdg", "shoal"), { recursive: true });
    await Deno.writeTextFile(
      join(home, "xdg", "shoal", "config.json"),
      JSON.stringify({ port, bind: "127.0.0.1", dht: false, lsd: false }),
    );
    await Deno.writeFile(join(home, "f.bin"), new Uint8Array(40_000).fill(3));
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const ran = await runCommand(Deno.execPath(), ["run", "-A", cli, "share", "f.bin", "--seed-time", "0"], {
      cwd: home,
      env: { ...HERMETIC_ENV, XDG_CONFIG_HOME: join(home, "xdg") },
    });
    const stderr = ran.stderr;
    assert.equal(ran.code, 0, stderr);
    assert.match(stderr, new RegExp(`Listening on port ${port}\\b`));
  });
});
