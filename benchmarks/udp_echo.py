"""Baseline: UDP echo round trip between two Python processes on loopback.

The overlay echo (client -> daemon -> encrypted tunnel -> daemon -> echo
service and back) is compared against the least any Python program pays for
a round trip: a blocking ``sendto``/``recvfrom`` client and a blocking echo
server in another process. ``--count`` sequential 64-byte probes follow
``--warmup`` unmeasured ones; the p50 and p99 of the round-trip times are
reported in milliseconds.

Usage: ``python benchmarks/udp_echo.py [--count 5000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import statistics
import subprocess
import sys
import time

PROBE = 64
_STOP = b"\x00stop"


def serve() -> None:
    """Echo every datagram back to its sender until the stop datagram arrives."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1], flush=True)
        while True:
            data, peer = sock.recvfrom(2048)
            if data == _STOP:
                return
            sock.sendto(data, peer)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def probe(port: int, count: int, warmup: int) -> list[float]:
    """Round-trip times in milliseconds, ascending."""
    payload = bytes(PROBE)
    rtts = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.connect(("127.0.0.1", port))
        for i in range(warmup + count):
            start = time.perf_counter()
            sock.send(payload)
            sock.recv(2048)
            if i >= warmup:
                rtts.append((time.perf_counter() - start) * 1e3)
        sock.send(_STOP)
    return sorted(rtts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="measured probes (default 5000)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured probes first (default 200)")
    parser.add_argument("--serve", action="store_true", help="run the echo server half only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.count < 1 or args.warmup < 0:
        parser.error("--count must be positive and --warmup not negative")
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        rtts = probe(port, args.count, args.warmup)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result = {
        "count": args.count,
        "p50_ms": round(percentile(rtts, 50), 4),
        "p99_ms": round(percentile(rtts, 99), 4),
        "mean_ms": round(statistics.fmean(rtts), 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"UDP echo between two processes: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
