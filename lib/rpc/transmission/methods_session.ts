/**
 * The session methods of Transmission RPC: `session-get`, `session-set`, `session-stats`,
 * `free-space` and `port-test`.
 *
 * @module
 */

import type { RpcSessionSettings, RpcStatsCounters, TransmissionBackend } from "./backend.ts";
import { TR_STATUS } from "./backend.ts";
import type { RpcArguments } from "./request.ts";
import { TransmissionRpcError } from "./rpc_error.ts";

/** The `version` shoal reports: the Transmission release whose RPC it speaks, and itself. */
export const TRANSMISSION_VERSION = "4.0.6 (shoal)";
/** The RPC version spoken (Transmission 4.0's). */
export const RPC_VERSION = 17;
/** The oldest RPC version whose clients are understood. */
export const RPC_VERSION_MINIMUM = 14;
/** The semantic version of the RPC (Transmission 4.0's `rpc-version-semver`). */
export const RPC_VERSION_SEMVER = "5.3.0";

/** What a session method sees besides its arguments. */
export interface SessionMethodContext {
  /** The backend. */
  readonly backend: TransmissionBackend;
  /** The endpoint's current `X-Transmission-Session-Id`. */
  readonly sessionId: string;
}

type SettingKey = keyof RpcSessionSettings;

/** RPC key → setting, and the JSON type `session-set` accepts. */
const SETTINGS: readonly (readonly [string, SettingKey, "number" | "boolean" | "string"])[] = [
  ["alt-speed-down", "altSpeedDown", "number"],
  ["alt-speed-enabled", "altSpeedEnabled", "boolean"],
  ["alt-speed-up", "altSpeedUp", "number"],
  ["config-dir", "configDir", "string"],
  ["dht-enabled", "dhtEnabled", "boolean"],
  ["download-dir", "downloadDir", "string"],
  ["download-queue-enabled", "downloadQueueEnabled", "boolean"],
  ["download-queue-size", "downloadQueueSize", "number"],
  ["encryption", "encryption", "string"],
  ["idle-seeding-limit", "idleSeedingLimit", "number"],
  ["idle-seeding-limit-enabled", "idleSeedingLimitEnabled", "boolean"],
  ["lpd-enabled", "lpdEnabled", "boolean"],
  ["peer-limit-global", "peerLimitGlobal", "number"],
  ["peer-limit-per-torrent", "peerLimitPerTorrent", "number"],
  ["peer-port", "peerPort", "number"],
  ["pex-enabled", "pexEnabled", "boolean"],
  ["seed-queue-enabled", "seedQueueEnabled", "boolean"],
  ["seed-queue-size", "seedQueueSize", "number"],
  ["seedRatioLimit", "seedRatioLimit", "number"],
  ["seedRatioLimited", "seedRatioLimited", "boolean"],
  ["speed-limit-down", "speedLimitDown", "number"],
  ["speed-limit-down-enabled", "speedLimitDownEnabled", "boolean"],
  ["speed-limit-up", "speedLimitUp", "number"],
  ["speed-limit-up-enabled", "speedLimitUpEnabled", "boolean"],
  ["start-added-torrents", "startAddedTorrents", "boolean"],
  ["utp-enabled", "utpEnabled", "boolean"],
];

/** Settings shoal does not have, with the values it works by; `session-set` accepts only these values. */
const FIXED: Readonly<Record<string, unknown>> = {
  "alt-speed-time-begin": 540,
  "alt-speed-time-day": 127,
  "alt-speed-time-enabled": false,
  "alt-speed-time-end": 1020,
  "anti-brute-force-enabled": true,
  "blocklist-enabled": false,
  "blocklist-size": 0,
  "blocklist-url": "",
  "cache-size-mb": 0,
  "default-trackers": "",
  "incomplete-dir": "",
  "incomplete-dir-enabled": false,
  "peer-port-random-on-start": false,
  "port-forwarding-enabled": false,
  "queue-stalled-enabled": false,
  "queue-stalled-minutes": 30,
  "rename-partial-files": false,
  "script-torrent-added-enabled": false,
  "script-torrent-added-filename": "",
  "script-torrent-done-enabled": false,
  "script-torrent-done-filename": "",
  "script-torrent-done-seeding-enabled": false,
  "script-torrent-done-seeding-filename": "",
  "trash-original-torrent-files": false,
};

/** Keys `session-set` ignores: read-only facts a client may echo back. */
const READ_ONLY = new Set([
  "version",
  "rpc-version",
  "rpc-version-minimum",
  "rpc-version-semver",
  "session-id",
  "units",
  "download-dir-free-space",
  "blocklist-size",
  "config-dir",
]);

const UNITS = {
  "memory-bytes": 1024,
  "memory-units": ["KiB", "MiB", "GiB", "TiB"],
  "size-bytes": 1000,
  "size-units": ["kB", "MB", "GB", "TB"],
  "speed-bytes": 1000,
  "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
};

/**
 * `session-get`: the settings, the fixed values, versions and units. `fields` picks keys.
 *
 * @param args The request's arguments.
 * @param context Backend and session id.
 * @returns The arguments of the answer.
 */
