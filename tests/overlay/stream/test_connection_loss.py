"""Robustness of one connection on lossy and rate-limited paths: the timeout
backoff ends as soon as anything is delivered, a peer that keeps SACKing is
never given up on by counting timeouts (only by the stall limit), segments
shrink under loss and grow back, a lost large segment is resent in smaller
pieces (unfragmented ones once a piece is lost again), and packets the local
stack refused are treated as lost."""

from __future__ import annotations

from dataclasses import replace

from pilotgw.overlay.stream.events import StreamError
from pilotgw.overlay.stream.options import StreamOptions
from pilotgw.overlay.stream.states import State

from .stream_helpers import Wire, events, handshake

BIG = StreamOptions(mss=65424, min_mss=1360, no_delay=True)


def data_packets(pkts):
    return [p for p in pkts if p.payload and p.flags == 0x02]


def next_data(c, t: float, limit: float):
    """Run ``c``'s timers from ``t`` until it sends data (or ``limit``);
    returns (the time, those data packets)."""
    again: list = []
    while not again and t < limit:
        t = c.next_timer()
        c.timer_expired(t)
        again = data_packets(c.packets_to_send(t))
    return t, again


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
    # The lost segment is resent as pieces of the shrunk size covering exactly
    # its byte range (a pilotgw receiver reassembles by byte range).
    first = w.sent[0].index(dropped[0])
    pieces = sorted((p.seq, len(p.payload)) for p in w.sent[0][first + 1 :] if 65425 <= p.seq < 2 * 65424 + 1 and p.payload)
    assert pieces[0][0] == 65425 and all(n == 65424 // 4 or a + n == 2 * 65424 + 1 for a, n in pieces)
    assert len(pieces) == 4 and sum(n for _, n in pieces) == 65424
    assert min(sizes) < 65424 // 2  # new data was cut smaller after the loss
    assert c.stats().segment_size == 65424 and 65424 in sizes[-8:]  # and grew back


def test_reference_sized_segments_are_resent_identically():
    # 4096-byte segments may go to a reference peer: even after the size
    # shrank below them, a lost one is resent with the same bytes.
    opts = StreamOptions(min_mss=1360, no_delay=True)
    c, s = handshake(copts=opts)
    c.send(bytes(range(256)) * 64)  # 4 segments of 4096
    out = data_packets(c.packets_to_send(0.1))
    c.send_failed(out[2:3], 0.1)
    assert c.stats().segment_size < 4096
    for p in out[:2] + out[3:]:  # the others arrive and are (S)ACKed
        s.receive(p, 0.1)
    for p in s.packets_to_send(0.1):
        c.receive(p, 0.1)
    _, again = next_data(c, 0.1, 0.5)
    assert [(p.seq, p.payload) for p in again] == [(out[2].seq, out[2].payload)]


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
    t, again = next_data(c, 0.1, 0.3)
    assert 0.101 <= t < 0.2  # after the 1 ms hold, well before any timeout
    assert [(p.seq, p.payload) for p in again] == [(p.seq, p.payload) for p in out[6:]]
    assert c.stats().retransmits == 4


def test_refusal_of_acks_or_old_copies_changes_nothing():
    c, s = handshake()
    c.send(bytes(8192))
    out = c.packets_to_send(0.1)
    c.send_failed(out, 0.5)  # not the copies sent at 0.5: ignored
    assert c.stats().local_drops == 0 and not c.stats().in_recovery


def _stuck_head(until: float, stall_timeout: float, duration: float):
    """Both ends take large segments; the local queue refuses every copy of
    the bytes at sequence 1 until ``until`` (as a qdisc that never has room
    for a whole 45-fragment datagram) while the writer keeps writing, so
    SACKs of later data keep arriving. Returns the wire, the client and its
    stream errors with their times."""
    opts = replace(BIG, stall_timeout=stall_timeout)
    c, s = handshake(copts=opts, sopts=opts)

    def refuse(side, p):
        if side == 0 and p.seq == 1 and p.payload and w.now < until:
            c.send_failed([p], w.now)
            return True
        return False

    w = Wire(c, s, drop=refuse)
    errors = []
    got = [0]

    def read() -> None:
        got[0] += len(s.read())

    t = 0.0
    while t < duration and c.state != State.CLOSED:
        c.send(bytes(16 * 1024))  # 320 KiB/s, never waiting
        w.pump(t)
        w.advance(t + 0.05, step_cb=read)
        read()
        errors += [(w.now, e) for e in events(c) if isinstance(e, StreamError)]
        t += 0.05
    return w, c, errors, got[0]


def test_a_stuck_oldest_segment_is_not_given_up_while_the_peer_sacks():
    # The fan-out lab's abort: SACKs of new data kept the timeout at its base
    # while the oldest segment stayed refused, and eight timeouts (about 2 s)
    # reset a stream whose peer was answering all along.
    w, c, errors, got = _stuck_head(until=4.0, stall_timeout=60.0, duration=8.0)
    assert not errors and c.state == State.ESTABLISHED
    assert c.stats().sack_recv > 20  # the peer was SACKing throughout
    assert got >= 159 * 16 * 1024  # and everything written arrived in the end
    # The refused bytes went back in pieces: the current size first, then
    # unfragmented ones (at most min_mss) once a piece failed again.
    head = [len(p.payload) for p in w.sent[0] if p.seq == 1 and p.payload]
    assert head[0] == 16 * 1024 and len(head) > 3 and max(head[2:]) <= 1360


def test_a_peer_that_sacks_but_never_takes_the_oldest_segment_is_given_up_after_the_stall_limit():
    w, c, errors, got = _stuck_head(until=1e9, stall_timeout=3.0, duration=8.0)
    assert got == 0
    assert [e.code for _, e in errors] == ["stalled"]
    assert 3.0 < errors[0][0] < 3.5
    assert c.state == State.CLOSED and w.sent[0][-1].flags & 0x08  # RST


def test_a_closed_connection_has_no_timer_left_after_a_refusal():
    # A refused send starts a short hold; the connection closing meanwhile
    # must not leave that time behind (an owner polling next_timer() spun).
    c, s = handshake()
    c.send(bytes(8192))
    c.send_failed(c.packets_to_send(0.1), 0.1)
    assert c.next_timer() is not None and c.next_timer() < 0.2  # the hold
    rst = [p for p in s.packets_to_send(0.1)]  # nothing yet; the peer resets
    s.abort()
    for p in s.packets_to_send(0.1) + rst:
        c.receive(p, 0.1)
    assert c.state == State.CLOSED and c.next_timer() is None


def test_timeouts_while_the_local_queue_refuses_do_not_count_towards_giving_up():
    # Parallel streams of one node share its uplink, and one can find the
    # qdisc full for tens of seconds while another holds it: refusals are not
    # a dead peer. Only the idle timeout (nothing received) ends it then.
    opts = StreamOptions(idle_timeout=120.0)
    c, s = handshake(copts=opts, sopts=opts)
    refusing = {"on": True}

    def refuse(side, p):
        if side == 0 and p.payload and refusing["on"]:
            c.send_failed([p], w.now)
            return True
        return False

    w = Wire(c, s, drop=refuse)
    c.send(bytes(8192))
    w.pump(0.0)
    w.advance(60.0)  # far more than the ~40 s of eight backed-off timeouts
    assert c.state == State.ESTABLISHED and c.stats().timeouts > 8
    assert not [e for e in events(c) if isinstance(e, StreamError)]
    refusing["on"] = False
    w.advance(80.0, step_cb=lambda: s.read())
    assert c.send_buffered == 0
