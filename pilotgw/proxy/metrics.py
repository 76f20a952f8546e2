"""Per-mapping counters (issue 8 item 6): what an operator asks of a gateway.

"Bytes to the overlay" is what local clients sent to the agent; "bytes from
the overlay" is what the agent sent back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class MappingMetrics:
    connections: int = 0
    active_connections: int = 0
    bytes_to_overlay: int = 0
    bytes_from_overlay: int = 0
    errors: int = 0
    datagrams_to_overlay: int = 0
    datagrams_from_overlay: int = 0
    pings_answered: int = 0
    pings_unanswered: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
