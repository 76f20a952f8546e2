"""Sliding replay window for PILS counters (tunnel-and-transport.md §2.7, T-D2).

Decisions match the reference receiver's 256-counter window: a counter above
the highest one seen is new, one 256 or more below it is too old, anything in
between is new unless it was already recorded. What differs is *when* state
changes (T-D2): the reference marks a counter before GCM authentication, so one
forged frame carrying counter 2^63 kills the tunnel. Here :meth:`check` is
read-only and :meth:`commit` is called only after the frame authenticated, so
unauthenticated bytes never move the window. Counter 0, which a reference
sender never uses (it increments before use), is always refused.

The bitmap is a Python int relative to ``max``: bit ``i`` stands for counter
``max - i``. Advancing is one shift and mask, with no per-slot loop.
"""

from __future__ import annotations

import enum

WINDOW_SIZE = 256
_MASK = (1 << WINDOW_SIZE) - 1


class Verdict(enum.Enum):
    """What the window says about a counter, before any state change."""

    NEW = "new"
    REPLAY = "replay"
    TOO_OLD = "too_old"
    ZERO = "zero"


class ReplayWindow:
    """Counters accepted from one sender nonce prefix under one key."""

    __slots__ = ("_max", "_bits")

    def __init__(self) -> None:
        self._max = 0
        self._bits = 0

    @property
    def max(self) -> int:
        """Highest committed counter (0 before the first commit)."""
        return self._max

    def check(self, counter: int) -> Verdict:
        """Classify ``counter`` without changing the window."""
        top = self._max
        if counter > top:
            return Verdict.NEW
        if counter == 0:
            return Verdict.ZERO
        age = top - counter
        if age >= WINDOW_SIZE:
            return Verdict.TOO_OLD
        if (self._bits >> age) & 1:
            return Verdict.REPLAY
        return Verdict.NEW

    def commit(self, counter: int) -> None:
        """Record an authenticated ``counter``.

        Call it only after :meth:`check` returned :attr:`Verdict.NEW` for the
        same counter. Committing a counter that is too old, or 0, changes
        nothing, so a caller mistake can never widen what the window accepts.
        """
        top = self._max
        if counter > top:
            shift = counter - top
            self._bits = ((self._bits << shift) | 1) & _MASK if shift < WINDOW_SIZE else 1
            self._max = counter
        elif counter > 0:
            age = top - counter
            if age < WINDOW_SIZE:
                self._bits |= 1 << age
