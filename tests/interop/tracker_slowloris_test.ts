/**
 * The built-in tracker under slowloris: `cli.ts tracker` runs with a descriptor limit of 256
 * while 800 connections send half an HTTP request and then nothing (from one address, and
 * from 800 addresses). Real announces from 127.0.0.1 still get correct answers, the
 * half-sent connections are closed by the header deadline (10 s), and the process never
 * exits.
 *
 * Before the fix (`Deno.serve`, no header timeout, no connection cap) the half-sent
 * connections stayed open and at the descriptor limit `Deno.serve` threw and the process
 * exited.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type BDict, decode } from "../../lib/bencode.ts";
import { HEADER_TIMEOUT_MS } from "../../lib/http/limits.ts";
import { LineProcess, REPO_ROOT } from "./_download_helpers.ts";
import { holdConnections } from "./_hold_connections.ts";

const NOFILE = 256;

async function startLimitedTracker(): Promise<{ child: LineProcess; announce: string }> {
  const child = new LineProcess("shoal tracker (nofile 256)", "prlimit", [
    `--nofile=${NOFILE}:${NOFILE}`,
    Deno.execPath(),
    "run",
    "-A",
    join(REPO_ROOT, "cli.ts"),
    "tracker",
    "--bind",
    "127.0.0.1",
    "--http-port",
    "0",
    "--udp-port",
    "0",
  ], REPO_ROOT);
  try {
    const line = await child.waitForLine((l) => l.startsWith("HTTP announce URL: "), 60_000, "announce URL");
    return { child, announce: line.slice("HTTP announce URL: ".length).trim() };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

function escapeBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

async function announce(url: string, infoHash: Uint8Array, peerId: Uint8Array, port: number): Promise<BDict> {
  const response = await fetch(
    `${url}?info_hash=${escapeBytes(infoHash)}&peer_id=${escapeBytes(peerId)}&port=${port}` +
      "&uploaded=0&downloaded=0&left=100&compact=1&event=started",
    { signal: AbortSignal.timeout(10_000) },
  );
  assert.equal(response.status, 200);
  return decode(new Uint8Array(await response.arrayBuffer())) as BDict;
}

async function trackerSurvives(source: string): Promise<void> {
  const { child, announce: url } = await startLimitedTracker();
  try {
    const port = Number(new URL(url).port);
    const started = Date.now();
    await using held = await holdConnections({
      port,
      count: 800,
      source,
      send: "GET /announce?info_hash=%01%02 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUser-Agent: slow",
    });
    assert.ok(held.connected + held.failed === 800);
    const infoHash = crypto.getRandomValues(new Uint8Array(20));
    const first = await announce(url, infoHash, crypto.getRandomValues(new Uint8Array(20)), 51413);
    assert.equal(first.get("failure reason"), undefined);
    const second = await announce(url, infoHash, crypto.getRandomValues(new Uint8Array(20)), 51414);
    assert.equal(second.get("interval"), 1800);
    assert.equal(second.get("incomplete"), 2);
    // The first peer is in the second answer: 127.0.0.1:51413 in compact form.
    assert.deepEqual([...(second.get("peers") as Uint8Array)], [127, 0, 0, 1, 51413 >> 8, 51413 & 0xff]);
    // Every half-sent connection is closed by the header deadline (or refused, or evicted).
    const deadline = started + HEADER_TIMEOUT_MS + 15_000;
    while (held.open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(held.open(), 0, held.tail());
    assert.equal(child.exited, undefined, `the tracker exited\n${child.tail()}`);
    assert.match(child.stderrLines.join("\n"), /Tracker HTTP endpoint under pressure/, child.tail());
    // Still answering once the flood is over.
    const third = await announce(url, infoHash, crypto.getRandomValues(new Uint8Array(20)), 51415);
    assert.equal(third.get("incomplete"), 3);
  } finally {
    await child.stop();
  }
}

Deno.test({
  name: "the tracker under slowloris from one address still answers announces and never exits",
  sanitizeResources: false,
  fn: () => trackerSurvives("127.0.0.2"),
});

Deno.test({
  name: "the tracker under slowloris from 800 addresses still answers announces and never exits",
  sanitizeResources: false,
  fn: () => trackerSurvives("127.0.1.1-127.0.4.250"),
});
