/**
 * The request plumbing of Transmission RPC: the `{method, arguments, tag}` envelope, typed
 * readers for the arguments, and the `ids` selector (a number, a list of numbers and/or
 * hash strings, `"recently-active"`, or absent for all).
 *
 * @module
 */

import type { RpcTorrentEntry } from "./backend.ts";
import { TransmissionRpcError } from "./rpc_error.ts";

/** Most ids one request may name. */
export const MAX_REQUEST_IDS = 100_000;
/** Seconds a torrent counts as recently active (Transmission's 60). */
export const RECENTLY_ACTIVE_SECONDS = 60;

/** One parsed request. */
export interface RpcRequest {
  /** The method name. */
  readonly method: string;
  /** Its arguments (an empty object when absent). */
  readonly arguments: Record<string, unknown>;
  /** The client's tag, echoed in the response (numbers only, as Transmission). */
  readonly tag?: number;
}

/**
 * Parses a request body. Errors are Transmission's: `"no method name"` for a body that is
 * not a JSON object with a string `method`.
 *
 * @example
 * ```ts
 * import { parseRpcRequest } from "./request.ts";
 * console.log(parseRpcRequest('{"method":"session-get","tag":7}')); // { method: "session-get", arguments: {}, tag: 7 }
 * ```
 *
 * @param text The body.
 * @returns The request.
 * @throws {TransmissionRpcError} when it is not a request; `tag` is kept on the error when readable.
 */
export function parseRpcRequest(text: string): RpcRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TransmissionRpcError(`no method name: the body is not JSON (${(error as Error).message})`);
  }
  if (!isRecord(value)) throw new TransmissionRpcError("no method name: the body is not a JSON object");
  const tag = typeof value.tag === "number" && Number.isFinite(value.tag) ? value.tag : undefined;
  if (typeof value.method !== "string" || value.method === "") {
    throw new TransmissionRpcError("no method name");
  }
  const args = value.arguments ?? {};
  if (!isRecord(args)) {
    throw new TransmissionRpcError(`${value.method}: "arguments" must be an object`);
  }
  return { method: value.method, arguments: args, ...(tag !== undefined ? { tag } : {}) };
}

/**
 * Whether a value is a plain JSON object.
 *
 * @param value Anything.
 * @returns True for an object that is not an array or null.
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Typed readers of one request's arguments: each returns undefined for an absent key and
 * throws a {@linkcode TransmissionRpcError} naming the method and key for a wrong type.
 *
 * @example
 * ```ts
 * import { RpcArguments } from "./request.ts";
 * const args = new RpcArguments("torrent-set", { downloadLimit: 10, "files-wanted": [0, 2] });
 * console.log(args.number("downloadLimit"), args.indexList("files-wanted")); // 10 [0, 2]
 * ```
 */
export class RpcArguments {
  /** The method, for messages. */
  readonly method: string;
  /** The raw arguments. */
  readonly raw: Record<string, unknown>;

  /**
   * Wraps a request's arguments.
   *
   * @param method The method, for messages.
   * @param raw The arguments object.
   */
  constructor(method: string, raw: Record<string, unknown>) {
    this.method = method;
    this.raw = raw;
  }

  /**
   * Whether the key is present.
   *
   * @param key The argument.
   * @returns True when present (even null).
   */
  has(key: string): boolean {
    return Object.hasOwn(this.raw, key);
  }

