"""The connection table: listeners, RST rules, duplicate SYNs, TIME_WAIT reuse."""

from __future__ import annotations

import random

from pilotgw.overlay.address import PORT_EPHEMERAL_MAX, PORT_EPHEMERAL_MIN, Addr, SocketAddr
from pilotgw.overlay.stream.demux import StreamTable
from pilotgw.overlay.stream.states import State

from .stream_helpers import ACK, FIN, RST, SYN, A, B, pkt


def table(**kw) -> StreamTable:
    return StreamTable(B.addr, rng=random.Random(1), **kw)


def syn(src=A, port=1000):
    return pkt(SYN, src=src, dst=SocketAddr(B.addr, port))


def test_syn_to_a_closed_port_is_answered_with_rst_ports_swapped():
    t = table()
    assert t.receive(syn(), 0.0) is None
    (rst,) = t.packets_to_send()
    assert (rst.flags, rst.seq, rst.ack, rst.window) == (RST, 0, 0, 0)
    assert (rst.src_port, rst.dst_port, rst.dst_node) == (1000, A.port, A.addr.node)


def test_stray_packets_get_no_rst():
    t = table()
    t.listen(1000)
    for flags in (ACK, FIN, FIN | ACK, RST, SYN | ACK):
        assert t.receive(pkt(flags, src=A, dst=B), 0.0) is None
    assert t.packets_to_send() == []


def test_accept_then_duplicate_syn_goes_to_the_same_connection():
    t = table()
    t.listen(1000)
    c = t.receive(syn(), 0.0)
    assert c is not None and c.conn_id == 1 and list(t.accepted) == [c]
    c.packets_to_send(0.0)
    assert t.receive(syn(), 0.5) is c
    (again,) = c.packets_to_send(0.5)
    assert again.flags == SYN | ACK and len(t.connections) == 1


def test_syn_matching_a_time_wait_entry_replaces_it():
    t = table()
    t.listen(1000)
    old = t.receive(syn(), 0.0)
    old.receive(pkt(FIN | ACK, 1, 1, 0, src=A, dst=B), 0.1)  # Seq = the peer's next byte
    assert old.state is State.TIME_WAIT
    new = t.receive(syn(), 0.2)
    assert new is not old and new.conn_id == 2 and new.state is State.ESTABLISHED


def test_connection_limits_answer_with_rst():
    t = table(max_per_port=2)
    t.listen(1000)
    for node in (10, 11):
        assert t.receive(syn(SocketAddr(Addr(0, node), 50000)), 0.0) is not None
    assert t.receive(syn(SocketAddr(Addr(0, 12), 50000)), 0.0) is None
    assert [p.flags for p in t.packets_to_send()] == [RST]


def test_dial_uses_sequential_ephemeral_ports_from_a_random_start():
    t = table()
    c1 = t.dial(SocketAddr(Addr(0, 9), 80), 0.0)
    c2 = t.dial(SocketAddr(Addr(0, 9), 80), 0.0)
    assert PORT_EPHEMERAL_MIN <= c1.local.port <= PORT_EPHEMERAL_MAX
    assert c2.local.port in (c1.local.port + 1, PORT_EPHEMERAL_MIN)
    syn_pkt = c1.packets_to_send(0.0)[0]
    assert syn_pkt.flags == SYN and syn_pkt.src_port == c1.local.port


def test_closed_connections_are_removed():
    t = table()
    t.listen(1000)
    c = t.receive(syn(), 0.0)
    t.receive(pkt(RST, src=A, dst=B), 0.1)
    assert c.state is State.CLOSED and t.remove_closed() == [c] and not t.connections
