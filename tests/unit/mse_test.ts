import assert from "node:assert/strict";
import { encodeHandshake } from "../../lib/wire/handshake.ts";
import type { Duplex } from "../../lib/types.ts";
import { mse, type MseDuplex, MseError, type MsePolicy } from "../../plugins/encryption/mse.ts";
import {
  checkPublicKey,
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  KEY_LENGTH,
  KeyPair,
  MSE_PRIME,
} from "../../plugins/encryption/mse_handshake.ts";
import {
  connectPair,
  duplexPair,
  lookupFor,
  noise,
  peekLikeCore,
  SUITE_INFO_HASH,
  transfer,
} from "../conformance/encryption_suite.ts";
import {
  degenerateKeys,
  duplexIo,
  type InitiatorScript,
  type ResponderScript,
  runInitiator,
  runResponder,
  type ScriptedSession,
} from "../_mse_script.ts";
import { withDeadline } from "../_fake_peer.ts";

// The MSE plugin at the plugin level, over in-memory connections: policies, what goes on
// the wire, and a scripted peer (tests/_mse_script.ts) that gets each handshake step right
// or wrong, with the limits of the spec tested at their edges.

const INFO_HASH = SUITE_INFO_HASH;
const OTHER_HASH = new Uint8Array(20).fill(7);
const DEADLINE_MS = 5000;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return withDeadline(
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    DEADLINE_MS,
    "the handshake to settle",
  );
}

function failure(s: Settled<unknown>, where: string): Error {
  assert.ok(!s.ok, `${where}: succeeded but should have failed`);
  assert.ok(s.error instanceof Error, `${where}: rejected with a non-error`);
  return s.error;
}

/** shoal dials (the plugin's outgoing) a scripted responder. */
async function pluginDials(
  policy: MsePolicy,
  script: ResponderScript,
): Promise<{ ours: Settled<MseDuplex>; theirs: Settled<(ScriptedSession & { ia: Uint8Array }) | null> }> {
  const [ours, theirs] = duplexPair();
  const dialing = settle(mse({ policy }).outgoing(ours, INFO_HASH, AbortSignal.timeout(DEADLINE_MS)));
  const scripted = settle(runResponder(duplexIo(theirs), script));
  const result = { ours: await dialing as Settled<MseDuplex>, theirs: await scripted };
  if (!result.ours.ok) theirs.close();
  return result;
}

/** A scripted initiator dials shoal (the plugin's incoming, after the core's 20-byte peek). */
async function pluginAccepts(
  policy: MsePolicy,
  script: InitiatorScript,
): Promise<{
  ours: Settled<{ duplex: Duplex; infoHash: Uint8Array }>;
  theirs: Settled<ScriptedSession | null>;
  wroteAnything: boolean;
}> {
  const [theirs, ours] = duplexPair();
  let wroteAnything = false;
  const tapped: Duplex = {
    readable: ours.readable,
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        wroteAnything = true;
        const writer = ours.writable.getWriter();
        try {
          await writer.write(chunk);
        } finally {
          writer.releaseLock();
        }
      },
    }),
    close: () => ours.close(),
  };
  const scripted = settle(runInitiator(duplexIo(theirs), script));
  const accepting = settle(
    peekLikeCore(tapped).then(({ raw }) =>
      mse({ policy }).incoming(raw, lookupFor(INFO_HASH), AbortSignal.timeout(DEADLINE_MS))
    ),
  );
  const oursResult = await accepting;
  if (!oursResult.ok) ours.close();
  return { ours: oursResult, theirs: await scripted, wroteAnything };
}

const btHandshake = (infoHash = INFO_HASH) =>
  encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(0x41), reserved: new Uint8Array(8) });

// ---------------------------------------------------------------------------------------------
// Policies

Deno.test("mse() defaults to the prefer policy", () => {
  const plugin = mse();
  assert.equal(plugin.name, "mse-prefer");
  assert.deepEqual(plugin.outgoingAttempts, ["encrypted", "plaintext"]);
  assert.equal(plugin.acceptsPlaintext, true);
});

Deno.test("mse() declares each policy's attempts and plaintext acceptance", () => {
  const table: [MsePolicy, string[], boolean][] = [
    ["require", ["encrypted"], false],
    ["prefer", ["encrypted", "plaintext"], true],
    ["allow", ["plaintext", "encrypted"], true],
    ["disable", ["plaintext"], true],
  ];
  for (const [policy, attempts, plaintext] of table) {
    const plugin = mse({ policy });
    assert.equal(plugin.name, `mse-${policy}`);
    assert.deepEqual(plugin.outgoingAttempts, attempts, policy);
    assert.equal(plugin.acceptsPlaintext, plaintext, policy);
  }
});

