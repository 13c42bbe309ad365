/**
 * The daemon's state folder, written like a database: one record per torrent, so one damaged
 * file costs one torrent, never the others; every write atomic (temporary file in the same
 * folder, sync, rename, sync the folder, through `writeFileAtomic`).
 *
 * ```text
 * <state>/daemon.json              {"version": 1, "nextId": N}
 * <state>/torrents/<hash>.json     one TorrentRecord per torrent
 * <state>/torrents/<hash>.torrent  its metainfo (absent while a magnet waits for metadata)
 * <state>/resume/                  the session's resume data and locks
 * ```
 *
 * @module
 */

import { join } from "node:path";
import type { Logger } from "../log.ts";
import { parseMetainfo } from "../metainfo.ts";
import { TORRENT_LIMITS } from "../limits.ts";
import type { Metainfo } from "../types.ts";
import { readFileInside, writeFileAtomic } from "../storage/safe_open.ts";
import { DaemonError } from "./errors.ts";
import { encodeRecord, parseRecord, type TorrentRecord } from "./record.ts";

/** Largest record file read, in bytes. */
const MAX_RECORD_BYTES = 1024 * 1024;

/** A record read back at start-up, with its metainfo when it has one. */
export interface LoadedRecord {
  /** The record. */
  readonly record: TorrentRecord;
  /** The parsed `<hash>.torrent`, or null for a magnet still waiting for metadata. */
  readonly metainfo: Metainfo | null;
}

/** Options of {@linkcode StateStore.open}. */
export interface StateStoreOptions {
  /** Where set-aside records are reported. */
  logger: Logger;
}

