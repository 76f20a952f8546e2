"""Shared scaffolding for the stream tests: two addresses, a handshake, and
a tiny driver that shuttles packets between two connections (optionally
dropping some) under a manual clock."""

from __future__ import annotations

from typing import Callable, Iterable

from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.packet import FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, PROTO_STREAM, Packet
from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.events import Event
from pilotgw.overlay.stream.options import StreamOptions

A = SocketAddr(Addr(0, 1), 49152)  # the dialler
B = SocketAddr(Addr(0, 2), 1000)  # the responder

SYN, ACK, FIN, RST = FLAG_SYN, FLAG_ACK, FLAG_FIN, FLAG_RST


def pkt(flags: int, seq: int = 0, ack: int = 0, window: int = 512, payload: bytes = b"", src: SocketAddr = B, dst: SocketAddr = A) -> Packet:
    """A stream packet as a peer at ``src`` would send it to ``dst``."""
    return Packet(PROTO_STREAM, flags, src.addr.network, src.addr.node, dst.addr.network, dst.addr.node, src.port, dst.port, seq, ack, window, payload)


def events(conn: Connection) -> list[Event]:
    out = []
    ev = conn.next_event()
    while ev is not None:
        out.append(ev)
        ev = conn.next_event()
    return out


def kinds(evs: Iterable[Event]) -> list[str]:
    return [type(e).__name__ for e in evs]


def handshake(now: float = 0.0, copts: StreamOptions | None = None, sopts: StreamOptions | None = None) -> tuple[Connection, Connection]:
    """Dial A -> B and complete the handshake; events are drained."""
    c = Connection.dial(A, B, now, copts)
    (syn,) = c.packets_to_send(now)
    s = Connection.accept(B, A, syn, now, sopts)
    for p in s.packets_to_send(now):
        c.receive(p, now)
    for p in c.packets_to_send(now):
        s.receive(p, now)
    events(c)
    events(s)
    return c, s


class Wire:
    """Moves packets between two connections; records every packet per side.

    ``drop(side, packet)`` returning true loses that packet.
    """

    def __init__(self, c: Connection, s: Connection, drop: Callable[[int, Packet], bool] | None = None) -> None:
        self.ends = (c, s)
        self.sent: tuple[list[Packet], list[Packet]] = ([], [])
        self.drop = drop
        self.now = 0.0

    def pump(self, now: float | None = None, rounds: int = 10_000) -> None:
        """Exchange until neither side has anything to send."""
        if now is not None:
            self.now = now
        for _ in range(rounds):
            moved = False
            for side in (0, 1):
                for p in self.ends[side].packets_to_send(self.now):
                    moved = True
                    self.sent[side].append(p)
                    if self.drop is None or not self.drop(side, p):
                        self.ends[1 - side].receive(p, self.now)
            if not moved:
                return
        raise AssertionError("packets kept flowing")

    def advance(self, until: float, step_cb: Callable[[], None] | None = None) -> None:
        """Run both connections' timers up to ``until`` (pumping after each)."""
        while True:
            ts = [t for t in (e.next_timer() for e in self.ends) if t is not None]
            if not ts or min(ts) > until:
                self.now = until
                return
            self.now = max(self.now, min(ts))
            for e in self.ends:
                t = e.next_timer()
                if t is not None and t <= self.now:
                    e.timer_expired(self.now)
            self.pump()
            if step_cb is not None:
                step_cb()
