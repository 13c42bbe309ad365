#!/usr/bin/python3
"""A libtorrent 2.0.8 leecher that reports what it verified, for shoal's interop tests.

Run with /usr/bin/python3. Uses lt_peer.py's isolated loopback session settings.

  lt_watch_leech.py --torrent FILE --save-path DIR --peer HOST:PORT [--timeout SECONDS]

Prints {"event":"listening","port":N}, then about four times a second
{"event":"progress","pieces":[indices it has],"hash_failures":N,"failed_bytes":N,
"peers":N}, one {"event":"hash_failed","piece":N} per piece that failed
libtorrent's hash check, one {"event":"disconnected","peer":"ip:port","reason":TEXT}
per peer connection that ended, and it keeps downloading (it does not stop
when complete) until its piped stdin closes or SIGTERM/SIGINT arrives or the
timeout passes; then it prints {"event":"report",...} with the same fields
plus "downloaded" (payload bytes received) and exits 0.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lt_peer  # noqa: E402  (the shared session settings and helpers)
import libtorrent as lt  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(prog="lt_watch_leech.py")
    parser.add_argument("--torrent", required=True)
    parser.add_argument("--save-path", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    settings_args = argparse.Namespace(port=0, enc="disabled", enc_level=None, preset="fast",
                                       dht_bootstrap=None)
    stop = threading.Event()
    lt_peer.install_stop(stop)
    ses = lt.session(lt_peer.session_settings(settings_args))
    deadline = time.monotonic() + args.timeout
    port = lt_peer.wait_listening(ses, deadline)
    lt_peer.emit({"event": "listening", "port": port})
    h, _ = lt_peer.add(ses, args.torrent, args.save_path)
    peers = [lt_peer.parse_peer(p) for p in args.peer]
    for p in peers:
        h.connect_peer(p)
    failed = []
    disconnects = []
    last_print = 0.0
    last_dial = time.monotonic()

    def snapshot(event):
        st = h.status()
        pieces = [i for i, have in enumerate(st.pieces) if have]
        return {"event": event, "pieces": pieces, "hash_failures": len(failed),
                "failed_bytes": st.total_failed_bytes, "peers": st.num_peers,
                "downloaded": st.total_payload_download, "disconnects": disconnects}

    while not stop.is_set() and time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in lt_peer.log_alerts(ses):
            if isinstance(a, lt.hash_failed_alert):
                failed.append(a.piece_index)
                lt_peer.emit({"event": "hash_failed", "piece": a.piece_index})
            elif isinstance(a, lt.peer_disconnected_alert):
                peer = "%s:%d" % (a.endpoint[0], a.endpoint[1])
                reason = a.message()
                disconnects.append({"peer": peer, "reason": reason})
                lt_peer.emit({"event": "disconnected", "peer": peer, "reason": reason})
        now = time.monotonic()
        if now - last_print >= 0.25:
            last_print = now
            lt_peer.emit(snapshot("progress"))
        if h.status().num_peers == 0 and peers and now - last_dial >= 1.0:
            last_dial = now
            for p in peers:
                h.connect_peer(p)
    lt_peer.emit(snapshot("report"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (lt_peer.Fatal, RuntimeError, OSError) as e:
        lt_peer.emit({"event": "error", "message": str(e)})
        sys.exit(1)
