"""Reply matching and error attribution (trust-and-ipc.md §A2.8, D-12)."""

from __future__ import annotations

import pytest

from pilotgw.client import core, wire
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError


def _err(message: str) -> bytes:
    return wire.frame(wire.ERROR, b"\x00\x01" + message.encode())


def test_replies_complete_requests_in_order() -> None:
    c = core.DriverCore()
    t1 = c.rpc(wire.INFO_OK)
    t2 = c.rpc(wire.HANDSHAKE_OK)
    events = c.receive(wire.frame(wire.INFO_OK, b"{}") + wire.frame(wire.HANDSHAKE_OK, b"[]"))
    assert events == [core.Reply(t1, wire.INFO_OK, b"{}"), core.Reply(t2, wire.HANDSHAKE_OK, b"[]")]
    assert c.pending == 0


def test_out_of_order_reply_is_a_protocol_error() -> None:
    c = core.DriverCore()
    c.rpc(wire.INFO_OK)
    with pytest.raises(DecodeError):
        c.receive(wire.frame(wire.DIAL_OK, b"\x00\x00\x00\x01"))


def test_send_error_goes_to_the_connection_not_the_rpc() -> None:
    c = core.DriverCore()
    c.send(7, b"data")
    token = c.rpc(wire.INFO_OK)
    events = c.receive(_err("send: connection closed") + wire.frame(wire.INFO_OK, b"{}"))
    assert events == [core.SendFailed(7, "send: connection closed"), core.Reply(token, wire.INFO_OK, b"{}")]


def test_not_found_error_names_its_connection() -> None:
    c = core.DriverCore()
    c.send(1, b"a")
    c.send(2, b"b")
    assert c.receive(_err("connection 2 not found")) == [core.SendFailed(2, "connection 2 not found")]


def test_send_error_prefers_connection_closed_by_peer() -> None:
    c = core.DriverCore()
    c.send(1, b"a")
    c.send(2, b"b")
    events = c.receive(wire.frame(wire.CLOSE_OK, (2).to_bytes(4, "big")) + _err("send: connection closed"))
    assert events == [core.Eof(2), core.SendFailed(2, "send: connection closed")]


def test_rpc_error_after_successful_sends() -> None:
    c = core.DriverCore()
    c.send(1, b"a")
    token = c.rpc(wire.HANDSHAKE_OK)
    assert c.receive(_err("handshake revoke: node 5 was not trusted")) == [
        core.Failed(token, "handshake revoke: node 5 was not trusted")
    ]


def test_unsolicited_error_is_dropped() -> None:
    assert core.DriverCore().receive(_err("something")) == []


def test_local_close_double_close_ok() -> None:
    c = core.DriverCore()
    token, frame = c.close(4)
    assert frame == wire.close(4)
    info = c.rpc(wire.INFO_OK)
    closeok = wire.frame(wire.CLOSE_OK, (4).to_bytes(4, "big"))
    events = c.receive(closeok + closeok + wire.frame(wire.INFO_OK, b"{}"))
    assert events == [
        core.Eof(4),
        core.Reply(token, wire.CLOSE_OK, (4).to_bytes(4, "big")),
        core.Eof(4),
        core.Reply(info, wire.INFO_OK, b"{}"),
    ]


def test_pushes_interleave_with_replies() -> None:
    c = core.DriverCore()
    token = c.rpc(wire.BIND_OK)
    data = (
        wire.frame(wire.RECV, (3).to_bytes(4, "big") + b"xyz")
        + wire.frame(wire.BIND_OK, b"\x03\xe8")
        + wire.frame(wire.RECV_FROM, bytes.fromhex("000000000009 C000 03E8") + b"dg")
    )
    events = c.receive(data)
    assert events[0] == core.Data(3, b"xyz")
    assert events[1] == core.Reply(token, wire.BIND_OK, b"\x03\xe8")
    assert events[2].datagram.data == b"dg" and events[2].datagram.dst_port == 1000


def test_unknown_command_from_daemon() -> None:
    with pytest.raises(DecodeError):
        core.DriverCore().receive(wire.frame(0x42))


def test_sendto_error_is_reported_separately() -> None:
    c = core.DriverCore()
    c.send_to(Addr(0, 9), 5, b"x")
    token = c.rpc(wire.INFO_OK)
    events = c.receive(_err("sendto: no route") + wire.frame(wire.INFO_OK, b"{}"))
    assert events == [core.SendToFailed("sendto: no route"), core.Reply(token, wire.INFO_OK, b"{}")]
