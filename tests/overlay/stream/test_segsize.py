"""Loss-adaptive segment size: shrink per loss episode, grow after clean segments."""

from __future__ import annotations

from pilotgw.overlay.stream.segsize import GROW_SEGMENTS, SHRINK, SegmentSizer


def test_each_loss_episode_shrinks_down_to_the_minimum_never_below():
    s = SegmentSizer(65424, 1360)
    sizes = []
    for _ in range(5):
        s.on_loss(1)
        sizes.append(s.size)
    assert sizes == [65424 // SHRINK, 65424 // SHRINK**2, 1360, 1360, 1360]


def test_size_doubles_after_enough_clean_segments_up_to_the_maximum():
    s = SegmentSizer(65424, 1360)
    s.on_loss(1000)
    s.on_loss(1000)
    assert s.size == 4089 and s.mark == 1000 + GROW_SEGMENTS * 4089
    grown = []
    while s.size < 65424:
        s.on_clean(s.mark)
        grown.append(s.size)
    assert grown == [8178, 16356, 32712, 65424]
    s.on_clean(s.mark)  # at the maximum: stays, nothing more to wait for
    assert s.size == 65424 and s.mark > 1 << 60


def test_a_loss_restarts_the_clean_count():
    s = SegmentSizer(8192, 1024)
    s.on_loss(0)
    first = s.mark
    s.on_loss(5000)
    assert s.size == 1024 and s.mark == 5000 + GROW_SEGMENTS * 1024 and s.mark != first


def test_minimum_above_the_size_disables_adaptation():
    s = SegmentSizer(4096, 4096)
    s.on_loss(1)
    assert s.size == 4096
    s = SegmentSizer(4096, 9000)
    s.on_loss(1)
    assert s.size == 4096


def test_a_new_maximum_starts_there():
    s = SegmentSizer(4096, 1360)
    s.set_maximum(65424)
    assert (s.size, s.maximum) == (65424, 65424)
