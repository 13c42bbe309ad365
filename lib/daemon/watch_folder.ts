/**
 * A watch folder: every `.torrent` file dropped in is added, then renamed `<name>.added`; one
 * that is not a valid torrent is renamed `<name>.invalid` and the reason logged. A file is taken
 * once its size and modification time stayed the same over two scans (so a copy still being
 * written is not read half-way).
 *
 * @module
 */

import { join } from "node:path";
import type { Logger } from "../log.ts";
import { ShoalError } from "../errors.ts";
import { readTorrentFile } from "../torrent_file.ts";

/** Options of {@linkcode WatchFolder}. */
export interface WatchFolderOptions {
  /** The folder watched (created when missing). */
  dir: string;
  /** Adds a torrent; resolves once it is durable, with whether it was there already. */
  add: (torrent: Uint8Array) => Promise<{ id: number; duplicate: boolean }>;
  /** Where additions and refusals are logged. */
  logger: Logger;
  /** Milliseconds between scans. @default {2000} */
  intervalMs?: number;
}

/**
 * Scans a folder for `.torrent` files and adds them.
 *
 * @example
 * ```ts ignore
 * const watch = new WatchFolder({ dir: "/srv/watch", add: (torrent) => manager.add({ torrent }), logger });
 * await watch.start();
 * // ...
 * await watch.stop();
 * ```
 */
export class WatchFolder {
  readonly #options: WatchFolderOptions;
  /** Size and mtime of each file at the last scan, by name. */
  readonly #seen = new Map<string, string>();
  /** Files that failed for a reason other than their content, with the signature they had. */
  readonly #failed = new Map<string, string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #scanning: Promise<void> = Promise.resolve();
  #stopped = false;

  /**
   * Creates the watcher (call {@linkcode WatchFolder.start}).
   *
   * @param options The folder, how to add, the logger, the interval.
   */
  constructor(options: WatchFolderOptions) {
    this.#options = options;
  }

  /** Creates the folder when missing and starts scanning it. */
  async start(): Promise<void> {
    await Deno.mkdir(this.#options.dir, { recursive: true });
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#scanning = this.scan().catch((error: Error) =>
        this.#options.logger.warn("watch", `Cannot scan ${this.#options.dir}: ${error.message}`)
      ).finally(() => this.#schedule(this.#options.intervalMs ?? 2000));
    }, ms);
  }

  /** One scan: adds every `.torrent` file that stayed unchanged since the previous scan. */
  async scan(): Promise<void> {
    const { dir, logger } = this.#options;
    const present = new Set<string>();
    for await (const item of Deno.readDir(dir)) {
      if (this.#stopped) return;
      if (!item.isFile || !item.name.toLowerCase().endsWith(".torrent")) continue;
      present.add(item.name);
      const path = join(dir, item.name);
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(path);
      } catch (error) {
        // Gone between the listing and now (taken away, or renamed by another tool).
        if (error instanceof Deno.errors.NotFound) continue;
        throw error;
      }
      const signature = `${info.size}:${info.mtime?.getTime() ?? 0}`;
      const before = this.#seen.get(item.name);
      this.#seen.set(item.name, signature);
      if (before !== signature || this.#failed.get(item.name) === signature) continue;
      await this.#take(item.name, path, signature, logger);
    }
    for (const name of this.#seen.keys()) if (!present.has(name)) this.#seen.delete(name);
  }

  async #take(name: string, path: string, signature: string, logger: Logger): Promise<void> {
    try {
      const result = await this.#options.add(await readTorrentFile(path));
      logger.info("watch", result.duplicate ? "Already added" : "Added", { file: path, id: result.id });
      await this.#rename(path, `${path}.added`);
    } catch (error) {
      const reason = (error as Error).message;
      if (error instanceof ShoalError && error.code !== "CLOSED") {
        logger.warn("watch", `Not a valid torrent, renamed .invalid: ${reason}`, { file: path });
        await this.#rename(path, `${path}.invalid`);
      } else {
        // Not the file's fault (the state folder, a closing daemon): tried again once it changes.
        this.#failed.set(name, signature);
        logger.warn("watch", `Cannot add ${path}: ${reason}`, { file: path });
      }
    } finally {
      this.#seen.delete(name);
    }
  }

  async #rename(from: string, to: string): Promise<void> {
    try {
      await Deno.rename(from, to);
    } catch (error) {
      this.#options.logger.warn("watch", `Cannot rename ${from}: ${(error as Error).message}`);
    }
  }

  /** Stops scanning; waits for a scan in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#scanning;
  }
}
