"""Echo round-trip time over an established encrypted tunnel between two
pilot-daemons on loopback: a raw IPC client on daemon A sends a small
message to the echo service (port 7) of daemon B and waits for it to come
back, ``--count`` times. Prints p50/p90/p99 in milliseconds (``--json`` for
machine output). The path measured is client -> IPC -> A -> PILS/UDP -> B ->
echo service -> B -> PILS/UDP -> A -> IPC -> client.

Goal (issue 5): p50 <= 0.3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_common import Ipc, cluster  # noqa: E402


def measure(count: int, size: int) -> dict:
    with cluster(2) as (a, b):
        with Ipc(a.socket) as ipc:
            conn = ipc.dial(b.node_id, 7)
            payload = os.urandom(size)
            frame = struct.pack(">IBI", size + 5, 0x06, conn) + payload
            samples = []
            for i in range(count + 200):
                t0 = time.perf_counter()
                ipc.sock.sendall(frame)
                got = 0
                while got < size:
                    body = ipc.frame()
                    if body[0] == 0x07:
                        got += len(body) - 5
                if i >= 200:  # warm-up excluded
                    samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()

            def pct(p: float) -> float:
                return round(samples[min(len(samples) - 1, int(p / 100 * len(samples)))], 4)

            return {"count": count, "size": size, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
                    "mean_ms": round(statistics.fmean(samples), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.count, args.size)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"echo {r['size']} B x {r['count']}: p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, "
              f"p99 {r['p99_ms']} ms, mean {r['mean_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
