/**
 * The settings of `sessionBackend()`: their first values (from how the session was made),
 * which ones a running session can change, the global limits they make, and the seed goals.
 *
 * @module
 */

import { resolve } from "node:path";
import type { RateLimits } from "../../torrent_types.ts";
import type { RpcSessionSettings, TransmissionEncryption } from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";
import { lifeBytes, type TorrentRecord } from "./session_entry.ts";

/** Bytes per second in one of Transmission's kB/s. */
export const KB = 1000;

/** How the session was made, as far as the settings tell. */
export interface SettingsOrigin {
  /** The session's download folder. */
  readonly downloadDir: string;
  /** `config-dir`. @default {""} */
  readonly configDir?: string;
  /** Encryption. @default {"preferred"} */
  readonly encryption?: TransmissionEncryption;
  /** DHT. @default {false} */
  readonly dht?: boolean;
  /** PEX. @default {true} */
  readonly pex?: boolean;
  /** Local discovery. @default {true} */
  readonly lpd?: boolean;
  /** Connection limits. @default {200} */
  readonly peerLimitGlobal?: number;
  /** Per torrent. @default {50} */
  readonly peerLimitPerTorrent?: number;
}

/**
 * The first settings.
 *
 * @param origin How the session was made.
 * @param peerPort Its listening port.
 * @returns The settings.
 */
export function initialSettings(origin: SettingsOrigin, peerPort: number): RpcSessionSettings {
  return {
    downloadDir: resolve(origin.downloadDir),
    configDir: origin.configDir ?? "",
    peerPort,
    speedLimitDown: 100,
    speedLimitDownEnabled: false,
    speedLimitUp: 100,
    speedLimitUpEnabled: false,
    altSpeedDown: 50,
    altSpeedUp: 50,
    altSpeedEnabled: false,
    encryption: origin.encryption ?? "preferred",
    dhtEnabled: origin.dht ?? false,
    pexEnabled: origin.pex ?? true,
    lpdEnabled: origin.lpd ?? true,
    utpEnabled: false,
    peerLimitGlobal: origin.peerLimitGlobal ?? 200,
    peerLimitPerTorrent: origin.peerLimitPerTorrent ?? 50,
    seedRatioLimit: 2,
    seedRatioLimited: false,
    idleSeedingLimit: 30,
    idleSeedingLimitEnabled: false,
    startAddedTorrents: true,
    downloadQueueEnabled: false,
    downloadQueueSize: 5,
    seedQueueEnabled: false,
    seedQueueSize: 10,
  };
}

/** Settings fixed when the session was made. */
const FIXED: readonly (keyof RpcSessionSettings)[] = [
  "peerPort",
  "encryption",
  "dhtEnabled",
  "pexEnabled",
  "lpdEnabled",
  "utpEnabled",
  "peerLimitGlobal",
  "peerLimitPerTorrent",
  "downloadQueueEnabled",
  "seedQueueEnabled",
  "configDir",
];

/**
 * The settings after a change; a fixed setting may only be "changed" to its value.
 *
 * @param current The settings now.
 * @param changes What to change.
 * @returns The new settings.
 * @throws {TransmissionRpcError} naming a setting a running session cannot change.
 */
export function changedSettings(
  current: RpcSessionSettings,
  changes: Partial<RpcSessionSettings>,
): RpcSessionSettings {
  for (const key of FIXED) {
    if (changes[key] !== undefined && changes[key] !== current[key]) {
      throw new TransmissionRpcError(
        `session-set: changing "${key}" of a running shoal session is not supported`,
      );
    }
  }
  return { ...current, ...changes };
}

/**
 * The session's rate limits the settings make (the alternative ones when enabled).
 *
 * @param s The settings.
 * @returns Bytes per second, 0 for none.
 */
export function sessionLimits(s: RpcSessionSettings): RateLimits {
  return {
    download: s.altSpeedEnabled ? s.altSpeedDown * KB : s.speedLimitDownEnabled ? s.speedLimitDown * KB : 0,
    upload: s.altSpeedEnabled ? s.altSpeedUp * KB : s.speedLimitUpEnabled ? s.speedLimitUp * KB : 0,
  };
}

/**
 * Whether a seeding torrent reached its ratio goal or its idle goal (its own, or the
 * session's when its mode says so).
 *
 * @param record The torrent.
 * @param s The settings.
 * @param now The time, seconds since the epoch.
 * @returns True when it should stop.
 */
export function seedGoalMet(record: TorrentRecord, s: RpcSessionSettings, now: number): boolean {
  const ratioGoal = record.seedRatioMode === 1
    ? record.seedRatioLimit
    : record.seedRatioMode === 0 && s.seedRatioLimited
    ? s.seedRatioLimit
    : null;
  const idleGoal = record.seedIdleMode === 1
    ? record.seedIdleLimit
    : record.seedIdleMode === 0 && s.idleSeedingLimitEnabled
    ? s.idleSeedingLimit
    : null;
  const bytes = lifeBytes(record);
  const base = bytes.downloaded || record.metainfo?.totalLength || 0;
  const ratioMet = ratioGoal !== null && base > 0 && bytes.uploaded / base >= ratioGoal;
  const idleSince = Math.max(record.activityDate, record.doneDate, record.startDate);
  return ratioMet || (idleGoal !== null && now - idleSince >= idleGoal * 60);
}
