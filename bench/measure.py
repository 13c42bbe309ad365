#!/usr/bin/python3
"""Runs a command and prints one JSON line with its wall time, CPU seconds and peak RSS.

Usage: measure.py COMMAND [ARGS...]
The child's stdout and stderr pass through; the JSON line goes to stdout last, with the
key "measure". Exits with the child's exit code.
"""

import json
import resource
import subprocess
import sys
import time


def main():
    started = time.monotonic()
    code = subprocess.call(sys.argv[1:])
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stdout.write(json.dumps({
        "measure": True,
        "code": code,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }) + "\n")
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
