"""libtorrent side of tests/interop/create_agreement_test.ts. Run with /usr/bin/python3.

  lt_create.py create <path> <piece_size> <out.torrent>
      Makes a v1-only torrent of <path> with libtorrent's create_torrent. Files are added in
      the order shoal uses (path components compared as UTF-8 bytes), because libtorrent's
      own add_files() keeps the directory's listing order, which is not stable. Also reports
      whether libtorrent's add_files() walk finds the same files with the same sizes.
  lt_create.py info <file.torrent>
      Loads a torrent with lt.torrent_info and reports what libtorrent sees.

Prints one JSON object on stdout. Exit code 0 on success.
"""

import json
import os
import sys

import libtorrent as lt


def sorted_payload(root):
    """Returns [(components, size)] for every file below root, in shoal's order."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            rel = os.path.relpath(full, root)
            found.append((rel.split(os.sep), os.path.getsize(full)))
    found.sort(key=lambda item: [c.encode("utf-8") for c in item[0]])
    return found


def lt_walk(path):
    """Returns {path: size} of the files libtorrent's own add_files() finds."""
    fs = lt.file_storage()
    lt.add_files(fs, path)
    return {fs.file_path(i): fs.file_size(i) for i in range(fs.num_files())}


def create(path, piece_size, out):
    path = os.path.abspath(path)
    name = os.path.basename(path)
    fs = lt.file_storage()
    expected = {}
    if os.path.isdir(path):
        for components, size in sorted_payload(path):
            rel = os.path.join(name, *components)
            fs.add_file(rel, size)
            expected[rel] = size
    else:
        size = os.path.getsize(path)
        fs.add_file(name, size)
        expected[name] = size
    ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    data = lt.bencode(ct.generate())
    with open(out, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(out)
    return {
        "info_hash": str(ti.info_hash()),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "files": [fs.file_path(i) for i in range(fs.num_files())],
        "walk_matches": lt_walk(path) == expected,
    }


def info(torrent):
    ti = lt.torrent_info(torrent)
    files = ti.files()
    return {
        "info_hash": str(ti.info_hash()),
        "name": ti.name(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "num_files": files.num_files(),
    }


def main(argv):
    if len(argv) == 5 and argv[1] == "create":
        result = create(argv[2], int(argv[3]), argv[4])
    elif len(argv) == 3 and argv[1] == "info":
        result = info(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
