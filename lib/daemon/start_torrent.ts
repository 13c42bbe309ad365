/**
 * Starting one managed torrent in the session: from its metainfo or its magnet link (the
 * metadata is then saved), with its recorded priorities, peers and limits, paused afterwards
 * when its record says so; and the torrent events that change its record.
 *
 * @module
 */

import type { BaseSession } from "../session.ts";
import type { Logger } from "../log.ts";
import type { Torrent } from "../torrent.ts";
import { encodeTorrent } from "../metainfo.ts";
import { type Entry, prioritiesOf } from "./entry.ts";
import type { StateStore } from "./state_store.ts";

/** What {@linkcode startTorrent} needs of the manager. */
export interface StartContext {
  /** The session. */
  readonly session: BaseSession;
  /** The state folder. */
  readonly store: StateStore;
  /** Logger. */
  readonly log: Logger;
  /** Clock. */
  now(): number;
  /** True once the manager is closing (a failed start is then not an error). */
  closing(): boolean;
  /** Saves the entry's record. */
  save(entry: Entry): Promise<void>;
  /** The entry may have changed state. */
  changed(entry: Entry): void;
}

/**
 * Adds the entry's torrent to the session and waits for its start (metadata fetch, data
 * check). A failure is kept in the record's `error`; an abort through `signal` is not one.
 *
 * @example
 * ```ts ignore
 * entry.run = startTorrent(context, entry, abort.signal);
 * ```
 *
 * @param context The manager's parts.
 * @param entry The torrent.
 * @param signal Aborts the metadata fetch and the data check.
 * @throws {Error} when the fetched metadata or the record cannot be saved.
 */
export async function startTorrent(context: StartContext, entry: Entry, signal: AbortSignal): Promise<void> {
  const { record } = entry;
  const source = entry.metainfo ?? record.magnet;
  if (source === null) return;
  let torrent: Torrent;
  try {
    torrent = await context.session.add(source, {
      downloadDir: record.downloadDir,
      resumeDir: context.store.resumeDir,
      signal,
      ...(entry.metainfo ? { filePriorities: prioritiesOf(record, entry.metainfo.files.length) } : {}),
      ...(record.peers.length > 0 ? { peers: record.peers } : {}),
      ...(record.limits.upload > 0 ? { uploadLimit: record.limits.upload } : {}),
      ...(record.limits.download > 0 ? { downloadLimit: record.limits.download } : {}),
      onTorrent: (added) => attachTorrent(context, entry, added),
    });
  } catch (error) {
    if (signal.aborted || context.closing()) return;
    record.error = (error as Error).message;
    context.log.warn("daemon", `Torrent ${record.id} did not start: ${record.error}`, { hash: record.hash });
    await context.save(entry);
    return;
  }
  if (entry.metainfo === null) {
    const metainfo = entry.metainfo = torrent.metainfo;
    record.hasMetainfo = true;
    record.name = metainfo.name;
    record.wanted = torrent.filePriorities.map((p) => p !== "skip");
    const bytes = encodeTorrent(metainfo.infoBytes, {
      announceList: metainfo.announceList,
      urlList: metainfo.urlList,
    });
    await context.store.saveTorrent(record.hash, bytes);
    context.log.info("daemon", "Metadata received", { id: record.id, name: metainfo.name });
  }
  record.error = null;
  await context.save(entry);
  const running = torrent.state === "downloading" || torrent.state === "seeding";
  if ((record.paused || record.finished) && running && !signal.aborted) await torrent.pause();
}

/**
 * Follows a torrent's events: a fatal error, state changes.
 *
 * @example
 * ```ts ignore
 * session.add(metainfo, { onTorrent: (torrent) => attachTorrent(context, entry, torrent) });
 * ```
 *
 * @param context The manager's parts.
 * @param entry The torrent's entry.
 * @param torrent The torrent the session made.
 */
export function attachTorrent(context: StartContext, entry: Entry, torrent: Torrent): void {
  entry.torrent = torrent;
  entry.folded = { uploaded: 0, downloaded: 0 };
  torrent.addEventListener("done", () => context.changed(entry)); // the done date is set on "seeding"
  torrent.addEventListener("error", (event) => {
    entry.record.error = event.detail.error.message;
    context.save(entry);
    context.changed(entry);
  });
  torrent.addEventListener("checked", () => context.changed(entry));
}
