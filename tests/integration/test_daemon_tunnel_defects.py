"""One test per reference tunnel defect (tunnel-and-transport.md Part 3),
proving it absent in a running daemon: frames are crafted with the overlay
codecs and sent from raw UDP sockets by a test "node" that registers itself
with the real rendezvous, so it can also key a genuine tunnel."""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from tests.integration.conftest import RegistryClient
from pilotgw.client import SyncClient
from pilotgw.overlay import beacon as bmsg
from pilotgw.overlay import crypto, identity, tunnel
from pilotgw.overlay import packet as pkt
from pilotgw.overlay import registry as reg
from pilotgw.overlay.errors import DecodeError


class FakeNode:
    """A registered node driven by hand from a UDP socket."""

    def __init__(self, rv, *, register: bool = True) -> None:
        self.rv = rv
        self.ident = identity.generate()
        self.sock = self.new_socket()
        self.node_id = 0
        self.x = crypto.generate_x25519()
        self.peer: crypto.PeerCrypto | None = None
        if register:
            with RegistryClient(rv.registry) as r:
                reply = r.call(reg.register(self.ident.public_key, f"127.0.0.1:{self.sock.getsockname()[1]}"))
                self.node_id = reply["node_id"]
                r.call(reg.set_visibility(self.node_id, True, self.ident.sign))

    @staticmethod
    def new_socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        return s

    def close(self) -> None:
        self.sock.close()

    def pila(self, node: int | None = None, x25519=None) -> bytes:
        xpub = crypto.x25519_public_bytes(x25519 or self.x)
        return crypto.sign_pila(self.ident, self.node_id if node is None else node, xpub).encode()

    def recv_frames(self, seconds: float, sock: socket.socket | None = None) -> list[bytes]:
        sock = sock or self.sock
        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                out.append(sock.recv(70000))
            except (socket.timeout, TimeoutError):
                pass
        return out

    def key_with(self, d, daemon_key: bytes) -> None:
        """Genuine PILA exchange with daemon ``d``."""
        self.sock.sendto(self.pila(), ("127.0.0.1", d.tunnel_port))
        for frame in self.recv_frames(2.0):
            if frame[:4] == b"PILA":
                f = tunnel.decode_pila(frame)
                crypto.verify_pila(f, daemon_key)
                self.peer = crypto.PeerCrypto(self.x)
                self.peer.install(f.x25519_public, time.monotonic())
                return
        raise AssertionError("daemon did not answer our PILA")

    def ping(self, d, *, src_node: int | None = None, dst_node: int | None = None, seq: int = 7,
             payload: bytes = b"are you there", sock: socket.socket | None = None, plaintext: bool = False) -> None:
        p = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, self.node_id if src_node is None else src_node, 0,
                       d.node_id if dst_node is None else dst_node, 4321, 0, seq, 0, 0, payload)
        data = p.encode()
        frame = tunnel.encode_pilt(data) if plaintext else bytes(self.peer.seal(self.node_id, data))
        (sock or self.sock).sendto(frame, ("127.0.0.1", d.tunnel_port))

    def pongs(self, seconds: float = 0.5, sock: socket.socket | None = None) -> list[pkt.Packet]:
        out = []
        for frame in self.recv_frames(seconds, sock):
            if frame[:4] != b"PILS" or self.peer is None:
                continue
            try:
                p = pkt.decode(self.peer.open(tunnel.decode_pils(frame), time.monotonic()))
            except DecodeError:
                continue
            if p.protocol == pkt.PROTO_CONTROL:
                out.append(p)
        return out


def registry_key(rv, node: int) -> bytes:
    with RegistryClient(rv.registry) as r:
        return reg.decode_public_key(r.call(reg.lookup(node))["public_key"])


