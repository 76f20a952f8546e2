"""RFC 6298 arithmetic with the reference's constants."""

from __future__ import annotations

import pytest

from pilotgw.overlay.stream.rtt import RttEstimator


def test_first_and_later_samples():
    r = RttEstimator(1.0, 0.2, 10.0)
    assert r.rto == 1.0 and not r.has_sample
    r.sample(0.1)
    assert (r.srtt, r.rttvar) == (0.1, 0.05) and r.rto == pytest.approx(0.3)
    r.sample(0.2)
    assert r.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1) and r.srtt == pytest.approx(0.1125)


def test_rto_is_clamped_and_backs_off_until_the_next_sample():
    r = RttEstimator(1.0, 0.2, 10.0)
    r.sample(0.001)
    assert r.rto == 0.2
    for _ in range(10):
        r.on_timeout()
    assert r.current_rto() == 10.0
    r.sample(0.001)
    assert r.current_rto() == 0.2 and r.min_rtt == 0.001
