import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as shoal from "../../mod.ts";

// mod.ts is what a user reads first: the session, torrents, the contracts, errors, torrent
// files and magnets, the shipped plugins. The parts below them are subpath exports.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

Deno.test("mod.ts exports what a user needs", () => {
  const needed = [
    "Session",
    "Torrent",
    "BaseSession",
    "ShoalError",
    "StorageError",
    "DiskFullError",
    "PeerAddressError",
    "parseMetainfo",
    "readTorrentFile",
    "createTorrent",
    "parseMagnet",
    "formatMagnet",
    "encode",
    "decode",
    "fetchMetadata",
    "rarestFirst",
    "sequential",
    "mse",
    "prettySink",
    "jsonlSink",
    "fileStorage",
    "memoryStorage",
    "tcpTransport",
    "Logger",
  ];
  const exported = new Set(Object.keys(shoal));
  assert.deepEqual(needed.filter((name) => !exported.has(name)), []);
});

Deno.test("mod.ts leaves the internals to subpath exports", () => {
  const internals = [
    "DhtNode",
    "KrpcSocket",
    "MetadataFetcher",
    "UtPex",
    "TrackerServer",
    "Announcer",
    "UdpTrackerClient",
    "HttpServer",
    "LocalDiscovery",
    "MemoryNetwork",
    "TokenBucket",
    "RateLimiter",
    "encodeHandshake",
    "encodePexMessage",
    "PeerConnection",
    "PiecePicker",
    "Swarm",
    "safeRelativePath",
    "httpAnnounce",
  ];
  const exported = new Set(Object.keys(shoal));
  assert.deepEqual(internals.filter((name) => exported.has(name)), []);
  // `export *` of a whole internal module would bring back dozens: keep the front door short.
  assert.ok(exported.size <= 70, `mod.ts exports ${exported.size} values`);
});

Deno.test("every subpath export in deno.json resolves and exports its part", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
    exports: Record<string, string>;
  };
  const expected: Record<string, string[]> = {
    "./dht": ["DhtNode", "KrpcSocket", "encodeKrpc"],
    "./tracker": ["TrackerServer", "Announcer", "UdpTrackerClient", "httpAnnounce", "TrackerError"],
    "./peer": ["UtPex", "utMetadataServer", "TokenBucket", "RateLimiter", "clientName"],
    "./net": ["parseAddress", "formatAddress", "tcpTransport", "MemoryNetwork", "DescriptorBudget"],
    "./http": ["HttpServer", "DEFAULT_HTTP_SERVER_LIMITS"],
    "./discovery": ["LocalDiscovery", "parseLsdAnnounce"],
    "./rpc": [
      "TransmissionRpcServer",
      "transmissionRpc",
      "sessionBackend",
      "TransmissionRpcError",
      "TR_STATUS",
    ],
    "./daemon": ["TorrentManager", "StateStore", "WatchFolder", "DaemonError"],
  };
  assert.deepEqual(
    Object.keys(config.exports).sort(),
    [".", "./cli", ...Object.keys(expected)].sort(),
  );
  for (const [subpath, names] of Object.entries(expected)) {
    const module = await import(pathToFileURL(join(ROOT, config.exports[subpath]!)).href) as Record<
      string,
      unknown
    >;
    assert.deepEqual(names.filter((name) => module[name] === undefined), [], subpath);
  }
});
