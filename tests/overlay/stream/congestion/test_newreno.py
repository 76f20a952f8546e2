"""NewReno window arithmetic and the controller registry."""

from __future__ import annotations

import pytest

from pilotgw.overlay.stream.congestion import new_controller


def test_slow_start_then_halving_then_linear_growth():
    cc = new_controller("newreno", 1000, 10_000)
    cc.on_ack(5000, 0.0, 0.01)
    assert cc.cwnd == 15_000
    cc.on_congestion(0.0, 15_000)
    assert cc.cwnd == cc.ssthresh == 7500
    cc.on_ack(7500, 0.0, 0.01)  # one window acknowledged: + 1 segment
    assert cc.cwnd == 8500


def test_timeout_collapses_to_one_segment():
    cc = new_controller("newreno", 1000, 10_000)
    cc.on_timeout(0.0, 10_000)
    assert cc.cwnd == 1000 and cc.ssthresh == 5000


def test_unknown_controller_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown congestion controller"):
        new_controller("vegas", 1000, 10_000)
