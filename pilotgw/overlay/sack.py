"""SACK option carried in a stream ACK's payload (tunnel-and-transport.md §1.11.5).

``"SACK" ‖ count u8 (1..4) ‖ count × (left u32, right u32)``: half-open byte
ranges ``[left, right)`` received beyond the cumulative ACK.

Two readings exist on purpose:

* :func:`looks_like_sack` is the *contract* pattern: any ACK-flagged payload
  matching it is SACK, never data -- the reference classifies our packets this
  way, so a sender must never emit a data segment that matches (T-D11);
* :func:`decode` is our *strict* parse for acting on it: exact length, no
  trailing bytes, every block non-empty.
"""

from __future__ import annotations

import struct
from typing import Sequence, Union

from pilotgw.overlay.errors import DecodeError

MAGIC = b"SACK"
MAX_BLOCKS = 4
_BLOCK = struct.Struct(">II")

Buffer = Union[bytes, bytearray, memoryview]
Block = tuple[int, int]


def looks_like_sack(payload: Buffer) -> bool:
    """The reference's test: length >= 5, magic, 1 <= count <= 4, length >= 5 + 8*count."""
    if len(payload) < 5 or payload[:4] != MAGIC:
        return False
    count = payload[4]
    return 1 <= count <= MAX_BLOCKS and len(payload) >= 5 + 8 * count


def encode(blocks: Sequence[Block]) -> bytes:
    """Encode 1..4 blocks; ``ValueError`` on a count or value out of range."""
    if not 1 <= len(blocks) <= MAX_BLOCKS:
        raise ValueError(f"SACK carries 1 to 4 blocks, not {len(blocks)}")
    out = bytearray(MAGIC)
    out.append(len(blocks))
    for left, right in blocks:
        out += _BLOCK.pack(left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    return bytes(out)


def decode(payload: Buffer) -> list[Block]:
    """Strict parse; raise :class:`DecodeError` unless the payload is exactly a
    SACK option with non-empty blocks (sequence-wise, so blocks may wrap 2^32)."""
    if len(payload) < 5 or payload[:4] != MAGIC:
        raise DecodeError("not a SACK option", "malformed")
    count = payload[4]
    if not 1 <= count <= MAX_BLOCKS:
        raise DecodeError(f"SACK block count {count} outside 1..4", "malformed")
    if len(payload) != 5 + 8 * count:
        raise DecodeError(f"SACK with {count} blocks must be {5 + 8 * count} bytes, got {len(payload)}", "malformed")
    blocks = []
    for i in range(count):
        left, right = _BLOCK.unpack_from(payload, 5 + 8 * i)
        # Non-empty in wrap-around arithmetic: right "after" left.
        diff = (right - left) & 0xFFFFFFFF
        if diff == 0 or diff >= 0x80000000:
            raise DecodeError(f"SACK block [{left}, {right}) is empty or inverted", "malformed")
        blocks.append((left, right))
    return blocks
