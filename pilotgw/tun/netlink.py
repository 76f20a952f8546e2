"""The few rtnetlink operations the gateway needs, over pyroute2.

Blocking on purpose: pyroute2's synchronous ``IPRoute`` runs an event loop of
its own, so it must not be called from a thread whose loop is running, and
its asyncio variant cannot run on uvloop (which refuses AF_NETLINK). Callers
inside an event loop run these in a worker thread; a new thread inherits the
caller's network namespace, which is what the tests rely on.

Deletions are idempotent: removing something already gone is success, so
cleanup after a crash can replay a whole record without knowing how far the
crashed run got.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from types import TracebackType

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pilotgw.tun.errors import KernelError

_GONE = {errno.ENODEV, errno.ESRCH, errno.ENOENT}


class Netlink:
    """A netlink session in the caller's network namespace (use as a context manager)."""

    def __init__(self) -> None:
        self._ipr = IPRoute()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    def link_index(self, name: str) -> int | None:
        found = self._ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def set_link_up(self, name: str, mtu: int) -> int:
        """Set ``name``'s MTU, bring it up and return its index."""
        index = self._require_link(name)
        self._call(f"configure link {name}", self._ipr.link, "set", index=index, mtu=mtu, state="up")
        return index

    def delete_link(self, name: str) -> None:
        index = self.link_index(name)
        if index is not None:
            self._call(f"delete link {name}", self._ipr.link, "del", index=index, ignore=_GONE)

    def add_route(self, dst: ipaddress.IPv4Network, device: str, table: int) -> None:
        index = self._require_link(device)
        self._call(
            f"add route {dst} dev {device} table {table}",
            self._ipr.route,
            "add",
            dst=str(dst),
            oif=index,
            table=table,
        )

    def delete_route(self, dst: ipaddress.IPv4Network, table: int) -> None:
        self._call(
            f"delete route {dst} table {table}",
            self._ipr.route,
            "del",
            dst=str(dst),
            table=table,
            ignore=_GONE,
        )

    def add_rule(self, dst: ipaddress.IPv4Network, table: int, priority: int) -> None:
        self._call(
            f"add rule to {dst} lookup {table}",
            self._ipr.rule,
            "add",
            dst=str(dst.network_address),
            dst_len=dst.prefixlen,
            table=table,
            priority=priority,
        )

    def delete_rule(self, dst: ipaddress.IPv4Network, table: int, priority: int) -> None:
        self._call(
            f"delete rule to {dst} lookup {table}",
            self._ipr.rule,
            "del",
            dst=str(dst.network_address),
            dst_len=dst.prefixlen,
            table=table,
            priority=priority,
            ignore=_GONE,
        )

    def routes_in_table(self, table: int) -> list[str]:
        """Destinations of the IPv4 routes in ``table`` (for leftover checks)."""
        found = []
        for route in self._ipr.route("dump", family=2, table=table):
            if route.get("table") == table:
                found.append(f"{route.get('dst') or '0.0.0.0'}/{route['dst_len']}")
        return found

    def rules_for_table(self, table: int) -> list[str]:
        """``priority: to dst/len`` for every IPv4 rule pointing at ``table``."""
        found = []
        for rule in self._ipr.rule("dump", family=2):
            if rule.get("table") == table:
                found.append(f"{rule.get('priority')}: to {rule.get('dst')}/{rule['dst_len']}")
        return found

    def ipv4_addresses(self) -> list[ipaddress.IPv4Interface]:
        """Every IPv4 address on every link (for leftover checks)."""
        return [
            ipaddress.IPv4Interface(f"{msg.get('address')}/{msg['prefixlen']}")
            for msg in self._ipr.addr("dump", family=2)
        ]

    def _require_link(self, name: str) -> int:
        index = self.link_index(name)
        if index is None:
            raise KernelError(f"no network device named {name}", "internal")
        return index

    @staticmethod
    def _call(
        what: str,
        method: Callable[..., object],
        *args: object,
        ignore: AbstractSet[int] = frozenset(),
        **kwargs: object,
    ) -> None:
        try:
            method(*args, **kwargs)
        except NetlinkError as exc:
            if exc.code in ignore:
                return
            if exc.code == errno.EEXIST:
                raise KernelError(f"{what}: already exists", "already_exists") from exc
            if exc.code == errno.EPERM:
                raise KernelError(f"{what}: operation not permitted", "permission_denied") from exc
            raise KernelError(f"{what}: {exc}", "internal") from exc