  /**
   * A finite number.
   *
   * @param key The argument.
   * @returns The number, or undefined when absent.
   */
  number(key: string): number | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value)) throw this.#wrong(key, "a number");
    return value;
  }

  /**
   * A whole number not below `min`.
   *
   * @param key The argument.
   * @param min The least value.
   * @returns The number, or undefined when absent.
   */
  integer(key: string, min = 0): number | undefined {
    const value = this.number(key);
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= min)) {
      throw this.#wrong(key, `a whole number of at least ${min}`);
    }
    return value;
  }

  /**
   * A boolean (Transmission's clients also send 0 and 1).
   *
   * @param key The argument.
   * @returns The boolean, or undefined when absent.
   */
  boolean(key: string): boolean | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (value === 0 || value === 1) return value === 1;
    if (typeof value !== "boolean") throw this.#wrong(key, "a boolean");
    return value;
  }

  /**
   * A string.
   *
   * @param key The argument.
   * @returns The string, or undefined when absent.
   */
  string(key: string): string | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw this.#wrong(key, "a string");
    return value;
  }

  /**
   * A list of strings.
   *
   * @param key The argument.
   * @returns The strings, or undefined when absent.
   */
  stringList(key: string): string[] | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw this.#wrong(key, "a list of strings");
    }
    return value;
  }

  /**
   * A list of file indices (whole numbers ≥ 0). Transmission also reads an empty list as "all
   * files" for the file lists; callers decide that.
   *
   * @param key The argument.
   * @returns The indices, or undefined when absent.
   */
  indexList(key: string): number[] | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (
      !Array.isArray(value) || value.length > MAX_REQUEST_IDS ||
      !value.every((v) => Number.isSafeInteger(v) && (v as number) >= 0)
    ) {
      throw this.#wrong(key, "a list of file indices");
    }
    return value as number[];
  }

  #wrong(key: string, what: string): TransmissionRpcError {
    return new TransmissionRpcError(`${this.method}: argument "${key}" must be ${what}`);
  }
}

/** Which torrents a request names. */
export type IdSelector =
  | { readonly kind: "all" }
  | { readonly kind: "recently-active" }
  | { readonly kind: "list"; readonly ids: readonly number[]; readonly hashes: readonly string[] };

/**
 * Parses the `ids` argument.
 *
 * @example
 * ```ts
 * import { parseIds } from "./request.ts";
 * console.log(parseIds([1, "C12FE1C06BBA254A9DC9F519B335AA7C1367A88A"]));
 * // { kind: "list", ids: [1], hashes: ["c12fe1c06bba254a9dc9f519b335aa7c1367a88a"] }
 * ```
 *
 * @param value The argument (undefined when absent).
 * @param method The method, for messages.
 * @returns The selector.
 * @throws {TransmissionRpcError} for anything else.
 */
export function parseIds(value: unknown, method = "request"): IdSelector {
  if (value === undefined) return { kind: "all" };
  if (value === "recently-active") return { kind: "recently-active" };
  const list = Array.isArray(value) ? value : [value];
  if (list.length > MAX_REQUEST_IDS) {
    throw new TransmissionRpcError(`${method}: "ids" names more than ${MAX_REQUEST_IDS} torrents`);
  }
  const ids: number[] = [];
  const hashes: string[] = [];
  for (const item of list) {
    if (typeof item === "number" && Number.isSafeInteger(item) && item >= 0) ids.push(item);
    else if (typeof item === "string" && /^[0-9a-fA-F]{40}$/.test(item)) hashes.push(item.toLowerCase());
    else if (typeof item === "string" && /^[0-9]{1,15}$/.test(item)) ids.push(Number(item));
    else {
      throw new TransmissionRpcError(
        `${method}: invalid "ids": expected a torrent id, a 40-character info-hash, a list of them, or "recently-active"`,
      );
    }
  }
  return { kind: "list", ids, hashes };
}

/**
 * The entries a selector names, in id order (unknown ids are skipped, as Transmission does).
 *
 * @param entries The backend's torrents.
 * @param selector What the request named.
 * @param nowSeconds The time, seconds since the epoch.
 * @returns The named entries.
 */
export function selectEntries(
  entries: readonly RpcTorrentEntry[],
  selector: IdSelector,
  nowSeconds: number,
): RpcTorrentEntry[] {
  switch (selector.kind) {
    case "all":
      return [...entries];
    case "recently-active":
      return entries.filter((e) =>
        Math.max(e.activityDate, e.addedDate, e.doneDate, e.startDate) >= nowSeconds - RECENTLY_ACTIVE_SECONDS
      );
    case "list": {
      const ids = new Set(selector.ids);
      const hashes = new Set(selector.hashes);
      return entries.filter((e) => ids.has(e.id) || hashes.has(e.hashString));
    }
  }
}
