"""Impairment plans: nft loss tables, which interfaces get them, tbf sizing."""

from __future__ import annotations

from pilotgw.lab.impair import LOSS_SCALE, loss_ruleset, loss_threshold, losses_by_namespace, tbf_burst
from pilotgw.lab.topology import Host, Link, NatKind, NatRouter, Topology, plan


def test_loss_threshold_scales_percent_to_numgen_range() -> None:
    assert loss_threshold(0) == 0
    assert loss_threshold(2) == LOSS_SCALE // 50
    assert loss_threshold(0.0001) == 1
    assert loss_threshold(0.00001) == 0  # below resolution: no rule at all
    assert loss_threshold(99.9999) == LOSS_SCALE - 1


def test_loss_ruleset_has_one_ingress_chain_per_lossy_device() -> None:
    text = loss_ruleset("plab_abcdef", {"eth0": 2.0, "v-a-b": 0.5, "lo": 0.0})
    assert text.startswith("add table netdev plab_abcdef\ndelete table netdev plab_abcdef\n")
    assert 'hook ingress device "eth0"' in text and 'hook ingress device "v-a-b"' in text
    assert '"lo"' not in text
    assert "chain loss_v_a_b {" in text
    assert f"numgen random mod {LOSS_SCALE} < 20000 drop" in text
    assert f"numgen random mod {LOSS_SCALE} < 5000 drop" in text


def test_loss_ruleset_without_loss_only_removes_the_table() -> None:
    assert loss_ruleset("t", {}) == "add table netdev t\ndelete table netdev t\n"
    assert loss_ruleset("t", {"eth0": 0}) == loss_ruleset("t", {})


def test_losses_cover_both_ends_and_every_namespace() -> None:
    topo = Topology(
        "t",
        hosts=(Host("a", Link(loss=3)), Host("b")),
        nats=(NatRouter("n", NatKind.SYMMETRIC, (Host("c", Link(loss=1)),), Link(loss=2)),),
    )
    layout = plan(topo, "abcdef")
    links = {n.name: n.link for n in layout.nodes}
    by_ns = losses_by_namespace(layout, links)
    assert set(by_ns) == set(layout.namespaces)
    assert by_ns[layout.inet_netns] == {"v-a": 3, "v-n": 2}
    assert by_ns[layout.node("a").netns] == {"eth0": 3}
    assert by_ns[layout.node("b").netns] == {}
    assert by_ns[layout.node("n").netns] == {"wan": 2, "v-c": 1}
    assert by_ns[layout.node("c").netns] == {"eth0": 1}


def test_tbf_bucket_holds_ten_ms_and_at_least_two_frames() -> None:
    assert tbf_burst(1_000_000_000, 1500) == 1_250_000
    assert tbf_burst(100_000, 1500) == 2 * 1514
    assert tbf_burst(100_000, 9000) == 2 * 9014
