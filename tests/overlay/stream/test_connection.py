"""The stream connection against the wire contract (§1.11), the reference's
observable behaviour (Part 2) and our fixes of its defects (T-D7..T-D17).

"Reference peer" tests hand-craft the packets a reference daemon emits
(ISN 0, Window in segments with 0 meaning unlimited, FIN|ACK replies...)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pilotgw.overlay import sack
from pilotgw.overlay.packet import encode
from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.options import StreamOptions
from pilotgw.overlay.stream.states import State, StreamStateError

from .stream_helpers import ACK, FIN, RST, SYN, A, B, Wire, events, handshake, kinds, pkt


def hexs(p) -> str:
    return encode(p).hex()


def tv(spaced: str) -> str:
    """A TV-1 header vector as written in the spec (fields separated by spaces)."""
    return spaced.replace(" ", "")


# --- handshake ---------------------------------------------------------------


def test_dial_emits_the_reference_syn_bytes():
    c = Connection.dial(A, B, 0.0)
    (syn,) = c.packets_to_send(0.0)
    assert hexs(syn) == tv("11 01 0000 0000 00000001 0000 00000002 c000 03e8 00000000 00000000 0200 145ed874")
    assert c.state is State.SYN_SENT


def test_accept_answers_with_the_reference_synack_and_is_established_at_once():
    s = Connection.accept(B, A, pkt(SYN, src=A, dst=B), 0.0)
    (synack,) = s.packets_to_send(0.0)
    assert hexs(synack) == tv("13 01 0000 0000 00000002 0000 00000001 03e8 c000 00000000 00000001 0200 24f40f8e")
    assert s.state is State.ESTABLISHED
    assert kinds(events(s)) == ["Established"]


def test_valid_synack_completes_the_dial_with_the_handshake_ack():
    c = Connection.dial(A, B, 0.0)
    c.packets_to_send(0.0)
    c.receive(pkt(SYN | ACK, 0, 1, 512), 0.05)
    (ack,) = c.packets_to_send(0.05)
    assert hexs(ack) == tv("12 01 0000 0000 00000001 0000 00000002 c000 03e8 00000001 00000001 0200 1e21ff5a")
    assert c.state is State.ESTABLISHED and kinds(events(c)) == ["Established"]


def test_synack_whose_ack_is_not_1_is_reset_and_the_dial_goes_on():
    c = Connection.dial(A, B, 0.0)
    c.packets_to_send(0.0)
    c.receive(pkt(SYN | ACK, 0, 9, 512), 0.1)  # stale SYN-ACK (T-D16)
    (rst,) = c.packets_to_send(0.1)
    assert (rst.flags, rst.seq, rst.ack, rst.window, rst.src_port, rst.dst_port) == (RST, 0, 0, 0, 49152, 1000)
    assert c.state is State.SYN_SENT
    c.receive(pkt(SYN | ACK, 0, 1, 512), 0.2)
    assert c.state is State.ESTABLISHED


def test_raised_segment_size_applies_to_data_and_the_initial_window():
    c = Connection.dial(A, B, 0.0)
    c.raise_segment_size(16384)  # e.g. the SYN-ACK confirmed an extension
    c.packets_to_send(0.0)
    s = Connection.accept(B, A, pkt(SYN, src=A, dst=B), 0.0, StreamOptions(recv_buffer=1 << 20))
    w = Wire(c, s)
    w.pump(0.0)
    c.send(bytes(100_000))
    w.pump(0.01)
    sizes = [len(p.payload) for p in w.sent[0] if p.payload]
    assert max(sizes) == 16384 and sizes[:6] == [16384] * 6
    assert c.stats().cong_win >= 10 * 16384
    assert len(s.read()) == 100_000


def test_segment_size_cannot_shrink_exceed_a_packet_or_change_after_data():
    c, s = handshake(copts=StreamOptions(no_delay=True))
    with pytest.raises(ValueError):
        c.raise_segment_size(1000)
    with pytest.raises(ValueError):
        c.raise_segment_size(70000)
    c.send(b"x")
    c.packets_to_send(0.01)
    with pytest.raises(StreamStateError):
        c.raise_segment_size(8192)


def test_syn_is_retransmitted_identically_on_the_reference_schedule_then_dial_times_out():
    c = Connection.dial(A, B, 0.0)
    sent = [(0.0, c.packets_to_send(0.0))]
    while c.state is State.SYN_SENT:
        t = c.next_timer()
        c.timer_expired(t)
        sent.append((t, c.packets_to_send(t)))
    syn_times = [t for t, ps in sent if ps]
    assert syn_times == [0, 1, 3, 7, 15, 23, 31]
    assert all(hexs(ps[0]) == hexs(sent[0][1][0]) for _, ps in sent if ps)
    assert sent[-1][0] == 39
    evs = events(c)
    assert kinds(evs) == ["StreamError", "Closed"] and evs[0].code == "dial_timeout"


def test_rst_answering_the_syn_refuses_the_dial():
    c = Connection.dial(A, B, 0.0)
    c.packets_to_send(0.0)
    c.receive(pkt(RST), 0.01)
    evs = events(c)
    assert kinds(evs) == ["StreamError", "Closed"] and evs[0].code == "refused"
    assert c.next_timer() is None


def test_duplicate_syn_is_answered_with_the_original_synack_values_even_after_data():
    c, s = handshake()
    s.send(b"x" * 100)
    s.packets_to_send(0.01)
    s.receive(pkt(SYN, src=A, dst=B), 0.02)
    (synack,) = s.packets_to_send(0.02)
    assert (synack.flags, synack.seq, synack.ack) == (SYN | ACK, 0, 1)  # not SendSeq-1 (T-D16)


def test_data_before_the_synack_is_not_delivered():
    c = Connection.dial(A, B, 0.0)
    c.packets_to_send(0.0)
    c.receive(pkt(ACK, 1, 1, 512, b"early"), 0.01)
    assert c.readable == 0 and c.packets_to_send(0.01) == []


def test_data_written_while_dialling_goes_out_after_the_handshake():
    c = Connection.dial(A, B, 0.0)
    c.send(b"queued")
    assert [p.flags for p in c.packets_to_send(0.0)] == [SYN]
    c.receive(pkt(SYN | ACK, 0, 1, 512), 0.05)
    (data,) = c.packets_to_send(0.05)  # carries the handshake's ACK too
    assert (data.flags, data.seq, data.ack, bytes(data.payload)) == (ACK, 1, 1, b"queued")


# --- data, segmentation, ACKs --------------------------------------------------


def test_segments_are_at_most_4096_bytes_and_nagle_holds_the_runt():
    c, s = handshake()
    c.send(bytes(10_000))
    ps = c.packets_to_send(0.01)
    assert [len(p.payload) for p in ps] == [4096, 4096]
    assert [p.seq for p in ps] == [1, 4097] and all(p.flags == ACK and p.ack == 1 for p in ps)
    for p in ps:
        s.receive(p, 0.02)
    for p in s.packets_to_send(0.02):
        c.receive(p, 0.03)
    (runt,) = c.packets_to_send(0.03)  # everything acknowledged: Nagle releases it
    assert (runt.seq, len(runt.payload)) == (8193, 1808)


def test_no_delay_sends_small_writes_at_once():
    c, _ = handshake(copts=StreamOptions(no_delay=True))
    c.send(b"a")
    c.packets_to_send(0.01)
    c.send(b"b")
    (p,) = c.packets_to_send(0.01)
    assert (p.seq, bytes(p.payload)) == (2, b"b")


def test_larger_segment_size_is_an_option():
    c, _ = handshake(copts=StreamOptions(mss=65000))
    c.send(bytes(130_000))
    assert [len(p.payload) for p in c.packets_to_send(0.01)] == [65000, 65000]


def test_a_segment_that_would_parse_as_sack_is_split_after_four_bytes():
    c, s = handshake(copts=StreamOptions(no_delay=True))
    data = sack.encode([(1, 2), (3, 4)]) + b"tail"
    c.send(data)
    ps = c.packets_to_send(0.01)
    assert bytes(ps[0].payload) == b"SACK" and not any(sack.looks_like_sack(p.payload) for p in ps)
    for p in ps:
        s.receive(p, 0.02)
    assert s.read() == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"SACK", b"\x01", b"\x02", b"\x04", b"\x00" * 8, b"xy", b"SACK\x03"]), max_size=40), st.integers(1, 64))
def test_no_data_segment_ever_parses_as_sack(parts, mss):
    c, s = handshake(copts=StreamOptions(no_delay=True, mss=mss))
    data = b"".join(parts)
    w = Wire(c, s)
    c.send(data)
    w.pump(0.01)
    assert not any(p.payload and sack.looks_like_sack(p.payload) for p in w.sent[0])
    assert s.read() == data


def test_one_segment_is_acknowledged_after_the_delayed_ack_timer_two_at_once():
    c, s = handshake()
    s.receive(pkt(ACK, 1, 1, 512, b"a" * 4096, src=A, dst=B), 1.0)
    assert s.packets_to_send(1.0) == []
    assert s.next_timer() == pytest.approx(1.04)
    s.timer_expired(1.04)
    (ack,) = s.packets_to_send(1.04)
    assert (ack.flags, ack.ack, bytes(ack.payload)) == (ACK, 4097, b"")
    s.receive(pkt(ACK, 4097, 1, 512, b"b" * 4096, src=A, dst=B), 2.0)
    s.receive(pkt(ACK, 8193, 1, 512, b"c" * 4096, src=A, dst=B), 2.0)
    (ack,) = s.packets_to_send(2.0)
    assert ack.ack == 12289


def test_out_of_order_data_is_acked_at_once_with_sack_plus_three_pure_dupacks_per_hole():
    c, s = handshake()
    out = []
    for i in range(1, 6):  # segments 1..5 arrive, segment 0 is missing
        s.receive(pkt(ACK, 1 + 100 * i, 1, 512, b"z" * 100, src=A, dst=B), 0.1)
        out.append(s.packets_to_send(0.1))
    sacks = [ps[0] for ps in out]
    assert all(sack.decode(p.payload) for p in sacks) and all(p.ack == 1 for p in sacks)
    assert sack.decode(sacks[-1].payload) == [(101, 601)]
    pure = [p for ps in out for p in ps[1:]]
    assert len(pure) == 3 and all(p.payload == b"" and p.ack == 1 for p in pure)  # T-D7
    s.receive(pkt(ACK, 1, 1, 512, b"y" * 100, src=A, dst=B), 0.2)  # hole filled
    (ack,) = s.packets_to_send(0.2)
    assert ack.ack == 601 and ack.payload == b""
    assert s.read() == b"y" * 100 + b"z" * 500


def test_sack_blocks_report_the_latest_arrival_first_and_at_most_four():
    c, s = handshake()
    for start in (201, 401, 601, 801, 1001):  # five separate islands
        s.receive(pkt(ACK, start, 1, 512, b"q" * 100, src=A, dst=B), 0.1)
    ps = s.packets_to_send(0.1)
    blocks = sack.decode(ps[0].payload)
    assert blocks[0] == (1001, 1101) and len(blocks) == 4


def test_retransmissions_repeat_the_exact_byte_range():
    c, s = handshake()
    c.send(bytes(range(256)) * 64)  # 16 KiB, 4 segments
    first = c.packets_to_send(0.01)
    t = c.next_timer()
    c.timer_expired(t + 2)  # nothing acknowledged: timeout (TLP and RTO)
    again = c.packets_to_send(t + 2)
    orig = {p.seq: bytes(p.payload) for p in first}
    assert again and all(orig[p.seq] == bytes(p.payload) for p in again)


def test_sacked_hole_is_retransmitted_without_waiting_for_the_timeout():
    c, s = handshake()
    w = Wire(c, s, drop=lambda side, p: side == 0 and p.seq == 4097 and c.retransmitted == 0)
    c.send(bytes(8 * 4096))
    w.pump(0.01)
    # Not instant: RACK waits a quarter of min RTT; the timer is well under the RTO.
    assert c.retransmitted == 0 and c.next_timer() < 0.02
    w.advance(0.05)
    assert c.retransmitted == 1 and len(s.read()) == 8 * 4096


def test_ack_beyond_what_we_sent_is_ignored():
    c, s = handshake()
    c.send(b"x" * 10)
    c.packets_to_send(0.01)
    c.receive(pkt(ACK, 1, 5000, 512), 0.02)
    assert c.send_buffered == 10  # not acknowledged (T-D17)
    c.receive(pkt(ACK, 1, 11, 512), 0.03)
    assert c.send_buffered == 0


def test_overlapping_segments_from_a_repacketising_peer_are_reassembled():
    c, s = handshake()
    data = bytes(range(200))
    for lo, hi in ((50, 120), (0, 60), (100, 200), (10, 30)):
        s.receive(pkt(ACK, 1 + lo, 1, 512, data[lo:hi], src=A, dst=B), 0.1)
    assert s.read() == data


def test_sack_blocks_wrapping_2_32_are_generated_and_understood():
    """Both ends positioned just below 2^32 (white-box: a 4 GiB transfer would
    take too long), then a hole whose SACK block straddles the wrap."""
    c, s = handshake(copts=StreamOptions(no_delay=True))
    base = (1 << 32) - 1000
    c._snd_una = c._snd_nxt = c._sb.una = base
    s._rb.nxt = base
    drop_first = [True]

    def drop(side, p):
        if side == 0 and p.payload and drop_first[0]:
            drop_first[0] = False
            return True
        return False

    w = Wire(c, s, drop=drop)
    data = bytes(range(256)) * 16  # 4096 bytes: 1000 before the wrap, 3096 after
    for i in range(0, len(data), 512):
        c.send(data[i : i + 512])
        w.pump(0.01 + i * 1e-6)
    sacks = [sack.decode(p.payload) for p in w.sent[1] if p.payload]
    assert any(left > right for blocks in sacks for left, right in blocks)  # wrapped on the wire
    # Understood as SACK: the hole was resent at once, with no timer firing.
    assert c.retransmitted == 1 and c.send_buffered == 0
    assert s.read() == data


# --- flow control ----------------------------------------------------------------


def test_window_is_free_buffer_in_segments_and_never_zero():
    c, s = handshake(sopts=StreamOptions(recv_buffer=4 * 4096))
    w = Wire(c, s)
    c.send(bytes(8 * 4096))
    w.pump(0.01)
    assert s.readable == 5 * 4096  # 4 allowed + 1 overshoot of a still-open window of 1
    acks = [p for p in w.sent[1] if p.flags == ACK]
    assert acks[-1].window == 1  # full, yet never 0 (T-D8)
    s.read()
    (update,) = s.packets_to_send(0.02)  # window update after the application read
    assert update.window == 4
    c.receive(update, 0.02)
    w.pump(0.03)
    assert s.readable == 3 * 4096


def test_in_order_data_beyond_twice_the_buffer_is_dropped_unacknowledged():
    c, s = handshake(sopts=StreamOptions(recv_buffer=4096))
    for i in range(3):
        s.receive(pkt(ACK, 1 + 4096 * i, 1, 0, b"r" * 4096, src=A, dst=B), 0.1)
    assert s.readable == 8192
    (ack,) = s.packets_to_send(0.1)
    assert ack.ack == 8193


def test_zero_window_stops_data_and_probes_with_one_acknowledged_byte_backing_off():
    c, _ = handshake()
    c.send(b"hello")
    c.packets_to_send(0.0)
    c.receive(pkt(ACK, 1, 6, 0), 0.01)  # acknowledged, window 0 (full, or a keepalive)
    c.send(b"more")
    (probe,) = c.packets_to_send(0.01)
    assert (probe.seq, bytes(probe.payload), probe.flags) == (5, b"o", ACK)  # Seq = SendSeq - 1
    times = []
    t = 0.01
    for _ in range(4):
        t = c.next_timer()
        c.timer_expired(t)
        (p,) = c.packets_to_send(t)
        assert len(p.payload) == 1
        times.append(round(t - 0.01, 3))
    assert times == [0.5, 1.5, 3.5, 7.5]
    c.receive(pkt(ACK, 1, 6, 10), t + 0.04)  # the window reopens
    (data,) = c.packets_to_send(t + 0.04)
    assert bytes(data.payload) == b"more" and data.seq == 6


def test_our_probe_is_answered_at_once_by_our_receiver():
    c, s = handshake()
    s.receive(pkt(ACK, 0, 1, 512, b"\x00", src=A, dst=B), 0.5)  # probe of the SYN's sequence number
    (ack,) = s.packets_to_send(0.5)
    assert ack.ack == 1 and ack.window == 512


def test_sender_limits_segments_in_flight_to_the_window_in_segments():
    c, _ = handshake(copts=StreamOptions(no_delay=True))
    c.receive(pkt(ACK, 1, 1, 3), 0.01)
    sent = []
    for i in range(10):
        c.send(b"s")
        sent += c.packets_to_send(0.02)
    assert len(sent) == 3  # a reference receiver counts slots, not bytes (T-D8)


# --- keepalive and idle ----------------------------------------------------------


def test_keepalive_after_30_s_matches_the_reference_bytes():
    c, s = handshake()
    w = Wire(c, s)
    c.send(b"hello")
    w.pump(0.01)
    s.timer_expired(0.05)
    w.pump(0.05)
    assert c.next_timer() == pytest.approx(30.01, abs=0.05)
    c.timer_expired(c.next_timer())
    (ka,) = c.packets_to_send(c.next_timer() or 40)
    assert hexs(ka) == tv("12 01 0000 0000 00000001 0000 00000002 c000 03e8 00000006 00000001 0000 7ad24bd2")


def test_keepalives_keep_an_idle_connection_open_and_are_never_answered():
    c, s = handshake()
    w = Wire(c, s)
    w.advance(600.0)
    assert c.state is State.ESTABLISHED and s.state is State.ESTABLISHED
    assert len(w.sent[0]) == len(w.sent[1]) == 20  # one per 30 s each way, nothing else
    assert all(p.window == 0 and p.payload == b"" for p in w.sent[0] + w.sent[1])


def test_idle_timeout_closes_with_a_fin():
    c, _ = handshake()
    c.next_timer()
    t = 0.0
    while c.state is State.ESTABLISHED:
        t = c.next_timer()
        c.timer_expired(t)
        last = c.packets_to_send(t)
    assert t == pytest.approx(120.0)
    assert last[0].flags == FIN
    assert kinds(events(c))[-2:] == ["StreamError", "Closed"]


# --- close -------------------------------------------------------------------------


def after_close(w: Wire, mark: tuple[int, int]) -> tuple[int, int]:
    return len(w.sent[0]) - mark[0], len(w.sent[1]) - mark[1]


def test_we_close_first_to_a_reference_peer():
    c, _ = handshake()
    c.send(b"hello")
    c.packets_to_send(0.0)
    c.receive(pkt(ACK, 1, 6, 512), 0.01)
    c.close()
    (fin,) = c.packets_to_send(0.01)
    assert hexs(fin) == tv("14 01 0000 0000 00000001 0000 00000002 c000 03e8 00000006 00000000 0000 07a8a6d2")
    c.receive(pkt(FIN | ACK, 1, 7, 0), 0.02)  # the reference's reply
    assert c.packets_to_send(0.02) == []  # never answer a FIN|ACK (T-D9)
    assert c.state is State.TIME_WAIT and kinds(events(c)) == ["StreamEnded"]
    c.receive(pkt(FIN | ACK, 1, 7, 0), 0.03)
    c.receive(pkt(FIN, 1, 0, 0), 0.03)
    assert c.packets_to_send(0.03) == []
    c.timer_expired(10.02)
    assert c.state is State.CLOSED and kinds(events(c)) == ["Closed"]


def test_reference_peer_closes_first_three_packets_in_all():
    c, s = handshake()
    s.receive(pkt(ACK, 1, 1, 512, b"hello", src=A, dst=B), 0.05)
    s.receive(pkt(FIN, 6, 0, 0, src=A, dst=B), 0.1)  # bare FIN from the reference
    assert s.packets_to_send(0.1) == []  # no FIN|ACK before our own close()
    assert s.state is State.CLOSE_WAIT
    assert kinds(events(s)) == ["DataReceived", "StreamEnded"]
    s.close()
    (finack,) = s.packets_to_send(0.1)
    assert hexs(finack) == tv("16 01 0000 0000 00000002 0000 00000001 03e8 c000 00000001 00000007 0000 7de95191")
    s.receive(pkt(FIN | ACK, 6, 2, 0, src=A, dst=B), 0.11)  # the reference answers our FIN|ACK
    s.receive(pkt(FIN, 6, 0, 0, src=A, dst=B), 0.12)  # and a repeated FIN
    assert s.packets_to_send(0.12) == []  # at most one answer, none to FIN|ACK


def test_close_waits_for_outstanding_data_before_the_fin():
    c, s = handshake()
    c.send(bytes(3 * 4096))
    data = c.packets_to_send(0.0)
    c.close()
    assert c.packets_to_send(0.0) == [] and c.state is State.FIN_WAIT
    for p in data:
        s.receive(p, 0.01)
    for p in s.packets_to_send(0.01):
        c.receive(p, 0.02)
    (fin,) = c.packets_to_send(0.02)
    assert fin.flags == FIN and fin.seq == 3 * 4096 + 1


def test_close_flushes_the_nagle_runt():
    c, _ = handshake()
    c.send(bytes(5000))
    c.close()
    assert [len(p.payload) for p in c.packets_to_send(0.0)] == [4096, 904]


def test_fin_is_retransmitted_until_answered_a_bounded_number_of_times():
    c, _ = handshake()
    c.close()
    c.packets_to_send(0.0)
    fins = 1
    t = 0.0
    while c.next_timer() is not None and t < 100:
        t = c.next_timer()
        c.timer_expired(t)
        fins += sum(p.flags == FIN for p in c.packets_to_send(t))
    assert fins == 1 + StreamOptions().fin_retries


def test_fin_retransmission_stops_at_the_peers_fin_ack():
    c, s = handshake()
    lost = [True]
    w = Wire(c, s, drop=lambda side, p: side == 1 and p.flags == FIN | ACK and lost.pop() if lost else False)
    c.close()
    w.pump(0.0)
    assert c.state is State.FIN_WAIT and s.state is State.CLOSE_WAIT
    s.close()
    w.pump(0.0)  # s answers once; that FIN|ACK is lost
    w.advance(5.0)  # c retransmits its FIN; s must not answer again
    assert sum(p.flags == FIN for p in w.sent[0]) >= 2
    assert sum(bool(p.flags & FIN) for p in w.sent[1]) == 1


def test_simultaneous_close_has_no_storm():
    c, s = handshake()
    w = Wire(c, s)
    mark = (len(w.sent[0]), len(w.sent[1]))
    c.close()
    s.close()
    for side in (0, 1):
        for p in w.ends[side].packets_to_send(0.0):
            w.sent[side].append(p)
            w.ends[1 - side].receive(p, 0.0)
    w.pump(0.0)
    w.advance(30.0)
    assert c.state is State.CLOSED and s.state is State.CLOSED
    a, b = after_close(w, mark)
    assert a < 4 and b < 4


def test_graceful_close_between_two_of_ours_exchanges_few_packets_and_delivers_everything():
    c, s = handshake()
    w = Wire(c, s)
    c.send(bytes(100_000))
    c.close()
    w.pump(0.0)
    assert kinds(events(s))[-1] == "StreamEnded"
    mark = (len(w.sent[0]), len(w.sent[1]))
    s.close()
    w.pump(0.0)
    w.advance(60.0)
    assert len(s.read()) == 100_000
    assert c.state is State.CLOSED and s.state is State.CLOSED
    a, b = after_close(w, mark)
    assert a < 4 and b < 4


def test_half_close_the_side_that_got_the_fin_can_still_send():
    c, s = handshake()
    w = Wire(c, s)
    c.close()
    w.pump(0.0)
    assert s.state is State.CLOSE_WAIT and c.state is State.FIN_WAIT
    s.send(b"late reply")
    w.pump(0.01)
    assert c.read() == b"late reply"
    s.close()
    w.pump(0.02)
    w.advance(0.5)  # s lingers until its reply is acknowledged, then answers the FIN
    assert c.state is State.TIME_WAIT and s.state is State.TIME_WAIT
    assert kinds(events(c))[-1] == "StreamEnded"


def test_fin_with_missing_data_reports_truncation_after_a_grace_period():
    c, s = handshake()
    s.receive(pkt(ACK, 1, 1, 512, b"a" * 10, src=A, dst=B), 0.0)
    s.receive(pkt(FIN, 21, 0, 0, src=A, dst=B), 0.0)  # bytes 11..20 never arrive
    assert "StreamEnded" not in kinds(events(s))
    events(s)
    s.timer_expired(1.9)
    assert events(s) == []
    s.timer_expired(2.0)
    evs = events(s)
    assert kinds(evs) == ["StreamError"] and evs[0].code == "truncated"
    assert s.read() == b"a" * 10


def test_missing_data_arriving_after_the_fin_completes_the_stream():
    c, s = handshake()
    s.receive(pkt(FIN, 11, 0, 0, src=A, dst=B), 0.0)
    s.receive(pkt(ACK, 1, 1, 512, b"b" * 10, src=A, dst=B), 0.1)
    assert kinds(events(s)) == ["DataReceived", "StreamEnded"]
    s.receive(pkt(ACK, 11, 1, 512, b"beyond the FIN", src=A, dst=B), 0.2)
    assert s.read() == b"b" * 10


def test_linger_timeout_resets():
    c, _ = handshake(copts=StreamOptions(linger=5.0, max_rto_retries=100))
    c.send(b"never acknowledged")
    c.close()
    c.packets_to_send(0.0)
    t = 0.0
    while c.state is not State.CLOSED:
        t = c.next_timer()
        c.timer_expired(t)
        out = c.packets_to_send(t)
    assert t == pytest.approx(5.0) and out[-1].flags == RST
    assert [e.code for e in events(c) if type(e).__name__ == "StreamError"] == ["linger_timeout"]


def test_retransmissions_exhausted_send_rst_and_report_timeout():
    c, _ = handshake()
    c.send(b"x")
    c.packets_to_send(0.0)
    while c.state is not State.CLOSED:
        t = c.next_timer()
        c.timer_expired(t)
        out = c.packets_to_send(t)
    assert out[-1].flags == RST
    evs = events(c)
    assert kinds(evs)[-2:] == ["StreamError", "Closed"] and evs[-2].code == "timeout"


def test_send_after_close_is_refused():
    c, _ = handshake()
    c.close()
    with pytest.raises(StreamStateError):
        c.send(b"x")


# --- RST in every state, and the state table --------------------------------------


def conn_in(state: State) -> Connection:
    c, s = handshake()
    w = Wire(c, s)
    if state is State.SYN_SENT:
        c = Connection.dial(A, B, 0.0)
        c.packets_to_send(0.0)
    elif state is State.FIN_WAIT:
        c.send(b"unacked")
        c.close()
        c.packets_to_send(0.0)
    elif state is State.CLOSE_WAIT:
        c.receive(pkt(FIN, 1, 0, 0), 0.0)
    elif state is State.CLOSING:
        c.send(b"unacked")
        c.close()
        c.packets_to_send(0.0)
        c.receive(pkt(FIN, 1, 0, 0), 0.0)
    elif state is State.TIME_WAIT:
        c.close()
        w.pump(0.0)
        s.close()
        w.pump(0.0)
    elif state is State.CLOSED:
        c.abort()
    assert c.state is state
    events(c)
    c.packets_to_send(0.0)
    return c


@pytest.mark.parametrize("state", list(State))
def test_rst_in_every_state(state):
    c = conn_in(state)
    c.receive(pkt(RST), 1.0)
    expected = {
        State.SYN_SENT: ["StreamError", "Closed"],
        State.TIME_WAIT: ["Closed"],
        State.CLOSED: [],
    }.get(state, ["ConnectionReset", "Closed"])
    assert kinds(events(c)) == expected
    assert c.state is State.CLOSED and c.packets_to_send(1.0) == [] and c.next_timer() is None


class Tracing(Connection):
    __slots__ = ("trace",)

    def _set_state(self, new):
        if not hasattr(self, "trace"):
            self.trace = []
        self.trace.append((self.state, new))
        super()._set_state(new)


def run_scenario(name: str) -> set[tuple[State, State]]:
    c = Tracing.dial(A, B, 0.0)
    (syn,) = c.packets_to_send(0.0)
    s = Tracing.accept(B, A, syn, 0.0)
    w = Wire(c, s)
    w.pump(0.0)
    if name == "dial_refused":
        c = Tracing.dial(A, B, 0.0)
        c.receive(pkt(RST), 0.0)
    elif name == "graceful":
        c.close()
        w.pump(0.0)
        s.close()
        w.pump(0.0)
        w.advance(20.0)
    elif name == "fin_ack_unsolicited":
        c.receive(pkt(FIN | ACK, 1, 1, 0), 0.0)
        c.receive(pkt(RST), 0.0)
    elif name == "lingering_then_peer_fin":
        c.send(b"x")
        c.close()
        c.packets_to_send(0.0)
        c.receive(pkt(FIN, 1, 0, 0), 0.0)
        c.receive(pkt(ACK, 1, 2, 512), 0.0)
        c.packets_to_send(0.0)
        c.receive(pkt(RST), 0.0)
    elif name == "resets":
        c.close()
        w.pump(0.0)
        c.receive(pkt(RST), 0.0)  # FIN_WAIT -> CLOSED
        s.receive(pkt(RST, src=A, dst=B), 0.0)  # CLOSE_WAIT -> CLOSED
    elif name == "closing_reset":
        c.send(b"x")
        c.close()
        c.packets_to_send(0.0)
        c.receive(pkt(FIN, 1, 0, 0), 0.0)
        c.receive(pkt(RST), 0.0)
        s.close()
        s.packets_to_send(0.0)
        s.receive(pkt(FIN | ACK, 1, 1, 0, src=A, dst=B), 0.0)  # FIN_WAIT -> TIME_WAIT
    elif name == "close_wait_fin_ack":
        c.receive(pkt(FIN, 1, 0, 0), 0.0)
        c.receive(pkt(FIN | ACK, 1, 1, 0), 0.0)
        s.receive(pkt(RST, src=A, dst=B), 0.0)  # ESTABLISHED -> CLOSED
    elif name == "simultaneous":
        c.close()
        s.close()
        pc, ps = c.packets_to_send(0.0), s.packets_to_send(0.0)
        for p in pc:
            s.receive(p, 0.0)
        for p in ps:
            c.receive(p, 0.0)
        w.pump(0.0)
    return set(getattr(c, "trace", [])) | set(getattr(s, "trace", []))


def test_every_transition_in_the_table_is_reachable():
    from pilotgw.overlay.stream.states import TRANSITIONS

    seen = set()
    for name in ("dial_refused", "graceful", "fin_ack_unsolicited", "lingering_then_peer_fin", "resets", "closing_reset", "close_wait_fin_ack", "simultaneous"):
        seen |= run_scenario(name)
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table - seen == set()


def test_a_transition_outside_the_table_is_a_bug():
    c, _ = handshake()
    with pytest.raises(AssertionError):
        c._set_state(State.SYN_SENT)


# --- every packet kind a reference peer emits (§1.11.10), received while established


@pytest.mark.parametrize(
    "name,packet,reply_flags",
    [
        ("pure ACK / window-full probe", pkt(ACK, 1, 1, 512), []),
        ("keepalive", pkt(ACK, 1, 1, 0), []),
        ("stray SYN-ACK", pkt(SYN | ACK, 0, 1, 512), []),
        ("SYN-ACK to a duplicate SYN", pkt(SYN | ACK, 0, 1, 512), []),
        ("duplicate data (retransmission)", pkt(ACK, 0, 1, 512, b"\x00"), [ACK]),
        ("data, out of order", pkt(ACK, 50, 1, 512, b"later"), [ACK, ACK]),
        ("SACK-carrying ACK", pkt(ACK, 1, 1, 510, sack.encode([(1, 2)])), []),
        ("FIN|ACK", pkt(FIN | ACK, 1, 1, 0), []),
        ("RST", pkt(RST), []),
    ],
)
def test_reaction_to_each_reference_packet_kind(name, packet, reply_flags):
    c, _ = handshake()
    c.receive(packet, 0.1)
    assert [p.flags for p in c.packets_to_send(0.1)] == reply_flags


def test_reference_window_in_segments_drives_our_sender():
    c, _ = handshake(copts=StreamOptions(initial_window=64))
    c.receive(pkt(ACK, 1, 1, 2), 0.01)  # the reference advertises 2 free slots
    c.send(bytes(10 * 4096))
    assert len(c.packets_to_send(0.02)) == 2
