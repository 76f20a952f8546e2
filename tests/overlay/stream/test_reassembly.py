"""Receive-side reassembly: by byte range, overlaps trimmed, nothing lost."""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from pilotgw.overlay.stream.reassembly import DROPPED, DUPLICATE, FILLED, IN_ORDER, OUT_OF_ORDER, ReceiveBuffer

DATA = bytes(random.Random(5).randrange(256) for _ in range(3000))


def buf(**kw) -> ReceiveBuffer:
    return ReceiveBuffer(1, kw.get("hard", 1 << 20), kw.get("ooo", 1 << 20), kw.get("span", 1 << 20))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2999), st.integers(1, 700)), min_size=1, max_size=40), st.randoms())
def test_any_arrival_order_and_overlap_yields_the_exact_stream(pieces, rnd):
    rb = buf()
    # Arbitrary overlapping pieces, then everything once in a shuffled order.
    segs = [(lo, min(lo + n, 3000)) for lo, n in pieces] + [(i, min(i + 500, 3000)) for i in range(0, 3000, 500)]
    rnd.shuffle(segs)
    for lo, hi in segs:
        rb.add(1 + lo, DATA[lo:hi])
    assert rb.read() == DATA and rb.nxt == 3001 and not rb.ranges and not rb.pieces and rb.ooo_bytes == 0


def test_result_codes():
    rb = buf()
    assert rb.add(1, b"abc") == IN_ORDER
    assert rb.add(1, b"abc") == DUPLICATE
    assert rb.add(10, b"xyz") == OUT_OF_ORDER
    assert rb.add(10, b"xyz") == DUPLICATE
    assert rb.add(4, b"defghi") == FILLED
    assert rb.read() == b"abcdefghixyz"


def test_partially_new_segment_keeps_its_new_bytes():
    rb = buf()
    rb.add(1, b"hello")
    assert rb.add(3, b"llo world") == IN_ORDER  # the reference would drop it whole
    assert rb.read() == b"hello world"


def test_limits_drop_instead_of_growing():
    rb = buf(hard=10, ooo=5, span=100)
    assert rb.add(1, b"0123456789") == IN_ORDER
    assert rb.add(11, b"x") == DROPPED  # unread in-order bytes at the hard cap
    assert rb.add(50, b"123456") == DROPPED  # out-of-order cap
    assert rb.add(200, b"1") == DROPPED  # too far ahead
    assert rb.nxt == 11


def test_sack_blocks_latest_first_then_lowest():
    rb = buf()
    for start in (100, 200, 300, 400, 500, 600):
        rb.add(start, b"ab")
    rb.add(350, b"z")
    assert rb.sack_blocks() == [(350, 351), (100, 102), (200, 202), (300, 302)]


def test_partial_reads():
    rb = buf()
    rb.add(1, b"abcdef")
    rb.add(7, b"ghij")
    assert rb.read(3) == b"abc" and rb.read(5) == b"defgh" and rb.ready_bytes == 2 and rb.read() == b"ij"
    assert rb.read() == b""
