"""Link impairments: random loss (nftables ``numgen``), rate (tc ``tbf``), MTU.

A :class:`~pilotgw.lab.topology.Link` impairs both directions of a node's
uplink, so each setting is applied at *both* veth ends:

* loss -- an nft ``netdev`` table ``plab_<id>`` per namespace with one
  ``ingress`` chain per lossy interface: ``numgen random mod 1000000 < N
  drop``. Ingress runs before routing, bridging and conntrack, so a dropped
  packet is invisible to the NAT, as on a real lossy wire. A packet crossing
  the link passes exactly one of the two ingress hooks, so each direction
  sees the configured rate.
* rate -- a root ``tbf`` qdisc on the egress of each end, configured through
  pyroute2's tc API (it works for tbf: rate, burst and latency map onto the
  kernel's ``tc_tbf_qopt``). There is no ``netem`` on these kernels, hence
  no delay/reorder here.
* MTU -- set on both ends; the upstream namespace routes, so it answers
  oversized DF packets with ICMP "fragmentation needed" like a real router.
"""

from __future__ import annotations

from collections.abc import Mapping

from pilotgw.lab import netns
from pilotgw.lab.netns import TC_H_ROOT, Netlink
from pilotgw.lab.topology import Layout, Link

LOSS_SCALE = 1_000_000  # numgen modulus: loss resolution of 0.0001 %
TBF_HANDLE = 0x10000  # 1:
TBF_LATENCY = "50ms"  # queueing allowed before tbf drops: a modest router buffer
ETH_HEADER = 14


def loss_threshold(loss_percent: float) -> int:
    """``N`` such that ``numgen random mod LOSS_SCALE < N`` drops ``loss_percent`` %."""
    return round(loss_percent * LOSS_SCALE / 100)


def _chain_name(ifname: str) -> str:
    return "loss_" + ifname.replace("-", "_")


def loss_ruleset(table: str, losses: Mapping[str, float]) -> str:
    """The nft script that sets exactly ``losses`` (ifname -> percent) in one namespace.

    Like :func:`pilotgw.lab.nat.ruleset` it replaces the table atomically;
    with no lossy interface it only removes the table.
    """
    lines = [f"add table netdev {table}", f"delete table netdev {table}"]
    lossy = {ifname: loss for ifname, loss in sorted(losses.items()) if loss_threshold(loss) > 0}
    if lossy:
        lines.append(f"table netdev {table} {{")
        for ifname, loss in lossy.items():
            lines += [
                f"    chain {_chain_name(ifname)} {{",
                f'        type filter hook ingress device "{ifname}" priority filter; policy accept;',
                f"        numgen random mod {LOSS_SCALE} < {loss_threshold(loss)} drop",
                "    }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"


def losses_by_namespace(layout: Layout, links: Mapping[str, Link]) -> dict[str, dict[str, float]]:
    """Namespace -> {ifname: loss %} for every lossy link, both of its ends.

    ``links`` maps node names to their current link settings. Namespaces
    touched by no lossy link are present with an empty mapping, so applying
    the result also clears loss that was removed.
    """
    out: dict[str, dict[str, float]] = {ns: {} for ns in layout.namespaces}
    for node in layout.nodes:
        loss = links[node.name].loss
        if loss_threshold(loss) > 0:
            out[node.netns][node.iface] = loss
            out[node.upstream_netns][node.upstream_iface] = loss
    return out


def apply_loss(ns: str, table: str, losses: Mapping[str, float]) -> None:
    """Make the loss of namespace ``ns`` exactly ``losses``."""
    netns.nft(ns, loss_ruleset(table, losses))


def tbf_burst(rate_bits: int, mtu: int) -> int:
    """Bucket size in bytes: 10 ms at ``rate_bits``, never less than two full frames.

    tbf drops any packet larger than its bucket, so the floor keeps
    full-size frames flowing on slow links.
    """
    return max(2 * (mtu + ETH_HEADER), rate_bits // 8 // 100)


def apply_rate(nl: Netlink, ifname: str, rate_bits: int | None, mtu: int) -> None:
    """Cap egress of ``ifname`` at ``rate_bits`` with a root tbf, or remove the cap."""
    idx = nl.index(ifname)
    if rate_bits is None:
        if nl.qdisc_kind(ifname) == "tbf":
            nl.tc(f"remove tbf from {ifname}", "del", index=idx, parent=TC_H_ROOT)
        return
    nl.tc(
        f"tbf {rate_bits}bit on {ifname}",
        "replace",
        "tbf",
        idx,
        TBF_HANDLE,
        rate=f"{rate_bits}bit",
        burst=tbf_burst(rate_bits, mtu),
        latency=TBF_LATENCY,
    )


def apply_link(node_nl: Netlink, node_iface: str, up_nl: Netlink, up_iface: str, link: Link) -> None:
    """Set MTU and rate of both ends of one link (loss is per namespace: :func:`apply_loss`)."""
    for nl, ifname in ((node_nl, node_iface), (up_nl, up_iface)):
        nl.set_mtu(ifname, link.mtu)
        apply_rate(nl, ifname, link.rate, link.mtu)
