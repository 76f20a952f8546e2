"""Connection.stats(): the figures behind Info's ``conn_list`` are the
connection's real state and counters, through a clean and a lossy transfer."""

from __future__ import annotations

from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.options import StreamOptions

from .stream_helpers import A, B, Wire, handshake


def test_fresh_dial_reports_its_initial_window_and_nothing_sent():
    c = Connection.dial(A, B, 0.0)
    c.send(b"queued until established")
    st = c.stats()
    assert st.cong_win == 10 * 4096 and st.in_flight == 0 and st.unacked == 0
    assert (st.bytes_sent, st.bytes_recv, st.segs_sent, st.segs_recv) == (0, 0, 0, 0)
    assert st.srtt == 0.0 and not st.in_recovery


def test_clean_transfer_counts_bytes_segments_and_rtt_on_both_ends():
    c, s = handshake(copts=StreamOptions(no_delay=True))
    w = Wire(c, s)
    c.send(bytes(10 * 4096 + 100))
    w.pump(0.02)
    assert len(s.read()) == 10 * 4096 + 100
    w.advance(0.1)  # the delayed ACK for the odd last segment
    cs, ss = c.stats(), s.stats()
    assert cs.bytes_sent == 10 * 4096 + 100 and cs.segs_sent == 11
    assert cs.in_flight == 0 and cs.unacked == 0 and cs.retransmits == 0 and cs.fast_retx == 0
    assert ss.bytes_recv == 10 * 4096 + 100 and ss.segs_recv == 11
    assert ss.bytes_sent == 0 and ss.segs_sent == 0
    assert cs.srtt > 0.0 and ss.srtt > 0.0  # handshake samples on both sides
    # Each side's view of the other's window is what the other advertises.
    assert cs.peer_recv_win == ss.recv_win == 512 * 4096
    assert cs.sack_recv == cs.dup_acks == ss.sack_sent == 0


def test_loss_shows_in_flight_out_of_order_sack_and_fast_retransmit():
    c, s = handshake()
    dropped = []

    def drop(side, p):
        if side == 0 and p.seq == 4097 and not dropped:
            dropped.append(p)
            return True
        return False

    w = Wire(c, s, drop=drop)
    c.send(bytes(8 * 4096))
    w.pump(0.01)
    cs, ss = c.stats(), s.stats()
    # The hole is still open: one segment missing, seven held beyond it.
    assert cs.unacked == 7 and cs.in_flight == 7 * 4096
    assert ss.ooo_buf == 6 and ss.bytes_recv == 4096 and ss.segs_recv == 7
    assert ss.sack_sent >= 1 and cs.sack_recv >= 1
    assert cs.dup_acks >= 3  # the receiver's extra pure duplicates for the hole (T-D7)
    w.advance(0.05)  # RACK's reordering window passes: the hole is resent
    cs, ss = c.stats(), s.stats()
    assert cs.fast_retx == 1 and cs.retransmits == 1
    assert cs.unacked == 0 and cs.in_flight == 0 and ss.ooo_buf == 0
    assert ss.bytes_recv == 8 * 4096
    assert cs.ssthresh < 1 << 62  # the loss episode set a threshold


def test_timeout_retransmissions_are_not_fast_retransmits():
    c, s = handshake()
    c.send(b"x" * 100)
    c.packets_to_send(0.01)  # lost, with nothing after it to reveal the loss
    t = c.next_timer()
    while c.retransmitted == 0:
        c.timer_expired(t)
        c.packets_to_send(t)
        t = c.next_timer()
    st = c.stats()
    assert st.retransmits == 1 and st.fast_retx == 0 and st.in_flight == 100
