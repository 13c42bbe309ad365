#!/usr/bin/python3
"""A libtorrent 2.0.8 peer for shoal's interop tests and benchmarks.

Run with /usr/bin/python3 (the interpreter that has the Debian bindings).
Every line written to stdout is one JSON object with an "event" key; human
diagnostics go to stderr.

Modes:

  create --payload PATH --out FILE [--piece-length N] [--tracker URL]
      Makes a v1 .torrent of a file or folder.
      Prints {"event":"created","info_hash":HEX,"pieces":N,"size":N}.

  seed --torrent FILE --save-path DIR [--port N] [--enc MODE] [--enc-level L]
       [--peer HOST:PORT]...
      Adds the torrent with its data in DIR, forces a recheck, waits until it
      is seeding and prints {"event":"ready","port":N,"info_hash":HEX}. Then
      dials the given peers (once a second until one has connected).
      Serves until a piped stdin closes or SIGTERM/SIGINT arrives, then prints
      {"event":"stopped","uploaded":N} and exits 0.

  leech --torrent FILE --save-path DIR [--peer HOST:PORT]... [--port N]
        [--enc MODE] [--enc-level L] [--timeout SECONDS] [--stay]
      Prints {"event":"listening","port":N}, downloads from the given peers
      (and from peers that dial it), prints {"event":"progress",...} lines
      and finally {"event":"done","seconds":S,"bytes":N,"cpu_seconds":S,
      "user_seconds":S,"sys_seconds":S,"peak_rss_bytes":N,"pex_peers":[...]}
      (CPU of this whole process during the download; peak RSS includes the
      mapped file pages; pex_peers: "ip:port" of peers seen connected that it
      learned through peer exchange, sampled once a second). With --stay it
      then keeps seeding until a piped stdin closes or a signal arrives.
      Exits 2 on timeout.
      With --magnet URI instead of --torrent it starts from a magnet link
      (lt.parse_magnet_uri: its x.pe peers and tr trackers are used), fetches
      the metadata from peers (BEP 9) and prints {"event":"metadata",
      "info_hash":HEX,"seconds":S} once it has it, before downloading.

DHT (seed and leech): --dht-bootstrap HOST:PORT (repeatable) turns libtorrent's
DHT on, on the listen port (UDP), bootstrapped from those nodes, with the
loopback restrictions lifted (dht_restrict_routing_ips/search_ips False, no
per-IP DHT rate ban) and torrents announced every --dht-announce-interval
seconds (default 5). A leecher with no --peer then finds its peers through
the DHT alone. Each DHT node count change is printed as
{"event":"dht","nodes":N} (at most once a second).

Encryption: --enc sets in/out_enc_policy; --enc-level sets allowed_enc_level
(default: rc4 when forced, else both; RC4 is preferred only with level rc4).

Exit codes: 0 success, 1 error (an {"event":"error","message":...} line is
printed first), 2 timeout.
"""

import argparse
import json
import os
import resource
import signal
import stat
import sys
import threading
import time

import libtorrent as lt

ENC_POLICIES = {
    "forced": lt.enc_policy.pe_forced,
    "enabled": lt.enc_policy.pe_enabled,
    "disabled": lt.enc_policy.pe_disabled,
}
ENC_LEVELS = {
    "rc4": lt.enc_level.pe_rc4,
    "plaintext": lt.enc_level.pe_plaintext,
    "both": lt.enc_level.pe_both,
}


