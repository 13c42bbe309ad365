import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type BDict, decode } from "../../lib/bencode.ts";
import { automaticPieceLength, type CreateProgress, createTorrent } from "../../lib/create.ts";
import { MetainfoError, StorageError } from "../../lib/errors.ts";
import { parseMetainfo } from "../../lib/metainfo.ts";

const utf8 = new TextDecoder();

/** Deterministic pseudo-random bytes (xorshift), so payloads are the same on every run. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** SHA-1 of every piece of `payload`, computed here without shoal's code. */
function expectedPieces(payload: Uint8Array, pieceLength: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < payload.length; at += pieceLength) {
    parts.push(createHash("sha1").update(payload.subarray(at, at + pieceLength)).digest());
  }
  return concat(parts);
}

function sha1Hex(data: Uint8Array): string {
  return createHash("sha1").update(data).digest("hex");
}

function infoOf(torrent: Uint8Array): BDict {
  const root = decode(torrent) as BDict;
  return root.get("info") as BDict;
}

function text(value: unknown): string {
  assert.ok(value instanceof Uint8Array);
  return utf8.decode(value);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shoal_create_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createTorrent() makes a single-file torrent of odd size with correct piece hashes", async () => {
  await withTempDir(async (dir) => {
    const payload = bytes(100_003, 1);
    await Deno.writeFile(join(dir, "odd.bin"), payload);
    const made = await createTorrent(join(dir, "odd.bin"), { pieceLength: 16384, creationDate: null });
    assert.equal(made.name, "odd.bin");
    assert.equal(made.pieceLength, 16384);
    assert.equal(made.pieceCount, 7);
    assert.equal(made.totalLength, 100_003);
    const info = infoOf(made.torrent);
    assert.deepEqual([...info.keys()].sort(), ["length", "name", "piece length", "pieces"]);
    assert.equal(info.get("length"), 100_003);
    assert.equal(text(info.get("name")), "odd.bin");
    assert.equal(info.get("piece length"), 16384);
    assert.deepEqual(info.get("pieces"), expectedPieces(payload, 16384));
    const meta = parseMetainfo(made.torrent);
    assert.equal(meta.infoHashHex, made.infoHash);
    assert.equal(sha1Hex(meta.infoBytes), made.infoHash);
    assert.equal(meta.multiFile, false);
  });
});

Deno.test("createTorrent() makes a multi-file torrent hashed across file boundaries, zero-byte files included", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "payload");
    await Deno.mkdir(join(root, "sub", "deeper"), { recursive: true });
    await Deno.mkdir(join(root, "empty-folder"));
    const files: [string[], Uint8Array][] = [
      [["a.txt"], bytes(5000, 2)],
      [["sub", "deeper", "c.bin"], bytes(40_000, 3)],
      [["sub", "empty"], new Uint8Array(0)],
      [["sub", "b.bin"], bytes(16_385, 4)],
      [[".hidden"], bytes(7, 5)],
    ];
    for (const [path, data] of files) await Deno.writeFile(join(root, ...path), data);
    const made = await createTorrent(root, { pieceLength: 16384, creationDate: null });
    // Sorted by components as bytes: ".hidden" < "a.txt" < "sub"; in sub: "b.bin" < "deeper" < "empty".
    const order = [[".hidden"], ["a.txt"], ["sub", "b.bin"], ["sub", "deeper", "c.bin"], ["sub", "empty"]];
    const info = infoOf(made.torrent);
    assert.deepEqual([...info.keys()].sort(), ["files", "name", "piece length", "pieces"]);
    assert.equal(text(info.get("name")), "payload");
    const listed = (info.get("files") as BDict[]).map((f) => {
      assert.deepEqual([...f.keys()].sort(), ["length", "path"]);
      return { path: (f.get("path") as Uint8Array[]).map(text), length: f.get("length") };
    });
    const byPath = new Map(files.map(([p, d]) => [p.join("/"), d]));
    assert.deepEqual(listed, order.map((p) => ({ path: p, length: byPath.get(p.join("/"))!.length })));
    const payload = concat(order.map((p) => byPath.get(p.join("/"))!));
    assert.equal(made.totalLength, payload.length);
    assert.deepEqual(info.get("pieces"), expectedPieces(payload, 16384));
    const meta = parseMetainfo(made.torrent);
    assert.equal(meta.infoHashHex, made.infoHash);
    assert.deepEqual(meta.files.map((f) => f.safePath), order.map((p) => ["payload", ...p].join("/")));
  });
});

