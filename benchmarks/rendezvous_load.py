"""Load benchmark for pilot-rendezvous: many simulated nodes from one process.

Starts a real ``pilot-rendezvous`` (file store in a temp dir, per-IP limits
off because every simulated node shares 127.0.0.1), pinned to one CPU, and
drives it from this process (pinned to another CPU when there is one) over
``--connections`` TCP connections with ``--window`` requests in flight on
each. All frames are built and signed before the clock starts, so the
figures measure the server, not the client's crypto.

Phases:

1. ``register`` -- ``--nodes`` (10,000) registrations;
2. ``steady`` -- for each node ``--heartbeats`` signed heartbeats and one
   signed resolve of a public node (every 10th node is made public first);
3. ``scale`` -- registrations up to ``--scale-nodes`` (100,000), then the
   server's RSS. ``--scale-nodes 0`` skips it.

Prints requests/s per phase and the server's RSS (VmRSS) after each;
``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pilotgw.overlay import registry as r

_LEN = struct.Struct(">I")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Pipe(asyncio.Protocol):
    """One connection sending a list of frames with a bounded window and
    collecting the reply bodies in order."""

    def __init__(self, frames: list[bytes], window: int, keep: bool, done: asyncio.Future[None]) -> None:
        self.frames = frames
        self.window = window
        self.keep = keep
        self.done = done
        self.sent = 0
        self.received = 0
        self.errors = 0
        self.replies: list[bytes] = []
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._fill()
        if not self.frames:
            self.done.set_result(None)

    def _fill(self) -> None:
        end = min(len(self.frames), self.received + self.window)
        if end > self.sent:
            self.transport.write(b"".join(self.frames[self.sent : end]))
            self.sent = end

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            body = bytes(buf[pos + 4 : pos + 4 + n])
            if b'"error"' in body:
                self.errors += 1
            if self.keep:
                self.replies.append(body)
            pos += 4 + n
            self.received += 1
        del buf[:pos]
        if self.received == len(self.frames):
            if not self.done.done():
                self.done.set_result(None)
        else:
            self._fill()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"registry closed the connection: {exc}"))


async def run_phase(addr: tuple[str, int], frames: list[bytes], connections: int, window: int,
                    keep: bool = False) -> tuple[float, list[bytes], int]:
    """Send ``frames`` spread over ``connections``; returns (seconds, replies in
    frame order if ``keep``, error replies)."""
    loop = asyncio.get_running_loop()
    shares = [frames[i::connections] for i in range(connections)]
    pipes: list[Pipe] = []
    futures = []
    started = time.perf_counter()
    for share in shares:
        fut: asyncio.Future[None] = loop.create_future()
        _, pipe = await loop.create_connection(lambda s=share, f=fut: Pipe(s, window, keep, f), *addr)
        pipes.append(pipe)
        futures.append(fut)
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    for pipe in pipes:
        pipe.transport.close()
    replies: list[bytes] = []
    if keep:
        replies = [b""] * len(frames)
        for i, pipe in enumerate(pipes):
            replies[i::connections] = pipe.replies
    return elapsed, replies, sum(p.errors for p in pipes)


def start_server(workdir: str) -> tuple[subprocess.Popen[bytes], tuple[str, int], str]:
    exe = shutil.which("pilot-rendezvous", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "pilotgw.rendezvous"]
    log_path = os.path.join(workdir, "rendezvous.log")
    cmd += ["-registry-addr", "127.0.0.1:0", "-beacon-addr", "127.0.0.1:0",
            "-store", os.path.join(workdir, "registry.json"), "--request-rate", "0", "--register-rate", "0",
            "--lookup-rate", "0", "--max-conns-per-ip", "100000"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        text = open(log_path, errors="replace").read()
        if "pilot-rendezvous ready" in text:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server failed to start:\n{text}")
        time.sleep(0.05)
    match = re.search(r"registry listening on (\S+):(\d+)", text)
    assert match
    return proc, (match.group(1), int(match.group(2))), log_path


def make_keys(n: int) -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey.generate() for _ in range(n)]


def register_frames(keys: list[Ed25519PrivateKey], first_port: int) -> list[bytes]:
    return [
        r.encode_frame(r.register(k.public_key().public_bytes_raw(), f"0.0.0.0:{first_port + i % 50000}"))
        for i, k in enumerate(keys)
    ]


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="rv-bench-")
    proc, addr, log_path = start_server(workdir)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(proc.pid, {cpus[0]})
        os.sched_setaffinity(0, set(cpus[1:]))
    result: dict[str, Any] = {"nodes": args.nodes, "connections": args.connections, "window": args.window,
                              "server_cpu_pinned": len(cpus) > 1, "phases": {}}
    try:
        result["rss_mb_empty"] = round(rss_mb(proc.pid), 1)
        keys = make_keys(args.nodes)
        frames = register_frames(keys, 20000)
        elapsed, replies, errors = await run_phase(addr, frames, args.connections, args.window, keep=True)
        ids = [json.loads(body)["node_id"] for body in replies]
        result["phases"]["register"] = {"requests": len(frames), "seconds": round(elapsed, 3),
                                        "req_per_s": round(len(frames) / elapsed), "errors": errors}

        public = ids[::10]
        setup = [r.encode_frame(r.set_visibility(ids[i], True, keys[i])) for i in range(0, len(ids), 10)]
        await run_phase(addr, setup, args.connections, args.window)
        steady: list[bytes] = []
        for i, (node_id, key) in enumerate(zip(ids, keys)):
            beat = r.encode_frame(r.heartbeat(node_id, key))  # deterministic: sign once, send N times
            steady.extend([beat] * args.heartbeats)
            steady.append(r.encode_frame(r.resolve(public[i % len(public)], node_id, key)))
        elapsed, _, errors = await run_phase(addr, steady, args.connections, args.window)
        result["phases"]["steady"] = {"requests": len(steady), "seconds": round(elapsed, 3),
                                      "req_per_s": round(len(steady) / elapsed), "errors": errors}
        await asyncio.sleep(0.5)
        result["rss_mb_at_nodes"] = round(rss_mb(proc.pid), 1)

        if args.scale_nodes > args.nodes:
            more = args.scale_nodes - args.nodes
            done = 0
            scale_time = 0.0
            while done < more:  # in chunks, to keep the client's own memory small
                batch = min(20000, more - done)
                frames = register_frames(make_keys(batch), 30000)
                elapsed, _, errors = await run_phase(addr, frames, args.connections, args.window)
                scale_time += elapsed
                done += batch
            await asyncio.sleep(1.0)
            result["phases"]["scale_register"] = {"requests": more, "seconds": round(scale_time, 3),
                                                  "req_per_s": round(more / scale_time)}
            result["scale_nodes"] = args.scale_nodes
            result["rss_mb_at_scale"] = round(rss_mb(proc.pid), 1)
            result["store_bytes_at_scale"] = os.path.getsize(os.path.join(workdir, "registry.json"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--heartbeats", type=int, default=3, help="heartbeats per node in the steady phase")
    p.add_argument("--scale-nodes", type=int, default=100_000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--window", type=int, default=16, help="requests in flight per connection")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        import uvloop

        result = uvloop.run(benchmark(args))
    except ImportError:
        result = asyncio.run(benchmark(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"pilot-rendezvous load: {args.nodes} nodes, {args.connections} connections x {args.window} in flight"
          f"{', server pinned to one CPU' if result['server_cpu_pinned'] else ''}")
    for name, phase in result["phases"].items():
        print(f"  {name:15s} {phase['requests']:>8d} requests in {phase['seconds']:7.2f} s = "
              f"{phase['req_per_s']:>7d} req/s  ({phase.get('errors', 0)} errors)")
    print(f"  server RSS: empty {result['rss_mb_empty']} MB, at {args.nodes} nodes {result['rss_mb_at_nodes']} MB")
    if "rss_mb_at_scale" in result:
        print(f"  server RSS at {result['scale_nodes']} nodes: {result['rss_mb_at_scale']} MB "
              f"(store file {result['store_bytes_at_scale'] / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