def emit(obj):
    """Writes one JSON line to stdout and flushes it."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("lt_peer: " + msg + "\n")
    sys.stderr.flush()


class Fatal(Exception):
    """An error to report as {"event":"error"} with exit code 1."""


def session_settings(args):
    """Session settings for an isolated, fast loopback peer."""
    # Start from libtorrent's own high-throughput seeding preset (larger send
    # buffers and disk queues, unlimited unchoke slots, big request queues).
    s = dict(lt.high_performance_seed()) if args.preset == "fast" else {}
    # The preset's aggressive timeouts and single connect failure would make
    # a slow peer under test (shoal during debugging) look dead; relax them.
    s.update({
        "peer_timeout": 120,
        "inactivity_timeout": 600,
        "request_timeout": 60,
        "max_failcount": 5,
        "min_reconnect_time": 1,
    })
    level = args.enc_level
    if level is None:
        level = "rc4" if args.enc == "forced" else "both"
    s.update({
        "listen_interfaces": "127.0.0.1:%d" % args.port,
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(ENC_POLICIES[args.enc]),
        "in_enc_policy": int(ENC_POLICIES[args.enc]),
        "allowed_enc_level": int(ENC_LEVELS[level]),
        # RC4 only when asked for: it costs seconds of CPU per GiB on each side.
        "prefer_rc4": level == "rc4",
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "connections_limit": 500,
        "unchoke_slots_limit": -1,
        "max_peerlist_size": 1000,
        "anonymous_mode": False,
        "user_agent": "shoal-interop/lt-" + lt.__version__,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.storage_notification
                          | lt.alert.category_t.connect_notification),
    })
    if getattr(args, "dht_bootstrap", None):
        s.update({
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join(args.dht_bootstrap),
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            # Every test node is on 127.0.0.1: one address must not be banned for its rate.
            "dht_block_ratelimit": 100000,
            "dht_announce_interval": int(args.dht_announce_interval),
        })
    return s


class DhtWatch:
    """Prints {"event":"dht","nodes":N} when the DHT node count changes (at most once a second)."""

    def __init__(self, ses, enabled):
        self.ses = ses
        self.enabled = enabled
        self.last = -1
        self.at = 0.0

    def poll(self, alerts):
        """Reads the answer to the last request from `alerts` and asks again once a second."""
        if not self.enabled:
            return
        for a in alerts:
            if isinstance(a, lt.dht_stats_alert):
                nodes = sum(b["num_nodes"] for b in a.routing_table)
                if nodes != self.last:
                    self.last = nodes
                    emit({"event": "dht", "nodes": nodes})
        if time.monotonic() - self.at >= 1.0:
            self.at = time.monotonic()
            self.ses.post_dht_stats()


def wait_listening(ses, deadline):
    """Waits for the listen socket and returns its port."""
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                raise Fatal("Cannot listen: " + a.message())
            if isinstance(a, lt.listen_succeeded_alert):
                return ses.listen_port()
        if ses.is_listening() and ses.listen_port() != 0:
            return ses.listen_port()
    raise Fatal("Cannot listen: no listen socket after deadline")


def install_stop(stop):
    """Sets `stop` on SIGTERM/SIGINT or when a piped stdin reaches end of file."""

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read1(65536):
                pass
        except (OSError, ValueError) as e:
            log("stdin closed with error: %s" % e)
        stop.set()

    # Only a pipe means "a parent is watching"; /dev/null or a terminal does not.
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        threading.Thread(target=watch_stdin, daemon=True).start()


def log_alerts(ses):
    """Drains alerts, copying errors to stderr; returns the list."""
    alerts = ses.pop_alerts()
    for a in alerts:
        if (a.category() & lt.alert.category_t.error_notification
                or isinstance(a, (lt.peer_connect_alert, lt.peer_disconnected_alert))):
            log("%s: %s" % (type(a).__name__, a.message()))
    return alerts


def add(ses, torrent_path, save_path):
    ti = lt.torrent_info(torrent_path)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(atp), ti


def info_hash_hex(ti):
    return str(ti.info_hashes().v1)


def cmd_create(args):
    fs = lt.file_storage()
    payload = os.path.abspath(args.payload)
    lt.add_files(fs, payload)
    if fs.num_files() == 0:
        raise Fatal("Cannot create torrent: no files in " + payload)
    ct = lt.create_torrent(fs, args.piece_length, flags=lt.create_torrent.v1_only)
    ct.set_creator("shoal-interop lt_peer.py")
    for url in args.tracker or []:
        ct.add_tracker(url)
    lt.set_piece_hashes(ct, os.path.dirname(payload))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(args.out)
    emit({"event": "created", "info_hash": info_hash_hex(ti),
          "pieces": ti.num_pieces(), "size": ti.total_size()})
    return 0


def cmd_seed(args):
    stop = threading.Event()
    install_stop(stop)
    ses = lt.session(session_settings(args))
    dht = DhtWatch(ses, bool(args.dht_bootstrap))
    deadline = time.monotonic() + args.timeout
    port = wait_listening(ses, deadline)
    h, ti = add(ses, args.torrent, args.save_path)
    h.force_recheck()
    # Wait for the recheck to finish; the torrent must then be complete.
    while True:
        if stop.is_set():
            return 0
        if time.monotonic() > deadline:
            raise Fatal("Seeder not ready: still checking after %ds" % args.timeout)
        ses.wait_for_alert(200)
        dht.poll(log_alerts(ses))
        st = h.status()
        if st.errc.value() != 0:
            raise Fatal("Seeder failed: %s" % st.errc.message())
        if st.is_seeding:
            break
        if st.state in (lt.torrent_status.downloading, lt.torrent_status.finished):
            raise Fatal("Seeder not ready: data in %s is incomplete (%.1f%% verified)"
                        % (args.save_path, st.progress * 100))
    emit({"event": "ready", "port": port, "info_hash": info_hash_hex(ti)})
    peers = [parse_peer(p) for p in args.peer or []]
    # Dial the given peers (leechers that cannot be told about us, such as
    # transmission-cli) until one of them has connected.
    dialing = bool(peers)
    while not stop.wait(0.5):
        dht.poll(log_alerts(ses))
        if dialing:
            if h.status().num_peers > 0:
                dialing = False
            else:
                for p in peers:
                    h.connect_peer(p)
    emit({"event": "stopped", "uploaded": h.status().total_payload_upload})
    return 0


def usage():
    """Returns (user CPU seconds, system CPU seconds, peak RSS bytes) of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux.
    return ru.ru_utime, ru.ru_stime, ru.ru_maxrss * 1024