Deno.test("createTorrent() orders files by UTF-8 bytes of each path component, not by UTF-16 or whole paths", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "order");
    // "a/x" before "a-c" (component "a" < "a-c"), although "/" > "-" in a whole-path comparison.
    // "\uff21" (EF BC A1) before "\u{1f600}" (F0 9F 98 80), although UTF-16 sorts them the other way.
    await Deno.mkdir(join(root, "a"), { recursive: true });
    for (const name of ["a-c", "\u{1f600}", "\uff21", "B", "_"]) {
      await Deno.writeFile(join(root, name), bytes(3, 6));
    }
    await Deno.writeFile(join(root, "a", "x"), bytes(3, 7));
    const made = await createTorrent(root, { pieceLength: 16384, creationDate: null });
    const paths = parseMetainfo(made.torrent).files.map((f) => f.path.join("/"));
    assert.deepEqual(paths, ["B", "_", "a/x", "a-c", "\uff21", "\u{1f600}"]);
  });
});

Deno.test("createTorrent() handles a payload that is an exact multiple of the piece length", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "exact");
    await Deno.mkdir(root);
    const a = bytes(3 * 16384 - 100, 8);
    const b = bytes(100 + 16384, 9);
    await Deno.writeFile(join(root, "a"), a);
    await Deno.writeFile(join(root, "b"), b);
    const made = await createTorrent(root, { pieceLength: 16384, creationDate: null });
    assert.equal(made.totalLength, 4 * 16384);
    assert.equal(made.pieceCount, 4);
    assert.deepEqual(infoOf(made.torrent).get("pieces"), expectedPieces(concat([a, b]), 16384));
  });
});

Deno.test("createTorrent() output is byte-for-byte reproducible with creationDate null", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "f"), bytes(50_000, 10));
    const options = { pieceLength: 32768, creationDate: null, trackers: [["http://t.example/announce"]] };
    const first = await createTorrent(join(dir, "f"), options);
    const second = await createTorrent(join(dir, "f"), options);
    assert.deepEqual(first.torrent, second.torrent);
    const root = decode(first.torrent) as BDict;
    assert.equal(root.has("creation date"), false);
    assert.equal(text(root.get("created by")), "shoal/0.1.0");
  });
});

Deno.test("createTorrent() writes trackers, web seeds, comment, private flag and creation date", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "f"), bytes(1000, 11));
    const plain = await createTorrent(join(dir, "f"), { creationDate: null });
    const made = await createTorrent(join(dir, "f"), {
      trackers: [["udp://a.example:1/announce", "http://b.example/announce"], [], [
        "http://c.example/announce",
      ]],
      webSeeds: ["http://ws.example/f"],
      comment: "a comment",
      createdBy: "tester/1",
      creationDate: 1_700_000_000,
      private: true,
      name: "renamed",
    });
    const root = decode(made.torrent) as BDict;
    assert.equal(text(root.get("announce")), "udp://a.example:1/announce");
    assert.deepEqual(
      (root.get("announce-list") as Uint8Array[][]).map((tier) => tier.map(text)),
      [["udp://a.example:1/announce", "http://b.example/announce"], ["http://c.example/announce"]],
    );
    assert.deepEqual((root.get("url-list") as Uint8Array[]).map(text), ["http://ws.example/f"]);
    assert.equal(text(root.get("comment")), "a comment");
    assert.equal(text(root.get("created by")), "tester/1");
    assert.equal(root.get("creation date"), 1_700_000_000);
    const info = root.get("info") as BDict;
    assert.equal(info.get("private"), 1);
    assert.equal(text(info.get("name")), "renamed");
    assert.notEqual(made.infoHash, plain.infoHash);
    const meta = parseMetainfo(made.torrent);
    assert.equal(meta.private, true);
    assert.equal(meta.name, "renamed");

    const one = decode(
      (await createTorrent(join(dir, "f"), { trackers: [["http://only.example/a"]] })).torrent,
    ) as BDict;
    assert.equal(text(one.get("announce")), "http://only.example/a");
    assert.equal(one.has("announce-list"), false);
    assert.equal(typeof one.get("creation date"), "number");
  });
});

