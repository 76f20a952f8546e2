"""Congestion controllers behind one small interface.

The connection and its loss detection decide *when* something happened
(bytes delivered, a loss episode began, a retransmission timeout); a
controller only decides what ``cwnd`` becomes. Adding CUBIC or BBR is adding a
module here and a line in :data:`CONTROLLERS`.
"""

from __future__ import annotations

from typing import Callable, Protocol

from pilotgw.overlay.stream.congestion.newreno import NewReno


class CongestionController(Protocol):
    """What the connection needs from a controller. Sizes are bytes."""

    #: Congestion window: the sender keeps ``pipe < cwnd``.
    cwnd: int
    ssthresh: int
    #: Segment size in bytes; the connection updates it when the loss-adaptive
    #: sizing changes the size of new segments.
    mss: int

    def on_ack(self, delivered: int, now: float, rtt: float) -> None:
        """``delivered`` bytes newly acknowledged or SACKed outside recovery,
        while the sender was using its whole window."""

    def on_congestion(self, now: float, flight: int) -> None:
        """A loss episode starts (at most once per window of data)."""

    def on_timeout(self, now: float, flight: int) -> None:
        """The retransmission timer fired: collapse to the loss window."""

    def on_local_drop(self, now: float, pipe: int) -> None:
        """The local queue refused packets while ``pipe`` bytes were in
        flight (sent and not yet acknowledged, SACKed or lost): that is all
        the path and our own queue hold, so the window must not exceed it.
        Called for every refusal, in a loss episode or not."""


#: Name (``StreamOptions.congestion``) -> factory taking (mss, initial window in bytes).
CONTROLLERS: dict[str, Callable[[int, int], CongestionController]] = {
    "newreno": NewReno,
}


def new_controller(name: str, mss: int, initial_window: int) -> CongestionController:
    """Build the named controller; ``ValueError`` for an unknown name."""
    try:
        factory = CONTROLLERS[name]
    except KeyError:
        raise ValueError(f"unknown congestion controller {name!r}; known: {sorted(CONTROLLERS)}") from None
    return factory(mss, initial_window)