def parse_peer(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise Fatal("Invalid peer: expected HOST:PORT, got " + text)
    return (host.strip("[]"), int(port))


def note_pex_peers(h, seen):
    """Adds to `seen` the connected peers ("ip:port") learned through peer exchange."""
    for p in h.get_peer_info():
        if p.source & lt.peer_info.pex:
            seen.add("%s:%d" % (p.ip[0], p.ip[1]))


def add_magnet(ses, uri, save_path):
    atp = lt.parse_magnet_uri(uri)
    atp.save_path = save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(atp)


def cmd_leech(args):
    stop = threading.Event()
    install_stop(stop)
    peers = [parse_peer(p) for p in args.peer or []]
    ses = lt.session(session_settings(args))
    dht = DhtWatch(ses, bool(args.dht_bootstrap))
    start = time.monotonic()
    deadline = start + args.timeout
    port = wait_listening(ses, deadline)
    emit({"event": "listening", "port": port})
    user0, sys0, _ = usage()
    t0 = time.monotonic()
    if args.magnet:
        h = add_magnet(ses, args.magnet, args.save_path)
    elif args.torrent:
        h, _ = add(ses, args.torrent, args.save_path)
    else:
        raise Fatal("leech needs --torrent or --magnet")
    have_metadata = not args.magnet
    for p in peers:
        h.connect_peer(p)
    last_print = 0.0
    last_reconnect = t0
    pex_seen = set()
    while True:
        if stop.is_set():
            emit({"event": "error", "message": "Stopped before the download finished"})
            return 1
        now = time.monotonic()
        if now > deadline:
            st = h.status()
            emit({"event": "timeout", "progress": st.progress, "bytes": st.total_wanted_done})
            return 2
        ses.wait_for_alert(100)
        dht.poll(log_alerts(ses))
        st = h.status()
        if st.errc.value() != 0:
            raise Fatal("Leecher failed: %s" % st.errc.message())
        if not have_metadata and st.has_metadata:
            have_metadata = True
            emit({"event": "metadata", "info_hash": str(h.info_hashes().v1),
                  "seconds": time.monotonic() - t0})
        if have_metadata and (st.is_seeding
                              or (st.is_finished and st.total_wanted_done == st.total_wanted)):
            break
        if now - last_print >= args.progress_interval:
            last_print = now
            note_pex_peers(h, pex_seen)
            emit({"event": "progress", "progress": st.progress, "bytes": st.total_wanted_done,
                  "rate": st.download_payload_rate, "peers": st.num_peers})
        # Re-dial the given peers while none is connected (one may start late).
        if st.num_peers == 0 and peers and now - last_reconnect >= 1.0:
            last_reconnect = now
            for p in peers:
                h.connect_peer(p)
    seconds = time.monotonic() - t0
    user1, sys1, peak = usage()
    st = h.status()
    note_pex_peers(h, pex_seen)
    emit({"event": "done", "seconds": seconds, "bytes": st.total_wanted_done,
          "downloaded": st.total_payload_download,
          "pex_peers": sorted(pex_seen),
          "cpu_seconds": (user1 - user0) + (sys1 - sys0),
          "user_seconds": user1 - user0, "sys_seconds": sys1 - sys0,
          "peak_rss_bytes": peak})
    if args.stay:
        while not stop.wait(0.5):
            dht.poll(log_alerts(ses))
        emit({"event": "stopped", "uploaded": h.status().total_payload_upload})
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="lt_peer.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    c = sub.add_parser("create")
    c.add_argument("--payload", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--piece-length", type=int, default=256 * 1024)
    c.add_argument("--tracker", action="append")

    for name in ("seed", "leech"):
        p = sub.add_parser(name)
        p.add_argument("--torrent", required=(name == "seed"))
        p.add_argument("--save-path", required=True)
        p.add_argument("--port", type=int, default=0)
        p.add_argument("--enc", choices=sorted(ENC_POLICIES), default="enabled")
        p.add_argument("--enc-level", choices=sorted(ENC_LEVELS), default=None)
        p.add_argument("--timeout", type=float, default=600.0)
        p.add_argument("--peer", action="append")
        p.add_argument("--preset", choices=["fast", "default"], default="fast",
                       help="start from high_performance_seed() or libtorrent's defaults")
        p.add_argument("--dht-bootstrap", action="append",
                       help="turn the DHT on, bootstrapped from this HOST:PORT (repeatable)")
        p.add_argument("--dht-announce-interval", type=float, default=5.0)
        if name == "leech":
            p.add_argument("--progress-interval", type=float, default=1.0)
            p.add_argument("--stay", action="store_true")
            p.add_argument("--magnet", help="start from this magnet link instead of --torrent")

    args = parser.parse_args(argv)
    try:
        if args.mode == "create":
            return cmd_create(args)
        if args.mode == "seed":
            return cmd_seed(args)
        return cmd_leech(args)
    except (Fatal, RuntimeError, OSError) as e:
        emit({"event": "error", "message": str(e)})
        log(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