export async function sessionGet(
  args: RpcArguments,
  context: SessionMethodContext,
): Promise<Record<string, unknown>> {
  const settings = context.backend.settings();
  const fields = args.stringList("fields");
  const want = (key: string) => fields === undefined || fields.length === 0 || fields.includes(key);
  const out: Record<string, unknown> = {};
  for (const [key, field] of SETTINGS) if (want(key)) out[key] = settings[field];
  for (const [key, value] of Object.entries(FIXED)) if (want(key)) out[key] = value;
  if (want("download-dir-free-space")) {
    out["download-dir-free-space"] = await context.backend.freeSpace(settings.downloadDir).catch(() => -1);
  }
  const facts: Record<string, unknown> = {
    "rpc-version": RPC_VERSION,
    "rpc-version-minimum": RPC_VERSION_MINIMUM,
    "rpc-version-semver": RPC_VERSION_SEMVER,
    "session-id": context.sessionId,
    units: UNITS,
    version: TRANSMISSION_VERSION,
  };
  for (const [key, value] of Object.entries(facts)) if (want(key)) out[key] = value;
  return out;
}

/**
 * `session-set`: changes the settings the backend can change. A fixed setting is accepted
 * only at its value, and one the backend cannot change fails the whole request (nothing
 * changed); unknown keys are ignored, as Transmission does.
 *
 * @param args The request's arguments.
 * @param context Backend and session id.
 * @returns Empty arguments.
 */
export async function sessionSet(
  args: RpcArguments,
  context: SessionMethodContext,
): Promise<Record<string, unknown>> {
  const changes: Record<string, unknown> = {};
  for (const [key, field, type] of SETTINGS) {
    if (!args.has(key) || READ_ONLY.has(key)) continue;
    const value = type === "number"
      ? args.number(key)
      : type === "boolean"
      ? args.boolean(key)
      : args.string(key);
    if (value === undefined) continue;
    if (key === "encryption" && !["required", "preferred", "tolerated"].includes(value as string)) {
      throw new TransmissionRpcError(
        `session-set: "encryption" must be "required", "preferred" or "tolerated"`,
      );
    }
    if (typeof value === "number" && value < 0) {
      throw new TransmissionRpcError(`session-set: "${key}" must not be negative`);
    }
    changes[field] = value;
  }
  for (const [key, fixed] of Object.entries(FIXED)) {
    if (!args.has(key) || READ_ONLY.has(key)) continue;
    if (args.raw[key] !== fixed) {
      throw new TransmissionRpcError(
        `session-set: "${key}" is not supported by shoal (it stays ${JSON.stringify(fixed)})`,
      );
    }
  }
  await context.backend.setSettings(changes as Partial<RpcSessionSettings>);
  return {};
}

function counters(c: RpcStatsCounters): Record<string, number> {
  return {
    downloadedBytes: c.downloadedBytes,
    filesAdded: c.filesAdded,
    secondsActive: c.secondsActive,
    sessionCount: c.sessionCount,
    uploadedBytes: c.uploadedBytes,
  };
}

/**
 * `session-stats`: torrent counts, speeds and the byte counters.
 *
 * @param _args The request's arguments (none are read).
 * @param context Backend and session id.
 * @returns The arguments of the answer.
 */
export function sessionStats(_args: RpcArguments, context: SessionMethodContext): Record<string, unknown> {
  const entries = context.backend.torrents();
  let downloadSpeed = 0;
  let uploadSpeed = 0;
  let active = 0;
  for (const entry of entries) {
    const stats = entry.torrent?.stats();
    downloadSpeed += stats?.downloadRate ?? 0;
    uploadSpeed += stats?.uploadRate ?? 0;
    if ((stats?.downloadRate ?? 0) > 0 || (stats?.uploadRate ?? 0) > 0) active++;
  }
  const stats = context.backend.stats();
  return {
    activeTorrentCount: active,
    "cumulative-stats": counters(stats.cumulative),
    "current-stats": counters(stats.current),
    downloadSpeed: Math.round(downloadSpeed),
    pausedTorrentCount: entries.filter((e) => e.status === TR_STATUS.stopped).length,
    torrentCount: entries.length,
    uploadSpeed: Math.round(uploadSpeed),
  };
}

/**
 * `free-space`: free bytes at a path inside the backend's folders.
 *
 * @param args `path`.
 * @param context Backend and session id.
 * @returns `path`, `size-bytes` and `total_size` (-1: unknown).
 */
export async function freeSpaceMethod(
  args: RpcArguments,
  context: SessionMethodContext,
): Promise<Record<string, unknown>> {
  const path = args.string("path");
  if (path === undefined || path === "") {
    throw new TransmissionRpcError(`free-space: argument "path" is required`);
  }
  return { path, "size-bytes": await context.backend.freeSpace(path), total_size: -1 };
}

/**
 * `port-test`: whether the peer port is reachable, as the backend can tell.
 *
 * @param _args The request's arguments (the 4.0 `ipProtocol` is not read).
 * @param context Backend and session id.
 * @returns `port-is-open`.
 */
export async function portTest(
  _args: RpcArguments,
  context: SessionMethodContext,
): Promise<Record<string, unknown>> {
  return { "port-is-open": await context.backend.portTest() };
}
