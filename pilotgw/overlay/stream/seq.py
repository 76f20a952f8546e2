"""32-bit wire sequence numbers versus our unbounded internal ones.

Inside a connection every sequence number is a plain Python int that never
wraps (the SYN is 0, the first data byte 1, and so on past 2^32). Only the
header carries the low 32 bits. Converting at the edge means the scoreboard,
the reassembly buffer and SACK handling compare ordinary integers, and a SACK
block that straddles 2^32 needs no special case anywhere (§1.11.1 defines the
wire comparison as ``int32(a - b) > 0``; :func:`unwrap` is that rule).
"""

from __future__ import annotations

MASK = 0xFFFFFFFF
HALF = 0x80000000
WRAP = 0x100000000


def unwrap(wire: int, near: int) -> int:
    """The internal sequence number closest to ``near`` whose low 32 bits are ``wire``.

    ``near`` is a sequence number we know (our ``snd_una`` for ACKs and SACK
    blocks, our ``rcv_nxt`` for data): the result lies within 2^31 of it,
    which is the wire contract's own notion of before/after.
    """
    d = (wire - near) & MASK
    if d >= HALF:
        d -= WRAP
    return near + d
