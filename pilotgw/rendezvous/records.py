"""Node records and the hostname/tag rules (rendezvous.md §1.9, §2.4).

A :class:`Node` is a slotted object holding only what differs per node:
the public key as its 32 raw bytes, the endpoint text, and shared immutable
defaults (``""``, ``None``, the ``(0,)`` network tuple) for everything a
typical node never sets. With the dict entries that index it, a node costs
well under 1 KB, which keeps 100,000 nodes far below the 500 MB budget.
"""

from __future__ import annotations

import re

HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
TAG_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
RESERVED_HOSTNAMES = frozenset({"localhost", "backbone", "broadcast"})
MAX_TAGS = 10
BACKBONE = (0,)


class Node:
    """One registered node. ``frag`` caches its snapshot JSON; every
    mutation goes through :meth:`RegistryService._changed`, which clears it."""

    __slots__ = (
        "id", "key", "real_addr", "owner", "public", "hostname", "tags",
        "polo", "task_exec", "networks", "last_seen", "frag",
    )

    def __init__(self, node_id: int, key: bytes, real_addr: str, now: float, owner: str = "") -> None:
        self.id = node_id
        self.key = key
        self.real_addr = real_addr
        self.owner = owner
        self.public = False
        self.hostname = ""
        self.tags: tuple[str, ...] | None = None
        self.polo = 0
        self.task_exec = False
        self.networks: tuple[int, ...] = BACKBONE
        self.last_seen = now
        self.frag: bytes | None = None


def hostname_problem(hostname: str) -> str | None:
    """The reference's error text for an invalid non-empty hostname, else None."""
    if len(hostname) > 63:
        return "hostname too long (max 63 chars)"
    if not HOSTNAME_RE.fullmatch(hostname):
        return "hostname must be lowercase alphanumeric with hyphens, start/end with alphanumeric"
    if hostname in RESERVED_HOSTNAMES:
        return f'hostname "{hostname}" is reserved'
    return None


def parse_tags(value: object) -> tuple[list[str], str | None]:
    """§1.8.8: keep string elements, strip one ``#``, then validate.
    Returns the list and an error text (None when valid)."""
    raw = value if isinstance(value, list) else []
    tags = [t[1:] if t.startswith("#") else t for t in raw if isinstance(t, str)]
    if len(tags) > MAX_TAGS:
        return tags, "too many tags (max 10)"
    for tag in tags:
        if not tag:
            return tags, "empty tag not allowed"
        if len(tag) > 32:
            return tags, f'tag "{tag}" too long (max 32 chars)'
        if not TAG_RE.fullmatch(tag):
            return tags, f'tag "{tag}" must be lowercase alphanumeric with hyphens'
    return tags, None


def split_host_port(text: str) -> tuple[str, int] | None:
    """``"1.2.3.4:5"`` / ``"[::1]:5"`` / ``":5"`` -> (host, port); None if no valid port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 0xFFFF:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
