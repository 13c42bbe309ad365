/**
 * shoal as a service: the daemon core. A {@linkcode TorrentManager} owns many torrents in one
 * session, each with a stable id and a durable record in a {@linkcode StateStore}, restored
 * after a restart or a crash; a {@linkcode WatchFolder} adds the .torrent files dropped in a
 * folder.
 *
 * @example
 * ```ts ignore
 * import { Session } from "@shoal/shoal";
 * import { StateStore, TorrentManager } from "@shoal/shoal/daemon";
 * const session = new Session({ downloadDir: "/srv/downloads", port: 51413 });
 * const store = await StateStore.open("/var/lib/shoal", { logger: session.logger });
 * const manager = await TorrentManager.open({ session, store, downloadDir: "/srv/downloads" });
 * const { id } = await manager.add({ magnet: "magnet:?xt=urn:btih:..." });
 * console.log(manager.get(id)?.state); // "magnet"
 * await manager.close();
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./record.ts";
export * from "./state_store.ts";
export * from "./torrent_source.ts";
export * from "./snapshot.ts";
export * from "./manager_events.ts";
export * from "./manager.ts";
export * from "./delete_data.ts";
export * from "./watch_folder.ts";
export * from "./rpc_backend.ts";
