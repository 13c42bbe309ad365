/**
 * Safe file paths from hostile torrents. A torrent's path components are untrusted: they
 * may contain `..`, absolute paths, separators, control characters, names Windows reserves,
 * or be longer than any file system allows. {@linkcode safeRelativePath} maps them to a
 * relative path that cannot leave the download folder, {@linkcode dedupePaths} makes a set of
 * such paths collision-free on case-insensitive file systems, and {@linkcode resolveInside}
 * checks the final absolute path once more before anything touches the disk.
 *
 * @module
 */

import { isAbsolute, relative as relativePath, resolve, sep } from "node:path";
import { StorageError } from "./errors.ts";

/** Options for {@linkcode safeRelativePath}. */
export interface SafePathOptions {
  /** Maximum size of one path component in UTF-8 bytes. @default {255} */
  maxComponentBytes?: number;
  /** What an empty result becomes. Must itself be a safe component. @default {"_"} */
  placeholder?: string;
}

/** Options for {@linkcode dedupePaths}. */
export interface DedupePathsOptions {
  /** Maximum size of one path component in UTF-8 bytes, kept when a suffix is added. @default {255} */
  maxComponentBytes?: number;
}

const DEFAULT_MAX_COMPONENT_BYTES = 255;
/** An extension longer than this is not worth keeping when a name is shortened. */
const MAX_KEPT_EXTENSION_BYTES = 32;

// C0 and C1 control characters, DEL, and the bidirectional overrides used to disguise extensions.
// deno-lint-ignore no-control-regex
const STRIPPED = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const ILLEGAL_ON_WINDOWS = /[<>:"|?*]/g;
const TRAILING_DOTS_AND_SPACES = /[. ]+$/;
const RESERVED_WINDOWS_NAMES =
  /^(con|prn|aux|nul|conin\$|conout\$|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])$/i;

/**
 * Maps path components from a torrent to a safe relative path, `/`-separated. The result
 * never is absolute, never contains `.` or `..` components or empty components, never
 * contains control characters, characters Windows forbids (`<>:"|?*`), backslashes or
 * Windows device names (`CON`, `NUL.txt`, `LPT1`, ...), and each component fits in
 * `maxComponentBytes` UTF-8 bytes (an extension is kept when the name is shortened).
 *
 * Rules, per component: `/` and `\` split it further (so `a\b` is two levels); control
 * characters and bidirectional overrides are removed; `<>:"|?*` become `_`; trailing dots and
 * spaces are trimmed; what is then empty (including `.` and `..`) is dropped; a reserved
 * device name gets a `_` prefix; a name too long is cut on a code-point boundary. An empty
 * result becomes the placeholder.
 *
 * @example
 * ```ts
 * import { safeRelativePath } from "./safe_path.ts";
 * console.log(safeRelativePath(["..", "..", "etc", "passwd"])); // "etc/passwd"
 * console.log(safeRelativePath(["C:\\Windows", "CON.txt"])); // "C_/Windows/_CON.txt"
 * console.log(safeRelativePath([".."])); // "_"
 * ```
 *
 * @param components Path components as found in the torrent (already decoded from UTF-8).
 * @param options Component size limit and placeholder.
 * @returns A non-empty relative path whose components are all safe.
 */
export function safeRelativePath(components: readonly string[], options: SafePathOptions = {}): string {
  const maxBytes = checkMaxBytes(options.maxComponentBytes);
  const placeholder = options.placeholder ?? "_";
  const out: string[] = [];
  for (const component of components) {
    for (const piece of component.split(/[/\\]/)) {
      const clean = sanitizeComponent(piece, maxBytes);
      if (clean !== undefined) out.push(clean);
    }
  }
  if (out.length === 0) {
    const fallback = /[/\\]/.test(placeholder) ? undefined : sanitizeComponent(placeholder, maxBytes);
    if (fallback === undefined || fallback !== placeholder) {
      throw new TypeError(`Cannot use placeholder '${placeholder}': it is not a safe path component`);
    }
    return fallback;
  }
  return out.join("/");
}

/** Cleans one component (no separators inside); `undefined` when nothing is left of it. */
function sanitizeComponent(raw: string, maxBytes: number): string | undefined {
  let s = raw.toWellFormed().replace(STRIPPED, "").replace(ILLEGAL_ON_WINDOWS, "_");
  s = s.replace(TRAILING_DOTS_AND_SPACES, "");
  if (s === "") return undefined;
  if (isReservedName(s)) s = "_" + s;
  s = truncateComponent(s, maxBytes).replace(TRAILING_DOTS_AND_SPACES, "");
  if (s === "") return undefined;
  // Cutting can only expose a reserved name when nothing but the bare name is left.
  if (isReservedName(s)) s = "_" + s;
  return s;
}

function isReservedName(name: string): boolean {
  const dot = name.indexOf(".");
  const base = (dot < 0 ? name : name.slice(0, dot)).replace(/ +$/, "");
  return RESERVED_WINDOWS_NAMES.test(base);
}

function checkMaxBytes(value: number | undefined): number {
  const max = value ?? DEFAULT_MAX_COMPONENT_BYTES;
  if (!Number.isSafeInteger(max) || max < 2 * MAX_KEPT_EXTENSION_BYTES) {
    throw new RangeError(`Cannot use maxComponentBytes ${max}: must be an integer of at least 64`);
  }
  return max;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a surrogate pair (strings here are well formed)
      i++;
    } else n += 3;
  }
  return n;
}

/** Cuts `s` to at most `maxBytes` UTF-8 bytes on a code-point boundary. */
function cutToBytes(s: string, maxBytes: number): string {
  let n = 0;
  let end = 0;
  for (const ch of s) {
    const size = utf8Length(ch);
    if (n + size > maxBytes) break;
    n += size;
    end += ch.length;
  }
  return s.slice(0, end);
}

