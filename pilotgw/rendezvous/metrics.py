"""Counters for ``/metrics`` and ``/api/stats``, and their Prometheus text.

Labels come only from a closed set: an unknown request ``type`` is counted
as ``unknown`` (R-D10), so a client cannot grow the label space.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        """registrations, deregistrations, trust_reports, ... (``pilot_<name>_total``)."""
        self.beacon: Counter[str] = Counter()
        """Beacon packets by kind and drops by reason (``beacon_<name>``)."""
        self.relay_bytes = 0
        self.relay_packets = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def _label(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def prometheus_text(metrics: Metrics, gauges: Iterable[tuple[str, str, float]]) -> str:
    """Prometheus text format 0.0.4. ``gauges`` are (name, help, value)."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    family("pilot_requests_total", "counter", "Registry requests by message type.")
    for kind, n in sorted(metrics.requests.items()):
        out.append(f"pilot_requests_total{{type={_label(kind)}}} {n}")
    family("pilot_errors_total", "counter", "Registry error replies by message type.")
    for kind, n in sorted(metrics.errors.items()):
        out.append(f"pilot_errors_total{{type={_label(kind)}}} {n}")
    for name in sorted(metrics.events):
        family(f"pilot_{name}_total", "counter", f"Count of {name.replace('_', ' ')}.")
        out.append(f"pilot_{name}_total {metrics.events[name]}")
    family("pilot_beacon_packets_total", "counter", "Beacon datagrams by outcome.")
    for kind, n in sorted(metrics.beacon.items()):
        out.append(f"pilot_beacon_packets_total{{kind={_label(kind)}}} {n}")
    family("pilot_relay_bytes_total", "counter", "Bytes forwarded by the beacon relay.")
    out.append(f"pilot_relay_bytes_total {metrics.relay_bytes}")
    family("pilot_relay_packets_total", "counter", "Datagrams forwarded by the beacon relay.")
    out.append(f"pilot_relay_packets_total {metrics.relay_packets}")
    for name, help_text, value in gauges:
        family(name, "gauge", help_text)
        out.append(f"{name} {int(value) if float(value).is_integer() else value}")
    return "\n".join(out) + "\n"
