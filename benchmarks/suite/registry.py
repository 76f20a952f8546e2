"""Every scenario of the suite (issue 10, item 2) with its baseline and goal.

Scenarios whose program has not landed yet are listed all the same: the
runner reports them as "skipped: <script> not in the tree yet" until the
file exists, and then runs them without further change here as long as the
program prints the JSON keys named below. Goals are the ones the other
issues set; MB/s means 10^6 bytes per second throughout.
"""

from __future__ import annotations

import re
from typing import Any

from benchmarks.suite.model import Goal, Metric, Program, Scenario

_BEST = re.compile(r"^(?P<mode>.+?)\s+best:\s+(?P<us>[0-9.]+) µs per segment", re.MULTILINE)
_STREAM_CPU_MODES = {"batched ACKs": "batched_us", "ACK per 2 segments": "ack_per_2_us"}


def parse_stream_cpu(stdout: str) -> dict[str, Any]:
    """Figures of ``stream_cpu.py``, which prints text only: its "best:" line per mode.

    Raises ``ValueError`` when a mode's line is missing.
    """
    found = {_STREAM_CPU_MODES[m["mode"]]: float(m["us"]) for m in _BEST.finditer(stdout) if m["mode"] in _STREAM_CPU_MODES}
    missing = sorted(set(_STREAM_CPU_MODES.values()) - set(found))
    if missing:
        raise ValueError(f"no 'best:' line for {', '.join(missing)}")
    return found


def _daemon_stream(mib: int, quick_mib: int) -> Program:
    return Program(
        "benchmarks/daemon_throughput.py",
        ("--size", str(mib << 20), "--json"),
        ("--size", str(quick_mib << 20), "--json"),
        size=_size(mib),
        quick_size=_size(quick_mib),
        requires=("pilot-daemon", "pilot-rendezvous"),
    )


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def _tcp_loopback(mib: int, quick_mib: int) -> Program:
    return Program(
        "benchmarks/tcp_loopback.py",
        ("--mib", str(mib), "--json"),
        ("--mib", str(quick_mib), "--json"),
        size=_size(mib),
        quick_size=_size(quick_mib),
    )


def _sendfile(*args: str, quick_args: tuple[str, ...] | None, size: str, quick_size: str | None) -> Program:
    return Program(
        "benchmarks/sendfile_fanout.py",
        (*args, "--json"),
        (*quick_args, "--json") if quick_args else None,
        size=size,
        quick_size=quick_size,
        requires=("pilot-daemon", "pilot-rendezvous"),
    )


def _lab_program(which: str, loss: float, mib: int, quick_mib: int) -> Program:
    """One row of ``lab_sendfile.py``: ``which`` is "pilot" or "tcp" (the baseline)."""
    return Program(
        "benchmarks/lab_sendfile.py",
        ("--only", which, "--mib", str(mib), "--loss", f"{loss:g}", "--json"),
        ("--only", which, "--mib", str(quick_mib), "--loss", f"{loss:g}", "--json"),
        size=f"{_size(mib)}, MTU 1500, {loss:g} % loss",
        quick_size=f"{_size(quick_mib)}, MTU 1500, {loss:g} % loss",
        needs_root=True,
        requires=("nft", "ip"),
    )


