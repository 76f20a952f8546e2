"""Stream throughput between two pilot-daemons on loopback, encrypted.

A source process writes ``--size`` bytes (default 1 GiB) to daemon A over raw
IPC (1 MiB Send frames), A streams them through its PILS tunnel to daemon B,
and a sink process bound on B counts them. Prints MB/s (first byte sent to
last byte received), the daemons' peak RSS and CPU seconds; ``--json`` for
machine output; ``--profile`` records both daemons with py-spy (if
installed) into ``benchmarks/out/``.

Goal (issue 5): >= 300 MB/s for 1 GiB, daemon RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_common import Ipc, cluster  # noqa: E402

FRAME = 1 << 20
PORT = 1000


def _sink(sock: str, ready, result) -> None:
    with Ipc(sock) as ipc:
        ipc.bind(PORT)
        ready.set()
        body = ipc.frame()
        assert body[0] == 0x05, body  # Accept
        total = 0
        s, buf, pos = ipc.sock, ipc.buf, 0
        unpack = struct.Struct(">I").unpack_from
        # Hand-rolled frame walk (offset-based, one compaction per recv):
        # count Recv payloads until the CloseOK push.
        while True:
            end = len(buf)
            while end - pos >= 4:
                (n,) = unpack(buf, pos)
                if end - pos < 4 + n:
                    break
                cmd = buf[pos + 4]
                if cmd == 0x07:
                    total += n - 5
                elif cmd == 0x09:
                    result.put((total, time.perf_counter()))
                    return
                pos += 4 + n
            if pos:
                del buf[:pos]
                pos = 0
            chunk = s.recv(4 << 20)
            if not chunk:
                result.put((total, time.perf_counter()))
                return
            buf += chunk


def _source(sock: str, node: int, size: int, result) -> None:
    with Ipc(sock) as ipc:
        conn = ipc.dial(node, PORT)
        payload = os.urandom(FRAME - 5)
        frame = struct.pack(">IBI", FRAME, 0x06, conn) + payload
        sent = 0
        t0 = time.perf_counter()
        while sent < size:
            n = min(len(payload), size - sent)
            if n < len(payload):
                frame = struct.pack(">IBI", n + 5, 0x06, conn) + payload[:n]
            ipc.sock.sendall(frame)
            sent += n
        ipc.send(b"\x08" + struct.pack(">I", conn))  # Close: FIN after the data drains
        result.put((sent, t0))
        ipc.frame()


def top_functions(path: str, n: int = 15) -> list[str]:
    """Self time per leaf frame from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip().rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            own[leaf] = own.get(leaf, 0) + int(count)
            total += int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [f"{100 * c / max(total, 1):5.1f}%  {name}" for name, c in ranked]


def run(size: int, profile: bool) -> dict:
    with cluster(2) as (a, b):
        spies = []
        if profile:
            spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
            if spy is None:
                print("py-spy not installed; --profile ignored", file=sys.stderr)
            else:
                os.makedirs("benchmarks/out", exist_ok=True)
                for d, name in ((a, "sender"), (b, "receiver")):
                    spies.append(subprocess.Popen([spy, "record", "-r", "200", "-p", str(d.proc.pid), "-f",
                                                   "raw", "-o", f"benchmarks/out/daemon_{name}.collapsed.txt"],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(1.0)
        ctx = mp.get_context("fork")
        ready, results = ctx.Event(), ctx.Queue()
        cpu0 = (a.cpu_seconds(), b.cpu_seconds())
        sink = ctx.Process(target=_sink, args=(b.socket, ready, results))
        sink.start()
        ready.wait(10)
        sent_q = ctx.Queue()
        src = ctx.Process(target=_source, args=(a.socket, b.node_id, size, sent_q))
        src.start()
        total, t_end = results.get(timeout=600)
        sent, t0 = sent_q.get(timeout=60)
        cpu1 = (a.cpu_seconds(), b.cpu_seconds())
        src.join(10)
        sink.join(10)
        for spy in spies:
            spy.send_signal(2)
            spy.wait(30)
        if spies:
            for name in ("sender", "receiver"):
                print(f"-- {name} daemon: top functions by own samples", file=sys.stderr)
                for line in top_functions(f"benchmarks/out/daemon_{name}.collapsed.txt"):
                    print("  " + line, file=sys.stderr)
        elapsed = t_end - t0
        return {
            "bytes": total,
            "complete": total == sent == size,
            "seconds": round(elapsed, 3),
            "mb_per_s": round(total / elapsed / 1e6, 1),
            "rss_peak_mb": {"sender": round(a.rss_peak_mb(), 1), "receiver": round(b.rss_peak_mb(), 1)},
            "cpu_seconds": {"sender": round(cpu1[0] - cpu0[0], 2), "receiver": round(cpu1[1] - cpu0[1], 2)},
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1 << 30, help="bytes to send (default 1 GiB)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="py-spy both daemons into benchmarks/out/")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run(args.size, args.profile and i == 0) for i in range(args.runs)]
    if args.json:
        print(json.dumps(results if args.runs > 1 else results[0]))
    else:
        for r in results:
            print(f"{r['bytes'] / 2**20:.0f} MiB in {r['seconds']} s = {r['mb_per_s']} MB/s "
                  f"(complete={r['complete']}); peak RSS sender {r['rss_peak_mb']['sender']} MB, "
                  f"receiver {r['rss_peak_mb']['receiver']} MB; CPU s sender {r['cpu_seconds']['sender']}, "
                  f"receiver {r['cpu_seconds']['receiver']}")
    return 0 if all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
