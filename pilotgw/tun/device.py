"""The TUN device: a file descriptor that exchanges raw IPv4 packets with the
kernel.

Created with the TUNSETIFF ioctl on ``/dev/net/tun`` (netlink cannot create
TUN devices that a process then owns). The device is *not* persistent: the
kernel deletes it, and every route through it, the moment the descriptor is
closed, including when the process is killed with SIGKILL. Everything else
(links state, MTU, routes, rules) is configured through netlink by
:mod:`pilotgw.tun.netlink`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct

from pilotgw.tun.errors import KernelError
from pilotgw.tun.privileges import TUN_PATH

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# Linux interface names: at most 15 bytes. We also keep them usable inside an
# nftables identifier (the gateway's table is named after its device).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,14}")
# Large enough for the largest IPv4 packet the device can carry (MTU 65535).
READ_SIZE = 65536


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KernelError(
            f"invalid device name {name!r}: 1-15 letters, digits or '_', starting with a letter",
            "invalid_argument",
        )
    return name


class TunDevice:
    """An open, non-blocking TUN descriptor (no packet-info header)."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    @classmethod
    def open(cls, name: str) -> "TunDevice":
        """Create TUN device ``name`` and return its descriptor.

        The caller must have checked that no link of that name exists: the
        ioctl would otherwise attach to an existing persistent TUN device.
        """
        validate_name(name)
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise KernelError(f"open {TUN_PATH}: {exc.strerror}", "unavailable") from exc
        try:
            ifr = struct.pack("16sH", name.encode("ascii"), IFF_TUN | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            os.close(fd)
            raise KernelError(f"create TUN device {name}: {exc.strerror}", "internal") from exc
        return cls(fd, name)

    def read(self) -> bytes | None:
        """One packet, or ``None`` when none is waiting."""
        try:
            return os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> bool:
        """Hand one IPv4 packet to the kernel; ``False`` if it was refused.

        The kernel rejects a malformed packet or one it has no room for; on
        this slow path that is a drop, like any lost datagram.
        """
        try:
            os.write(self.fd, packet)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINVAL, errno.ENOBUFS, errno.EIO):
                return False
            raise
        return True

    def close(self) -> None:
        """Close the descriptor; the kernel removes the device and its routes."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
