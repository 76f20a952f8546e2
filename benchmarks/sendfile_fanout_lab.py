"""One file to 1 and to N receivers across rate-limited links (netns lab, needs root).

Why a lab: ``sendfile_fanout.py`` runs six daemons on loopback, where every
hop's decrypt, hash, write and re-encrypt compete for the same two cores,
so it measures CPU. The receiver chain exists to spare the *sender's
uplink*; here each host's access link is capped with tc tbf (``--rate``
Mbit/s in each direction), so links are the limit -- and the CPU seconds of
every daemon and of the sending client, reported per phase, show that CPU
is not.

The lab: public hosts ``rv`` (pilot-rendezvous, unlimited link), ``s`` (the
sender) and ``r1``..``rN``, each daemon started with ``pilotctl daemon
start`` (a private node with its own HOME), trust established by mutual
handshakes (auto-approved) between ``s`` and every receiver and between
neighbours of the chain. Then the same file is timed three ways, from the
first dial until the last receiver's verified RESULT:

* ``one``    -- ``s`` to ``r1``;
* ``many``   -- ``s`` to ``r1``..``rN`` in one ``send_file`` call (the chain);
* ``copies`` -- N ``send_file`` calls at once, one per receiver, each through
  its own IPC client (as N senders would): N copies through ``s``'s uplink,
  the reference the chain is measured against.

Every received file is checked (SHA-256) and removed after its phase.

    sudo python -m benchmarks.sendfile_fanout_lab [--size 128M] [--rate 200] [--receivers 5] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilotgw.client import SyncClient, connect
from pilotgw.lab import Host, Lab, LabError, Link, Topology
from pilotgw.overlay.address import Addr
from pilotgw.services import filetransfer

REGISTRY_PORT = 9000
BEACON_PORT = 9001
SENDER = "s"
RENDEZVOUS = "rv"
TRUST_TIMEOUT = 60.0
_SIZE = re.compile(r"^(\d+)([KMG]?)(?:i?B)?$", re.IGNORECASE)


def _exe(name: str, module: str) -> list[str]:
    found = shutil.which(name, path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", module]


PILOTCTL = _exe("pilotctl", "pilotgw.cli.main")


def parse_size(text: str) -> int:
    """Bytes from ``268435456``, ``256M``, ``256MiB``, ``1G`` (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a number of bytes with an optional K/M/G suffix")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def receivers(n: int) -> list[str]:
    return [f"r{i}" for i in range(1, n + 1)]


def topology(n: int, rate_mbit: int) -> Topology:
    link = Link(rate=rate_mbit * 1_000_000)
    hosts = [Host(RENDEZVOUS), Host(SENDER, link)] + [Host(name, link) for name in receivers(n)]
    return Topology(name="sendfile-fanout", hosts=tuple(hosts), rendezvous=RENDEZVOUS)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class FanoutLab:
    """The lab with its daemons running and trusted; a context manager."""

    def __init__(self, n: int, rate_mbit: int, workdir: Path) -> None:
        self.names = [SENDER] + receivers(n)
        self.workdir = workdir
        self.lab = Lab(topology(n, rate_mbit))
        self.node_id: dict[str, int] = {}
        self.pid: dict[str, int] = {}

    def home(self, name: str) -> Path:
        return self.workdir / name

    def socket(self, name: str) -> str:
        return str(self.home(name) / ".pilot" / "pilot.sock")

    def received(self, name: str) -> Path:
        return self.home(name) / ".pilot" / "received"

    def __enter__(self) -> "FanoutLab":
        self.lab.up()
        try:
            self._start()
        except BaseException:
            self.lab.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.lab.down()

    def _start(self) -> None:
        rv = self.lab.host(RENDEZVOUS)
        log_path = self.workdir / "rendezvous.log"
        with open(log_path, "wb") as log:
            rv.popen(_exe("pilot-rendezvous", "pilotgw.rendezvous") + [
                "-registry-addr", f"0.0.0.0:{REGISTRY_PORT}", "-beacon-addr", f"0.0.0.0:{BEACON_PORT}",
                "-store", str(self.workdir / "registry.json")], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 15
        while "ready" not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"pilot-rendezvous did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        for name in self.names:
            self._start_daemon(name, str(rv.address))
        self._trust()

    def _start_daemon(self, name: str, rv: str) -> None:
        (self.home(name) / ".pilot").mkdir(parents=True)
        env = {**os.environ, "HOME": str(self.home(name)), "PILOT_SOCKET": self.socket(name)}
        done = self.lab.host(name).run(
            PILOTCTL + ["--json", "daemon", "start", "--registry", f"{rv}:{REGISTRY_PORT}",
                        "--beacon", f"{rv}:{BEACON_PORT}"], env=env, timeout=40, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pilotctl daemon start on {name} failed: {done.stderr.strip() or done.stdout.strip()}")
        data = json.loads(done.stdout)["data"]
        self.node_id[name] = int(data["node_id"])
        self.pid[name] = int(data["pid"])

    def _trust(self) -> None:
        """Mutual handshakes (each side asks, so both auto-approve) for every
        pair a transfer uses: the sender with each receiver, and each
        receiver with the next one of the chain."""
        recv = self.names[1:]
        pairs = [(SENDER, r) for r in recv] + list(zip(recv, recv[1:]))
        clients = {name: SyncClient(self.socket(name)) for name in self.names}
        try:
            for a, b in pairs:
                clients[a].handshake(self.node_id[b], "sendfile fanout benchmark")
                clients[b].handshake(self.node_id[a], "sendfile fanout benchmark")
            deadline = time.monotonic() + TRUST_TIMEOUT
            for a, b in pairs:
                for me, peer in ((a, b), (b, a)):
                    while not any(e.get("node_id") == self.node_id[peer] for e in clients[me].trusted()):
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{me} does not trust {peer} after {TRUST_TIMEOUT:g}s")
                        time.sleep(0.2)
        finally:
            for client in clients.values():
                client.close()

    # -- measuring -------------------------------------------------------------------

    def phase(self, label: str, targets: list[str], path: Path, digest: str, *, copies: bool = False) -> dict[str, Any]:
        """One timed send of ``path`` to ``targets``: elapsed seconds, CPU
        seconds per daemon and of the client, the machine's busy cores."""
        before = {name: cpu_seconds(pid) for name, pid in self.pid.items()}
        busy0, total0 = host_busy()
        client0 = os.times()
        elapsed, deliveries, done = asyncio.run(self._send([self.node_id[t] for t in targets], path, copies))
        client1 = os.times()
        busy1, total1 = host_busy()
        cpu = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in self.pid.items()}
        cpu["client"] = round(client1.user + client1.system - client0.user - client0.system, 2)
        failed = [d for d in deliveries if not d.ok]
        if failed:
            raise RuntimeError(f"{label}: not delivered: {failed}")
        for name in targets:
            [saved] = [p for p in self.received(name).iterdir() if p.is_file()]
            if sha256(saved) != digest:
                raise RuntimeError(f"{label}: {name} saved a file that differs from the source")
            saved.unlink()
        names = {str(Addr(0, self.node_id[t])): t for t in targets}
        return {
            "seconds": round(elapsed, 2),
            "done_at_s": {names[node]: round(at, 2) for node, at in sorted(done.items(), key=lambda kv: kv[1])},
            "cpu_s": cpu,
            "max_cpu_share": round(max(cpu.values()) / elapsed, 2),
            "host_cores_busy": round((busy1 - busy0) / (total1 - total0) * os.cpu_count(), 2),
        }

    async def _send(
        self, nodes: list[int], path: Path, copies: bool
    ) -> tuple[float, list[filetransfer.Delivery], dict[str, float]]:
        """Elapsed seconds, the deliveries, and when each receiver reported
        having every byte (from its progress messages)."""
        client = await connect(self.socket(SENDER))
        done: dict[str, float] = {}

        def progress(node: str, got: int, total: int) -> None:
            if got == total and node not in done:
                done[node] = time.monotonic() - start

        try:
            targets = [Addr(0, n) for n in nodes]
            start = time.monotonic()
            if copies:
                # One IPC client per copy, as N senders would be: through one
                # client, a copy whose stream is full pauses the daemon's
                # reading of that client's socket and the others queue behind.
                extra = [await connect(self.socket(SENDER)) for _ in targets[1:]]
                try:
                    runs = await asyncio.gather(
                        *(filetransfer.send_file(c.dial, [t], path, progress=progress)
                          for c, t in zip([client, *extra], targets)))
                finally:
                    for c in extra:
                        await c.close()
                results = [d for run in runs for d in run]
            else:
                results = await filetransfer.send_file(client.dial, targets, path, progress=progress)
            return time.monotonic() - start, results, done
        finally:
            await client.close()


def make_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            h.update(piece)
            left -= len(piece)
    return h.hexdigest()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def measure(size: int, rate_mbit: int, n: int, runs: int) -> dict[str, Any]:
    """``runs`` rounds of one / many / copies (interleaved, so drift in the
    machine's load hits all three alike); figures are the median round's."""
    workdir = Path(tempfile.mkdtemp(prefix="pgw-fanout-lab-"))
    try:
        source = workdir / "payload.bin"
        digest = make_file(source, size)
        warm = workdir / "warmup.bin"
        warm_digest = make_file(warm, 1 << 20)
        with FanoutLab(n, rate_mbit, workdir) as lab:
            recv = receivers(n)
            # First use of every path (tunnels, chain dials) outside the timings.
            lab.phase("warm-up chain", recv, warm, warm_digest)
            lab.phase("warm-up copies", recv, warm, warm_digest, copies=True)
            done: dict[str, list[dict[str, Any]]] = {"one": [], "many": [], "copies": []}
            for _ in range(runs):
                done["one"].append(lab.phase("one", recv[:1], source, digest))
                done["many"].append(lab.phase("many", recv, source, digest))
                done["copies"].append(lab.phase("copies", recv, source, digest, copies=True))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    median = {label: _median_run(rounds) for label, rounds in done.items()}
    return {
        "size_mib": round(size / (1 << 20), 2),
        "rate_mbit": rate_mbit,
        "receivers": n,
        "runs": runs,
        "one_s": median["one"]["seconds"],
        "many_s": median["many"]["seconds"],
        "copies_s": median["copies"]["seconds"],
        "ratio": round(median["many"]["seconds"] / median["one"]["seconds"], 2),
        "copies_ratio": round(median["copies"]["seconds"] / median["one"]["seconds"], 2),
        "one_mb_per_s": round(size / median["one"]["seconds"] / 1e6, 1),
        "link_mb_per_s": round(rate_mbit / 8, 1),
        "all_s": {label: [r["seconds"] for r in rounds] for label, rounds in done.items()},
        "phases": median,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=128 << 20, help="file size, e.g. 256M (default 128 MiB)")
    parser.add_argument("--rate", type=int, default=200, help="access-link rate in Mbit/s, each direction (default 200)")
    parser.add_argument("--receivers", type=int, default=5, help="receivers (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the three timings; the median counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if min(args.size, args.rate, args.receivers, args.runs) < 1:
        parser.error("--size, --rate, --receivers and --runs must be positive")
    if os.geteuid() != 0:
        print("sendfile_fanout_lab: skipped: building the lab needs root (network namespaces, tc)", file=sys.stderr)
        return 1
    try:
        result = measure(args.size, args.rate, args.receivers, args.runs)
    except LabError as exc:
        print(f"sendfile_fanout_lab: {exc} (code {exc.code})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['size_mib']} MiB, access links {args.rate} Mbit/s ({result['link_mb_per_s']} MB/s) each way")
    for label in ("one", "many", "copies"):
        p = result["phases"][label]
        cpu = " ".join(f"{k}={v}" for k, v in p["cpu_s"].items())
        runs = ", ".join(f"{t:.2f}" for t in result["all_s"][label])
        print(f"{label:7s} {p['seconds']:7.2f} s (runs: {runs})   CPU s: {cpu}   busiest "
              f"{p['max_cpu_share']:.0%} of a core, machine {p['host_cores_busy']} cores busy")
    print(f"chain / one = {result['ratio']}   copies / one = {result['copies_ratio']}   (medians; goal: chain <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
