"""Baseline: plain TCP across the netns NAT lab (needs root).

The lab scenario runs a pilot stream from a host behind a port-restricted NAT
to a public host over links with MTU 1500, with and without random loss. This
measures what the kernel's TCP achieves over exactly that path: the topology
below (:func:`topology`), the receiver half of ``tcp_loopback.py`` on the
public host ``srv`` and its sender half on ``cli`` behind the NAT ``nat``;
``--loss`` percent is dropped on ``cli``'s uplink in each direction.

Usage: ``sudo python benchmarks/lab_tcp.py [--mib 256] [--loss 0] [--json]``.
The lab is torn down on exit, also when the transfer fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pilotgw.lab import Host, Lab, LabError, Link, NatKind, NatRouter, Topology

HALF = str(Path(__file__).with_name("tcp_loopback.py"))
PORT = 5201


def topology(loss: float) -> Topology:
    """Public receiver ``srv``, sender ``cli`` behind a port-restricted NAT, MTU 1500."""
    return Topology(
        name="bench-lab",
        hosts=(Host("srv"),),
        nats=(NatRouter("nat", NatKind.PORT_RESTRICTED, (Host("cli", Link(loss=loss, mtu=1500)),)),),
    )


def measure(mib: int, loss: float) -> dict[str, float | int]:
    """Build the lab, run one transfer across it, tear it down."""
    with Lab(topology(loss)) as lab:
        srv, cli = lab.host("srv"), lab.host("cli")
        receiver = srv.popen(
            [sys.executable, HALF, "--role", "receive", "--listen", f"{srv.address}:{PORT}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        receiver.stdout.readline()  # type: ignore[union-attr]  # listening
        done = cli.run(
            [sys.executable, HALF, "--role", "send", "--connect", f"{srv.address}:{PORT}", "--mib", str(mib), "--json"],
            timeout=600,
        )
        result = json.loads(done.stdout)
    return {"loss_percent": loss, "mtu": 1500, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB to send (default 256)")
    parser.add_argument("--loss", type=float, default=0.0, help="percent lost on the sender's uplink (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.mib < 1:
        parser.error("--mib must be positive")
    try:
        result = measure(args.mib, args.loss)
    except LabError as exc:
        print(f"lab_tcp: {exc} (code {exc.code})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"plain TCP across the lab ({args.loss} % loss, MTU 1500): {result['mb_per_s']} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
