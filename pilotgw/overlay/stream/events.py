"""What a stream connection tells its owner (the daemon, a test, the simulator).

Events are small frozen classes in the style of h11: the owner drains them
with :meth:`Connection.next_event` after feeding input and reacts by type.
Data itself is not carried in an event: it waits in the connection's receive
buffer until the owner calls ``read()``, so the advertised window reflects
what the application has not consumed yet (that is the backpressure).
"""

from __future__ import annotations

from dataclasses import dataclass


class Event:
    """Base class, so an owner can annotate ``Event | None``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Established(Event):
    """The handshake completed (dialler: valid SYN-ACK; responder: SYN-ACK sent)."""


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """New in-order bytes are readable.

    Edge-triggered: emitted once, then not again until the owner has called
    ``read()``, so a fast sender costs one event per batch, not per segment.
    """


@dataclass(frozen=True, slots=True)
class StreamEnded(Event):
    """The peer closed its direction and every byte before its FIN arrived.

    Data may still be waiting in the receive buffer; ``read()`` returns it and
    then ``b""``.
    """


@dataclass(frozen=True, slots=True)
class SendBufferLow(Event):
    """The send buffer drained below half of ``StreamOptions.send_buffer``
    after having been at or above it: a paused writer may resume."""


@dataclass(frozen=True, slots=True)
class ConnectionReset(Event):
    """The peer sent RST on an open connection."""


@dataclass(frozen=True, slots=True)
class StreamError(Event):
    """The connection failed; ``code`` is machine-readable.

    Codes: ``refused`` (RST answering our SYN), ``dial_timeout`` (no SYN-ACK),
    ``timeout`` (retransmissions exhausted; we sent RST), ``idle_timeout``
    (nothing received for ``idle_timeout``; we sent FIN), ``linger_timeout``
    (our data was not acknowledged within ``linger`` of close(); we sent RST),
    ``truncated`` (the peer's FIN arrived with data missing before it),
    ``peer_closed`` (the peer closed while our data was still unacknowledged).
    """

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Closed(Event):
    """The connection reached CLOSED: it holds no state a peer can still
    reach, and the owner may drop it from its table. Always the last event."""