Deno.test("mse() rejects an unknown policy with a clear message", () => {
  assert.throws(
    () => mse({ policy: "sometimes" as MsePolicy }),
    (e: unknown) =>
      e instanceof TypeError && /Invalid MSE policy 'sometimes': expected require/.test(e.message),
  );
});

Deno.test("the dialling and accepting policies agree on the method as the table says", async () => {
  // [dialler, acceptor, method]
  const table: [MsePolicy, MsePolicy, "rc4" | "plaintext"][] = [
    ["require", "require", "rc4"],
    ["require", "prefer", "rc4"],
    ["require", "allow", "rc4"],
    ["prefer", "require", "rc4"],
    ["prefer", "prefer", "rc4"],
    ["prefer", "allow", "plaintext"],
    ["allow", "require", "rc4"],
    ["allow", "prefer", "rc4"],
    ["allow", "allow", "plaintext"],
  ];
  for (const [dialler, acceptor, method] of table) {
    const c = await connectPair(mse({ policy: dialler }), { responder: mse({ policy: acceptor }) });
    assert.equal((c.a as MseDuplex).method, method, `${dialler} -> ${acceptor}`);
    assert.equal((c.b as MseDuplex).method, method, `${dialler} -> ${acceptor}`);
    await Promise.all([transfer(c.a, c.b, noise(5000, 1)), transfer(c.b, c.a, noise(5000, 2))]);
    c.a.close();
    c.b.close();
  }
});

Deno.test("mse({ policy: 'disable' }) refuses encrypted connections both ways with a clear message", async () => {
  const plugin = mse({ policy: "disable" });
  const [a, b] = duplexPair();
  const out = failure(
    await settle(plugin.outgoing(a, INFO_HASH, AbortSignal.timeout(DEADLINE_MS))),
    "outgoing",
  );
  assert.match(out.message, /Encryption 'mse-disable' makes no encrypted connections/);
  const inc = failure(
    await settle(plugin.incoming(b, lookupFor(INFO_HASH), AbortSignal.timeout(DEADLINE_MS))),
    "incoming",
  );
  assert.match(inc.message, /Refused an encrypted connection: encryption 'mse-disable' accepts plaintext/);
});

Deno.test("an RC4 connection carries no payload in clear; a plaintext-method one does", async () => {
  const marker = new TextEncoder().encode("BitTorrent protocol payload marker ".repeat(100));
  for (
    const [dialler, acceptor, method] of [["require", "require", "rc4"], [
      "allow",
      "allow",
      "plaintext",
    ]] as const
  ) {
    const [rawA, rawB] = duplexPair();
    const wire: Uint8Array[] = [];
    const writer = rawA.writable.getWriter();
    const tappedA: Duplex = {
      readable: rawA.readable,
      writable: new WritableStream({
        write(chunk) {
          wire.push(chunk.slice());
          return writer.write(chunk);
        },
      }),
      close: () => rawA.close(),
    };
    const signal = AbortSignal.timeout(DEADLINE_MS);
    const [a, b] = await Promise.all([
      mse({ policy: dialler }).outgoing(tappedA, INFO_HASH, signal),
      peekLikeCore(rawB).then(({ raw }) =>
        mse({ policy: acceptor }).incoming(raw, lookupFor(INFO_HASH), signal)
      ),
    ]);
    assert.equal((a as MseDuplex).method, method);
    await transfer(a, b.duplex, marker);
    const sent = new TextDecoder("latin1").decode(concat(wire));
    assert.equal(sent.includes("payload marker"), method === "plaintext", method);
    // The handshake itself never shows the info-hash in clear.
    assert.ok(!includes(concat(wire), INFO_HASH), `${method}: the info-hash went out in clear`);
    a.close();
    b.duplex.close();
  }
});

// ---------------------------------------------------------------------------------------------
// shoal dials a scripted responder

Deno.test("outgoing() completes with a scripted responder at PadB lengths 0 and 512", async () => {
  for (const padB of [0, 1, 511, 512]) {
    const { ours, theirs } = await pluginDials("require", { infoHash: INFO_HASH, padB, padD: 512 - padB });
    assert.ok(ours.ok && theirs.ok && theirs.value !== null, `PadB ${padB}`);
    assert.equal(ours.value.method, "rc4");
    assert.equal(theirs.value.provide, CRYPTO_RC4, "require offers RC4 only");
    // Payload both ways through the scripted peer's own RC4.
    const w = ours.value.writable.getWriter();
    await w.write(btHandshake());
    assert.deepEqual(await theirs.value.read(68), btHandshake());
    await theirs.value.send(btHandshake(OTHER_HASH));
    const r = ours.value.readable.getReader();
    const got = await r.read();
    assert.deepEqual(got.value, btHandshake(OTHER_HASH));
    ours.value.close();
  }
});

