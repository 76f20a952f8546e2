"""Tunnel defects that need a beacon we control (tunnel-and-transport.md
T-D14, T-D17; rendezvous.md R-D8): the daemon is started with ``-beacon``
pointing at a UDP socket of this test, so beacon messages can be sent from
"the beacon" and from anywhere else. Frames are crafted with the overlay
codecs; see docs/conformance.md."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Optional

import pytest

from pilotgw.overlay import beacon as bmsg
from pilotgw.overlay import packet as pkt
from pilotgw.overlay import registry as reg
from pilotgw.overlay import tunnel
from tests.integration.conftest import RegistryClient
from tests.integration.test_daemon_tunnel_defects import FakeNode, registry_key

SPOOFED_MAPPING = ("203.0.113.9", 4444)  # documentation range: never sent to, only announced


class FakeBeacon:
    """A UDP socket the daemon takes for its beacon. It answers Discover with
    the observed endpoint, or -- with ``spoof`` -- stays silent while another
    socket answers with :data:`SPOOFED_MAPPING`. Everything else it receives
    is kept in :attr:`received`."""

    def __init__(self, *, spoof: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.addr = self.sock.getsockname()
        self.spoofer: Optional[socket.socket] = None
        if spoof:
            self.spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.spoofer.bind(("127.0.0.1", 0))
        self.discovers = 0
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(70000)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            if data[:1] == b"\x01":  # Discover
                self.discovers += 1
                if self.spoofer is not None:
                    self.spoofer.sendto(bmsg.encode(bmsg.DiscoverReply(*SPOOFED_MAPPING)), src)
                else:
                    self.sock.sendto(bmsg.encode(bmsg.DiscoverReply(src[0], src[1])), src)
            else:
                self.received.append(data)

    def send(self, msg: bmsg.BeaconMessage, port: int) -> None:
        self.sock.sendto(bmsg.encode(msg), ("127.0.0.1", port))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        if self.spoofer is not None:
            self.spoofer.close()


@pytest.fixture
def beacon():
    b = FakeBeacon()
    yield b
    b.close()


def start_with(start_daemon, rv, fake_beacon: FakeBeacon, name: str = "a"):
    return start_daemon(rv, name, "-beacon", f"127.0.0.1:{fake_beacon.addr[1]}")


def peer_endpoint(d, node: int) -> str:
    return {p["node_id"]: p for p in d.info()["peer_list"]}[node]["endpoint"]


def test_rd8_stun_reply_from_another_source_is_ignored(rendezvous, start_daemon):
    fake = FakeBeacon(spoof=True)
    try:
        a = start_with(start_daemon, rendezvous, fake)
        assert fake.discovers >= 1  # the spoofer did answer the daemon's STUN probe
        with RegistryClient(rendezvous.registry) as r:
            real = r.call(reg.lookup(a.node_id))["real_addr"]
        assert real == f"127.0.0.1:{a.tunnel_port}"  # not 203.0.113.9:4444
    finally:
        fake.close()


def test_td14_relay_mode_only_after_an_authenticated_inner_frame(rendezvous, start_daemon, beacon):
    a = start_with(start_daemon, rendezvous, beacon)
    node = FakeNode(rendezvous)
    try:
        node.key_with(a, registry_key(rendezvous, a.node_id))
        direct = f"127.0.0.1:{node.sock.getsockname()[1]}"
        ping = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, node.node_id, 0, a.node_id, 4321, 0, 41, 0, 0, b"relayed")
        forged_pils = tunnel.MAGIC_PILS + node.node_id.to_bytes(4, "big") + os.urandom(12 + 34 + 16)
        for inner in (forged_pils, tunnel.encode_pilt(ping.encode()), b"junk" * 10):
            beacon.send(bmsg.RelayDeliver(node.node_id, inner), a.tunnel_port)
        time.sleep(0.5)
        assert peer_endpoint(a, node.node_id) == direct  # unauthenticated inner frames change nothing
        assert [m for m in beacon.received if m[:1] == b"\x05"] == []  # and get no answer via the relay
        # Control: a genuine frame through the relay does switch the peer to relay mode.
        sealed = bytes(node.peer.seal(node.node_id, ping.encode()))
        beacon.send(bmsg.RelayDeliver(node.node_id, sealed), a.tunnel_port)
        deadline = time.monotonic() + 5
        while peer_endpoint(a, node.node_id) == direct and time.monotonic() < deadline:
            time.sleep(0.05)
        assert peer_endpoint(a, node.node_id) == f"127.0.0.1:{beacon.addr[1]}"
    finally:
        node.close()


def test_td14_punch_commands_are_rate_limited_per_target(rendezvous, start_daemon, beacon):
    a = start_with(start_daemon, rendezvous, beacon)
    target = FakeNode.new_socket()
    try:
        for _ in range(20):
            beacon.send(bmsg.PunchCommand("127.0.0.1", target.getsockname()[1]), a.tunnel_port)
            time.sleep(0.01)
        frames = FakeNode.recv_frames(None, 0.8, target)  # type: ignore[arg-type]
        assert frames and all(f == tunnel.MAGIC_PILP for f in frames)
        assert len(frames) <= 6  # 20 commands within 0.2 s: one burst of 3 PILP, not 60
    finally:
        target.close()


def test_td17_control_loops_and_bad_headers_get_no_answer(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    node = FakeNode(rendezvous)
    try:
        node.key_with(a, registry_key(rendezvous, a.node_id))

        def send(src_port: int, flags: int = 0, version: int = pkt.VERSION, seq: int = 1) -> None:
            p = pkt.Packet(pkt.PROTO_CONTROL, flags, 0, node.node_id, 0, a.node_id, src_port, 0, seq, 0, 0, b"x",
                           version=version)
            node.sock.sendto(bytes(node.peer.seal(node.node_id, p.encode())), ("127.0.0.1", a.tunnel_port))

        send(0, seq=1)  # a ping from port 0: its pong would go to port 0 and loop
        send(4321, flags=pkt.FLAG_ACK, seq=2)  # a pong: never answered
        send(4321, version=2, seq=3)  # version is not 1
        assert node.pongs(0.6) == []
        send(4321, seq=4)  # control: a genuine ping is answered
        assert [p.seq for p in node.pongs(0.6)] == [4]
    finally:
        node.close()
