"""Beacon codec: RV-TV3 vectors, round trips, and no crash on any datagram."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import beacon
from pilotgw.overlay.errors import DecodeError

RV_TV3 = [
    (beacon.Discover(5), "0100000005"),
    (beacon.Discover(0), "0100000000"),
    (beacon.DiscoverReply("203.0.113.7", 40000), "0204cb0071079c40"),
    (beacon.DiscoverReply("2001:db8::1", 9001), "021020010db80000000000000000000000012329"),
    (beacon.PunchRequest(5, 9), "030000000500000009"),
    (beacon.PunchCommand("198.51.100.20", 50000), "0404c6336414c350"),
    (beacon.Relay(5, 9, b"PILP"), "05000000050000000950494c50"),
    (beacon.RelayDeliver(5, b"PILP"), "060000000550494c50"),
    (beacon.Sync(1, (5, 9)), "070000000100020000000500000009"),
]


@pytest.mark.parametrize(("msg", "hexdata"), RV_TV3)
def test_rv_tv3_vectors(msg, hexdata):
    assert beacon.encode(msg).hex() == hexdata
    assert beacon.decode(bytes.fromhex(hexdata)) == msg


def test_ipv4_mapped_address_goes_out_as_four_bytes():
    assert beacon.encode(beacon.DiscoverReply("::ffff:203.0.113.7", 40000)).hex() == "0204cb0071079c40"


def test_discover_ignores_extra_bytes():
    assert beacon.decode(bytes.fromhex("0100000005ffff")) == beacon.Discover(5)


def test_relay_to_deliver_rewrites_header_only():
    data = beacon.encode(beacon.Relay(7, 9, b"PILSxyz"))
    assert beacon.decode(beacon.relay_to_deliver(data)) == beacon.RelayDeliver(7, b"PILSxyz")


@pytest.mark.parametrize(
    ("hexdata", "code"),
    [("", "truncated"), ("01000000", "truncated"), ("0205cb0071079c40", "malformed"), ("0204cb00", "truncated"),
     ("0300000005000000", "truncated"), ("0500000005000000", "truncated"), ("0600000005", "truncated"),
     ("07000000010003000000050000000900", "truncated"), ("08", "unknown_type"), ("50494c54", "unknown_type")],
)
def test_bad_datagrams_raise_decode_error(hexdata, code):
    with pytest.raises(DecodeError) as info:
        beacon.decode(bytes.fromhex(hexdata))
    assert info.value.code == code


def test_encode_refuses_out_of_range_values():
    with pytest.raises(ValueError):
        beacon.encode(beacon.RelayDeliver(1, b""))
    with pytest.raises(ValueError):
        beacon.encode(beacon.PunchCommand("1.2.3.4", 70000))


u32 = st.integers(0, 2**32 - 1)
messages = st.one_of(
    st.builds(beacon.Discover, u32),
    st.builds(beacon.DiscoverReply, st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.builds(beacon.PunchRequest, u32, u32),
    st.builds(beacon.PunchCommand, st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
    st.builds(beacon.Relay, u32, u32, st.binary(max_size=64)),
    st.builds(beacon.RelayDeliver, u32, st.binary(min_size=1, max_size=64)),
    st.builds(beacon.Sync, u32, st.lists(u32, max_size=20).map(tuple)),
)


@settings(max_examples=400)
@given(messages)
def test_round_trip(msg):
    decoded = beacon.decode(beacon.encode(msg))
    if isinstance(msg, beacon.PunchCommand) and decoded.ip != msg.ip:
        assert decoded.ip == str(ipaddress.ip_address(msg.ip).ipv4_mapped)
    else:
        assert decoded == msg


@settings(max_examples=400)
@given(st.binary(max_size=40))
def test_any_datagram_decodes_or_raises_decode_error(data):
    try:
        beacon.decode(data)
    except DecodeError:
        pass
