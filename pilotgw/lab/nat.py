"""nftables rulesets that make a router namespace behave like each NAT kind.

One ``ip``-family table per router, named after the lab (``plab_<id>``), so
two labs never share or clobber rules. Every kind shares a stateful
firewall: the LAN may go anywhere, the WAN gets in only as a reply to a
conntrack flow (or, for full cone, to a mapped port). Dropping unsolicited
WAN packets in ``input`` matters beyond security: a dropped packet's
conntrack entry is never confirmed, so it cannot occupy the tuple that the
LAN host's own outbound packet is about to need. Without that, an early
hole-punch packet from a peer would push masquerade onto another port and
break port preservation.

The kinds (RFC 4787 terms):

``port-restricted``
    Plain ``masquerade``: Linux keeps the LAN source port when the resulting
    tuple is free, which it is for every new destination, so the mapping is
    endpoint-independent; inbound packets pass only as replies of a
    conntrack flow, i.e. filtering is address-and-port dependent.

``symmetric``
    ``masquerade fully-random``: each new flow (new destination ip:port) gets
    a random external port, so a port learnt from a rendezvous is useless to
    any other peer.

``full-cone``
    Endpoint-independent mapping *and* filtering, which conntrack alone does
    not provide. Outbound flows are masqueraded as above (same external port
    to every destination). A chain right after source NAT records each
    outbound flow's translated ``protocol . external port`` as a key of the
    dynamic map ``fullcone`` whose value is the LAN ``address . port`` (read
    from the flow's original tuple); each outbound packet refreshes the
    entry, which expires after ``mapping_timeout`` seconds of silence like a
    NAT binding. Inbound packets that match no flow are looked up in that map
    in ``prerouting`` and DNATed to the LAN endpoint, so anyone may reach a
    mapped port; the DNAT'd flow's replies leave from the same external port.
    Caveat: two LAN hosts using the same source port map to different
    external ports only if their destinations collide; the last one to send
    owns the inbound mapping. (``persistent`` would not help here: it pins
    the choice of external *address* within a range, and each router has
    one.)
"""

from __future__ import annotations

import subprocess

from pilotgw.lab import netns
from pilotgw.lab.errors import LabError
from pilotgw.lab.topology import NatKind

FULLCONE_MAP = "fullcone"


def ruleset(table: str, kind: NatKind, *, wan: str = "wan", mapping_timeout: int = 120) -> str:
    """The nft script creating table ``ip <table>`` for a NAT of ``kind``.

    The script first creates-then-deletes the table, so loading it replaces
    any previous ruleset of that table atomically (one nft transaction).
    """
    kind = NatKind(kind)
    masq = "masquerade fully-random" if kind is NatKind.SYMMETRIC else "masquerade"
    lines = [
        f"add table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
    ]
    if kind is NatKind.FULL_CONE:
        lines += [
            f"    map {FULLCONE_MAP} {{",
            "        type inet_proto . inet_service : ipv4_addr . inet_service",
            "        flags dynamic, timeout",
            f"        timeout {int(mapping_timeout)}s",
            "    }",
            "    chain prerouting {",
            "        type nat hook prerouting priority dstnat; policy accept;",
            f'        iifname "{wan}" meta l4proto {{ tcp, udp }} dnat ip addr . port to meta l4proto . th dport map @{FULLCONE_MAP}',
            "    }",
            "    chain mapping {",
            "        type filter hook postrouting priority srcnat + 1; policy accept;",
            f'        oifname "{wan}" meta l4proto {{ tcp, udp }} ct direction original '
            f"update @{FULLCONE_MAP} {{ meta l4proto . th sport : ct original ip saddr . ct original proto-src }}",
            "    }",
        ]
    lines += [
        "    chain postrouting {",
        "        type nat hook postrouting priority srcnat; policy accept;",
        f'        oifname "{wan}" {masq}',
        "    }",
        "    chain forward {",
        "        type filter hook forward priority filter; policy drop;",
        "        ct state established,related accept",
        f'        iifname != "{wan}" accept',
    ]
    if kind is NatKind.FULL_CONE:
        lines.append("        ct status dnat accept")
    lines += [
        "    }",
        "    chain input {",
        "        type filter hook input priority filter; policy drop;",
        "        ct state established,related accept",
        f'        iifname != "{wan}" accept',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply(ns: str, table: str, kind: NatKind, *, wan: str = "wan") -> None:
    """Load (or replace) the NAT ruleset of ``kind`` in router namespace ``ns``."""
    netns.nft(ns, ruleset(table, kind, wan=wan))


def flush(ns: str, table: str, kind: NatKind) -> None:
    """Forget every NAT binding of the router: conntrack flows and, for full cone, the map.

    Hosts behind it get new mappings on their next packet, as after a NAT
    reboot. Uses ``conntrack -F`` (conntrack-tools) inside the namespace.
    """
    netns.require_tools("conntrack")
    if NatKind(kind) is NatKind.FULL_CONE:
        netns.nft(ns, f"flush map ip {table} {FULLCONE_MAP}\n")
    proc = subprocess.run(netns.command(ns, ["conntrack", "-F"]), capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise LabError(f"conntrack -F in {ns} failed: {proc.stderr.strip()}", "netlink")
