"""Hosts that route the subnet through the gateway (the PREROUTING path).

A client namespace is linked to the gateway's namespace by a veth pair and
routes 10.4.0.0/16 via the gateway, which forwards (ip_forward=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.proxy.fake_overlay import AGENT, FakeOverlay
from tests.proxy.helpers import http_server, run, running_gateway, udp_echo_server
from pyroute2 import IPRoute, netns

pytestmark = pytest.mark.root

GATEWAY_SIDE = "198.19.0.1"
CLIENT_SIDE = "198.19.0.2"

# Runs inside the client namespace: one ICMP echo and one UDP exchange.
CLIENT_PROBE = r"""
import socket, struct, sys
sys.path.insert(0, sys.argv[1])
from tests.proxy.helpers import icmp_echo
import asyncio
ip, udp_port, expect_ping = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
assert asyncio.run(icmp_echo(ip, 1.5)) is expect_ping, "ping"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(3)
    s.connect((ip, udp_port))
    s.send(b"from afar")
    print(s.recv(100).decode())
"""


@contextlib.contextmanager
def client_namespace(gateway_ns: str) -> Iterator[str]:
    """A client namespace wired to ours, routing the subnet through us."""
    name = f"{gateway_ns}-client"
    netns.create(name)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname="togw", kind="veth", peer="tocl")
            ipr.link("set", index=ipr.link_lookup(ifname="togw")[0], net_ns_fd=name)
            ours = ipr.link_lookup(ifname="tocl")[0]
            ipr.addr("add", index=ours, address=GATEWAY_SIDE, prefixlen=24)
            ipr.link("set", index=ours, state="up")
        with IPRoute(netns=name) as ipr:
            lo, theirs = ipr.link_lookup(ifname="lo")[0], ipr.link_lookup(ifname="togw")[0]
            ipr.link("set", index=lo, state="up")
            ipr.addr("add", index=theirs, address=CLIENT_SIDE, prefixlen=24)
            ipr.link("set", index=theirs, state="up")
            ipr.route("add", dst="10.4.0.0/16", gateway=GATEWAY_SIDE)
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        yield name
    finally:
        netns.remove(name)


async def in_client(name: str, *command: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", name, *command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def test_routed_client_reaches_the_agent(namespace, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("routed")
    helpers_dir = str(Path(__file__).resolve().parents[2])

    async def main():
        overlay = FakeOverlay()
        async with http_server(site) as port, udp_echo_server() as udp_port:
            async with running_gateway(tmp_path / "state", overlay) as gateway:
                await gateway.map(AGENT)
                status, out, err = await in_client(client, "curl", "-sS", "--max-time", "10", f"http://10.4.0.1:{port}/index.html")
                assert (status, out) == (0, "routed"), err
                probe = [sys.executable, "-c", CLIENT_PROBE, helpers_dir, "10.4.0.1", str(udp_port)]
                status, out, err = await in_client(client, *probe, "1")
                assert (status, out.strip()) == (0, "echo:from afar"), err
                overlay.ping_ok = False
                status, out, err = await in_client(client, *probe, "0")
                assert status == 0, err
                status, _, err = await in_client(client, "curl", "-sS", "--max-time", "10", f"http://10.4.0.9:{port}/")
                assert status == 7, err  # unmapped: refused, not a timeout

    with client_namespace(namespace) as client:
        run(main())
