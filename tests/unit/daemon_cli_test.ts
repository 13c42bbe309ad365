import assert from "node:assert/strict";
import { join } from "node:path";
import { daemonSettings, defaultStateDir } from "../../cli/daemon_settings.ts";
import { main } from "../../cli.ts";

// `shoal daemon`'s settings: flag > the state folder's settings.json > default.

Deno.test("daemon settings take flags over settings.json over defaults", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_daemon_cli_" });
  try {
    const env = () => undefined;
    const plain = await daemonSettings({ "state-dir": dir }, { env, cwd: "/" });
    assert.equal(plain.port, 51413);
    assert.equal(plain.rpcPort, 9091);
    assert.equal(plain.rpcBind, "127.0.0.1");
    assert.equal(plain.downloadDir, join(dir, "downloads"));
    await Deno.writeTextFile(
      join(dir, "settings.json"),
      JSON.stringify({ port: 6000, "rpc-port": 9999, "watch-dir": "watch", dht: false, "up-limit": "1m" }),
    );
    const filed = await daemonSettings({ "state-dir": dir, port: "7000" }, { env, cwd: "/" });
    assert.equal(filed.port, 7000);
    assert.equal(filed.rpcPort, 9999);
    assert.equal(filed.watchDir, join(dir, "watch"));
    assert.equal(filed.dht, false);
    assert.equal(filed.upLimit, 1024 * 1024);
    await Deno.writeTextFile(join(dir, "settings.json"), JSON.stringify({ "rpc-port": 70000 }));
    await assert.rejects(daemonSettings({ "state-dir": dir }, { env, cwd: "/" }), /settings\.json.*rpc-port/);
    await Deno.writeTextFile(join(dir, "settings.json"), JSON.stringify({ "rpc-bind": "0.0.0.0" }));
    await assert.rejects(daemonSettings({ "state-dir": dir }, { env, cwd: "/" }), /--rpc-password/);
    const authed = await daemonSettings({ "state-dir": dir, "rpc-password": "pw" }, { env, cwd: "/" });
    assert.deepEqual(authed.rpcAuth, { username: "", password: "pw" });
    await Deno.writeTextFile(join(dir, "settings.json"), JSON.stringify({ colour: "blue" }));
    await assert.rejects(daemonSettings({ "state-dir": dir }, { env, cwd: "/" }), /unknown key "colour"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the default state folder follows XDG_DATA_HOME, then HOME", () => {
  assert.equal(defaultStateDir((n) => ({ XDG_DATA_HOME: "/x" } as Record<string, string>)[n]), "/x/shoal");
  assert.equal(defaultStateDir(() => undefined), undefined);
});

Deno.test("shoal daemon --help is listed and a bad --port is a usage error", async () => {
  const out: Uint8Array[] = [];
  const io = {
    stdout: new WritableStream<Uint8Array>({ write: (c) => void out.push(c) }),
    stderr: new WritableStream<Uint8Array>(),
    isTerminal: false,
  };
  assert.equal(await main(["daemon", "--help"], io), 0);
  assert.match(new TextDecoder().decode(out[0]), /--watch-dir DIR/);
  assert.equal(await main(["daemon", "--state-dir", "/nonexistent-x", "--port", "99999"], io), 2);
});
