/**
 * The limits applied to untrusted `.torrent` files and magnet metadata, in one place. They
 * follow libtorrent 2.0's `load_torrent_limits` where it has one, so a torrent libtorrent
 * opens, shoal opens too; the rest come from what a Linux file system can hold.
 *
 * @module
 */

/**
 * Default limits for parsing a `.torrent` file (see `parseMetainfo`'s options to change them).
 *
 * - `maxBytes` (64 MiB): the size of the file. It holds the largest piece list allowed
 *   (`maxPieces` × 20 bytes = 40 MiB) and a large file list; the file is read whole, and copied
 *   twice while parsing, so this bounds that memory. libtorrent's default is 10 MB.
 * - `maxTokens` (3 000 000, as libtorrent): bencode values, keys and list/dictionary ends.
 *   Each decoded value costs some 200-400 bytes of memory, far more than its 1-3 bytes of
 *   input, so this caps the memory of decoding (about 1 GB at worst) before the byte size does.
 *   A real torrent has few: the piece hashes are one string, and a file costs about 10, so
 *   this admits about 300 000 files.
 * - `maxDepth` (100, as libtorrent): nesting of lists and dictionaries. A v1 torrent needs 5;
 *   a v2 file tree needs a few more than its folder depth.
 * - `maxPieces` (2 097 152 = 0x200000, as libtorrent): 40 MiB of piece hashes.
 * - `maxFiles` (1 000 000): files in the `files` list (`maxTokens` binds first, near 300 000).
 * - `maxPieceLength` (128 MiB): a piece is held whole in memory while it downloads.
 * - `maxPathDepth` (64): components in one file's relative path, the torrent's folder included. Real
 *   layouts stay under 20; Linux has no depth limit of its own, but every level costs a folder
 *   and a path of 64 levels of even one-letter names is still far inside `PATH_MAX`.
 * - `maxPathBytes` (4095): UTF-8 bytes of a file's whole relative path (`name/dir/file`).
 *   Linux refuses a path of 4096 bytes or more (`PATH_MAX`, counting its final NUL), and the
 *   download folder comes on top, so a longer path could never be created. Each component is
 *   also cut to 255 bytes (`NAME_MAX`) by `safeRelativePath`.
 *
 * @example
 * ```ts
 * import { TORRENT_LIMITS } from "./limits.ts";
 * console.log(TORRENT_LIMITS.maxTokens, TORRENT_LIMITS.maxPathDepth); // 3000000 64
 * ```
 */
export const TORRENT_LIMITS: {
  /** Largest `.torrent` file, in bytes. */
  readonly maxBytes: number;
  /** Most bencode tokens in a `.torrent` file. */
  readonly maxTokens: number;
  /** Deepest nesting of lists and dictionaries. */
  readonly maxDepth: number;
  /** Most pieces. */
  readonly maxPieces: number;
  /** Most files. */
  readonly maxFiles: number;
  /** Largest piece length, in bytes. */
  readonly maxPieceLength: number;
  /** Most components in a file's relative path, the torrent's folder included. */
  readonly maxPathDepth: number;
  /** Longest relative path of a file (its torrent folder included), in UTF-8 bytes. */
  readonly maxPathBytes: number;
} = Object.freeze({
  maxBytes: 64 * 1024 * 1024,
  maxTokens: 3_000_000,
  maxDepth: 100,
  maxPieces: 0x200000,
  maxFiles: 1_000_000,
  maxPieceLength: 128 * 1024 * 1024,
  maxPathDepth: 64,
  maxPathBytes: 4095,
});

/**
 * Longest absolute path Linux can open, in bytes: `PATH_MAX` (4096) less its final NUL. A file
 * whose path under the download folder is longer is refused when the torrent is added.
 *
 * @example
 * ```ts
 * import { MAX_ABSOLUTE_PATH_BYTES } from "./limits.ts";
 * console.log(MAX_ABSOLUTE_PATH_BYTES); // 4095
 * ```
 */
export const MAX_ABSOLUTE_PATH_BYTES = 4095;
