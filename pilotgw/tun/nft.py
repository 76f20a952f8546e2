"""The gateway's nftables table: generated text applied with ``nft -f -``.

Everything lives in one ``ip`` table of our own, ``pilotgw_<device>``;
deleting that table removes every rule, chain and set we added and nothing
else. Other tables are never read or written.

What the table does (the routing design is in :mod:`pilotgw.tun`):

* ``nat_output`` / ``nat_prerouting`` — TCP to a *mapped* IP (on a listed
  port, if ports are restricted) is redirected to the proxy's single
  listener; the proxy recovers the original destination with
  ``SO_ORIGINAL_DST``. Output covers the gateway host's own clients,
  prerouting covers hosts that route the subnet through it.
* ``guard`` (from ``filter_output`` and ``filter_forward``) — whatever is
  left for the subnet fails fast instead of timing out: TCP not redirected
  gets a reset, traffic to an unmapped IP gets ICMP host-unreachable, UDP to
  an unlisted port gets port-unreachable, other protocols
  protocol-unreachable. Only ICMP and UDP to mapped IPs reach the TUN device.
* ``filter_input`` — the listener binds the wildcard address (redirected
  packets from other hosts arrive on their interface's address), so any
  connection to it that was not redirected from the subnet is reset.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable

from pilotgw.tun.errors import KernelError
from pilotgw.tun.privileges import find_nft

FAMILY = "ip"
MAPPED_SET = "mapped"


def table_name(device: str) -> str:
    """The gateway's table, named after its TUN device so two gateways never share one."""
    return f"pilotgw_{device}"


def _elements(items: Iterable[object]) -> str:
    return "{ " + ", ".join(str(item) for item in items) + " }"


def render_ruleset(
    table: str,
    subnet: ipaddress.IPv4Network,
    listener_port: int,
    ports: frozenset[int] | None,
    mapped: Iterable[ipaddress.IPv4Address] = (),
) -> str:
    """The complete ``nft -f`` script that creates the gateway's table.

    ``ports=None`` proxies every TCP port and lets UDP to any port through.
    """
    if ports is not None and not ports:
        raise KernelError("the port list is empty", "invalid_argument")
    tcp_match = "meta l4proto tcp" if ports is None else f"tcp dport {_elements(sorted(ports))}"
    redirect = f"ip daddr @{MAPPED_SET} {tcp_match} redirect to :{listener_port}"
    udp_guard = (
        ""
        if ports is None
        else f"\t\tudp dport != {_elements(sorted(ports))} reject with icmp type port-unreachable\n"
    )
    script = (
        f"table {FAMILY} {table} {{\n"
        f"\tset {MAPPED_SET} {{\n\t\ttype ipv4_addr\n\t}}\n"
        f"\tchain nat_output {{\n\t\ttype nat hook output priority -100; policy accept;\n"
        f"\t\t{redirect}\n\t}}\n"
        f"\tchain nat_prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n"
        f"\t\t{redirect}\n\t}}\n"
        f"\tchain guard {{\n"
        f"\t\tmeta l4proto tcp reject with tcp reset\n"
        f"\t\tip daddr != @{MAPPED_SET} reject with icmp type host-unreachable\n"
        f"{udp_guard}"
        f"\t\tmeta l4proto != {{ icmp, udp }} reject with icmp type prot-unreachable\n"
        f"\t}}\n"
        f"\tchain filter_output {{\n\t\ttype filter hook output priority 0; policy accept;\n"
        f"\t\tip daddr {subnet} jump guard\n\t}}\n"
        f"\tchain filter_forward {{\n\t\ttype filter hook forward priority 0; policy accept;\n"
        f"\t\tip daddr {subnet} jump guard\n\t}}\n"
        f"\tchain filter_input {{\n\t\ttype filter hook input priority 0; policy accept;\n"
        f"\t\ttcp dport {listener_port} ct original ip daddr != {subnet} reject with tcp reset\n"
        f"\t}}\n"
        f"}}\n"
    )
    addresses = list(mapped)
    if addresses:
        script += f"add element {FAMILY} {table} {MAPPED_SET} {_elements(addresses)}\n"
    return script


class Nft:
    """Runs ``nft`` (blocking) against the caller's network namespace."""

    def __init__(self) -> None:
        self._path = find_nft()

    def _run(self, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._path, *args],
            input=script,
            capture_output=True,
            text=True,
            check=False,
        )

    def apply(self, script: str) -> None:
        """Apply a script as one transaction: all of it or none of it."""
        done = self._run("-f", "-", script=script)
        if done.returncode != 0:
            raise KernelError(f"nft: {done.stderr.strip()}", "internal")

    def table_exists(self, table: str) -> bool:
        return self._run("list", "table", FAMILY, table).returncode == 0

    def tables(self) -> list[str]:
        """Names of the ``ip`` tables (for leftover checks)."""
        done = self._run("list", "tables", FAMILY)
        if done.returncode != 0:
            raise KernelError(f"nft: {done.stderr.strip()}", "internal")
        return [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("table ")]

    def delete_table(self, table: str) -> None:
        """Delete our table if present (nft 1.0.6 has no ``destroy``)."""
        if self.table_exists(table):
            self.apply(f"delete table {FAMILY} {table}\n")

    def add_mapped(self, table: str, address: ipaddress.IPv4Address) -> None:
        self.apply(f"add element {FAMILY} {table} {MAPPED_SET} {{ {address} }}\n")

    def remove_mapped(self, table: str, address: ipaddress.IPv4Address) -> None:
        self.apply(f"delete element {FAMILY} {table} {MAPPED_SET} {{ {address} }}\n")
