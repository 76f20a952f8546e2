"""Reference defects of the stream layer that the main connection tests do
not pin down (tunnel-and-transport.md Part 3); see docs/conformance.md."""

from __future__ import annotations

import pytest

from pilotgw.overlay.stream.states import State

from .stream_helpers import ACK, FIN, A, B, events, handshake, kinds, pkt


def test_td3b_fin_before_expected_seq_is_ignored():
    _, s = handshake()
    s.receive(pkt(ACK, 1, 1, 512, b"0123456789", src=A, dst=B), 0.0)  # ExpectedSeq is now 11
    assert kinds(events(s)) == ["DataReceived"]
    s.receive(pkt(FIN, 5, 0, 0, src=A, dst=B), 0.1)  # a genuine FIN is never before ExpectedSeq
    assert s.state is State.ESTABLISHED
    assert "StreamEnded" not in kinds(events(s))
    s.receive(pkt(ACK, 11, 1, 512, b"more", src=A, dst=B), 0.2)  # the stream goes on
    assert s.read() == b"0123456789more"


def test_td3b_fin_at_expected_seq_still_ends_the_stream():
    """The control for the test above: the FIN a reference peer sends."""
    _, s = handshake()
    s.receive(pkt(ACK, 1, 1, 512, b"0123456789", src=A, dst=B), 0.0)
    s.receive(pkt(FIN, 11, 0, 0, src=A, dst=B), 0.1)
    assert kinds(events(s)) == ["DataReceived", "StreamEnded"] and s.state is State.CLOSE_WAIT
