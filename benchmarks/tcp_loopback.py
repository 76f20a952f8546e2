"""Baseline: plain TCP throughput between two Python processes.

The stream scenarios (two daemons on loopback, the netns lab) are compared
against what the kernel's TCP does for the same two-process layout: a sender
process writing ``--mib`` MiB in 1 MiB ``sendall`` calls from one buffer and a
receiver process reading into a preallocated 1 MiB buffer. The clock runs on
the sender from ``connect`` until the receiver's one-byte "all received"
reply, so the figure covers every byte landing in the other process.

Usage: ``python benchmarks/tcp_loopback.py [--mib 1024] [--json]``.
``--role receive --listen HOST:PORT`` and ``--role send --connect HOST:PORT``
run one half alone (the lab baseline starts them in two namespaces); the
receiver prints its bound port on the first line of stdout.
MB/s here means 10^6 bytes per second.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

CHUNK = 1 << 20


def receive(listen: tuple[str, int], out: object = sys.stdout) -> int:
    """Accept one connection, read until EOF, answer one byte; return bytes read."""
    with socket.create_server(listen) as srv:
        print(srv.getsockname()[1], file=out, flush=True)  # type: ignore[arg-type]
        conn, _ = srv.accept()
    with conn:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        total = 0
        while n := conn.recv_into(view):
            total += n
        conn.sendall(b"k")
    return total


def send(target: tuple[str, int], total: int) -> float:
    """Send ``total`` bytes in 1 MiB writes; seconds until the receiver confirmed."""
    payload = bytes(CHUNK)
    start = time.perf_counter()
    with socket.create_connection(target) as conn:
        left = total
        while left > 0:
            conn.sendall(payload if left >= CHUNK else payload[:left])
            left -= CHUNK
        conn.shutdown(socket.SHUT_WR)
        if conn.recv(1) != b"k":
            raise SystemExit("receiver closed without confirming")
    return time.perf_counter() - start


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB to send (default 1024)")
    parser.add_argument("--role", choices=("both", "send", "receive"), default="both")
    parser.add_argument("--listen", type=_hostport, default=("127.0.0.1", 0), help="receiver address")
    parser.add_argument("--connect", type=_hostport, help="sender target (with --role send)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.mib < 1:
        parser.error("--mib must be positive")
    total = args.mib * CHUNK
    if args.role == "receive":
        receive(args.listen)
        return 0
    if args.role == "send":
        if args.connect is None:
            parser.error("--role send needs --connect HOST:PORT")
        seconds = send(args.connect, total)
    else:
        receiver = subprocess.Popen(
            [sys.executable, __file__, "--role", "receive", "--listen", f"{args.listen[0]}:{args.listen[1]}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(receiver.stdout.readline())  # type: ignore[union-attr]
            seconds = send((args.listen[0], port), total)
            receiver.wait(timeout=30)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
    result = {"bytes": total, "seconds": round(seconds, 4), "mb_per_s": round(total / seconds / 1e6, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"plain TCP, {args.mib} MiB in 1 MiB writes: {result['mb_per_s']} MB/s ({seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
