"""send-file across a port-restricted NAT in the netns lab, against plain TCP (needs root).

The path: sender ``cli`` behind a port-restricted NAT, receiver ``srv`` on a
public host, links with MTU 1500, the rendezvous on ``rv``
(:func:`topology`). Pilot runs as in a deployment (:class:`pilotgw.lab.stack.Stack`:
``pilot-rendezvous``, two public ``pilot-daemon``\\ s); the file goes with the
Python API's ``send_file`` (the bulk extension: SHA-256 checked by the
receiver) and MB/s counts from the first dial to the receiver's verified
result. Rows:

* ``pilot``: ``--mib`` (default 1024) MiB, no loss, default daemon settings;
* ``pilot_loss``: ``--loss`` % (default 2) on ``cli``'s uplink, both
  directions; ``--loss-mib`` (default 64) MiB with ``-segment-size 4096``
  (reference-size segments, no IP fragmentation);
* ``pilot_loss_default``: the same with default (large, loss-adaptive)
  segments, bounded by ``--timeout``; ``null`` MB/s when it did not finish;
* ``tcp`` / ``tcp_loss``: the kernel's TCP over the same path and sizes
  (``benchmarks/tcp_loopback.py`` halves), the baseline.

Usage: ``sudo python -m benchmarks.lab_sendfile [--mib 1024] [--loss 2] [--loss-mib 64] [--json]``.
With ``--only pilot`` or ``--only tcp`` one transfer of ``--mib`` MiB at
``--loss`` % with default settings is timed and ``--json`` prints that row
(``mb_per_s``): the benchmark suite's "lab" and "lab-loss2" scenarios.
Everything is torn down on exit, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pilotgw.lab import Host, Lab, LabError, Link, NatKind, NatRouter, Topology
from pilotgw.lab.stack import Stack

HALF = str(Path(__file__).with_name("tcp_loopback.py"))
TCP_PORT = 5201
MIB = 1 << 20


def topology() -> Topology:
    """Public ``rv`` (rendezvous) and ``srv`` (receiver), ``cli`` behind a port-restricted NAT, MTU 1500."""
    return Topology(name="bench-sendfile", hosts=(Host("rv"), Host("srv")), rendezvous="rv",
                    nats=(NatRouter("nat", NatKind.PORT_RESTRICTED, (Host("cli", Link(mtu=1500)),)),))


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(i.to_bytes(8, "big") + block[8:])


def pilot_run(stack: Stack, src: Path, mib: int, timeout: float) -> dict[str, Any]:
    """One send-file cli -> srv; MB/s or None if it did not finish within ``timeout``."""
    result: list[Any] = []

    def send() -> None:
        try:
            result.append(stack.send_file("cli", "srv", src))
        except Exception as exc:  # reported as a failed row
            result.append(exc)

    t0 = time.monotonic()
    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(timeout)
    elapsed = time.monotonic() - t0
    for f in stack.received("srv"):
        f.unlink()
    if not result:
        return {"mib": mib, "seconds": None, "mb_per_s": None, "error": f"not done after {timeout:.0f} s"}
    delivery = result[0]
    if isinstance(delivery, Exception) or not delivery.ok:
        return {"mib": mib, "seconds": round(elapsed, 2), "mb_per_s": None, "error": str(delivery)}
    return {"mib": mib, "seconds": round(elapsed, 2), "mb_per_s": round(mib * MIB / elapsed / 1e6, 1),
            "path": stack.path("cli", "srv")}


def tcp_run(lab: Lab, mib: int) -> dict[str, Any]:
    srv, cli = lab.host("srv"), lab.host("cli")
    receiver = srv.popen([sys.executable, HALF, "--role", "receive", "--listen", f"{srv.address}:{TCP_PORT}"],
                         stdout=subprocess.PIPE, text=True)
    try:
        receiver.stdout.readline()  # type: ignore[union-attr]  # listening
        done = cli.run([sys.executable, HALF, "--role", "send", "--connect", f"{srv.address}:{TCP_PORT}",
                        "--mib", str(mib), "--json"], timeout=900)
        out = json.loads(done.stdout)
    finally:
        receiver.kill()
        receiver.wait()
    return {"mib": mib, "mb_per_s": out["mb_per_s"]}


def measure(mib: int, loss: float, loss_mib: int, timeout: float) -> dict[str, Any]:
    rows: dict[str, Any] = {"mtu": 1500, "loss_percent": loss}
    with tempfile.TemporaryDirectory(prefix="pgw-lab-sendfile-") as tmp:
        big, small = Path(tmp) / "big.bin", Path(tmp) / "small.bin"
        make_file(big, mib)
        make_file(small, loss_mib)
        with Lab(topology()) as lab:
            with Stack(lab, public=True, trust=False, agents=["cli", "srv"]) as stack:
                rows["pilot"] = pilot_run(stack, big, mib, timeout=max(timeout, 900))
                lab.set_link("cli", Link(loss=loss))
                rows["pilot_loss_default"] = pilot_run(stack, small, loss_mib, timeout)
                lab.set_link("cli", Link())
                stack.stop_agent("cli")
                stack.stop_agent("srv")
                stack.start_agents(["cli", "srv"], extra_args=["-segment-size", "4096"])
                lab.set_link("cli", Link(loss=loss))
                rows["pilot_loss"] = pilot_run(stack, small, loss_mib, timeout=900)
                lab.set_link("cli", Link())
            rows["tcp"] = tcp_run(lab, mib)
            lab.set_link("cli", Link(loss=loss))
            rows["tcp_loss"] = tcp_run(lab, loss_mib)
    return rows


def measure_one(which: str, mib: int, loss: float, timeout: float) -> dict[str, Any]:
    """One row: a pilot send-file (default settings) or plain TCP, ``mib`` MiB at ``loss`` %."""
    row: dict[str, Any] = {"mtu": 1500, "loss_percent": loss}
    with tempfile.TemporaryDirectory(prefix="pgw-lab-sendfile-") as tmp:
        with Lab(topology()) as lab:
            lab.set_link("cli", Link(loss=loss))
            if which == "tcp":
                row.update(tcp_run(lab, mib))
                return row
            src = Path(tmp) / "file.bin"
            make_file(src, mib)
            with Stack(lab, public=True, trust=False, agents=["cli", "srv"]) as stack:
                row.update(pilot_run(stack, src, mib, timeout))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB for the lossless runs (default 1024)")
    parser.add_argument("--loss", type=float, default=2.0, help="percent lost on the sender's uplink (default 2)")
    parser.add_argument("--loss-mib", type=int, default=64, help="MiB for the lossy runs (default 64)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up a lossy default-segment run after this (s)")
    parser.add_argument("--only", choices=("pilot", "tcp"), help="time one transfer of --mib at --loss %% instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.mib < 1 or args.loss_mib < 1:
        parser.error("sizes must be positive")
    try:
        if args.only:
            row = measure_one(args.only, args.mib, args.loss, max(args.timeout, 900))
            if args.json:
                print(json.dumps(row))
            else:
                rate = "did not finish" if row.get("mb_per_s") is None else f"{row['mb_per_s']} MB/s"
                print(f"{args.only} across a port-restricted NAT (MTU 1500, {args.loss} % loss), {args.mib} MiB: {rate}")
            return 0 if row.get("mb_per_s") is not None else 1
        rows = measure(args.mib, args.loss, args.loss_mib, args.timeout)
    except LabError as exc:
        print(f"lab_sendfile: {exc} (code {exc.code})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"send-file across a port-restricted NAT (MTU 1500), {args.loss} % loss where noted:")
    for name in ("pilot", "pilot_loss", "pilot_loss_default", "tcp", "tcp_loss"):
        row = rows[name]
        rate = "did not finish" if row.get("mb_per_s") is None else f"{row['mb_per_s']} MB/s"
        print(f"  {name:20} {row['mib']:6} MiB  {rate}  {row.get('error', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