Deno.test("outgoing() under prefer offers both methods and takes plaintext when selected", async () => {
  const { ours, theirs } = await pluginDials("prefer", {
    infoHash: INFO_HASH,
    select: () => CRYPTO_PLAINTEXT,
  });
  assert.ok(ours.ok && theirs.ok && theirs.value !== null);
  assert.equal(theirs.value.provide, CRYPTO_RC4 | CRYPTO_PLAINTEXT);
  assert.equal(ours.value.method, "plaintext");
  const w = ours.value.writable.getWriter();
  await w.write(btHandshake());
  assert.deepEqual(await theirs.value.read(68), btHandshake());
  ours.value.close();
});

Deno.test("outgoing() drops a responder whose PadB is longer than 512 bytes", async () => {
  const { ours } = await pluginDials("require", { infoHash: INFO_HASH, padB: 513 });
  assert.match(failure(ours, "PadB 513").message, /no verification constant within 512 bytes/);
});

Deno.test("outgoing() drops a responder that announces a PadD longer than 512 bytes", async () => {
  const { ours } = await pluginDials("require", { infoHash: INFO_HASH, padDField: 513 });
  assert.match(failure(ours, "len(PadD) 513").message, /invalid PadD: length 513 exceeds 512/);
});

Deno.test("outgoing() drops a responder that selects a method it did not offer, or none, or two", async () => {
  const cases: [MsePolicy, number][] = [
    ["require", CRYPTO_PLAINTEXT],
    ["require", 0],
    ["prefer", CRYPTO_RC4 | CRYPTO_PLAINTEXT],
    ["prefer", 0x04],
  ];
  for (const [policy, select] of cases) {
    const { ours } = await pluginDials(policy, { infoHash: INFO_HASH, select: () => select });
    assert.match(failure(ours, `${policy}, select ${select}`).message, /selected an invalid crypto method/);
  }
});

Deno.test("outgoing() drops a responder with a degenerate public key", async () => {
  for (const [name, key] of degenerateKeys()) {
    const { ours } = await pluginDials("require", { infoHash: INFO_HASH, publicKey: key });
    assert.match(failure(ours, name).message, /(degenerate|invalid) public key/, name);
  }
});

Deno.test("outgoing() drops a responder that sends random bytes instead of a key", async () => {
  const [ours, theirs] = duplexPair();
  const dialing = settle(
    mse({ policy: "require" }).outgoing(ours, INFO_HASH, AbortSignal.timeout(DEADLINE_MS)),
  );
  const writer = theirs.writable.getWriter();
  await writer.write(noise(96 + 700, 11));
  assert.match(failure(await dialing, "random key").message, /no verification constant within 512 bytes/);
});

// ---------------------------------------------------------------------------------------------
// A scripted initiator dials shoal

Deno.test("incoming() completes with a scripted initiator at PadA and PadC lengths 0 and 512", async () => {
  for (const [padA, padC] of [[0, 0], [512, 512], [511, 1], [1, 511]] as const) {
    const { ours, theirs } = await pluginAccepts("require", {
      infoHash: INFO_HASH,
      padA,
      padC,
      ia: btHandshake(),
    });
    assert.ok(ours.ok && theirs.ok && theirs.value !== null, `PadA ${padA}, PadC ${padC}`);
    assert.deepEqual(ours.value.infoHash, INFO_HASH);
    assert.equal(theirs.value.select, CRYPTO_RC4);
    // The initial payload comes out first, then what follows it.
    const r = ours.value.duplex.readable.getReader();
    const more = noise(3000, padA);
    await theirs.value.send(more);
    const got = new Uint8Array(68 + more.length);
    let at = 0;
    while (at < got.length) {
      const { value, done } = await r.read();
      assert.ok(!done);
      got.set(value, at);
      at += value.length;
    }
    assert.deepEqual(got.subarray(0, 68), btHandshake());
    assert.deepEqual(got.subarray(68), more);
    const w = ours.value.duplex.writable.getWriter();
    await w.write(btHandshake(OTHER_HASH));
    assert.deepEqual(await theirs.value.read(68), btHandshake(OTHER_HASH));
    ours.value.duplex.close();
  }
});

Deno.test("incoming() under allow selects plaintext when offered, and the IA still arrives", async () => {
  const { ours, theirs } = await pluginAccepts("allow", {
    infoHash: INFO_HASH,
    provide: CRYPTO_RC4 | CRYPTO_PLAINTEXT,
    ia: btHandshake(),
  });
  assert.ok(ours.ok && theirs.ok && theirs.value !== null);
  assert.equal(theirs.value.select, CRYPTO_PLAINTEXT);
  assert.equal((ours.value.duplex as MseDuplex).method, "plaintext");
  await theirs.value.send(new Uint8Array([1, 2, 3]));
  const r = ours.value.duplex.readable.getReader();
  const chunks: number[] = [];
  while (chunks.length < 71) chunks.push(...(await r.read()).value!);
  assert.deepEqual(chunks.slice(68), [1, 2, 3]);
  ours.value.duplex.close();
});

