"""Replay window: reference decisions (§2.7, TV-7), read-only check (T-D2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay.replay import WINDOW_SIZE, ReplayWindow, Verdict

# TV-7: counter, decision, max afterwards.
TV7 = [
    (1, Verdict.NEW, 1),
    (3, Verdict.NEW, 3),
    (2, Verdict.NEW, 3),
    (2, Verdict.REPLAY, 3),
    (300, Verdict.NEW, 300),
    (44, Verdict.TOO_OLD, 300),
    (45, Verdict.NEW, 300),
    (45, Verdict.REPLAY, 300),
    (301, Verdict.NEW, 301),
    (1000, Verdict.NEW, 1000),
    (744, Verdict.TOO_OLD, 1000),
    (745, Verdict.NEW, 1000),
]


def test_tv7_reference_decisions() -> None:
    w = ReplayWindow()
    for counter, decision, max_after in TV7:
        assert w.check(counter) is decision, counter
        if decision is Verdict.NEW:
            w.commit(counter)
        assert w.max == max_after


def test_check_is_read_only() -> None:
    w = ReplayWindow()
    w.commit(10)
    # A forged frame's counter is only checked, never committed: nothing moves.
    assert w.check(2**63) is Verdict.NEW
    assert w.max == 10
    assert w.check(9) is Verdict.NEW
    assert w.check(10) is Verdict.REPLAY


@pytest.mark.parametrize("committed", [[], [1], [5, 7]])
def test_counter_zero_always_refused(committed: list[int]) -> None:
    w = ReplayWindow()
    for c in committed:
        w.commit(c)
    assert w.check(0) is Verdict.ZERO


def test_commit_of_refused_counters_changes_nothing() -> None:
    w = ReplayWindow()
    w.commit(1000)
    w.commit(0)
    w.commit(1000 - WINDOW_SIZE)
    assert w.max == 1000
    assert w.check(1000 - WINDOW_SIZE + 1) is Verdict.NEW
    assert w.check(999) is Verdict.NEW


def test_window_edge() -> None:
    w = ReplayWindow()
    w.commit(WINDOW_SIZE)
    assert w.check(1) is Verdict.NEW  # age 255: still inside
    w.commit(WINDOW_SIZE + 1)
    assert w.check(1) is Verdict.TOO_OLD  # age 256


class _ReferenceWindow:
    """The reference algorithm of §2.7, slot by slot (bit(x) = x mod 256)."""

    def __init__(self) -> None:
        self.max = 0
        self.bits = [False] * WINDOW_SIZE

    def accept(self, c: int) -> bool:
        if self.max == 0:
            self.max = c
            self.bits[c % WINDOW_SIZE] = True
            return True
        if c > self.max:
            shift = c - self.max
            if shift >= WINDOW_SIZE:
                self.bits = [False] * WINDOW_SIZE
            else:
                for s in range(shift):
                    self.bits[(c - s) % WINDOW_SIZE] = False
            self.max = c
            self.bits[c % WINDOW_SIZE] = True
            return True
        if self.max - c >= WINDOW_SIZE:
            return False
        if self.bits[c % WINDOW_SIZE]:
            return False
        self.bits[c % WINDOW_SIZE] = True
        return True


counters = st.one_of(st.integers(1, 600), st.integers(1, 2**64 - 1))


@settings(max_examples=300)
@given(st.lists(st.one_of(st.integers(1, 700), counters), max_size=80))
def test_matches_reference_when_every_frame_authenticates(seq: list[int]) -> None:
    ours, ref = ReplayWindow(), _ReferenceWindow()
    for c in seq:
        verdict = ours.check(c)
        if verdict is Verdict.NEW:
            ours.commit(c)
        assert (verdict is Verdict.NEW) == ref.accept(c), c
        assert ours.max == ref.max


@settings(max_examples=300)
@given(st.lists(st.integers(1, 700), max_size=60), st.lists(st.integers(0, 2**64 - 1), max_size=20))
def test_checks_without_commit_never_change_decisions(genuine: list[int], forged: list[int]) -> None:
    clean, probed = ReplayWindow(), ReplayWindow()
    for c in genuine:
        for f in forged:
            probed.check(f)  # forged frames: checked, fail GCM, never committed
        a, b = clean.check(c), probed.check(c)
        assert a is b
        if a is Verdict.NEW:
            clean.commit(c)
            probed.commit(c)
