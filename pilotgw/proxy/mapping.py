"""The mapping table: local IP ↔ pilot address (services-and-cli.md §A18.1).

Allocation walks a cursor forward from the subnet's network address + 1
(C-8: not "last byte replaced by 1", which starts outside subnets such as
``10.4.0.128/25``) to its last address, skipping addresses in use; freed
addresses are not reused, even across restarts (the cursor is persisted), so
a stale client never reaches a different agent at an old IP. Mapping an
address that is already mapped returns its existing IP.

Error texts are the reference's, since the CLI embeds them in its output.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, NamedTuple

from pilotgw.overlay.address import Addr, parse_addr
from pilotgw.overlay.errors import DecodeError
from pilotgw.tun.state import atomic_write

DEFAULT_SUBNET = "10.4.0.0/16"
FILE_VERSION = 1


class MappingError(Exception):
    """A refused mapping operation; ``code`` is the CLI error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Mapping(NamedTuple):
    local_ip: ipaddress.IPv4Address
    addr: Addr

    def as_dict(self) -> dict[str, str]:
        """The CLI's JSON shape: ``{local_ip, pilot_addr}``."""
        return {"local_ip": str(self.local_ip), "pilot_addr": str(self.addr)}


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR; host bits are dropped (``10.4.0.1/16`` is ``10.4.0.0/16``), as in Go."""
    try:
        if "/" not in text:  # Go's ParseCIDR needs the prefix length
            raise ValueError(text)
        subnet = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise MappingError(f"parse subnet: invalid CIDR address: {text}", "invalid_argument") from exc
    if not isinstance(subnet, ipaddress.IPv4Network):
        raise MappingError(f"parse subnet: {text} is not an IPv4 subnet", "invalid_argument")
    return subnet


def parse_ip(text: str | ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    if isinstance(text, ipaddress.IPv4Address):
        return text
    try:
        return ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise MappingError(f"invalid IP address: {text}", "invalid_argument") from exc


class MappingTable:
    """Both directions of the mapping, plus the allocation cursor."""

    def __init__(self, subnet: ipaddress.IPv4Network) -> None:
        self.subnet = subnet
        self._by_ip: dict[ipaddress.IPv4Address, Mapping] = {}
        self._by_addr: dict[Addr, Mapping] = {}
        # The next candidate for automatic allocation, as an integer (it may
        # step one past 255.255.255.255, which no IPv4Address can hold).
        self._cursor = int(subnet.network_address) + (1 if subnet.num_addresses > 1 else 0)

    def __len__(self) -> int:
        return len(self._by_ip)

    def mappings(self) -> list[Mapping]:
        """All mappings in the order they were made."""
        return list(self._by_ip.values())

    def by_ip(self, ip: ipaddress.IPv4Address) -> Mapping | None:
        return self._by_ip.get(ip)

    def by_addr(self, addr: Addr) -> Mapping | None:
        return self._by_addr.get(addr)

    def map(self, addr: Addr, ip: str | ipaddress.IPv4Address | None = None) -> tuple[Mapping, bool]:
        """Map ``addr``; return the mapping and whether it is new.

        An already-mapped address keeps its IP (``ip`` is then ignored, as in
        the reference).
        """
        existing = self._by_addr.get(addr)
        if existing is not None:
            return existing, False
        if ip is None:
            chosen = self._allocate()
        else:
            chosen = parse_ip(ip)
            if chosen not in self.subnet:
                raise MappingError(f"IP {chosen} not in subnet {self.subnet}", "invalid_argument")
            if chosen in self._by_ip:
                raise MappingError(f"IP {chosen} already mapped", "already_exists")
        mapping = Mapping(chosen, addr)
        self._by_ip[chosen] = mapping
        self._by_addr[addr] = mapping
        return mapping, True

    def unmap(self, ip: str | ipaddress.IPv4Address) -> Mapping:
        """Remove the mapping of ``ip`` in both directions."""
        address = parse_ip(ip)
        mapping = self._by_ip.pop(address, None)
        if mapping is None:
            raise MappingError(f"no mapping for {address}", "not_found")
        del self._by_addr[mapping.addr]
        return mapping

    def _allocate(self) -> ipaddress.IPv4Address:
        last = int(self.subnet.broadcast_address)
        while self._cursor <= last and ipaddress.IPv4Address(self._cursor) in self._by_ip:
            self._cursor += 1
        if self._cursor > last:
            raise MappingError("subnet exhausted", "internal")
        chosen = ipaddress.IPv4Address(self._cursor)
        self._cursor += 1
        return chosen

    def to_json(self) -> bytes:
        data = {
            "version": FILE_VERSION,
            "subnet": str(self.subnet),
            "next": self._cursor,
            "mappings": [mapping.as_dict() for mapping in self._by_ip.values()],
        }
        return json.dumps(data, indent=1).encode()

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json())

    @classmethod
    def from_json(cls, raw: bytes, subnet: ipaddress.IPv4Network) -> tuple["MappingTable", list[Mapping]]:
        """Rebuild a table for ``subnet``; also return saved mappings outside it (dropped).

        The cursor is kept only if the saved subnet is the same one.
        """
        try:
            data: Any = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
                raise ValueError("unknown format")
            entries = data["mappings"]
            if not isinstance(entries, list):
                raise ValueError("mappings is not a list")
            saved = [
                Mapping(ipaddress.IPv4Address(entry["local_ip"]), parse_addr(entry["pilot_addr"]))
                for entry in entries
            ]
            cursor = data["next"] if data.get("subnet") == str(subnet) else None
            if cursor is not None and (type(cursor) is not int or cursor < 0):
                raise ValueError(f"bad cursor {cursor!r}")
        except (ValueError, KeyError, TypeError, DecodeError) as exc:
            raise MappingError(f"load mappings: {exc}", "internal") from exc
        table = cls(subnet)
        if cursor is not None and int(subnet.network_address) <= cursor <= int(subnet.broadcast_address) + 1:
            table._cursor = cursor
        dropped = []
        for mapping in saved:
            if mapping.local_ip not in subnet or mapping.local_ip in table._by_ip or mapping.addr in table._by_addr:
                dropped.append(mapping)
                continue
            table._by_ip[mapping.local_ip] = mapping
            table._by_addr[mapping.addr] = mapping
        return table, dropped

    @classmethod
    def load(cls, path: Path, subnet: ipaddress.IPv4Network) -> tuple["MappingTable", list[Mapping]]:
        """Like :meth:`from_json` from a file; a missing file is an empty table."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(subnet), []
        return cls.from_json(raw, subnet)
