/**
 * A torrent's file priorities and the pieces they want: which files are skipped, which pieces
 * are wanted (and which first), and how many wanted bytes are still missing.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { type FilePriority, piecesFor, wantedBytes } from "../file_priority.ts";
import type { Logger } from "../log.ts";
import type { PiecePicker } from "../peer/piece_picker.ts";
import type { Metainfo } from "../types.ts";

/**
 * The priority of each file of a torrent, and the wanted pieces that follow from them.
 *
 * @example
 * ```ts ignore
 * const selection = new FileSelection(metainfo, ["skip", "normal"], logger);
 * selection.apply(picker);
 * console.log(selection.wanted?.count());
 * ```
 */
export class FileSelection {
  readonly #meta: Metainfo;
  readonly #log: Logger;
  readonly #priorities: FilePriority[];
  #wanted: Bitfield | null = null;

  /**
   * Creates the selection.
   *
   * @param meta The torrent.
   * @param initial Priority of each file (missing entries: "normal").
   * @param logger Where a selection is logged.
   */
  constructor(meta: Metainfo, initial: readonly FilePriority[] | undefined, logger: Logger) {
    this.#meta = meta;
    this.#log = logger;
    this.#priorities = meta.files.map((_, i) => initial?.[i] ?? "normal");
  }

  /** A copy of the priority of each file, in `metainfo.files` order. */
  get priorities(): FilePriority[] {
    return [...this.#priorities];
  }

  /** The wanted pieces, or null when every piece is wanted (known once applied). */
  get wanted(): Bitfield | null {
    return this.#wanted;
  }

  /**
   * The skipped files.
   *
   * @returns Their indices.
   */
  skipped(): Set<number> {
    return new Set(this.#priorities.flatMap((p, i) => (p === "skip" ? [i] : [])));
  }

  /**
   * Sets the priority of files (apply it to the picker afterwards).
   *
   * @param files File indices.
   * @param priority The new priority.
   * @throws {RangeError} when an index is not a file of the torrent (nothing is changed).
   */
  set(files: readonly number[], priority: FilePriority): void {
    for (const i of files) {
      if (!Number.isInteger(i) || i < 0 || i >= this.#priorities.length) {
        throw new RangeError(
          `File index ${i} is out of range: the torrent has ${this.#priorities.length} files`,
        );
      }
    }
    for (const i of files) this.#priorities[i] = priority;
  }

  /**
   * Computes the wanted and high-priority pieces and gives them to the picker.
   *
   * @param picker The torrent's picker.
   */
  apply(picker: PiecePicker): void {
    const { wanted, high } = piecesFor(this.#meta, this.#priorities);
    this.#wanted = wanted;
    picker.setPriorities(wanted, high);
    if (wanted !== null) {
      this.#log.info("torrent", "File selection", {
        skipped: this.#priorities.filter((p) => p === "skip").length,
        wantedPieces: wanted.count(),
      });
    }
  }

  /**
   * Wanted bytes not verified yet.
   *
   * @param have Our verified pieces.
   * @returns Bytes left.
   */
  left(have: Bitfield): number {
    const wanted = wantedBytes(this.#meta, this.#wanted, have);
    return wanted.total - wanted.done;
  }
}
