"""The gateway behind one NAT reaches web servers on agents behind others.

``gw`` (behind a port-restricted NAT) runs ``pilot-gateway`` mapping two
private agents that each publish an ordinary ``python -m http.server`` on
pilot port 80 (``pilotctl gateway expose 80 127.0.0.1:8080``): ``bob``
behind a full-cone NAT (direct path) and ``carol`` behind a symmetric NAT
(relayed path). ``curl`` inside ``gw``'s namespace fetches both pages
through the overlay. Trust is established by the stack (handshake + approve).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotgw.lab import Host, Lab, NatKind, NatRouter, Topology, netns
from pilotgw.lab.stack import Stack

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"NAT tests skipped: {REASON}")]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str], dict[str, str]]]:
    topo = Topology("nat-gw", hosts=(Host("rv"),), rendezvous="rv",
                    nats=(NatRouter("home", NatKind.PORT_RESTRICTED, (Host("gw"),)),
                          NatRouter("office", NatKind.FULL_CONE, (Host("bob"),)),
                          NatRouter("cafe", NatKind.SYMMETRIC, (Host("carol"),))))
    pages = {}
    with Lab(topo) as lab, Stack(lab) as stack:
        for name in ("bob", "carol"):
            root = tmp_path_factory.mktemp(f"www-{name}")
            pages[name] = f"<h1>{name} says hello through Pilot</h1>\n"
            (root / "index.html").write_text(pages[name])
            stack.serve_web(name, root)
        mappings = stack.start_gateway("gw", ["bob", "carol"])
        ips = {stack.agents_by_address()[m["pilot_addr"]]: m["local_ip"] for m in mappings}
        yield stack, ips, pages


def curl(stack: Stack, url: str) -> str:
    done = stack.lab.host("gw").run(["curl", "-sS", "--fail", "--max-time", "30", url], check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


# bob's full cone accepts anyone (a punch may still race the first reply);
# carol's symmetric NAT leaves only the relay.
@pytest.mark.parametrize("agent,paths", [("bob", {"direct", "punched"}), ("carol", {"relay"})], ids=["bob", "carol"])
def test_curl_through_the_gateway_reaches_the_agent(deployment, agent: str, paths: set[str]) -> None:  # type: ignore[no-untyped-def]
    stack, ips, pages = deployment
    assert curl(stack, f"http://{ips[agent]}/") == pages[agent]
    assert stack.path("gw", agent) in paths


def test_mappings_are_the_first_ips_of_the_subnet(deployment) -> None:  # type: ignore[no-untyped-def]
    _, ips, _ = deployment
    assert sorted(ips.values()) == ["10.4.0.1", "10.4.0.2"]


def test_untrusted_agent_is_not_reachable(tmp_path: Path) -> None:
    """Without trust a private agent's web server stays closed to the gateway."""
    topo = Topology("nat-gw-untrusted", hosts=(Host("rv"),), rendezvous="rv",
                    nats=(NatRouter("home", NatKind.PORT_RESTRICTED, (Host("gw"),)),
                          NatRouter("office", NatKind.FULL_CONE, (Host("bob"),))))
    (tmp_path / "index.html").write_text("secret\n")
    with Lab(topo) as lab, Stack(lab, trust=False) as stack:
        stack.serve_web("bob", tmp_path)
        (mapping,) = stack.start_gateway("gw", ["bob"])
        done = lab.host("gw").run(["curl", "-sS", "--max-time", "15", f"http://{mapping['local_ip']}/"],
                                  check=False, timeout=60)
        assert done.returncode != 0 and "secret" not in done.stdout
