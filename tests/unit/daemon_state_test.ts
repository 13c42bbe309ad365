import assert from "node:assert/strict";
import { join } from "node:path";
import { Logger, type LogRecord } from "../../mod.ts";
import { encodeRecord, StateStore, type TorrentRecord } from "../../lib/daemon/mod.ts";

// The daemon's state folder: atomic records, one damaged file costs one torrent, ids never reused.

function record(id: number, hash: string): TorrentRecord {
  return {
    version: 1,
    id,
    hash,
    name: `t${id}`,
    magnet: `magnet:?xt=urn:btih:${hash}`,
    hasMetainfo: false,
    downloadDir: "/tmp/x",
    paused: false,
    finished: false,
    wanted: [],
    priority: [],
    limits: { upload: 0, download: 0 },
    seedGoals: { ratio: null, idleMinutes: null },
    labels: ["a"],
    peers: [],
    addedAt: 1,
    doneAt: null,
    activityAt: null,
    uploadedEver: 0,
    downloadedEver: 0,
    error: null,
  };
}

function logger(records: LogRecord[] = []): Logger {
  return new Logger({ level: "debug", sinks: [(r) => void records.push(r)] });
}

Deno.test("StateStore writes records atomically and reads them back, no temporary file left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_state_" });
  try {
    const store = await StateStore.open(dir, { logger: logger() });
    const id = await store.allocateId();
    await store.saveRecord(record(id, "a".repeat(40)));
    await store.saveRecord({ ...record(id, "a".repeat(40)), labels: ["b"] });
    const names = [...Deno.readDirSync(join(dir, "torrents"))].map((e) => e.name);
    assert.deepEqual(names, [`${"a".repeat(40)}.json`]);
    const again = await StateStore.open(dir, { logger: logger() });
    assert.equal(again.loaded.length, 1);
    assert.deepEqual(again.loaded[0]!.record.labels, ["b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateStore keeps the next id across restarts and never hands one out twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_state_" });
  try {
    const store = await StateStore.open(dir, { logger: logger() });
    assert.deepEqual(await Promise.all([store.allocateId(), store.allocateId(), store.allocateId()]), [
      1,
      2,
      3,
    ]);
    const again = await StateStore.open(dir, { logger: logger() });
    assert.equal(await again.allocateId(), 4);
    // daemon.json lost or damaged: the ids in use come from the records.
    await again.saveRecord(record(9, "b".repeat(40)));
    await Deno.writeTextFile(join(dir, "daemon.json"), "{not json");
    const third = await StateStore.open(dir, { logger: logger() });
    assert.equal(await third.allocateId(), 10);
    assert.ok(third.setAside.includes("daemon.json"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateStore sets a corrupt record aside as .corrupt, logs its name and loads the others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal_state_" });
  try {
    const store = await StateStore.open(dir, { logger: logger() });
    for (let i = 0; i < 3; i++) await store.allocateId();
    await store.saveRecord(record(1, "a".repeat(40)));
    await store.saveRecord(record(2, "b".repeat(40)));
    await store.saveRecord(record(3, "d".repeat(40)));
    const bad = join(dir, "torrents", `${"b".repeat(40)}.json`);
    await Deno.writeTextFile(bad, '{"version": 1, "id": "two"');
    // A record that says it has metainfo whose .torrent is missing.
    await Deno.writeFile(
      join(dir, "torrents", `${"d".repeat(40)}.json`),
      encodeRecord({ ...record(3, "d".repeat(40)), hasMetainfo: true }),
    );
    await Deno.writeTextFile(join(dir, "torrents", ".x.json.0123.tmp"), "half");
    const records: LogRecord[] = [];
    const again = await StateStore.open(dir, { logger: logger(records) });
    assert.deepEqual(again.loaded.map((l) => l.record.id), [1]);
    assert.deepEqual(again.setAside.toSorted(), [
      join("torrents", `${"b".repeat(40)}.json`),
      join("torrents", `${"d".repeat(40)}.json`),
    ]);
    assert.ok(Deno.statSync(`${bad}.corrupt`).isFile);
    const warning = records.find((r) => r.level === "warn" && r.message.includes(`${"b".repeat(40)}.json`));
    assert.ok(warning, "the set-aside file is named in the log");
    assert.equal([...Deno.readDirSync(join(dir, "torrents"))].some((e) => e.name.endsWith(".tmp")), false);
    assert.equal(await again.allocateId(), 4, "ids of set-aside records are not reused");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
