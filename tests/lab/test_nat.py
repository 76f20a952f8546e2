"""NAT rulesets: each kind's distinguishing rules, and the shared stateful firewall.

Their behaviour on real packets is proven in tests/integration/test_lab_nat.py.
"""

from __future__ import annotations

import pytest

from pilotgw.lab.nat import FULLCONE_MAP, ruleset
from pilotgw.lab.topology import NatKind


@pytest.mark.parametrize("kind", list(NatKind))
def test_every_kind_replaces_its_own_table_atomically(kind: NatKind) -> None:
    text = ruleset("plab_abcdef", kind)
    lines = text.splitlines()
    assert lines[:3] == ["add table ip plab_abcdef", "delete table ip plab_abcdef", "table ip plab_abcdef {"]
    # Unsolicited WAN traffic is dropped before conntrack confirms it.
    assert "type filter hook input priority filter; policy drop;" in text
    assert "type filter hook forward priority filter; policy drop;" in text
    assert 'iifname != "wan" accept' in text


def test_port_restricted_is_plain_masquerade() -> None:
    text = ruleset("t", NatKind.PORT_RESTRICTED)
    assert 'oifname "wan" masquerade\n' in text
    assert "random" not in text and "dnat" not in text


def test_symmetric_randomises_ports() -> None:
    assert 'oifname "wan" masquerade fully-random' in ruleset("t", NatKind.SYMMETRIC)


def test_full_cone_maps_inbound_through_a_dynamic_map() -> None:
    text = ruleset("t", NatKind.FULL_CONE, mapping_timeout=30)
    assert f"map {FULLCONE_MAP} {{" in text and "timeout 30s" in text
    assert f"dnat ip addr . port to meta l4proto . th dport map @{FULLCONE_MAP}" in text
    assert "priority srcnat + 1" in text and f"update @{FULLCONE_MAP}" in text
    assert "ct status dnat accept" in text


def test_kind_given_as_text_is_accepted_and_checked() -> None:
    assert ruleset("t", "symmetric") == ruleset("t", NatKind.SYMMETRIC)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ruleset("t", "cone")  # type: ignore[arg-type]
