"""CPU cost of the stream state machines per delivered 4096-byte segment.

Two :class:`Connection` objects are wired back to back in-process: no
sockets, no crypto, no packet encoding, no simulator, just the sender and
receiver state machines exchanging :class:`Packet` objects under a fake clock
that advances 10 µs per round. The sender has the whole payload buffered; the
receiver's application reads everything it gets. Two modes: batched (one
transmit call per round, as a daemon draining its socket does) and per
packet (the receiver answers after every packet: an ACK per 2 segments).
Reported: microseconds of CPU per delivered segment for both machines
together (target < 10).

    .venv/bin/python benchmarks/stream_cpu.py [--mib 64] [--repeat 5] [--mss 4096]
"""

from __future__ import annotations

import argparse
import time

from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.options import StreamOptions


def one_run(total: int, mss: int, per_packet: bool) -> tuple[float, int]:
    a = SocketAddr(Addr(0, 1), 49152)
    b = SocketAddr(Addr(0, 2), 1001)
    opts = StreamOptions(mss=mss)
    now = 0.0
    client = Connection.dial(a, b, now, opts)
    syn = client.packets_to_send(now)[0]
    server = Connection.accept(b, a, syn, now, opts)
    for p in server.packets_to_send(now):
        client.receive(p, now)
    for p in client.packets_to_send(now):
        server.receive(p, now)
    payload = bytes(range(256)) * (total // 256)
    client.send(payload)
    received = 0
    c_send = client.packets_to_send
    s_send = server.packets_to_send
    c_recv = client.receive
    s_recv = server.receive
    read = server.read
    t0 = time.process_time()  # CPU time: robust when other processes share the cores
    if per_packet:
        # The receiver transmits after every packet (no batching): one ACK
        # per ack_every=2 segments, the least favourable case.
        while received < total:
            now += 1e-5
            for p in c_send(now):
                s_recv(p, now)
                received += len(read())
                for q in s_send(now):
                    c_recv(q, now)
    else:
        # Batched, as a daemon draining a socket does: one transmit per round.
        while received < total:
            now += 1e-5
            for p in c_send(now):
                s_recv(p, now)
            received += len(read())
            for p in s_send(now):
                c_recv(p, now)
    elapsed = time.process_time() - t0
    return elapsed, received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mss", type=int, default=4096)
    args = ap.parse_args()
    total = args.mib << 20
    for per_packet in (False, True):
        mode = "ACK per 2 segments" if per_packet else "batched ACKs"
        best = None
        for _ in range(args.repeat):
            elapsed, received = one_run(total, args.mss, per_packet)
            per = elapsed / (received / args.mss) * 1e6
            best = per if best is None else min(best, per)
            print(f"{mode:20s} {received / elapsed / 1e6:8.1f} MB/s  {per:6.2f} µs per {args.mss}-byte segment")
        print(f"{mode:20s} best: {best:.2f} µs per segment, sender + receiver (target < 10)")


if __name__ == "__main__":
    main()
