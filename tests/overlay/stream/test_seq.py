"""Unwrapping 32-bit wire sequence numbers around a known point."""

from __future__ import annotations

from hypothesis import given, strategies as st

from pilotgw.overlay.stream.seq import HALF, MASK, unwrap


@given(st.integers(0, 1 << 40), st.integers(-(HALF - 1), HALF - 1))
def test_unwrap_inverts_masking_within_half_the_space(near, delta):
    target = near + delta
    if target >= 0:
        assert unwrap(target & MASK, near) == target


def test_wire_comparison_matches_the_contract():
    assert unwrap(5, (1 << 32) - 10) == (1 << 32) + 5  # after the wrap
    assert unwrap(MASK, 3) == -1  # before