def _aesgcm_baseline() -> Program:
    return Program("benchmarks/overlay_segment.py", ("--n", "5000", "--runs", "1", "--json"), size="4096 B")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "stream-loopback",
        _daemon_stream(1024, 128),
        (
            Metric("throughput", "MB/s", "mb_per_s", "mb_per_s", Goal(">=", 300)),
            Metric("sender daemon peak RSS", "MB", "rss_peak_mb.sender", goal=Goal("<", 150)),
            Metric("receiver daemon peak RSS", "MB", "rss_peak_mb.receiver", goal=Goal("<", 150)),
        ),
        baseline=_tcp_loopback(1024, 128),
        baseline_label="plain TCP loopback, 1 MiB writes",
        note="two daemons on loopback, encrypted",
    ),
    Scenario(
        "sendfile-5",
        _sendfile("--size-mib", "1024", "--receivers", "5", quick_args=("--size-mib", "64", "--receivers", "5"), size="1 GiB", quick_size="64 MiB"),
        (
            Metric("time to 5 receivers", "s", "many_s", "one_s", Goal("<=", 1.5, on="ratio")),
            Metric("daemon peak RSS", "MB", "max_daemon_rss_mb", goal=Goal("<", 150)),
        ),
        baseline_label="send-file to 1 receiver (same run, just before)",
        note="bulk chain through the receivers",
    ),
    Scenario(
        "sendfile-5-lab",
        Program(
            "benchmarks/sendfile_fanout_lab.py",
            ("--size", "128M", "--rate", "200", "--json"),
            ("--size", "32M", "--rate", "200", "--runs", "1", "--json"),
            size="128 MiB, 200 Mbit/s links, median of 3",
            quick_size="32 MiB, 200 Mbit/s links, 1 run",
            needs_root=True,
            requires=("pilot-daemon", "pilot-rendezvous", "pilotctl", "nft", "ip"),
        ),
        (
            Metric("time to 5 receivers (chain)", "s", "many_s", "one_s", Goal("<=", 1.5, on="ratio")),
            Metric("5 copies from the sender", "s", "copies_s", "one_s"),
        ),
        baseline_label="send-file to 1 receiver (same run)",
        repeat=1,
        note="netns lab, every access link capped by tc tbf; links, not CPU, the limit",
    ),
    Scenario(
        "echo",
        Program(
            "benchmarks/daemon_echo.py",
            ("--count", "5000", "--json"),
            ("--count", "1000", "--json"),
            size="5000 probes",
            quick_size="1000 probes",
            requires=("pilot-daemon", "pilot-rendezvous"),
        ),
        (
            Metric("round trip p50", "ms", "p50_ms", "p50_ms", Goal("<=", 0.3)),
            Metric("round trip p99", "ms", "p99_ms", "p99_ms"),
        ),
        baseline=Program(
            "benchmarks/udp_echo.py",
            ("--count", "5000", "--json"),
            ("--count", "1000", "--json"),
            size="5000 probes",
            quick_size="1000 probes",
        ),
        baseline_label="UDP echo between two Python processes",
        note="over an established tunnel",
    ),
    Scenario(
        "gateway",
        Program(
            "benchmarks/gateway_bench.py",
            ("--size-mib", "1024", "--parallel", "200", "--json"),
            ("--size-mib", "128", "--parallel", "50", "--latency-count", "20", "--json"),
            size="1 GiB, 200 parallel",
            quick_size="128 MiB, 50 parallel",
            needs_root=True,
            requires=("pilot-gateway", "pilot-daemon", "curl"),
        ),
        (
            Metric("curl via 10.4.0.x", "MB/s", "gateway_mb_s", "direct_mb_s", Goal(">=", 0.8, on="ratio")),
            Metric("parallel curls byte-exact", "count", "parallel.byte_exact"),
            Metric("first byte through gateway", "ms", "connect.first_byte_ms_median"),
        ),
        baseline_label="the same stream daemon to daemon (same run, same lab)",
        note="demo lab: gateway and agent behind two NATs",
    ),
    Scenario(
        "lab",
        _lab_program("pilot", 0, 256, 64),
        (Metric("throughput", "MB/s", "mb_per_s", "mb_per_s", Goal(">=", 100)),),
        baseline=_lab_program("tcp", 0, 256, 64),
        baseline_label="plain TCP across the same lab path",
        note="netns NAT lab, port-restricted NAT",
    ),
    Scenario(
        "lab-loss2",
        _lab_program("pilot", 2, 128, 32),
        (Metric("throughput", "MB/s", "mb_per_s", "mb_per_s"),),
        baseline=_lab_program("tcp", 2, 128, 32),
        baseline_label="plain TCP across the same lab path",
        note="2 % random loss on the sender's uplink",
    ),
    Scenario(
        "rendezvous",
        Program(
            "benchmarks/rendezvous_load.py",
            ("--json",),
            ("--nodes", "2000", "--heartbeats", "1", "--scale-nodes", "20000", "--json"),
            size="10k nodes, RSS at 100k",
            quick_size="2k nodes, RSS at 20k",
            requires=("pilot-rendezvous",),
        ),
        (
            Metric("register", "req/s", "phases.register.req_per_s"),
            Metric("heartbeat+resolve", "req/s", "phases.steady.req_per_s"),
            Metric("server RSS at scale", "MB", "rss_mb_at_scale"),
        ),
    ),
    Scenario(
        "overlay-segment",
        Program(
            "benchmarks/overlay_segment.py",
            ("--n", "20000", "--runs", "1", "--json"),
            ("--n", "5000", "--runs", "1", "--json"),
            size="4096 B",
        ),
        (Metric("codec+crypto round trip", "µs/seg", "round_trip_us", "aesgcm_baseline_us", Goal("<", 15)),),
        baseline_label="raw AES-GCM enc+dec, same buffer (same run)",
    ),
    Scenario(
        "stream-cpu",
        Program(
            "benchmarks/stream_cpu.py",
            ("--mib", "64", "--repeat", "1"),
            ("--mib", "16", "--repeat", "1"),
            size="64 MiB, 4096 B segments",
            quick_size="16 MiB, 4096 B segments",
            parse=parse_stream_cpu,
        ),
        (
            Metric("state machines, batched ACKs", "µs/seg", "batched_us", "aesgcm_baseline_us", Goal("<", 10)),
            Metric("state machines, ACK per 2 seg", "µs/seg", "ack_per_2_us", "aesgcm_baseline_us"),
        ),
        baseline=_aesgcm_baseline(),
        baseline_label="raw AES-GCM enc+dec, 4096 B",
    ),
    Scenario(
        "daemon-rss-4g",
        _sendfile("--sparse-gib", "4", quick_args=None, size="4 GiB sparse file", quick_size=None),
        (
            Metric("daemon peak RSS", "MB", "max_daemon_rss_mb", goal=Goal("<", 150)),
            Metric("send-file rate", "MiB/s", "sparse_mib_per_s"),
        ),
        quick=False,
        repeat=1,
        note="send-file of 4 GiB to one receiver",
    ),
    Scenario(
        "idle-cpu",
        Program(
            "benchmarks/daemon_idle.py",
            ("--streams", "1000", "--json"),
            size="1000 streams",
            requires=("pilot-daemon", "pilot-rendezvous"),
        ),
        (Metric("idle CPU after close", "%", "idle_cpu_percent"),),
        quick=False,
        note="CPU of both daemons after 1,000 streams opened and closed",
    ),
)


def by_name(names: list[str]) -> list[Scenario]:
    """The named scenarios in registry order; ``KeyError`` lists unknown names."""
    known = {s.name for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown scenario(s) {', '.join(unknown)} (have: {', '.join(sorted(known))})")
    return [s for s in SCENARIOS if s.name in names]
