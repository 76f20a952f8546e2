"""One file to 1 and to N receivers through real daemons and a real rendezvous.

Measures the time from the first dial to the last receiver's verified result
for one receiver, then for N (default 5) receivers reached through the bulk
extension's chain, and prints the ratio (the goal is <= 1.5). Also prints
each daemon's peak RSS. Optional ``--sparse-gib`` sends one sparse file of
that many GiB to one receiver (the 4 GiB check of issue 6).

    python -m benchmarks.sendfile_fanout --size-mib 256 --receivers 5 [--json]
    python -m benchmarks.sendfile_fanout --sparse-gib 4
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pilotgw
from pilotgw.overlay.address import Addr
from pilotgw.services import filetransfer
from tests.integration.conftest import launch, launch_daemon


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def send(socket_path: str, targets: list[Addr], path: Path) -> tuple[float, list]:
    client = await pilotgw.connect(socket_path)
    try:
        async def dial(addr: Addr, port: int):
            return await client.dial(addr.node, port)

        start = time.monotonic()
        results = await filetransfer.send_file(dial, targets, path)
        return time.monotonic() - start, results
    finally:
        await client.close()


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--receivers", type=int, default=5)
    ap.add_argument("--sparse-gib", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pgw-bench-"))
    procs = []
    old_home = os.environ.get("HOME")
    try:
        rv = launch(tmp)
        procs.append(rv)
        daemons = []
        for i in range(args.receivers + 1):
            home = tmp / f"home{i}"
            (home / ".pilot").mkdir(parents=True)
            os.environ["HOME"] = str(home)
            d = launch_daemon(tmp, rv, f"n{i}", "-identity", str(home / ".pilot" / "identity.key"))
            d.home = home
            daemons.append(d)
            procs.append(d)
        sender, receivers = daemons[0], daemons[1:]
        src = tmp / "payload.bin"
        figures: dict[str, float] = {}
        if args.sparse_gib:
            with open(src, "wb") as f:
                f.truncate(args.sparse_gib << 30)
            digest = sha(src)
            elapsed, results = asyncio.run(send(str(sender.socket), [Addr(0, receivers[0].node_id)], src))
            saved = next((receivers[0].home / ".pilot" / "received").glob("payload-*"))
            assert results[0].ok and sha(saved) == digest, results
            figures["sparse_gib"] = args.sparse_gib
            figures["sparse_seconds"] = round(elapsed, 2)
            figures["sparse_mib_per_s"] = round((args.sparse_gib << 10) / elapsed, 1)
        else:
            with open(src, "wb") as f:
                block = os.urandom(1 << 20)
                for _ in range(args.size_mib):
                    f.write(block)
            one, r1 = asyncio.run(send(str(sender.socket), [Addr(0, receivers[0].node_id)], src))
            many, rn = asyncio.run(send(str(sender.socket), [Addr(0, r.node_id) for r in receivers], src))
            assert all(r.ok for r in r1 + rn), (r1, rn)
            figures.update(size_mib=args.size_mib, receivers=args.receivers, one_s=round(one, 2),
                           many_s=round(many, 2), ratio=round(many / one, 2))
        figures["max_daemon_rss_mb"] = round(max(peak_rss_mb(d.proc.pid) for d in daemons), 1)
        if args.json:
            print(json.dumps(figures))
        else:
            for k, v in figures.items():
                print(f"{k:20s} {v}")
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
        for p in reversed(procs):  # daemons first; one failure must not leave the rest running
            try:
                p.kill()
            except Exception as exc:
                print(f"cleanup: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
