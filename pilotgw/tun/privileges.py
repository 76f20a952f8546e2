"""Up-front privilege check, so a gateway without rights fails before it
touches anything.

Being uid 0 is neither necessary nor sufficient: a container's root can lack
CAP_NET_ADMIN, and an unprivileged binary can be granted it with ``setcap``.
So the check reads the *effective* capability set from ``/proc/self/status``.
"""

from __future__ import annotations

import os
import shutil

from pilotgw.tun.errors import KernelError

CAP_NET_ADMIN = 12
TUN_PATH = "/dev/net/tun"
PERMISSION_HINT = (
    "run with sudo, or grant the capability: sudo setcap cap_net_admin+ep <python-or-binary>"
)


def effective_capabilities(status_text: str) -> int:
    """The ``CapEff`` bitmask from the text of ``/proc/<pid>/status``."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise KernelError("no CapEff line in /proc/self/status", "unavailable")


def has_net_admin() -> bool:
    with open("/proc/self/status", encoding="ascii") as status:
        return bool(effective_capabilities(status.read()) >> CAP_NET_ADMIN & 1)


def find_nft() -> str:
    """Path of the ``nft`` binary (often in /usr/sbin, which sudo-less PATHs lack)."""
    found = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if found is None:
        raise KernelError(
            "nft (nftables) is not installed", "unavailable", "install it: sudo apt-get install nftables"
        )
    return found


def require_net_admin() -> None:
    """Raise :class:`KernelError` unless this process may configure the gateway.

    Checks, in order: CAP_NET_ADMIN, a usable ``/dev/net/tun`` and the ``nft``
    tool. Nothing on the system is changed.
    """
    if not has_net_admin():
        raise KernelError(
            "the gateway needs CAP_NET_ADMIN to create its TUN device, routes and nftables rules",
            "permission_denied",
            PERMISSION_HINT,
        )
    if not os.path.exists(TUN_PATH):
        raise KernelError(
            f"{TUN_PATH} is missing",
            "unavailable",
            "load the tun module (modprobe tun) or pass the device into the container (--device /dev/net/tun)",
        )
    find_nft()