/** Shortens a component to `maxBytes`, keeping a short extension when there is one. */
function truncateComponent(s: string, maxBytes: number): string {
  if (utf8Length(s) <= maxBytes) return s;
  const { stem, ext } = splitExtension(s);
  const extBytes = utf8Length(ext);
  if (ext !== "" && extBytes <= MAX_KEPT_EXTENSION_BYTES) return cutToBytes(stem, maxBytes - extBytes) + ext;
  return cutToBytes(s, maxBytes);
}

function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return { stem: name, ext: "" };
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/** Key under which two names collide on a case-insensitive, normalising file system. */
function foldKey(path: string): string {
  // deno-lint-ignore no-control-regex
  return (/^[\x00-\x7f]*$/.test(path) ? path : path.normalize("NFC")).toLowerCase();
}

/**
 * `name` with a numeric suffix before its extension (`a.txt` → `a.1.txt`; a directory gets it at the
 * end), within the size limit.
 */
function withSuffix(name: string, n: number, maxBytes: number, isDirectory: boolean): string {
  const { stem, ext } = isDirectory ? { stem: name, ext: "" } : splitExtension(name);
  const keptExt = utf8Length(ext) <= MAX_KEPT_EXTENSION_BYTES ? ext : "";
  const base = keptExt === "" ? name : stem;
  const tail = `.${n}${keptExt}`;
  return cutToBytes(base, maxBytes - utf8Length(tail)) + tail;
}

/**
 * Makes a list of relative `/`-separated paths collision-free, in order: a path equal to an
 * earlier one ignoring case (and Unicode normalisation), or a file whose path is an earlier
 * file's directory (or the reverse), gets a numeric suffix before its extension (`a.txt` →
 * `a.1.txt`; a directory `d` → `d.1`). Directories that differ only in case are merged into
 * the first spelling. The output is deterministic and has the same length and order.
 *
 * @example
 * ```ts
 * import { dedupePaths } from "./safe_path.ts";
 * console.log(dedupePaths(["a/x.txt", "A/X.TXT", "a/x.txt/y"]));
 * // ["a/x.txt", "a/X.1.TXT", "a/x.txt.1/y"]
 * ```
 *
 * @param paths Relative paths, `/`-separated, as made by {@linkcode safeRelativePath}.
 * @param options Component size limit.
 * @returns The paths, renamed where they would collide.
 */
export function dedupePaths(paths: readonly string[], options: DedupePathsOptions = {}): string[] {
  const maxBytes = checkMaxBytes(options.maxComponentBytes);
  // A tree of the names placed so far, so each path costs time linear in its length.
  const root = newDirectory();
  const out: string[] = [];
  for (const path of paths) {
    const parts = path.split("/");
    const placed: string[] = [];
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      const originalKey = foldKey(name);
      let next = dir.aliases.get(originalKey);
      if (next === undefined) {
        let candidate = name;
        for (let n = 1; dir.children.get(foldKey(candidate)) === FILE; n++) {
          candidate = withSuffix(name, n, maxBytes, true);
        }
        const existing = dir.children.get(foldKey(candidate));
        if (existing === undefined || existing === FILE) {
          next = newDirectory(candidate);
          dir.children.set(foldKey(candidate), next);
        } else {
          next = existing;
        }
        dir.aliases.set(originalKey, next);
      }
      placed.push(next.name);
      dir = next;
    }
    const name = parts[parts.length - 1]!;
    let candidate = name;
    for (let n = 1; dir.children.has(foldKey(candidate)); n++) {
      candidate = withSuffix(name, n, maxBytes, false);
    }
    dir.children.set(foldKey(candidate), FILE);
    placed.push(candidate);
    out.push(placed.join("/"));
  }
  return out;
}

const FILE = "file";

interface Directory {
  /** The name this directory was given (after any suffix). */
  name: string;
  /** Folded name of each placed child → the child directory, or {@linkcode FILE}. */
  children: Map<string, Directory | typeof FILE>;
  /** Folded name as requested by a path → the directory it was placed as. */
  aliases: Map<string, Directory>;
}

function newDirectory(name = ""): Directory {
  return { name, children: new Map(), aliases: new Map() };
}

/**
 * Joins a relative path to a root folder and checks that the result lies strictly inside
 * it: a last line of defence before a file is opened. It checks the path as a string; it
 * does not follow symbolic links.
 *
 * @example
 * ```ts
 * import { resolveInside } from "./safe_path.ts";
 * console.log(resolveInside("/downloads", "album/track.flac")); // "/downloads/album/track.flac"
 * try {
 *   resolveInside("/downloads", "../etc/passwd");
 * } catch (e) {
 *   console.log((e as Error).name); // "StorageError"
 * }
 * ```
 *
 * @param root The download folder (absolute or relative to the working directory).
 * @param relative A relative path, such as a `TorrentFile.safePath`.
 * @returns The absolute path of `relative` under `root`.
 * @throws {StorageError} when the result would be `root` itself or outside it, or when the
 * path contains a NUL character.
 */
export function resolveInside(root: string, relative: string): string {
  if (relative.includes("\0") || root.includes("\0")) {
    throw new StorageError(
      `Cannot use path '${relative.replaceAll("\0", "\\0")}': it contains a NUL character`,
    );
  }
  if (isAbsolute(relative)) {
    throw new StorageError(`Cannot use path '${relative}': it is absolute`);
  }
  const base = resolve(root);
  const full = resolve(base, relative);
  const rel = relativePath(base, full);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new StorageError(`Cannot use path '${relative}': it leads outside the folder ${base}`);
  }
  return full;
}
