/**
 * Hand-built test torrents (a Metainfo with a pseudo-random payload and real SHA-1 piece
 * hashes), for tests of storage and resume that must not depend on lib/metainfo.ts.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { pieceLengthOf } from "../lib/storage/piece_map.ts";
import type { Metainfo, TorrentFile } from "../lib/types.ts";

export interface FileSpec {
  path: string;
  length: number;
  pad?: boolean;
}

export interface TestTorrent {
  meta: Metainfo;
  /** The torrent's whole byte stream (pad ranges are zeros). */
  payload: Uint8Array;
}

/** Builds a Metainfo by hand, with pseudo-random payload and real SHA-1 piece hashes. */
export function makeTorrent(specs: FileSpec[], pieceLength: number, seed = 1): TestTorrent {
  let offset = 0;
  const files: TorrentFile[] = specs.map((spec) => {
    const file = {
      path: spec.path.split("/"),
      safePath: spec.path,
      length: spec.length,
      offset,
      pad: spec.pad ?? false,
    };
    offset += spec.length;
    return file;
  });
  const payload = new Uint8Array(offset);
  let x = seed;
  for (const file of files) {
    if (file.pad) continue;
    for (let i = file.offset; i < file.offset + file.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      payload[i] = x >>> 24;
    }
  }
  const pieceCount = Math.ceil(offset / pieceLength);
  const pieceHashes = new Uint8Array(pieceCount * 20);
  for (let p = 0; p < pieceCount; p++) {
    const data = payload.subarray(p * pieceLength, Math.min(offset, (p + 1) * pieceLength));
    pieceHashes.set(createHash("sha1").update(data).digest(), p * 20);
  }
  const infoHash = new Uint8Array(
    createHash("sha1").update(`test ${seed} ${specs.map((s) => s.path)}`).digest(),
  );
  const meta: Metainfo = {
    infoHash,
    infoHashHex: Array.from(infoHash, (b) => b.toString(16).padStart(2, "0")).join(""),
    infoBytes: new Uint8Array(),
    name: specs[0]?.path.split("/")[0] ?? "empty",
    pieceLength,
    pieceCount,
    pieceHashes,
    totalLength: offset,
    files,
    multiFile: specs.length > 1,
    announceList: [],
    urlList: [],
    private: false,
    hybrid: false,
  };
  return { meta, payload };
}

export function pieceData(t: TestTorrent, piece: number): Uint8Array {
  const start = piece * t.meta.pieceLength;
  return t.payload.subarray(start, start + pieceLengthOf(t.meta, piece));
}