/**
 * The state folder of one daemon.
 *
 * @example
 * ```ts
 * import { StateStore } from "./state_store.ts";
 * import { Logger } from "../log.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await StateStore.open(dir, { logger: new Logger() });
 * console.log(await store.allocateId(), store.loaded.length); // 1 0
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class StateStore {
  /** The state folder (as given). */
  readonly dir: string;
  /** Where the session keeps resume data: `<dir>/resume`. */
  readonly resumeDir: string;
  /** Where records live: `<dir>/torrents`. */
  readonly torrentsDir: string;
  /** The records found at open, by id. */
  readonly loaded: readonly LoadedRecord[];
  /** Files set aside at open as `.corrupt` (names relative to the state folder). */
  readonly setAside: readonly string[];
  #nextId: number;
  #ids: Promise<unknown> = Promise.resolve();
  readonly #writes = new Map<string, Promise<unknown>>();

  private constructor(dir: string, nextId: number, loaded: LoadedRecord[], setAside: string[]) {
    this.dir = dir;
    this.resumeDir = join(dir, "resume");
    this.torrentsDir = join(dir, "torrents");
    this.#nextId = nextId;
    this.loaded = loaded;
    this.setAside = setAside;
  }

  /**
   * Opens (creating when missing) a state folder and reads every record. A record that cannot
   * be read, parsed or matched with its metainfo is logged with its file name and renamed
   * `<name>.corrupt`; the others load.
   *
   * @param dir The state folder.
   * @param options The logger.
   * @returns The store.
   * @throws {Error} only when the folder itself cannot be created or listed.
   */
  static async open(dir: string, options: StateStoreOptions): Promise<StateStore> {
    const log = options.logger;
    await Deno.mkdir(join(dir, "torrents"), { recursive: true });
    await Deno.mkdir(join(dir, "resume"), { recursive: true });
    const setAside: string[] = [];
    const putAside = async (name: string, why: string) => {
      const from = join(dir, name);
      const to = `${from}.corrupt`;
      log.warn("daemon", `Setting aside unusable state file ${name}: ${why}`, { file: from, movedTo: to });
      try {
        await Deno.rename(from, to);
        setAside.push(name);
      } catch (error) {
        log.error("daemon", `Cannot set aside ${name}: ${(error as Error).message}`);
      }
    };
    let nextId = 1;
    try {
      const bytes = await readFileInside(dir, "daemon.json", MAX_RECORD_BYTES);
      if (bytes !== null) {
        const value = JSON.parse(new TextDecoder().decode(bytes)) as { nextId?: unknown };
        if (typeof value.nextId !== "number" || !Number.isSafeInteger(value.nextId) || value.nextId < 1) {
          throw new DaemonError("INVALID_RECORD", `"nextId" must be a whole number of at least 1`);
        }
        nextId = value.nextId;
      }
    } catch (error) {
      // The ids in use are recovered from the records below.
      await putAside("daemon.json", (error as Error).message);
    }
    const loaded: LoadedRecord[] = [];
    const ids = new Set<number>();
    const names: string[] = [];
    for await (const entry of Deno.readDir(join(dir, "torrents"))) names.push(entry.name);
    for (const name of names.toSorted()) {
      if (name.startsWith(".") && name.endsWith(".tmp")) {
        // A write cut short by a crash: the record it would have replaced is still in place.
        await Deno.remove(join(dir, "torrents", name)).catch((e: Error) =>
          log.warn("daemon", `Cannot remove temporary file ${name}: ${e.message}`)
        );
        continue;
      }
      if (!name.endsWith(".json")) continue;
      const file = join("torrents", name);
      try {
        const found = await readRecord(dir, file);
        if (ids.has(found.record.id)) {
          throw new DaemonError("INVALID_RECORD", `id ${found.record.id} is used by another record`);
        }
        ids.add(found.record.id);
        loaded.push(found);
      } catch (error) {
        await putAside(file, (error as Error).message);
      }
    }
    loaded.sort((a, b) => a.record.id - b.record.id);
    const highest = Math.max(0, ...ids);
    return new StateStore(dir, Math.max(nextId, highest + 1), loaded, setAside);
  }

  /**
   * Takes the next id and makes it durable before returning it, so that no id is handed out
   * twice, even across a crash.
   *
   * @returns The id.
   */
  allocateId(): Promise<number> {
    const run = this.#ids.then(async () => {
      const id = this.#nextId;
      const text = JSON.stringify({ version: 1, nextId: id + 1 }) + "\n";
      await writeFileAtomic(this.dir, "daemon.json", new TextEncoder().encode(text));
      this.#nextId = id + 1;
      return id;
    });
    this.#ids = run.catch(() => {/* the caller gets the error; the next allocation tries again */});
    return run;
  }

  /** The id the next {@linkcode StateStore.allocateId} gives. */
  get nextId(): number {
    return this.#nextId;
  }

  /**
   * Saves a record durably (writes of one torrent's files run in order).
   *
   * @param record The record.
   */
  saveRecord(record: TorrentRecord): Promise<void> {
    return this.#serial(
      record.hash,
      () => writeFileAtomic(this.dir, recordFile(record.hash), encodeRecord(record)),
    );
  }

  /**
   * Saves a torrent's metainfo (`<hash>.torrent`) durably.
   *
   * @param hash The info-hash, hex.
   * @param bytes The .torrent file's bytes.
   */
  saveTorrent(hash: string, bytes: Uint8Array): Promise<void> {
    return this.#serial(hash, () => writeFileAtomic(this.dir, torrentFile(hash), bytes));
  }

  /**
   * Removes a torrent's record, then its metainfo (a crash in between leaves a stray .torrent,
   * never a record without its metainfo).
   *
   * @param hash The info-hash, hex.
   */
  removeRecord(hash: string): Promise<void> {
    return this.#serial(hash, async () => {
      for (const file of [recordFile(hash), torrentFile(hash)]) {
        await Deno.remove(join(this.dir, file)).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        });
      }
    });
  }

  /**
   * Removes the session's resume data of a torrent (its data is then checked in full at the
   * next start) and, with `metadata`, the metainfo a magnet fetch saved beside it.
   *
   * @param hash The info-hash, hex.
   * @param options Whether to remove the saved metadata too.
   */
  async removeResumeData(hash: string, options: { metadata: boolean }): Promise<void> {
    const files = [`${hash}.resume`, ...(options.metadata ? [`${hash}.torrent`] : [])];
    for (const file of files) {
      await Deno.remove(join(this.resumeDir, file)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }

  #serial(hash: string, write: () => Promise<unknown>): Promise<void> {
    const run = (this.#writes.get(hash) ?? Promise.resolve()).then(write);
    const tail = run.catch(() => {/* the caller of this write gets the error */});
    this.#writes.set(hash, tail);
    tail.then(() => {
      if (this.#writes.get(hash) === tail) this.#writes.delete(hash);
    });
    return run.then(() => {});
  }
}

function recordFile(hash: string): string {
  return join("torrents", `${hash}.json`);
}

function torrentFile(hash: string): string {
  return join("torrents", `${hash}.torrent`);
}

async function readRecord(dir: string, file: string): Promise<LoadedRecord> {
  const bytes = await readFileInside(dir, file, MAX_RECORD_BYTES);
  if (bytes === null) throw new DaemonError("INVALID_RECORD", `${file}: vanished while being read`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DaemonError("INVALID_RECORD", `${file}: not valid JSON (${(error as Error).message})`);
  }
  const record = parseRecord(value, file);
  if (`${record.hash}.json` !== file.slice("torrents/".length)) {
    throw new DaemonError("INVALID_RECORD", `${file}: holds the record of ${record.hash}`);
  }
  if (!record.hasMetainfo) {
    if (record.magnet === null) {
      throw new DaemonError("INVALID_RECORD", `${file}: no metainfo and no magnet link`);
    }
    return { record, metainfo: null };
  }
  const torrent = await readFileInside(dir, torrentFile(record.hash), TORRENT_LIMITS.maxBytes);
  if (torrent === null) {
    throw new DaemonError("INVALID_RECORD", `${file}: its ${record.hash}.torrent is missing`);
  }
  const metainfo = parseMetainfo(torrent);
  if (metainfo.infoHashHex !== record.hash) {
    throw new DaemonError("INVALID_RECORD", `${file}: ${record.hash}.torrent holds another torrent`);
  }
  return { record, metainfo };
}
