/**
 * Checks of the settings a user may change on a managed torrent (limits, seed goals, labels,
 * files), each refusing a bad value with a `DaemonError` that says what is accepted.
 *
 * @module
 */

import { DaemonError } from "./errors.ts";
import type { FileRank, SeedGoals, TorrentLimits } from "./record.ts";

/** A change to some files of a torrent. */
export interface FileChange {
  /** File indices (in torrent order). */
  files: readonly number[];
  /** Download them or not; absent: unchanged. */
  wanted?: boolean;
  /** Their priority; absent: unchanged. */
  priority?: FileRank;
}

const MAX_LABELS = 64;
const MAX_LABEL_LENGTH = 256;

function invalid(message: string): never {
  throw new DaemonError("INVALID_ARGUMENT", message);
}

/**
 * New limits over the current ones.
 *
 * @example
 * ```ts
 * import { checkLimits } from "./settings_check.ts";
 * console.log(checkLimits({ upload: 0, download: 0 }, { upload: 1000 })); // { upload: 1000, download: 0 }
 * ```
 *
 * @param current The limits now.
 * @param change What to change (bytes per second, 0: none).
 * @returns The new limits.
 * @throws {DaemonError} `INVALID_ARGUMENT` for a value that is not a whole number of at least 0.
 */
export function checkLimits(current: TorrentLimits, change: Partial<TorrentLimits>): TorrentLimits {
  const out = { ...current };
  for (const key of ["upload", "download"] as const) {
    const value = change[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0) {
      invalid(`Invalid ${key} limit ${value}: a whole number of bytes per second, 0 for none`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * New seed goals over the current ones.
 *
 * @example
 * ```ts
 * import { checkGoals } from "./settings_check.ts";
 * console.log(checkGoals({ ratio: null, idleMinutes: 30 }, { ratio: 2 })); // { ratio: 2, idleMinutes: 30 }
 * ```
 *
 * @param current The goals now.
 * @param change What to change (null removes a goal).
 * @returns The new goals.
 * @throws {DaemonError} `INVALID_ARGUMENT` for a negative or non-finite value.
 */
export function checkGoals(current: SeedGoals, change: Partial<SeedGoals>): SeedGoals {
  const out = { ...current };
  for (const key of ["ratio", "idleMinutes"] as const) {
    const value = change[key];
    if (value === undefined) continue;
    if (value !== null && (!Number.isFinite(value) || value < 0)) {
      invalid(`Invalid seed goal ${key} ${value}: a number of at least 0, or null for none`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * Labels trimmed, without duplicates or empty ones.
 *
 * @example
 * ```ts
 * import { checkLabels } from "./settings_check.ts";
 * console.log(checkLabels([" linux ", "linux", "iso"])); // ["linux", "iso"]
 * ```
 *
 * @param labels The labels.
 * @returns The cleaned list.
 * @throws {DaemonError} `INVALID_ARGUMENT` for too many or too long labels.
 */
export function checkLabels(labels: readonly string[]): string[] {
  const out = [...new Set(labels.map((label) => String(label).trim()).filter((label) => label !== ""))];
  if (out.length > MAX_LABELS) invalid(`Too many labels: ${out.length}, at most ${MAX_LABELS}`);
  const long = out.find((label) => label.length > MAX_LABEL_LENGTH);
  if (long !== undefined) invalid(`Label too long: ${long.length} characters, at most ${MAX_LABEL_LENGTH}`);
  return out;
}

/**
 * Applies a file change to the per-file lists of a record (filled to `fileCount` first).
 *
 * @example
 * ```ts
 * import { applyFileChange } from "./settings_check.ts";
 * const wanted: boolean[] = [];
 * const priority: ("low" | "normal" | "high")[] = [];
 * applyFileChange(wanted, priority, 3, { files: [1], wanted: false, priority: "high" });
 * console.log(wanted, priority); // [true, false, true] ["normal", "high", "normal"]
 * ```
 *
 * @param wanted Per file: downloaded or not (changed in place).
 * @param priority Per file: its priority (changed in place; left alone when the change has none and it is empty).
 * @param fileCount Number of files.
 * @param change The change.
 * @throws {DaemonError} `INVALID_ARGUMENT` for an index that is not a file.
 */
export function applyFileChange(
  wanted: boolean[],
  priority: FileRank[],
  fileCount: number,
  change: FileChange,
): void {
  const bad = change.files.find((i) => !Number.isInteger(i) || i < 0 || i >= fileCount);
  if (bad !== undefined) invalid(`No file ${bad}: the torrent has files 0 to ${fileCount - 1}`);
  while (wanted.length < fileCount) wanted.push(true);
  if (change.priority !== undefined) { while (priority.length < fileCount) priority.push("normal"); }
  for (const i of change.files) {
    if (change.wanted !== undefined) wanted[i] = change.wanted;
    if (change.priority !== undefined) priority[i] = change.priority;
  }
}
