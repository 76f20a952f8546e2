"""Robustness of one connection on lossy and rate-limited paths: the timeout
backoff ends as soon as anything is delivered, segments shrink under loss
and grow back, and packets the local stack refused are treated as lost."""

from __future__ import annotations

from pilotgw.overlay.stream.options import StreamOptions

from .stream_helpers import Wire, handshake

BIG = StreamOptions(mss=65424, min_mss=1360, no_delay=True)


def data_packets(pkts):
    return [p for p in pkts if p.payload and p.flags == 0x02]


def test_timeout_backoff_ends_with_the_first_delivery():
    c, s = handshake()
    blackhole = {"on": True}
    w = Wire(c, s, drop=lambda side, p: blackhole["on"] and side == 0)
    c.send(b"a" * 4096)
    w.pump(0.0)
    w.advance(1.5)  # the segment and its retransmissions are all lost
    assert c.stats().timeouts >= 3
    blackhole["on"] = False
    w.advance(10.0, step_cb=None)
    assert c.send_buffered == 0  # delivered by a later retransmission
    # A new tail segment is lost once: it must be resent within the base
    # timeout, not after the backed-off one (seconds).
    t0 = w.now
    blackhole["on"] = True
    before = len(w.sent[0])
    c.send(b"b" * 4096)
    w.pump(t0)
    lost = [p.seq for p in w.sent[0][before:] if p.payload]
    blackhole["on"] = False
    w.advance(t0 + 0.5)
    assert lost and c.send_buffered == 0, "the lost tail was not resent within 0.5 s"
    resent = [p.seq for p in w.sent[0][before + len(lost):] if p.payload]
    assert set(lost) <= set(resent)


def test_segments_shrink_on_loss_and_grow_back_on_a_clean_path():
    c, s = handshake(copts=BIG, sopts=BIG)
    dropped = []

    def drop(side, p):
        # Lose the second large data segment once.
        if side == 0 and len(p.payload) == 65424 and p.seq == 65425 and not dropped:
            dropped.append(p)
            return True
        return False

    w = Wire(c, s, drop=drop)
    size = 8 << 20
    c.send(bytes(size))
    got = bytearray()
    w.pump(0.0)
    while len(got) < size and w.now < 30:
        w.advance(w.now + 0.01, step_cb=lambda: got.extend(s.read()))
        got.extend(s.read())
        w.pump()
    assert len(got) == size and dropped
    sizes = [len(p.payload) for p in data_packets(w.sent[0])]
    resent = [p for p in w.sent[0] if p.seq == 65425 and len(p.payload) == 65424]
    assert len(resent) == 2  # the lost one, identical
    assert min(sizes) < 65424 // 2  # new data was cut smaller after the loss
    assert c.stats().segment_size == 65424 and 65424 in sizes[-8:]  # and grew back


def test_refused_packets_are_lost_resent_identically_after_a_short_hold():
    c, s = handshake()
    c.send(bytes(range(256)) * 160)  # 10 segments
    out = c.packets_to_send(0.1)
    assert len(data_packets(out)) == 10
    cwnd = c.stats().cong_win
    c.send_failed(out[6:], 0.1)
    st = c.stats()
    assert st.local_drops == 4 and st.cong_win < cwnd and st.in_recovery
    for p in out[:6]:  # the six that left are acknowledged
        s.receive(p, 0.1)
    for p in s.packets_to_send(0.1):
        c.receive(p, 0.1)
    assert data_packets(c.packets_to_send(0.1)) == []  # holding: nothing but ACKs
    again: list = []
    t = 0.1
    while not again and t < 0.3:
        t = c.next_timer()
        c.timer_expired(t)
        again = data_packets(c.packets_to_send(t))
    assert 0.101 <= t < 0.2  # after the 1 ms hold, well before any timeout
    assert [(p.seq, p.payload) for p in again] == [(p.seq, p.payload) for p in out[6:]]
    assert c.stats().retransmits == 4


def test_refusal_of_acks_or_old_copies_changes_nothing():
    c, s = handshake()
    c.send(bytes(8192))
    out = c.packets_to_send(0.1)
    c.send_failed(out, 0.5)  # not the copies sent at 0.5: ignored
    assert c.stats().local_drops == 0 and not c.stats().in_recovery
