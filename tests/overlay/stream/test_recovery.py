"""The scoreboard: cumulative and selective ACKs, RACK loss detection, RTO."""

from __future__ import annotations

import pytest

from pilotgw.overlay.stream.recovery import ACKED, IN_FLIGHT, LOST, SACKED, Scoreboard
from pilotgw.overlay.stream.seq import unwrap


def board(n: int, size: int = 100, una: int = 1, now: float = 0.0) -> Scoreboard:
    sb = Scoreboard(una)
    for i in range(n):
        sb.add(una + i * size, bytes(size), now)
    return sb


def test_cumulative_ack_removes_segments_and_samples_rtt():
    sb = board(5)
    assert sb.pipe == 500
    assert sb.on_ack(201, None, 0.05, 1.0) == 200
    assert sb.rtt_sample == 0.05 and sb.outstanding == 3 and sb.pipe == 300 and sb.una == 201


def test_sack_marks_only_fully_covered_segments_once():
    sb = board(5)
    assert sb.on_ack(1, [(101, 350)], 0.05, 1.0) == 200  # segments 2 and 3; the 4th only partly
    assert [s.state for s in sb.segs] == [IN_FLIGHT, SACKED, SACKED, IN_FLIGHT, IN_FLIGHT]
    assert sb.on_ack(1, [(101, 350)], 0.06, 1.0) == 0  # repeated block: nothing new
    assert sb.on_ack(1, [(101, 401)], 0.07, 1.0) == 100


def test_rack_declares_earlier_segments_lost_after_the_reorder_window():
    sb = board(5)
    sb.on_ack(1, [(201, 501)], 0.05, 0.05)
    assert sb.detect_losses(0.05, 0.01) == 0 and sb.reorder_deadline == pytest.approx(0.06)
    assert sb.detect_losses(0.0601, 0.01) == 2  # segments 1 and 2 were sent before the SACKed ones
    assert [s.start for s in sb.lost] == [1, 101] and sb.pipe == 0


def test_lost_retransmission_is_detected_by_later_deliveries():
    sb = board(3)
    sb.on_ack(1, [(101, 301)], 0.05, 0.05)
    sb.detect_losses(0.1, 0.0)
    seg = sb.pop_lost()
    sb.retransmit(seg, 0.1)  # this copy is lost too
    sb.add(301, bytes(100), 0.11)
    sb.on_ack(1, [(101, 401)], 0.16, 0.05)
    assert sb.detect_losses(0.2, 0.0) == 1 and sb.pop_lost() is seg


def test_timeout_marks_everything_unsacked_lost_in_sequence_order():
    sb = board(4)
    sb.on_ack(1, [(201, 301)], 0.05, 1.0)
    sb.mark_all_lost()
    assert [s.start for s in sb.lost] == [1, 101, 301] and sb.pipe == 0
    assert [s.state for s in sb.segs] == [LOST, LOST, SACKED, LOST]


def test_sack_blocks_across_2_32():
    una = (1 << 32) - 150
    sb = board(3, una=una)
    # On the wire the block is [2^32 - 50, 50): left > right numerically.
    left = unwrap((1 << 32) - 50, una)
    right = unwrap(50, una)
    assert right - left == 100
    assert sb.on_ack(una, [(left, right)], 0.01, 1.0) == 100
    assert [s.state for s in sb.segs] == [IN_FLIGHT, SACKED, IN_FLIGHT]
    sb.on_ack(una + 300, None, 0.02, 1.0)
    assert all(s.state == ACKED for s in sb.segs[: sb.head]) and sb.outstanding == 0


def test_split_replaces_a_lost_segment_with_lost_pieces_resent_first():
    sb = board(4, size=1000)  # [1,1001) [1001,2001) [2001,3001) [3001,4001)
    sb.on_ack(1, [(2001, 3001)], 0.05, 1.0)
    assert sb.detect_losses(1.0, 0.0) == 2
    seg = sb.pop_lost()
    assert seg.start == 1 and sb.pipe == 1000  # only the last one is in flight
    sb.split(seg, 300)
    pieces = [sb.pop_lost() for _ in range(4)]
    assert [(p.start, p.end) for p in pieces] == [(1, 301), (301, 601), (601, 901), (901, 1001)]
    assert b"".join(p.data for p in pieces) == seg.data
    assert all(p.state == LOST and p.tx == 1 for p in pieces) and sb.pipe == 1000
    assert sb.pop_lost().start == 1001  # the other lost segment comes after the pieces
    for p in pieces[:2]:
        sb.retransmit(p, 1.1)
    assert sb.pipe == 1600
    # The pieces are ordinary segments: a cumulative ACK covers them.
    assert sb.on_ack(601, None, 1.2, 1.0) == 600
    assert sb.rtt_sample == -1.0  # retransmissions give no sample (Karn)
    assert sb.pipe == 1000 and sb.outstanding == 5 and sb.segs[sb.head].start == 601


def test_a_split_segment_queued_twice_as_lost_is_never_resent_again():
    # A segment can sit in the lost queue twice (lost, probed, refused
    # again). After the first entry split it, the second must find nothing:
    # splitting the replaced segment again overlapped pieces and leaked
    # bytes into the pipe, throttling the stream to one segment per RTT.
    sb = board(2, size=1000)
    sb.on_ack(1, [(1001, 2001)], 0.05, 1.0)
    assert sb.detect_losses(1.0, 0.0) == 1
    seg = sb.lost[0]
    sb.retransmit(seg, 1.0)  # a loss probe, while still queued
    assert sb.mark_unsent(1, 1.0)  # refused: queued as lost again
    assert sb.pop_lost() is seg
    sb.split(seg, 400)
    pieces = [sb.pop_lost() for _ in range(3)]
    assert [(p.start, p.end) for p in pieces] == [(1, 401), (401, 801), (801, 1001)]
    assert sb.pop_lost() is None and sb.pipe == 0
    for p in pieces:
        sb.retransmit(p, 1.1)
    assert sb.pipe == 1000 == sum(p.end - p.start for p in sb.segs[sb.head:] if p.state == IN_FLIGHT)