Deno.test("createTorrent() reports monotonic progress ending at the total size", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "p");
    await Deno.mkdir(root);
    await Deno.writeFile(join(root, "big"), bytes(9 * 1024 * 1024 + 13, 12));
    await Deno.writeFile(join(root, "small"), bytes(77, 13));
    const seen: CreateProgress[] = [];
    const made = await createTorrent(root, { onProgress: (p) => seen.push(p) });
    assert.ok(seen.length >= 3, `expected several reports, got ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.bytesHashed > seen[i - 1]!.bytesHashed);
    assert.ok(seen.every((p) => p.totalBytes === made.totalLength));
    assert.equal(seen.at(-1)!.bytesHashed, made.totalLength);
  });
});

Deno.test("createTorrent() streams a 64 MiB sparse file in bounded chunks and hashes it right", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "sparse.bin");
    const size = 64 * 1024 * 1024;
    const marks = [0, 12_345_678, size - 1];
    {
      using file = await Deno.open(path, { write: true, create: true });
      await file.truncate(size);
      for (const at of marks) {
        await file.seek(at, Deno.SeekMode.Start);
        await file.write(new Uint8Array([0xab]));
      }
    }
    const pieceLength = 1024 * 1024;
    let reports = 0;
    const made = await createTorrent(path, { pieceLength, creationDate: null, onProgress: () => reports++ });
    assert.equal(made.pieceCount, 64);
    // Each report covers one read of at most a few MiB: the file was never read whole.
    assert.ok(reports >= 8, `expected at least 8 chunked reads, got ${reports}`);
    const zeroPiece = createHash("sha1").update(new Uint8Array(pieceLength)).digest();
    const pieces = infoOf(made.torrent).get("pieces") as Uint8Array;
    for (let i = 0; i < 64; i++) {
      const piece = new Uint8Array(pieceLength);
      for (const at of marks) if (Math.floor(at / pieceLength) === i) piece[at % pieceLength] = 0xab;
      const expected = marks.some((at) => Math.floor(at / pieceLength) === i)
        ? createHash("sha1").update(piece).digest()
        : zeroPiece;
      assert.deepEqual(pieces.subarray(i * 20, i * 20 + 20), new Uint8Array(expected), `piece ${i}`);
    }
  });
});

Deno.test("automaticPieceLength() follows libtorrent's rule: about 10 * sqrt(size), power of two, 16 KiB to 16 MiB", () => {
  assert.equal(automaticPieceLength(1), 16384);
  assert.equal(automaticPieceLength(2_684_355), 16384);
  assert.equal(automaticPieceLength(2_684_356), 32768);
  assert.equal(automaticPieceLength(10_737_418), 32768);
  assert.equal(automaticPieceLength(10_737_419), 65536);
  assert.equal(automaticPieceLength(1024 ** 3), 512 * 1024);
  assert.equal(automaticPieceLength(703_687_441_777), 8 * 1024 * 1024);
  assert.equal(automaticPieceLength(703_687_441_778), 16 * 1024 * 1024);
  assert.equal(automaticPieceLength(10 ** 13), 16 * 1024 * 1024);
});

Deno.test("createTorrent() rejects a missing path, an empty payload and invalid options", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(createTorrent(join(dir, "missing")), (e: unknown) => {
      assert.ok(e instanceof StorageError);
      assert.match(e.message, /^Cannot read .*missing: no such file or folder$/);
      return true;
    });
    await Deno.mkdir(join(dir, "empty"));
    await Deno.writeFile(join(dir, "empty", "zero"), new Uint8Array(0));
    await assert.rejects(createTorrent(join(dir, "empty")), MetainfoError);
    await Deno.writeFile(join(dir, "f"), bytes(10, 14));
    for (const pieceLength of [1000, 8192, 16384 * 3, 256 * 1024 * 1024]) {
      await assert.rejects(
        createTorrent(join(dir, "f"), { pieceLength }),
        /piece length must be a power of two/,
      );
    }
    await assert.rejects(createTorrent(join(dir, "f"), { name: "a/b" }), /invalid name/);
    await assert.rejects(createTorrent(join(dir, "f"), { trackers: [["not a url"]] }), /invalid tracker URL/);
    await assert.rejects(createTorrent(join(dir, "f"), { webSeeds: ["::"] }), /invalid web seed URL/);
  });
});

Deno.test("createTorrent() follows symbolic links inside the folder and refuses links that leave it or loop", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "root");
    await Deno.mkdir(join(root, "real"), { recursive: true });
    await Deno.writeFile(join(root, "real", "data"), bytes(100, 15));
    await Deno.symlink(join(root, "real", "data"), join(root, "link"));
    const made = await createTorrent(root, { creationDate: null });
    const meta = parseMetainfo(made.torrent);
    assert.deepEqual(meta.files.map((f) => [f.path.join("/"), f.length]), [["link", 100], [
      "real/data",
      100,
    ]]);

    await Deno.writeFile(join(dir, "outside"), bytes(10, 16));
    await Deno.symlink(join(dir, "outside"), join(root, "escape"));
    await assert.rejects(createTorrent(root), (e: unknown) => {
      assert.ok(e instanceof StorageError);
      assert.match(e.message, /symbolic link leads outside the folder: escape/);
      return true;
    });
    await Deno.remove(join(root, "escape"));
    await Deno.symlink(root, join(root, "real", "loop"));
    await assert.rejects(createTorrent(root), /symbolic link loop: real\/loop/);
  });
});

Deno.test("createTorrent() rejects with the signal's reason when aborted", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "f"), bytes(12 * 1024 * 1024, 17));
    const before = new AbortController();
    before.abort(new Error("stop before"));
    await assert.rejects(createTorrent(join(dir, "f"), { signal: before.signal }), /stop before/);
    const during = new AbortController();
    await assert.rejects(
      createTorrent(join(dir, "f"), {
        signal: during.signal,
        onProgress: () => during.abort(new Error("stop during")),
      }),
      /stop during/,
    );
  });
});

Deno.test("createTorrent() fails clearly when a file shrinks while it is being hashed", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "root");
    await Deno.mkdir(root);
    await Deno.writeFile(join(root, "a"), bytes(5 * 1024 * 1024, 18));
    await Deno.writeFile(join(root, "b"), bytes(5 * 1024 * 1024, 19));
    // The first report comes after the first chunk of "a", before "b" is opened.
    let truncated = false;
    await assert.rejects(
      createTorrent(root, {
        onProgress: () => {
          if (!truncated) Deno.truncateSync(join(root, "b"), 1000);
          truncated = true;
        },
      }),
      (e: unknown) => {
        assert.ok(e instanceof StorageError);
        assert.match(e.message, /file shrank while being hashed: b \(expected 5242880 bytes\)/);
        return true;
      },
    );
  });
});

Deno.test("createTorrent() refuses, before hashing, more pieces than clients accept and names a piece size that fits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-create-pieces-" });
  try {
    // A sparse file of 0x200000 pieces of 16 KiB and one byte more: 32 GiB, instant to make.
    const path = join(dir, "big.bin");
    {
      using file = await Deno.open(path, { write: true, create: true });
      await file.truncate(0x200000 * 16384 + 1);
    }
    // The deadline only ends hashing on a build without the check (it would take minutes).
    await assert.rejects(
      createTorrent(path, { pieceLength: 16384, signal: AbortSignal.timeout(10_000) }),
      (e: unknown) =>
        e instanceof MetainfoError &&
        e.message ===
          "Cannot create torrent: 2097153 pieces of 16384 bytes exceed the 2097152 clients accept; " +
            "use pieces of 32768 bytes or more",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
