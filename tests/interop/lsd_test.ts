/**
 * BEP 14 local service discovery with real multicast: two shoal sessions, given no tracker
 * and no peer, find each other and transfer a torrent.
 *
 * Where multicast goes: on this kind of machine IPv4 multicast is delivered on plain
 * loopback when it is sent from, and joined on, 127.0.0.1; sessions that listen on
 * 127.0.0.1 pin discovery there (first test), so nothing leaves loopback. Sessions that
 * listen on all interfaces (the default) use the system's default multicast interface,
 * which would be the real network: the second test runs that configuration inside a network
 * namespace the test makes itself (`unshare --net`, as root or with a user namespace), with
 * only `lo`, brought up, and a route for 239.0.0.0/8 on it. IPv6 multicast is not delivered
 * on `lo` even there, so only the IPv4 group is proven against real sockets (the IPv6 rules
 * are covered by tests/unit/lsd_test.ts with fake channels).
 *
 * Run directly (`deno run -A tests/interop/lsd_test.ts DIR`), this file runs the scenario
 * with default sessions and prints its result as one JSON line: that is what the namespace
 * runs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTorrent } from "../../lib/create.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";
import type { LogRecord } from "../../lib/types.ts";
import { Session } from "../../mod.ts";
import { withTimeout } from "./_harness.ts";

const PAYLOAD_BYTES = 3 * 1024 * 1024 + 12345;
const COMPLETE_TIMEOUT_MS = 30_000;

/** What one run of the scenario saw. */
interface ScenarioResult {
  /** "Peer found by local discovery" records of both sessions. */
  found: { session: "seed" | "leech"; peer: string }[];
  /** The two sessions' listening ports. */
  ports: { seed: number; leech: number };
  /** Seconds from adding the torrent to the leecher to completion. */
  seconds: number;
}

/**
 * A seeding session and a leeching one, both with no tracker, no PEX and no peer given:
 * the leecher completes only if local discovery brings them together.
 */
async function lsdScenario(dir: string, hostname: string | undefined): Promise<ScenarioResult> {
  await Deno.mkdir(join(dir, "seed"), { recursive: true });
  const payload = new Uint8Array(PAYLOAD_BYTES);
  let x = 0x5eed;
  for (let i = 0; i < payload.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    payload[i] = x >>> 24;
  }
  await Deno.writeFile(join(dir, "seed", "lsd.bin"), payload);
  const created = await createTorrent(join(dir, "seed", "lsd.bin"), {
    pieceLength: 65536,
    creationDate: null,
  });
  const meta = parseMetainfo(created.torrent);
  assert.equal(meta.announceList.length, 0, "the torrent has no tracker");
  const logs: { session: "seed" | "leech"; record: LogRecord }[] = [];
  const session = (name: "seed" | "leech") =>
    new Session({
      downloadDir: join(dir, name),
      ...(hostname !== undefined ? { bind: hostname } : {}),
      trackers: false,
      pex: false,
      logLevel: "debug",
      logSinks: [(record) => logs.push({ session: name, record })],
    });
  const seed = session("seed");
  const leech = session("leech");
  try {
    const seeding = await seed.add(meta);
    assert.equal(seeding.state, "seeding");
    const started = performance.now();
    const torrent = await leech.add(meta);
    try {
      await withTimeout(
        torrent.completed,
        COMPLETE_TIMEOUT_MS,
        "the leecher to complete through local discovery",
      );
    } catch (error) {
      for (const { session, record } of logs.filter((l) => l.record.category === "lsd").slice(-20)) {
        console.error(session, record.level, record.message, JSON.stringify(record.fields));
      }
      throw error;
    }
    const seconds = (performance.now() - started) / 1000;
    const got = await Deno.readFile(join(dir, "leech", "lsd.bin"));
    assert.equal(got.length, payload.length);
    assert(got.every((b, i) => b === payload[i]), "the downloaded bytes differ from the payload");
    return {
      found: logs
        .filter((l) => l.record.category === "lsd" && l.record.message === "Peer found by local discovery")
        .map((l) => ({ session: l.session, peer: String(l.record.fields.peer) })),
      ports: { seed: seed.port, leech: leech.port },
      seconds,
    };
  } finally {
    await leech.close();
    await seed.close();
  }
}

/** Asserts that one session found the other by local discovery. */
function assertFoundEachOther(result: ScenarioResult): void {
  const expected = result.found.some((f) =>
    (f.session === "seed" && f.peer.endsWith(`:${result.ports.leech}`)) ||
    (f.session === "leech" && f.peer.endsWith(`:${result.ports.seed}`))
  );
  assert(expected, `no session found the other: ${JSON.stringify(result)}`);
}

Deno.test("two sessions on 127.0.0.1 with no tracker and no peers find each other by local discovery and transfer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_lsd_" });
  try {
    const result = await lsdScenario(dir, "127.0.0.1");
    assertFoundEachOther(result);
    for (const f of result.found) assert.match(f.peer, /^127\.0\.0\.1:\d+$/);
    console.log(`LSD on loopback: found ${result.found.length}, complete in ${result.seconds.toFixed(2)} s`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** unshare arguments that make a network namespace here (as root, else with a user namespace), or null. */
async function namespaceArgs(): Promise<string[] | null> {
  for (const args of [["--net"], ["--user", "--map-root-user", "--net"]]) {
    try {
      const probe = await new Deno.Command("unshare", {
        args: [...args, "ip", "link", "set", "lo", "up"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
      if (probe.success) return args;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      return null; // no unshare
    }
  }
  return null;
}

const NAMESPACE = await namespaceArgs();

Deno.test({
  name: "two sessions on all interfaces find each other by local discovery inside a network namespace",
  ignore: NAMESPACE === null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "shoal_lsd_ns_" });
    // Only lo, up, with the IPv4 multicast route on it (and 127.0.0.1 as the source address).
    const script =
      'ip link set lo up && ip route add 239.0.0.0/8 dev lo src 127.0.0.1 && exec "$0" run -A "$1" "$2"';
    const child = new Deno.Command("unshare", {
      args: [
        ...NAMESPACE!,
        "--pid",
        "--fork",
        "--kill-child=SIGTERM",
        "bash",
        "-c",
        script,
        Deno.execPath(),
        fileURLToPath(import.meta.url),
        dir,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.finally(() => (exited = true));
    try {
      const output = await withTimeout(child.output(), 90_000, "the scenario in the network namespace");
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `the scenario failed (code ${output.code}):\n${stdout}\n${stderr}`);
      const line = stdout.trim().split("\n").at(-1) ?? "";
      const result = JSON.parse(line) as ScenarioResult;
      assertFoundEachOther(result);
      console.log(
        `LSD in a namespace: found ${result.found.length}, complete in ${result.seconds.toFixed(2)} s`,
      );
    } finally {
      if (!exited) child.kill("SIGKILL"); // the namespace's processes die with it (--kill-child, --pid)
      await status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (import.meta.main) {
  const dir = Deno.args[0];
  if (dir === undefined) {
    console.error("Usage: deno run -A tests/interop/lsd_test.ts DIR");
    Deno.exit(2);
  }
  const result = await lsdScenario(dir, undefined);
  console.log(JSON.stringify(result));
}
