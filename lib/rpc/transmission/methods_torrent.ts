/**
 * The torrent methods of Transmission RPC: `torrent-get`, `torrent-add`, `torrent-set`,
 * the actions (`torrent-start`, `-start-now`, `-stop`, `-verify`, `-reannounce`),
 * `torrent-remove`, `torrent-set-location`, `torrent-rename-path` and `queue-move-*`. Each
 * turns its arguments into calls of the {@linkcode TransmissionBackend}.
 *
 * @module
 */

import type {
  AddTorrentRequest,
  QueueMove,
  RpcTorrentEntry,
  SeedGoalMode,
  TorrentChanges,
  TransmissionBackend,
  TransmissionPriority,
} from "./backend.ts";
import { parseIds, type RpcArguments, selectEntries } from "./request.ts";
import { TransmissionRpcError } from "./rpc_error.ts";
import { torrentObject } from "./torrent_fields.ts";

/** What a torrent method sees besides its arguments. */
export interface TorrentMethodContext {
  /** The backend. */
  readonly backend: TransmissionBackend;
  /** The time, seconds since the epoch. */
  readonly now: number;
}

function selected(args: RpcArguments, context: TorrentMethodContext): RpcTorrentEntry[] {
  return selectEntries(context.backend.torrents(), parseIds(args.raw.ids, args.method), context.now);
}

/**
 * `torrent-get`: the asked `fields` of the torrents `ids` names, as objects or, with
 * `format: "table"`, as a first row of names and one array per torrent. With
 * `ids: "recently-active"`, `removed` lists the ids removed in the last minute.
 *
 * @param args `fields`, `ids`, `format`.
 * @param context Backend and time.
 * @returns `torrents` (and `removed`).
 */
export function torrentGet(args: RpcArguments, context: TorrentMethodContext): Record<string, unknown> {
  const fields = args.stringList("fields");
  if (fields === undefined || fields.length === 0) throw new TransmissionRpcError("no fields specified");
  const format = args.string("format") ?? "objects";
  if (format !== "objects" && format !== "table") {
    throw new TransmissionRpcError(`torrent-get: "format" must be "objects" or "table"`);
  }
  const selector = parseIds(args.raw.ids, args.method);
  const entries = selectEntries(context.backend.torrents(), selector, context.now);
  const objects = entries.map((entry) => torrentObject(entry, fields, context.now));
  const torrents = format === "objects"
    ? objects
    : [fields, ...objects.map((o) => fields.map((name) => (Object.hasOwn(o, name) ? o[name] : null)))];
  const out: Record<string, unknown> = { torrents };
  if (selector.kind === "recently-active") out.removed = [...context.backend.removedSince(60)];
  return out;
}

