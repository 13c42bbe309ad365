#!/usr/bin/python3
"""Opens many TCP connections to a server and holds them, for shoal's listener tests.

Deno.connect cannot choose its source address; this script can, so an "attacker" can
connect from 127.0.0.2 (or from many loopback addresses) while the legitimate peer uses
127.0.0.1 and is not caught by per-address caps.

  hold_connections.py --port N [--host 127.0.0.1] --count N
                      (--source 127.0.0.2 | --source-range 127.0.1.1-127.0.4.250)
                      [--send TEXT] [--connect-timeout S]

Connects --count sockets, one after another, binding each to the next source address
(round robin), sends --send (if given, Python escapes such as \\r\\n are decoded) and then
nothing. Prints one JSON object per line on stdout:

  {"event":"opened","connected":C,"failed":F,"errors":{...}}   after the last attempt
  {"event":"status","open":O,"closed":K}                        whenever the counts change
                                                                (a socket is "closed" once
                                                                the server closed or reset it)

Keeps the connections until stdin closes (or SIGTERM), then closes them and exits 0.
"""

import argparse
import codecs
import errno
import ipaddress
import json
import resource
import select
import signal
import socket
import sys
import threading


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def sources(args):
    if args.source:
        return [args.source]
    first, last = args.source_range.split("-")
    a, b = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    return [str(ipaddress.IPv4Address(i)) for i in range(a, b + 1) if i & 0xFF not in (0, 255)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--source")
    parser.add_argument("--source-range")
    parser.add_argument("--send", default="")
    parser.add_argument("--connect-timeout", type=float, default=2.0)
    args = parser.parse_args()
    if not args.source and not args.source_range:
        parser.error("--source or --source-range is required")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.count + 64)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    payload = codecs.decode(args.send, "unicode_escape").encode("latin-1") if args.send else b""

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin():
        try:
            sys.stdin.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    addrs = sources(args)
    socks = []
    failed = 0
    errors = {}
    for i in range(args.count):
        if stop.is_set():
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((addrs[i % len(addrs)], 0))
            s.settimeout(args.connect_timeout)
            s.connect((args.host, args.port))
            if payload:
                s.sendall(payload)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            failed += 1
            name = errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
            errors[name] = errors.get(name, 0) + 1
            s.close()
    emit({"event": "opened", "connected": len(socks), "failed": failed, "errors": errors})

    open_socks = set(socks)
    closed = 0
    last = None
    while not stop.is_set():
        if open_socks:
            readable = poll_many(open_socks)
        else:
            readable = []
            stop.wait(0.2)
        for s in readable:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                open_socks.discard(s)
                s.close()
                closed += 1
        now = (len(open_socks), closed)
        if now != last:
            emit({"event": "status", "open": now[0], "closed": now[1]})
            last = now
    for s in open_socks:
        s.close()


def poll_many(socks):
    poller = select.poll()
    by_fd = {}
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[s.fileno()] = s
    return [by_fd[fd] for fd, _ in poller.poll(200)]


if __name__ == "__main__":
    main()
