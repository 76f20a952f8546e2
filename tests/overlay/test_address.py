"""Addresses: RV-TV4, the strict parser's error texts (services-and-cli.md §0)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import address
from pilotgw.overlay.address import Addr, SocketAddr, format_addr, parse_addr, parse_socket_addr, parse_target
from pilotgw.overlay.errors import DecodeError

networks = st.integers(0, address.MAX_NETWORK)
nodes = st.integers(0, address.MAX_NODE)


@pytest.mark.parametrize(
    "network, node, text",
    [
        (0, 1, "0:0000.0000.0001"),
        (0, 5, "0:0000.0000.0005"),
        (0, 70000, "0:0000.0001.1170"),
        (0, 305419896, "0:0000.1234.5678"),
        (0, 4294967295, "0:0000.FFFF.FFFF"),
    ],
)
def test_rv_tv4_text_form(network: int, node: int, text: str) -> None:
    assert format_addr(network, node) == text
    assert str(Addr(network, node)) == text
    assert parse_addr(text) == Addr(network, node)


def test_parse_accepts_lower_case_hex() -> None:
    assert parse_addr("0:0000.ffff.abcd") == Addr(0, 0xFFFFABCD)


def test_nonzero_network_formats_network_twice() -> None:
    assert format_addr(163, 4) == "163:00A3.0000.0004"
    assert parse_addr("163:00A3.0000.0004") == Addr(163, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1:00A3.F291.0004", "network mismatch: decimal 1 != hex 0x00A3"),
        ("0000.0000.0005", 'invalid address: "0000.0000.0005" (expected N:XXXX.YYYY.YYYY)'),
        ("x:0000.0000.0005", 'invalid network ID: "x": strconv.ParseUint: parsing "x": invalid syntax'),
        ("-1:0000.0000.0005", 'invalid network ID: "-1": strconv.ParseUint: parsing "-1": invalid syntax'),
        (":0000.0000.0005", 'invalid network ID: "": strconv.ParseUint: parsing "": invalid syntax'),
        (
            "65536:0000.0000.0005",
            'invalid network ID: "65536": strconv.ParseUint: parsing "65536": value out of range',
        ),
        ("0:0000.0005", 'invalid address: "0000.0005" (expected 3 dot-separated hex groups)'),
        ("0:0000.0000.0000.0005", 'invalid address: "0000.0000.0000.0005" (expected 3 dot-separated hex groups)'),
        ("0:0000.000.0005", 'invalid hex group: "000" (expected 4 digits)'),
        ("0:0000.00000.0005", 'invalid hex group: "00000" (expected 4 digits)'),
        ("0:0000.00g0.0005", 'invalid hex group: "00g0": strconv.ParseUint: parsing "00g0": invalid syntax'),
        ("0:0000.+0F0.0005", 'invalid hex group: "+0F0": strconv.ParseUint: parsing "+0F0": invalid syntax'),
    ],
)
def test_parse_error_texts(text: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_addr(text)
    assert str(info.value) == message


def test_parse_rejects_non_text() -> None:
    with pytest.raises(DecodeError):
        parse_addr(5)  # type: ignore[arg-type]


def test_socket_address() -> None:
    assert parse_socket_addr("0:0000.0000.0005:1001") == SocketAddr(Addr(0, 5), 1001)
    assert str(SocketAddr(Addr(0, 5), 1001)) == "0:0000.0000.0005:1001"
    for bad in ("0:0000.0000.0005", "0:0000.0000.0005:", "0:0000.0000.0005:65536", "0:0000.0000.0005:x"):
        with pytest.raises(DecodeError):
            parse_socket_addr(bad)


def test_target_rule() -> None:
    assert parse_target("0:0000.0000.0005") == Addr(0, 5)
    assert parse_target("5") == Addr(0, 5)
    assert parse_target("4294967295") == Addr(0, 0xFFFFFFFF)
    assert parse_target("4294967296") is None  # not a node: a hostname to resolve
    assert parse_target("alice") is None
    with pytest.raises(DecodeError):
        parse_target("1:00A3.F291.0004")


def test_binary_form() -> None:
    assert Addr(0x1234, 0xDEADBEEF).to_bytes() == bytes.fromhex("1234deadbeef")
    assert Addr.from_bytes(bytes.fromhex("1234deadbeef00")) == Addr(0x1234, 0xDEADBEEF)
    with pytest.raises(DecodeError) as info:
        Addr.from_bytes(b"\x00" * 5)
    assert info.value.code == "truncated"


def test_well_known() -> None:
    assert address.REGISTRY == Addr(0, 1) and address.BEACON == Addr(0, 2) and address.NAMESERVER == Addr(0, 3)
    assert Addr(0, address.BROADCAST_NODE).is_broadcast and address.ZERO.is_zero
    assert (address.PORT_HANDSHAKE, address.PORT_DATA_EXCHANGE, address.PORT_EVENT_STREAM) == (444, 1001, 1002)


@settings(max_examples=300)
@given(networks, nodes)
def test_text_round_trip(network: int, node: int) -> None:
    text = format_addr(network, node)
    assert parse_addr(text) == Addr(network, node)
    assert parse_addr(text.lower()) == Addr(network, node)


@settings(max_examples=300)
@given(networks, nodes)
def test_binary_round_trip(network: int, node: int) -> None:
    assert Addr.from_bytes(Addr(network, node).to_bytes()) == Addr(network, node)


@settings(max_examples=500)
@given(st.text(alphabet="0123456789abcdefABCDEFxg:.-+ ", max_size=24) | st.text(max_size=24))
def test_parse_gives_address_or_decode_error(text: str) -> None:
    try:
        addr = parse_addr(text)
    except DecodeError:
        return
    # Whatever is accepted prints back to the same address.
    assert parse_addr(str(addr)) == addr
