"""Find anything a gateway may have left in the kernel.

Used by the tests' final checks and available to operators' diagnostics: a
clean system has no gateway TUN device, nothing in the gateway's routing
table, no rule pointing at it, no ``pilotgw_*`` nftables table and no
address inside the gateway subnet.
"""

from __future__ import annotations

import ipaddress

from pilotgw.tun.netlink import Netlink
from pilotgw.tun.nft import Nft, table_name
from pilotgw.tun.plumbing import DEFAULT_DEVICE, DEFAULT_TABLE

NFT_PREFIX = table_name("")


def find_leftovers(
    subnet: ipaddress.IPv4Network,
    device: str = DEFAULT_DEVICE,
    route_table: int = DEFAULT_TABLE,
) -> list[str]:
    """Descriptions of gateway objects present in this network namespace (blocking)."""
    found = []
    with Netlink() as netlink:
        if netlink.link_index(device) is not None:
            found.append(f"link {device}")
        found += [f"route {dst} table {route_table}" for dst in netlink.routes_in_table(route_table)]
        found += [f"rule {rule}" for rule in netlink.rules_for_table(route_table)]
        found += [f"address {iface}" for iface in netlink.ipv4_addresses() if iface.ip in subnet]
    found += [f"nft table ip {name}" for name in Nft().tables() if name.startswith(NFT_PREFIX)]
    return found
