/**
 * One managed torrent's durable record (`torrents/<hash>.json` in the state folder): what the
 * daemon must know to bring the torrent back after a restart or a crash. The metainfo itself is
 * kept beside it (`<hash>.torrent`); a magnet link is kept here until its metadata arrives.
 *
 * @module
 */

import { DaemonError } from "./errors.ts";

/** A file's download priority, as Transmission names them (shoal downloads "low" as "normal"). */
export type FileRank = "low" | "normal" | "high";

/** Per-torrent rate limits in bytes per second; 0 means none. */
export interface TorrentLimits {
  /** Upload limit. */
  upload: number;
  /** Download limit. */
  download: number;
}

/** When a seeding torrent stops by itself (state "finished"); `null`: no such goal. */
export interface SeedGoals {
  /** Stop once uploaded / size reaches this ratio. */
  ratio: number | null;
  /** Stop after this many minutes of seeding without uploading anything. */
  idleMinutes: number | null;
}

/** The record of one managed torrent, as stored (version 1). */
export interface TorrentRecord {
  /** Format version. */
  version: 1;
  /** Stable id within the state folder (1, 2, 3...; never reused). */
  id: number;
  /** Info-hash, 40 lower-case hex characters. */
  hash: string;
  /** Display name (the magnet's `dn` or the hash until the metadata is known). */
  name: string;
  /** The magnet link it was added from, if it was. */
  magnet: string | null;
  /** True once `<hash>.torrent` holds the metainfo. */
  hasMetainfo: boolean;
  /** Folder the torrent's files are in (absolute). */
  downloadDir: string;
  /** Paused by the user. */
  paused: boolean;
  /** Paused because a seed goal was reached. */
  finished: boolean;
  /** Per file (torrent order): downloaded or not. Empty until the metadata is known: all wanted. */
  wanted: boolean[];
  /** Per file (torrent order): its priority. Empty: all "normal". */
  priority: FileRank[];
  /** Rate limits of this torrent. */
  limits: TorrentLimits;
  /** Seed goals of this torrent. */
  seedGoals: SeedGoals;
  /** Free-form labels. */
  labels: string[];
  /** Peers ("host:port") dialled besides those the trackers, DHT and PEX find. */
  peers: string[];
  /** Added, ms since the Unix epoch. */
  addedAt: number;
  /** Every wanted piece verified, ms since the epoch, or null. */
  doneAt: number | null;
  /** Last time bytes moved either way, ms since the epoch, or null. */
  activityAt: number | null;
  /** Payload bytes uploaded over every run. */
  uploadedEver: number;
  /** Payload bytes downloaded over every run. */
  downloadedEver: number;
  /** Why the torrent stopped, or null. */
  error: string | null;
}

const RANKS: readonly FileRank[] = ["low", "normal", "high"];

/**
 * Checks a parsed JSON value field by field and returns it as a record.
 *
 * @example
 * ```ts
 * import { parseRecord } from "./record.ts";
 * try {
 *   parseRecord({ version: 1 }, "x.json");
 * } catch (e) {
 *   console.log((e as Error).message.startsWith("x.json:")); // true
 * }
 * ```
 *
 * @param value What `JSON.parse` returned.
 * @param file The file's name, for the error.
 * @returns The record.
 * @throws {DaemonError} `INVALID_RECORD` naming the first field that is wrong.
 */
export function parseRecord(value: unknown, file: string): TorrentRecord {
  const bad = (what: string): never => {
    throw new DaemonError("INVALID_RECORD", `${file}: ${what}`);
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) return bad("not a JSON object");
  const o = value as Record<string, unknown>;
  const int = (key: string, min: number): number => {
    const v = o[key];
    return typeof v === "number" && Number.isSafeInteger(v) && v >= min
      ? v
      : bad(`"${key}" must be a whole number of at least ${min}`);
  };
  const str = (key: string): string => typeof o[key] === "string" ? o[key] : bad(`"${key}" must be a string`);
  const bool = (key: string): boolean =>
    typeof o[key] === "boolean" ? o[key] : bad(`"${key}" must be true or false`);
  const orNull = <T>(key: string, read: (key: string) => T): T | null => o[key] === null ? null : read(key);
  const list = <T>(key: string, ok: (v: unknown) => v is T): T[] => {
    const v = o[key];
    return Array.isArray(v) && v.every(ok) ? [...v] : bad(`"${key}" must be a list`);
  };
  const isString = (v: unknown): v is string => typeof v === "string";
  if (o.version !== 1) bad(`unsupported version ${JSON.stringify(o.version)} (expected 1)`);
  const hash = str("hash");
  if (!/^[0-9a-f]{40}$/.test(hash)) bad(`"hash" must be 40 lower-case hex characters`);
  const limits = o.limits as Record<string, unknown> | null | undefined;
  const goals = o.seedGoals as Record<string, unknown> | null | undefined;
  const rate = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  const goal = (v: unknown) => v === null || (typeof v === "number" && Number.isFinite(v) && v >= 0);
  if (typeof limits !== "object" || limits === null || !rate(limits.upload) || !rate(limits.download)) {
    bad(`"limits" must be {"upload": N, "download": N}`);
  }
  if (typeof goals !== "object" || goals === null || !goal(goals.ratio) || !goal(goals.idleMinutes)) {
    bad(`"seedGoals" must be {"ratio": N or null, "idleMinutes": N or null}`);
  }
  return {
    version: 1,
    id: int("id", 1),
    hash,
    name: str("name"),
    magnet: orNull("magnet", str),
    hasMetainfo: bool("hasMetainfo"),
    downloadDir: str("downloadDir"),
    paused: bool("paused"),
    finished: bool("finished"),
    wanted: list("wanted", (v): v is boolean => typeof v === "boolean"),
    priority: list("priority", (v): v is FileRank => RANKS.includes(v as FileRank)),
    limits: { upload: limits!.upload as number, download: limits!.download as number },
    seedGoals: { ratio: goals!.ratio as number | null, idleMinutes: goals!.idleMinutes as number | null },
    labels: list("labels", isString),
    peers: list("peers", isString),
    addedAt: int("addedAt", 0),
    doneAt: orNull("doneAt", (k) => int(k, 0)),
    activityAt: orNull("activityAt", (k) => int(k, 0)),
    uploadedEver: int("uploadedEver", 0),
    downloadedEver: int("downloadedEver", 0),
    error: orNull("error", str),
  };
}

/**
 * Encodes a record as the JSON text stored (one object, keys in a stable order).
 *
 * @example
 * ```ts
 * import { encodeRecord, parseRecord, type TorrentRecord } from "./record.ts";
 * declare const record: TorrentRecord;
 * const copy = parseRecord(JSON.parse(new TextDecoder().decode(encodeRecord(record))), "x.json");
 * ```
 *
 * @param record The record.
 * @returns UTF-8 JSON, ending with a newline.
 */
export function encodeRecord(record: TorrentRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n");
}
