/**
 * Driving a Transmission RPC server with the real `transmission-remote` (on 127.0.0.1) and
 * reading its `-l` as a user would: shared by the interop tests of the RPC endpoint and of
 * `shoal daemon`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../../mod.ts";
import { makePayload } from "./_harness.ts";

/** Runs transmission-remote against a server on 127.0.0.1; fails on a non-zero exit or after 20 s. */
export async function remote(port: number, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("transmission-remote", {
    args: [`127.0.0.1:${port}`, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `transmission-remote ${args.join(" ")} failed:\n${text}`);
  return text;
}

/** One row of `-l`. */
export interface ListRow {
  id: number;
  done: string;
  have: string;
  status: string;
  name: string;
}

/** Parses `-l`: fixed columns ID, Done, Have, ETA, Up, Down, Ratio, Status, Name. */
export function parseList(text: string): ListRow[] {
  const lines = text.split("\n");
  const header = lines.find((l) => l.includes("Status") && l.includes("Name"));
  assert.ok(header !== undefined, `no -l header in:\n${text}`);
  const statusAt = header.indexOf("Status");
  const nameAt = header.indexOf("Name");
  return lines.filter((l) => /^\s+\d+\*?\s/.test(l)).map((l) => {
    const [id, done, ...rest] = l.slice(0, statusAt).trim().split(/\s+/);
    return {
      id: Number(id!.replace("*", "")),
      done: done!,
      have: rest.slice(0, 2).join(" "),
      status: l.slice(statusAt, nameAt).trim(),
      name: l.slice(nameAt).trim(),
    };
  });
}

/** Polls `-l` until `check` holds for the row of `id` (running `each` between polls); fails after `ms`. */
export async function waitRow(
  port: number,
  id: number,
  check: (row: ListRow) => boolean,
  ms: number,
  what: string,
  each: () => void = () => {},
): Promise<ListRow> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    last = await remote(port, "-l");
    const row = parseList(last).find((r) => r.id === id);
    if (row !== undefined && check(row)) return row;
    each();
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}; last -l:\n${last}`);
}

/**
 * Writes the "album" payload (two files, 500 KiB in 32 KiB pieces) under `seedDir` and makes its torrent.
 *
 * @param seedDir The seed's download folder.
 * @returns The torrent.
 */
export async function makeAlbum(seedDir: string): ReturnType<typeof createTorrent> {
  await makePayload(join(seedDir, "album"), [
    { path: "one.bin", size: 300 * 1024 + 17 },
    { path: "two/two.bin", size: 200 * 1024 },
  ], 3);
  return await createTorrent(join(seedDir, "album"), { pieceLength: 32 * 1024, creationDate: null });
}