Deno.test("incoming() drops an initiator whose PadA is longer than 512 bytes (no sync point in the window)", async () => {
  const { ours } = await pluginAccepts("prefer", { infoHash: INFO_HASH, padA: 513 });
  assert.match(failure(ours, "PadA 513").message, /no sync point HASH\('req1', S\) within 512 bytes/);
});

Deno.test("incoming() drops an initiator that announces a PadC longer than 512 bytes", async () => {
  const { ours } = await pluginAccepts("prefer", { infoHash: INFO_HASH, padCField: 513 });
  assert.match(failure(ours, "len(PadC) 513").message, /invalid PadC: length 513 exceeds 512/);
});

Deno.test("incoming() drops an initiator that asks for an unknown torrent", async () => {
  const { ours } = await pluginAccepts("prefer", { infoHash: OTHER_HASH });
  assert.match(failure(ours, "unknown torrent").message, /unknown torrent: no torrent matches/);
});

Deno.test("incoming() drops an initiator whose verification constant is wrong", async () => {
  const { ours } = await pluginAccepts("prefer", { infoHash: INFO_HASH, vc: new Uint8Array(8).fill(1) });
  assert.match(failure(ours, "wrong VC").message, /wrong verification constant/);
});

Deno.test("incoming() drops an initiator that offers no method its policy accepts", async () => {
  const cases: [MsePolicy, number][] = [["require", CRYPTO_PLAINTEXT], ["prefer", 0], ["allow", 0x04]];
  for (const [policy, provide] of cases) {
    const { ours } = await pluginAccepts(policy, { infoHash: INFO_HASH, provide });
    assert.match(failure(ours, `${policy}, provide ${provide}`).message, /offers no crypto method we accept/);
  }
});

Deno.test("incoming() drops a degenerate public key before sending anything back", async () => {
  for (const [name, key] of degenerateKeys()) {
    const { ours, wroteAnything } = await pluginAccepts("prefer", { infoHash: INFO_HASH, publicKey: key });
    assert.match(failure(ours, name).message, /(degenerate|invalid) public key/, name);
    assert.equal(wroteAnything, false, `${name}: shoal answered a degenerate key`);
  }
});

Deno.test("incoming() drops random bytes instead of a key once the sync window is used up", async () => {
  const [theirs, ours] = duplexPair();
  const writer = theirs.writable.getWriter();
  const garbage = noise(96 + 512 + 20, 5);
  garbage[0] = 0;
  await writer.write(garbage);
  const { raw } = await peekLikeCore(ours);
  const accepting = settle(mse().incoming(raw, lookupFor(INFO_HASH), AbortSignal.timeout(DEADLINE_MS)));
  assert.match(failure(await accepting, "random key").message, /no sync point/);
});

Deno.test("a failed handshake closes the connection (the peer sees it end)", async () => {
  const [theirs, ours] = duplexPair();
  const writer = theirs.writable.getWriter();
  await writer.write(degenerateKeys()[1]![1]);
  const { raw } = await peekLikeCore(ours);
  await settle(mse().incoming(raw, lookupFor(INFO_HASH), AbortSignal.timeout(DEADLINE_MS)));
  const reader = theirs.readable.getReader();
  assert.equal((await withDeadline(reader.read(), DEADLINE_MS, "end of stream")).done, true);
});

// ---------------------------------------------------------------------------------------------
// Building blocks

Deno.test("checkPublicKey() rejects 0, 1, p-1, p and above, and accepts 2 and p-2", () => {
  for (const [name, key] of degenerateKeys()) {
    assert.throws(() => checkPublicKey(key), MseError, name);
  }
  assert.throws(() => checkPublicKey(new Uint8Array(95)), /95 bytes instead of 96/);
  const two = new Uint8Array(KEY_LENGTH);
  two[KEY_LENGTH - 1] = 2;
  checkPublicKey(two);
  const pMinus2 = MSE_PRIME.slice();
  pMinus2[KEY_LENGTH - 1] = MSE_PRIME[KEY_LENGTH - 1]! - 2;
  checkPublicKey(pMinus2);
});

Deno.test("KeyPair makes 96-byte keys in range and both sides reach the same secret", () => {
  for (let i = 0; i < 20; i++) {
    const a = new KeyPair(), b = new KeyPair();
    assert.equal(a.publicKey.length, KEY_LENGTH);
    checkPublicKey(a.publicKey);
    const s = a.secret(b.publicKey);
    assert.equal(s.length, KEY_LENGTH);
    assert.deepEqual(s, b.secret(a.publicKey));
  }
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function includes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return true;
  }
  return false;
}