function decodeMetainfo(text: string): Uint8Array {
  try {
    return Uint8Array.fromBase64(text.replace(/\s+/g, ""));
  } catch (error) {
    throw new TransmissionRpcError(
      `invalid or corrupt torrent file: "metainfo" is not base64 (${(error as Error).message})`,
    );
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * `torrent-add`: a .torrent (`metainfo`, base64) or a `filename` (path, URL, magnet link).
 *
 * @param args What to add and how.
 * @param context Backend and time.
 * @returns `torrent-added` or `torrent-duplicate`, each with `id`, `name`, `hashString`.
 */
export async function torrentAdd(
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  const metainfo = args.string("metainfo");
  const filename = args.string("filename");
  if ((metainfo === undefined) === (filename === undefined) || filename === "") {
    throw new TransmissionRpcError(`torrent-add: give exactly one of "metainfo" and "filename"`);
  }
  const downloadDir = args.string("download-dir");
  if (downloadDir !== undefined && !downloadDir.startsWith("/")) {
    throw new TransmissionRpcError(`torrent-add: "download-dir" must be an absolute path`);
  }
  const request: AddTorrentRequest = {
    ...(metainfo !== undefined ? { metainfo: decodeMetainfo(metainfo) } : {}),
    ...optional("filename", filename),
    ...optional("paused", args.boolean("paused")),
    ...optional("downloadDir", downloadDir),
    ...optional("labels", args.stringList("labels")),
    ...optional("filesWanted", args.indexList("files-wanted")),
    ...optional("filesUnwanted", args.indexList("files-unwanted")),
    ...optional("priorityHigh", args.indexList("priority-high")),
    ...optional("priorityNormal", args.indexList("priority-normal")),
    ...optional("priorityLow", args.indexList("priority-low")),
    ...optional("peerLimit", args.integer("peer-limit", 1)),
  };
  const { duplicate, entry } = await context.backend.add(request);
  return {
    [duplicate ? "torrent-duplicate" : "torrent-added"]: {
      hashString: entry.hashString,
      id: entry.id,
      name: entry.name,
    },
  };
}

function seedMode(args: RpcArguments, key: string): SeedGoalMode | undefined {
  const value = args.integer(key);
  if (value !== undefined && value > 2) {
    throw new TransmissionRpcError(`torrent-set: "${key}" must be 0, 1 or 2`);
  }
  return value as SeedGoalMode | undefined;
}

/** `torrent-set` keys shoal cannot carry out yet, with why. */
const UNSUPPORTED_SET: Readonly<Record<string, string>> = {
  trackerAdd: "changing trackers is not supported yet",
  trackerRemove: "changing trackers is not supported yet",
  trackerReplace: "changing trackers is not supported yet",
  trackerList: "changing trackers is not supported yet",
  sequentialDownload: "sequential download per torrent is not supported yet",
  group: "bandwidth groups are not supported yet",
};

/**
 * `torrent-set`: limits, file selection and priorities (an empty list means every file, as
 * Transmission), labels, seed goals, peer limit, queue position; `location` as
 * `torrent-set-location` without moving.
 *
 * @param args `ids` and what to change.
 * @param context Backend and time.
 * @returns Empty arguments.
 */
export async function torrentSet(
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  for (const [key, why] of Object.entries(UNSUPPORTED_SET)) {
    if (args.has(key)) throw new TransmissionRpcError(`torrent-set: "${key}": ${why}`);
  }
  const bandwidth = args.integer("bandwidthPriority", -1);
  if (bandwidth !== undefined && bandwidth > 1) {
    throw new TransmissionRpcError(`torrent-set: "bandwidthPriority" must be -1, 0 or 1`);
  }
  const location = args.string("location");
  const entries = selected(args, context);
  for (const entry of entries) {
    const count = entry.metainfo?.files.length ?? 0;
    const files = (key: string) => {
      const list = args.indexList(key);
      if (list === undefined) return undefined;
      if (list.length === 0) return Array.from({ length: count }, (_, i) => i);
      const bad = list.find((i) => i >= count);
      if (bad !== undefined) {
        throw new TransmissionRpcError(
          `torrent-set: "${key}": torrent ${entry.id} has no file ${bad} (it has ${count})`,
        );
      }
      return list;
    };
    const changes: TorrentChanges = {
      ...optional("downloadLimit", args.integer("downloadLimit")),
      ...optional("downloadLimited", args.boolean("downloadLimited")),
      ...optional("uploadLimit", args.integer("uploadLimit")),
      ...optional("uploadLimited", args.boolean("uploadLimited")),
      ...optional("honorsSessionLimits", args.boolean("honorsSessionLimits")),
      ...optional("filesWanted", files("files-wanted")),
      ...optional("filesUnwanted", files("files-unwanted")),
      ...optional("priorityHigh", files("priority-high")),
      ...optional("priorityNormal", files("priority-normal")),
      ...optional("priorityLow", files("priority-low")),
      ...optional("labels", args.stringList("labels")),
      ...optional("seedRatioLimit", args.number("seedRatioLimit")),
      ...optional("seedRatioMode", seedMode(args, "seedRatioMode")),
      ...optional("seedIdleLimit", args.integer("seedIdleLimit")),
      ...optional("seedIdleMode", seedMode(args, "seedIdleMode")),
      ...optional("peerLimit", args.integer("peer-limit", 1)),
      ...optional("bandwidthPriority", bandwidth as TransmissionPriority | undefined),
      ...optional("queuePosition", args.integer("queuePosition")),
    };
    if (Object.keys(changes).length > 0) await context.backend.set(entry.id, changes);
    if (location !== undefined) await context.backend.setLocation(entry.id, location, { move: false });
  }
  return {};
}

/** The actions that take only `ids`. */
export type TorrentAction =
  | "torrent-start"
  | "torrent-start-now"
  | "torrent-stop"
  | "torrent-verify"
  | "torrent-reannounce";

/**
 * Runs an action on every torrent `ids` names (absent: all).
 *
 * @param action Which action.
 * @param args `ids`.
 * @param context Backend and time.
 * @returns Empty arguments.
 */
export async function torrentAction(
  action: TorrentAction,
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  const backend = context.backend;
  for (const entry of selected(args, context)) {
    if (action === "torrent-start" || action === "torrent-start-now") {
      await backend.start(entry.id, { now: action === "torrent-start-now" });
    } else if (action === "torrent-stop") await backend.stop(entry.id);
    else if (action === "torrent-verify") await backend.verify(entry.id);
    else await backend.reannounce(entry.id);
  }
  return {};
}

/**
 * `torrent-remove`, with `delete-local-data` deleting the torrents' files.
 *
 * @param args `ids`, `delete-local-data`.
 * @param context Backend and time.
 * @returns Empty arguments.
 */
export async function torrentRemove(
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  const deleteData = args.boolean("delete-local-data") ?? false;
  for (const entry of selected(args, context)) await context.backend.remove(entry.id, { deleteData });
  return {};
}

/**
 * `torrent-set-location`: `location`, and `move` to move the files there.
 *
 * @param args `ids`, `location`, `move`.
 * @param context Backend and time.
 * @returns Empty arguments.
 */
export async function torrentSetLocation(
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  const location = args.string("location");
  if (location === undefined || !location.startsWith("/")) {
    throw new TransmissionRpcError(`torrent-set-location: "location" must be an absolute path`);
  }
  const move = args.boolean("move") ?? false;
  for (const entry of selected(args, context)) {
    await context.backend.setLocation(entry.id, location, { move });
  }
  return {};
}

/**
 * `torrent-rename-path`: one torrent's `path` renamed to `name`.
 *
 * @param args `ids` (one torrent), `path`, `name`.
 * @param context Backend and time.
 * @returns `id`, `path`, `name`.
 */
export async function torrentRenamePath(
  args: RpcArguments,
  context: TorrentMethodContext,
): Promise<Record<string, unknown>> {
  const path = args.string("path");
  const name = args.string("name");
  if (
    path === undefined || name === undefined || name === "" || name.includes("/") || name === ".." ||
    name === "."
  ) {
    throw new TransmissionRpcError(
      `torrent-rename-path: "path" and "name" (one path component) are required`,
    );
  }
  const entries = selected(args, context);
  if (entries.length !== 1) {
    throw new TransmissionRpcError(`torrent-rename-path: "ids" must name exactly one torrent`);
  }
  const id = entries[0]!.id;
  const renamed = await context.backend.renamePath(id, path, name);
  return { id, path: renamed.path, name: renamed.name };
}

/**
 * `queue-move-top`, `-up`, `-down`, `-bottom`.
 *
 * @param where Where to move.
 * @param args `ids`.
 * @param context Backend and time.
 * @returns Empty arguments.
 */
export function queueMove(
  where: QueueMove,
  args: RpcArguments,
  context: TorrentMethodContext,
): Record<string, unknown> {
  context.backend.moveInQueue(selected(args, context).map((e) => e.id), where);
  return {};
}
