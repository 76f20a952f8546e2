"""Connection states and the transitions between them, written down as data.

The numbering follows the reference's (§2.11) where it has the state. Unlike
the reference we use FIN_WAIT, CLOSE_WAIT and CLOSING, because we linger for
unacknowledged data before our FIN and keep receiving after it (T-D10):

* ``SYN_SENT``: dialled, waiting for a SYN-ACK whose Ack is 1.
* ``ESTABLISHED``: both directions open. A responder is here as soon as it
  sent the SYN-ACK, like the reference.
* ``FIN_WAIT``: we called close(); our data drains, then the FIN goes out and
  is retransmitted until the peer's FIN|ACK (or FIN). We keep receiving.
* ``CLOSE_WAIT``: the peer's bare FIN arrived first; our application may
  still send (half-close). Its FIN|ACK waits for our close().
* ``CLOSING``: both sides closed and the peer's FIN is unanswered; our data
  drains, then a single FIN|ACK answers the peer and serves as our FIN.
* ``TIME_WAIT``: finished, kept a while to absorb stray packets.
* ``CLOSED``: nothing left; the owner may drop the object.
"""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    CLOSED = 0
    SYN_SENT = 2
    ESTABLISHED = 4
    FIN_WAIT = 5
    CLOSE_WAIT = 6
    TIME_WAIT = 7
    CLOSING = 8


S = State

#: Every allowed transition. :meth:`Connection._set_state` refuses anything else.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.SYN_SENT: frozenset({S.ESTABLISHED, S.CLOSED}),
    S.ESTABLISHED: frozenset({S.FIN_WAIT, S.CLOSE_WAIT, S.TIME_WAIT, S.CLOSED}),
    S.FIN_WAIT: frozenset({S.CLOSING, S.TIME_WAIT, S.CLOSED}),
    S.CLOSE_WAIT: frozenset({S.CLOSING, S.TIME_WAIT, S.CLOSED}),
    S.CLOSING: frozenset({S.TIME_WAIT, S.CLOSED}),
    S.TIME_WAIT: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}

#: States in which the application may call ``send()``.
CAN_SEND = frozenset({S.ESTABLISHED, S.CLOSE_WAIT})
#: States that process ACKs, SACK and data (the "ACK branch" of §1.11.9).
SYNCHRONIZED = frozenset({S.ESTABLISHED, S.FIN_WAIT, S.CLOSE_WAIT, S.CLOSING})
#: States in which data from the peer is still accepted (before its FIN).
RECEIVING = frozenset({S.ESTABLISHED, S.FIN_WAIT})
#: States in which our own data (and FIN) may still be outstanding.
SENDING = frozenset({S.ESTABLISHED, S.FIN_WAIT, S.CLOSE_WAIT, S.CLOSING})


class StreamStateError(RuntimeError):
    """An application call that the current state does not allow
    (``send()`` after close, ``close()`` before dial completes...).
    ``code`` is ``"state"``."""

    def __init__(self, message: str, code: str = "state") -> None:
        super().__init__(message)
        self.code = code
