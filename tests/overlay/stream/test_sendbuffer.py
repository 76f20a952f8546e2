"""Segment cutting and the SACK-safety split (T-D11)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pilotgw.overlay.sack import looks_like_sack
from pilotgw.overlay.stream.sendbuffer import SendBuffer


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=50) | st.sampled_from([b"SACK\x01", b"SACK\x04" + bytes(40), b"SACK"]), max_size=30), st.integers(1, 64))
def test_cutting_preserves_the_bytes_and_never_yields_a_sack_lookalike(chunks, limit):
    sb = SendBuffer()
    for c in chunks:
        sb.write(c)
    out = []
    while sb.size:
        seg = sb.cut(limit)
        assert 1 <= len(seg) <= limit and not looks_like_sack(seg)
        out.append(seg)
    assert b"".join(out) == b"".join(chunks)


def test_sack_lookalike_is_sent_as_four_bytes_first():
    sb = SendBuffer()
    sb.write(b"SACK\x01" + bytes(8) + b"rest")
    assert sb.cut(4096) == b"SACK"
    assert sb.cut(4096) == b"\x01" + bytes(8) + b"rest"


def test_short_sack_prefix_is_not_split():
    sb = SendBuffer()
    sb.write(b"SACK\x02" + bytes(10))  # count 2 needs 21 bytes: not a SACK
    assert sb.cut(4096) == b"SACK\x02" + bytes(10)
