"""Idle CPU of two daemons after 1,000 streams were opened and closed.

A daemon that leaks timers, retransmits after close or storms FIN|ACKs
(T-D9) keeps burning CPU long after its connections are gone. This opens
``--streams`` echo connections from daemon A to daemon B's port 7 (each one
sends a byte, waits for the echo and closes), waits ``--settle`` seconds,
then samples both daemons' CPU time over ``--window`` seconds and prints it
as a percentage of one core. Also reports how many connections each daemon
still lists (TIME_WAIT entries must have expired by then).

``--json`` prints ``{"idle_cpu_percent": ..., "per_daemon": [...], ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_common import Ipc, cluster  # noqa: E402

ECHO_PORT = 7
_CONN = struct.Struct(">I")
_PUSHES = (0x05, 0x07, 0x09, 0x0C)  # Accept, Recv, CloseOK, RecvFrom


def reply(ipc: Ipc) -> bytes:
    """The next reply frame, skipping pushes of earlier connections."""
    while True:
        body = ipc.frame()
        if body[0] not in _PUSHES:
            return body


def open_and_close(ipc: Ipc, node: int) -> None:
    """One echo exchange on a fresh connection, then Close."""
    ipc.send(b"\x03" + struct.pack(">HIH", 0, node, ECHO_PORT))
    body = reply(ipc)
    if body[0] != 0x04:
        raise RuntimeError(f"dial failed: {body[3:].decode(errors='replace')}")
    conn = _CONN.unpack_from(body, 1)[0]
    ipc.send(b"\x06" + _CONN.pack(conn) + b"x")
    while True:  # Recv pushes and CloseOKs of earlier connections interleave
        body = ipc.frame()
        if body[0] == 0x07 and _CONN.unpack_from(body, 1)[0] == conn:
            break
        if body[0] == 0x0A:
            raise RuntimeError(f"echo failed: {body[3:].decode(errors='replace')}")
    ipc.send(b"\x08" + _CONN.pack(conn))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds to wait after the last close (default: TIME_WAIT + 1)")
    ap.add_argument("--window", type=float, default=5.0, help="seconds of CPU sampling")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.streams < 1:
        ap.error("--streams must be at least 1")

    # The two daemons do not trust each other here, so lift the reference's
    # per-source SYN pacing (10/s) that would otherwise dominate the churn.
    with cluster(2, extra=("-syn-rate-limit", "5000")) as (a, b):
        started = time.monotonic()
        with Ipc(a.socket) as ipc:
            for i in range(args.streams):
                open_and_close(ipc, b.node_id)
                if not args.json and sys.stderr.isatty() and i % 100 == 99:
                    print(f"\r{i + 1}/{args.streams} streams", end="", file=sys.stderr, flush=True)
            churn = time.monotonic() - started
            if not args.json and sys.stderr.isatty():
                print(file=sys.stderr)
            settle = args.settle
            if settle is None:
                # Wait out TIME_WAIT (reported by the stream options) plus a margin.
                from pilotgw.overlay.stream.options import StreamOptions

                settle = StreamOptions().time_wait + 1.0
            time.sleep(settle)
            lingering = [len(info_of(d)["conn_list"]) for d in (a, b)]
            before = [d.cpu_seconds() for d in (a, b)]
            time.sleep(args.window)
            after = [d.cpu_seconds() for d in (a, b)]

    per = [round(100.0 * (y - x) / args.window, 2) for x, y in zip(before, after)]
    result = {
        "streams": args.streams,
        "churn_seconds": round(churn, 2),
        "settle_seconds": settle,
        "window_seconds": args.window,
        "idle_cpu_percent": round(sum(per), 2),
        "per_daemon": per,
        "connections_listed_after_settle": lingering,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.streams} streams opened and closed in {churn:.1f} s; after {settle:.0f} s: "
              f"idle CPU {result['idle_cpu_percent']} % of a core (per daemon {per}), "
              f"connections still listed {lingering}")
    return 0


def info_of(daemon) -> dict:
    """Info from a fresh IPC session (the churn session may hold pushes)."""
    with Ipc(daemon.socket) as ipc:
        return ipc.info()


if __name__ == "__main__":
    sys.exit(main())