@pytest.fixture
def setup(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    fake = FakeNode(rendezvous)
    fake.key_with(a, registry_key(rendezvous, a.node_id))
    yield rendezvous, a, fake
    fake.close()


def echo_ok(src, dst) -> bool:
    with SyncClient(str(src.socket)) as c:
        conn = c.dial(dst.node_id, 7, timeout=15)
        conn.send(b"still here")
        got = b""
        while len(got) < 10:
            got += conn.recv(100, timeout=5)
        conn.close()
        return got == b"still here"


def test_genuine_ping_is_answered(setup):
    _, a, fake = setup
    fake.ping(a, payload=b"hello")
    pongs = fake.pongs()
    assert [(p.seq, p.ack, bytes(p.payload), p.dst_port) for p in pongs] == [(7, 8, b"hello", 4321)]


def test_td1_pila_for_another_node_with_attacker_key_is_rejected(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    b = start_daemon(rendezvous, "b")
    assert echo_ok(a, b)
    attacker = FakeNode(rendezvous, register=False)
    attacker.node_id = b.node_id  # impersonate B with the attacker's own Ed25519 key
    try:
        for _ in range(3):
            attacker.sock.sendto(attacker.pila(), ("127.0.0.1", a.tunnel_port))
        # Had A installed the attacker's key it would reply with its PILA
        # (new key for B) to the attacker's address.
        frames = attacker.recv_frames(0.8)
        assert not any(f[:4] in (b"PILA", b"PILS") for f in frames)
        assert echo_ok(a, b)  # the genuine tunnel is intact
        peers = {p["node_id"]: p for p in a.info()["peer_list"]}
        assert peers[b.node_id]["endpoint"].endswith(f":{b.tunnel_port}")
    finally:
        attacker.close()


def test_td2_forged_pils_cannot_kill_the_tunnel(setup):
    _, a, fake = setup
    forger = FakeNode.new_socket()
    try:
        for counter in (2**63, 2**64 - 1, 1, 2, 3):
            nonce = os.urandom(4) + struct.pack(">Q", counter)
            forger.sendto(tunnel.encode_pils(fake.node_id, nonce, os.urandom(60)), ("127.0.0.1", a.tunnel_port))
        # Counter 0 is refused even when it authenticates (reference accepts it).
        time.sleep(0.2)
        fake.ping(a, seq=1)
        assert [p.seq for p in fake.pongs()] == [1]
    finally:
        forger.close()


def test_td2_replayed_pils_is_rejected(setup):
    _, a, fake = setup
    p = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, fake.node_id, 0, a.node_id, 4321, 0, 11, 0, 0, b"once")
    frame = bytes(fake.peer.seal(fake.node_id, p.encode()))
    fake.sock.sendto(frame, ("127.0.0.1", a.tunnel_port))
    assert [p.seq for p in fake.pongs()] == [11]
    fake.sock.sendto(frame, ("127.0.0.1", a.tunnel_port))
    assert fake.pongs() == []


def test_td3_inner_header_must_match_sender_and_us(rendezvous, setup):
    _, a, fake = setup
    fake.ping(a, src_node=fake.node_id + 1000)  # Src.Node is not the key's node
    fake.ping(a, dst_node=a.node_id + 1000, seq=8)  # Dst.Node is not A
    assert fake.pongs() == []
    fake.ping(a, seq=9)
    assert [p.seq for p in fake.pongs()] == [9]


def test_td3_endpoint_moves_only_on_authenticated_pils(setup):
    _, a, fake = setup
    other = FakeNode.new_socket()
    try:
        # A replayed (valid) PILA from a new address is answered there ...
        other.sendto(fake.pila(), ("127.0.0.1", a.tunnel_port))
        answered = fake.recv_frames(0.5, other)
        assert any(f[:4] == b"PILA" for f in answered)
        # ... but the endpoint did not move: A's traffic still goes to the old socket.
        with SyncClient(str(a.socket)) as c:
            c.send_to(fake.node_id, 9, b"where?")
            time.sleep(0.3)
        assert any(f[:4] == b"PILS" for f in fake.recv_frames(0.5))
        assert not any(f[:4] == b"PILS" for f in fake.recv_frames(0.3, other))
        # An authenticated PILS from the new address moves it (roaming).
        fake.ping(a, sock=other, seq=21)
        assert [p.seq for p in fake.pongs(sock=other)] == [21]
        peers = {p["node_id"]: p for p in a.info()["peer_list"]}
        assert peers[fake.node_id]["endpoint"] == f"127.0.0.1:{other.getsockname()[1]}"
    finally:
        other.close()


def test_td4_send_nonces_unique_and_monotonic_across_duplicate_pila(setup):
    _, a, fake = setup
    nonces = []
    for round_ in range(3):
        for i in range(5):
            fake.ping(a, seq=100 * round_ + i)
        for frame in fake.recv_frames(0.4):
            if frame[:4] == b"PILS":
                nonces.append(tunnel.decode_pils(frame).nonce)
        fake.sock.sendto(fake.pila(), ("127.0.0.1", a.tunnel_port))  # duplicate PILA
        assert not any(f[:4] == b"PILA" for f in fake.recv_frames(0.3))  # no reply to a SAME key
    prefixes = {n[:4] for n in nonces}
    counters = [struct.unpack(">Q", n[4:])[0] for n in nonces]
    assert len(nonces) == 15 and len(prefixes) == 1
    assert counters == sorted(counters) and len(set(counters)) == 15


def test_td5_peer_restarting_its_counter_with_new_prefix_is_accepted(setup):
    _, a, fake = setup
    fake.ping(a, seq=1)
    assert len(fake.pongs()) == 1
    # The reference re-installs on every PILA: same key, new prefix, counter 1 again.
    state = fake.peer._current
    state.send_prefix = os.urandom(4)
    state.send_counter = 0
    fake.ping(a, seq=2)
    assert [p.seq for p in fake.pongs()] == [2]


def test_td6_pils_without_key_state_triggers_our_pila(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    stranger = FakeNode(rendezvous)
    try:
        # A PILS from a node A has never keyed with (e.g. A restarted).
        stranger.peer = crypto.PeerCrypto(stranger.x)
        stranger.peer.install(crypto.x25519_public_bytes(crypto.generate_x25519()), 0.0)
        stranger.ping(a)
        frames = stranger.recv_frames(1.0)
        pilas = [tunnel.decode_pila(f) for f in frames if f[:4] == b"PILA"]
        assert pilas and pilas[0].node == a.node_id
        crypto.verify_pila(pilas[0], registry_key(rendezvous, a.node_id))
    finally:
        stranger.close()


def test_td6_restarted_daemon_is_rekeyed_without_manual_action(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    b = start_daemon(rendezvous, "b", listen="127.0.0.1:0")
    assert echo_ok(a, b)
    port = b.tunnel_port
    b.kill()
    b2 = start_daemon(rendezvous, "b", listen=f"127.0.0.1:{port}")
    assert b2.node_id == b.node_id  # same identity file -> same node
    assert echo_ok(a, b2)  # A still holds B's old key; both heal
    assert echo_ok(b2, a)


def test_td6_peer_restarted_on_another_port_is_found_again(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    b = start_daemon(rendezvous, "b")
    assert echo_ok(a, b)
    old_port = b.tunnel_port
    b.kill()
    b2 = start_daemon(rendezvous, "b")  # same identity, new random port
    assert b2.node_id == b.node_id and b2.tunnel_port != old_port
    # A's tunnel points at a dead port with a dead key: the first unanswered
    # SYN makes A re-key at the endpoint the registry now has, and the dial's
    # next SYN (3 s) gets through -- not the stall sweep's ~15 s.
    t0 = time.monotonic()
    assert echo_ok(a, b2)
    assert time.monotonic() - t0 < 8.0
    peers = {p["node_id"]: p for p in a.info()["peer_list"]}
    assert peers[b.node_id]["endpoint"] == f"127.0.0.1:{b2.tunnel_port}"


def test_td13_plaintext_refused_from_keyless_and_keyed_peers(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    fake = FakeNode(rendezvous)
    try:
        fake.ping(a, plaintext=True)
        frames = fake.recv_frames(0.6)
        assert not any(f[:4] in (b"PILT", b"PILS") for f in frames)  # no pong at all
        assert any(f[:4] == b"PILA" for f in frames)  # but an invitation to key
        fake.key_with(a, registry_key(rendezvous, a.node_id))
        fake.ping(a, plaintext=True, seq=3)
        assert fake.pongs() == []
        fake.ping(a, seq=4)
        assert [p.seq for p in fake.pongs()] == [4]
    finally:
        fake.close()


def test_td19_pilk_is_never_accepted(setup):
    rv, a, fake = setup
    other_x = crypto.generate_x25519()
    pilk = tunnel.PilkFrame(fake.node_id, crypto.x25519_public_bytes(other_x)).encode()
    fake.sock.sendto(pilk, ("127.0.0.1", a.tunnel_port))
    frames = fake.recv_frames(0.5)
    assert any(f[:4] == b"PILA" for f in frames)  # answered with PILA
    # The existing key is untouched: pings under it still work.
    fake.ping(a, seq=5)
    assert [p.seq for p in fake.pongs()] == [5]


def test_td14_beacon_messages_from_other_sources_are_ignored(setup):
    rv, a, fake = setup
    target = FakeNode.new_socket()
    spoofer = FakeNode.new_socket()
    try:
        tport = target.getsockname()[1]
        spoofer.sendto(bmsg.encode(bmsg.PunchCommand("127.0.0.1", tport)), ("127.0.0.1", a.tunnel_port))
        assert fake.recv_frames(0.4, target) == []  # no PILP sent on a forged command
        # A forged RelayDeliver carrying a genuine (replayed) ping frame is ignored.
        p = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, fake.node_id, 0, a.node_id, 4321, 0, 31, 0, 0, b"r")
        inner = bytes(fake.peer.seal(fake.node_id, p.encode()))
        spoofer.sendto(bmsg.encode(bmsg.RelayDeliver(fake.node_id, inner)), ("127.0.0.1", a.tunnel_port))
        assert fake.pongs(0.4) == []
        peers = {p["node_id"]: p for p in a.info()["peer_list"]}
        assert peers[fake.node_id]["endpoint"] == f"127.0.0.1:{fake.sock.getsockname()[1]}"  # not relayed
    finally:
        target.close()
        spoofer.close()


def test_td15_registered_endpoint_is_the_tunnel_socket(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a", listen="0.0.0.0:0")
    with RegistryClient(rendezvous.registry) as r:
        look = r.call(reg.lookup(a.node_id))
    assert look["real_addr"] == f"127.0.0.1:{a.tunnel_port}"
