"""SACK option: TV-2, the contract pattern and the strict parse (§1.11.5, T-D11)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import sack
from pilotgw.overlay.errors import DecodeError

TV2 = bytes.fromhex("5341434b 02 00001001 00002001 00003001 00004001".replace(" ", ""))
TV2_BLOCKS = [(4097, 8193), (12289, 16385)]


def test_tv2_encode_decode() -> None:
    assert sack.encode(TV2_BLOCKS) == TV2
    assert sack.decode(TV2) == TV2_BLOCKS
    assert sack.looks_like_sack(TV2)


def test_contract_pattern_ignores_trailing_bytes() -> None:
    # The reference treats this as SACK (never data); our strict parse refuses it.
    assert sack.looks_like_sack(TV2 + b"xyz")
    with pytest.raises(DecodeError):
        sack.decode(TV2 + b"xyz")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"SACK",
        b"SACK\x00",
        b"SACK\x05" + b"\0" * 40,
        b"SACK\x02" + b"\0" * 15,
        b"sack\x01" + b"\0" * 8,
        b"XSACK\x01" + b"\0" * 8,
    ],
)
def test_not_sack(payload: bytes) -> None:
    assert not sack.looks_like_sack(payload)
    with pytest.raises(DecodeError):
        sack.decode(payload)


def test_four_byte_prefix_split_cannot_match() -> None:
    # T-D11: a sender splits "SACK" off data into its own 4-byte segment.
    assert not sack.looks_like_sack(b"SACK")


@pytest.mark.parametrize("block", [(5, 5), (10, 5), (0, 0x80000000)])
def test_strict_parse_rejects_empty_or_inverted_blocks(block: tuple[int, int]) -> None:
    payload = b"SACK\x01" + struct.pack(">II", *block)
    assert sack.looks_like_sack(payload)
    with pytest.raises(DecodeError):
        sack.decode(payload)


def test_block_may_wrap_sequence_space() -> None:
    assert sack.decode(sack.encode([(0xFFFFFF00, 0x100)])) == [(0xFFFFFF00, 0x100)]


def test_encode_refuses_bad_counts() -> None:
    with pytest.raises(ValueError):
        sack.encode([])
    with pytest.raises(ValueError):
        sack.encode([(1, 2)] * 5)


blocks = st.lists(
    st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(1, 0x7FFFFFFF)).map(
        lambda lb: (lb[0], (lb[0] + lb[1]) & 0xFFFFFFFF)
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300)
@given(blocks)
def test_round_trip(bs: list[tuple[int, int]]) -> None:
    wire = sack.encode(bs)
    assert len(wire) == 5 + 8 * len(bs)
    assert sack.looks_like_sack(wire)
    assert sack.decode(wire) == bs


@settings(max_examples=500)
@given(st.binary(max_size=40) | st.binary(max_size=36).map(lambda b: b"SACK" + b))
def test_random_bytes_decode_or_decode_error(data: bytes) -> None:
    try:
        got = sack.decode(data)
    except DecodeError:
        return
    assert sack.encode(got) == data and sack.looks_like_sack(data)
