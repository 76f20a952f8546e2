"""Install and remove the kernel side of one gateway subnet.

Order of installation (each step recorded in the state file first):

1. the TUN device (up, MTU 65535 so local UDP needs no fragmentation),
2. a route for the subnet through the TUN in a routing table of our own,
3. a policy rule sending traffic *to* the subnet to that table (so the main
   table is never edited),
4. the nftables table (see :mod:`pilotgw.tun.nft`).

Removal runs the record backwards. All methods block; call them from a
worker thread when inside an event loop.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pilotgw.tun import nft as nftables
from pilotgw.tun.device import TunDevice, validate_name
from pilotgw.tun.errors import KernelError
from pilotgw.tun.netlink import Netlink
from pilotgw.tun.privileges import require_net_admin
from pilotgw.tun.state import KernelRecord, undo

DEFAULT_DEVICE = "pilot0"
DEFAULT_TABLE = 4104
DEFAULT_RULE_PRIORITY = 4104
TUN_MTU = 65535


class SubnetPlumbing:
    """The TUN device, route, rule and nftables table for one subnet."""

    def __init__(
        self,
        subnet: ipaddress.IPv4Network,
        state_path: Path,
        *,
        device: str = DEFAULT_DEVICE,
        route_table: int = DEFAULT_TABLE,
        rule_priority: int = DEFAULT_RULE_PRIORITY,
    ) -> None:
        self.subnet = subnet
        self.device = validate_name(device)
        self.route_table = route_table
        self.rule_priority = rule_priority
        self.nft_table = nftables.table_name(device)
        self._record = KernelRecord(Path(state_path))
        self._nft: nftables.Nft | None = None
        self.tun: TunDevice | None = None

    def install(
        self,
        listener_port: int,
        ports: frozenset[int] | None,
        mapped: list[ipaddress.IPv4Address],
    ) -> TunDevice:
        """Create everything and return the TUN device; on failure undo what was done.

        Refuses (``already_exists``) when the device or nft table is present,
        since that means another gateway owns them.
        """
        require_net_admin()
        self._nft = nftables.Nft()
        with Netlink() as netlink:
            if netlink.link_index(self.device) is not None:
                raise KernelError(
                    f"network device {self.device} already exists",
                    "already_exists",
                    "another gateway may be running; stop it or choose another device name",
                )
        if self._nft.table_exists(self.nft_table):
            raise KernelError(
                f"nftables table ip {self.nft_table} already exists",
                "already_exists",
                f"another gateway may be running; if not: nft delete table ip {self.nft_table}",
            )
        ruleset = nftables.render_ruleset(self.nft_table, self.subnet, listener_port, ports, mapped)
        self._record.begin()
        try:
            self._record.intend({"kind": "link", "name": self.device})
            self.tun = TunDevice.open(self.device)
            with Netlink() as netlink:
                netlink.set_link_up(self.device, TUN_MTU)
                route = {"kind": "route", "dst": str(self.subnet), "table": self.route_table}
                self._record.intend(route)
                netlink.add_route(self.subnet, self.device, self.route_table)
                self._record.intend({**route, "kind": "rule", "priority": self.rule_priority})
                netlink.add_rule(self.subnet, self.route_table, self.rule_priority)
            self._record.intend({"kind": "nft_table", "name": self.nft_table})
            self._nft.apply(ruleset)
        except BaseException:
            self.remove()
            raise
        return self.tun

    def add_mapped(self, address: ipaddress.IPv4Address) -> None:
        """Let traffic to ``address`` through to the proxy."""
        self._installed_nft().add_mapped(self.nft_table, address)

    def remove_mapped(self, address: ipaddress.IPv4Address) -> None:
        """New traffic to ``address`` is refused from now on."""
        self._installed_nft().remove_mapped(self.nft_table, address)

    def remove(self) -> list[str]:
        """Undo everything recorded and delete the state file; idempotent."""
        if self.tun is not None:
            self.tun.close()
            self.tun = None
        done = undo(self._record.items)
        self._record.finish()
        self._nft = None
        return done

    def _installed_nft(self) -> nftables.Nft:
        if self._nft is None:
            raise KernelError("the gateway's kernel side is not installed", "invalid_state")
        return self._nft
