"""The real pilot-rendezvous process driven over TCP/UDP with the overlay codecs."""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pilotgw.overlay import beacon as b
from pilotgw.overlay.address import format_addr
from pilotgw.overlay import registry as r
from pilotgw.rendezvous import tls

from tests.integration.conftest import RegistryClient


class Node:
    """A simulated daemon: identity, its own registry connection, a UDP socket."""

    def __init__(self, rv, source: str = "127.0.0.1") -> None:
        self.key = Ed25519PrivateKey.generate()
        self.pub = self.key.public_key().public_bytes_raw()
        self.reg = RegistryClient(rv.registry, source=source)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((source, 0))
        self.udp.settimeout(3)
        self.id = 0

    def register(self, **kw) -> dict:
        reply = self.reg.call(r.register(self.pub, f"0.0.0.0:{self.udp.getsockname()[1]}", **kw))
        assert reply["type"] == "register_ok", reply
        self.id = reply["node_id"]
        return reply

    def call(self, builder, *args):
        return self.reg.call(builder(*args, self.key))

    def close(self) -> None:
        self.reg.close()
        self.udp.close()


def test_register_heartbeat_lookup_resolve_hostnames_tags_visibility(rendezvous):
    a, c = Node(rendezvous), Node(rendezvous)
    try:
        first = a.register()
        assert first["address"] == format_addr(0, first["node_id"])
        assert first["node_id"] >= 4 and first["network_id"] == 0
        assert a.register()["node_id"] == first["node_id"]  # re-register: same key, same ID
        c.register()
        assert a.call(r.heartbeat, a.id)["type"] == "heartbeat_ok"

        looked = a.reg.call(r.lookup(c.id))
        assert looked["public_key"] == r.encode_public_key(c.pub) and looked["public"] is False
        assert "real_addr" not in looked

        # Private target: denied without mutual trust, allowed with it (R-D1).
        assert r.reply_error(a.reg.call(r.resolve(c.id, a.id, a.key))) == ("request failed", "denied")
        assert a.call(r.report_trust, a.id, c.id) == {"type": "report_trust_ok"}
        assert r.reply_error(a.reg.call(r.resolve(c.id, a.id, a.key)))[1] == "denied"
        c.call(r.report_trust, c.id, a.id)
        resolved = a.reg.call(r.resolve(c.id, a.id, a.key))
        assert resolved == {"type": "resolve_ok", "node_id": c.id, "real_addr": f"127.0.0.1:{c.udp.getsockname()[1]}"}

        assert c.call(r.set_hostname, c.id, "carol")["hostname"] == "carol"
        assert a.reg.call(r.resolve_hostname("carol"))["node_id"] == c.id
        assert r.reply_error(a.call(r.set_hostname, a.id, "carol"))[1] == "conflict"
        assert c.call(r.set_tags, c.id, ["#gpu", "llm"])["tags"] == ["gpu", "llm"]
        assert c.call(r.set_visibility, c.id, True)["visibility"] == "public"
        looked = a.reg.call(r.lookup(c.id))
        assert looked["tags"] == ["gpu", "llm"] and looked["hostname"] == "carol" and "real_addr" in looked

        assert a.call(r.deregister, a.id) == {"type": "deregister_ok"}
        assert r.reply_error(c.reg.call(r.lookup(a.id)))[1] == "not_found"
    finally:
        a.close()
        c.close()


def test_handshake_relay_end_to_end_with_long_poll_under_a_second(rendezvous):
    a, b_ = Node(rendezvous), Node(rendezvous)
    poller = RegistryClient(rendezvous.registry)
    try:
        a.register()
        b_.register()
        got: dict = {}

        def long_poll() -> None:
            got["reply"] = poller.call(r.poll_handshakes(b_.id, b_.key, wait=10))
            got["at"] = time.monotonic()

        thread = threading.Thread(target=long_poll)
        thread.start()
        time.sleep(0.3)  # the poll is parked on the server
        sent = time.monotonic()
        assert a.call(r.request_handshake, a.id, b_.id, "need data")["status"] == "delivered"
        thread.join(5)
        assert got["at"] - sent < 1.0
        assert got["reply"]["requests"][0]["from_node_id"] == a.id
        assert got["reply"]["requests"][0]["justification"] == "need data"

        # The same connection keeps working after a long poll, in order.
        assert poller.call(r.heartbeat(b_.id, b_.key))["type"] == "heartbeat_ok"
        assert b_.call(r.respond_handshake, b_.id, a.id, True)["accept"] is True
        polled = a.call(r.poll_handshakes, a.id)
        assert polled["responses"][0] == {"from_node_id": b_.id, "accept": True, "timestamp": polled["responses"][0]["timestamp"]}
        assert a.reg.call(r.resolve(b_.id, a.id, a.key))["type"] == "resolve_ok"
        assert b_.reg.call(r.resolve(a.id, b_.id, b_.key))["type"] == "resolve_ok"
        # A plain poll (what a reference daemon sends) answers at once.
        start = time.monotonic()
        assert b_.call(r.poll_handshakes, b_.id) == {"type": "poll_handshakes_ok", "requests": [], "responses": []}
        assert time.monotonic() - start < 0.5
    finally:
        poller.close()
        a.close()
        b_.close()


def test_beacon_discover_relay_and_punch(rendezvous):
    a, c = Node(rendezvous), Node(rendezvous)
    try:
        a.register()
        c.register()
        for node in (a, c):
            node.udp.sendto(b.encode(b.Discover(node.id)), rendezvous.beacon)
            reply = b.decode(node.udp.recv(100))
            assert reply == b.DiscoverReply(*node.udp.getsockname())

        # Relay forwards a whole tunnel frame from a to c, tagged with a's ID.
        a.udp.sendto(b.encode(b.Relay(a.id, c.id, b"PILS-frame")), rendezvous.beacon)
        assert b.decode(c.udp.recv(100)) == b.RelayDeliver(a.id, b"PILS-frame")

        # A spoofed sender ID from another socket is dropped.
        spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        spoof.bind(("127.0.0.1", 0))
        spoof.sendto(b.encode(b.Relay(a.id, c.id, b"PILSevil")), rendezvous.beacon)
        spoof.close()

        # Punch (c is private: allowed once trust is mutual).
        a.call(r.report_trust, a.id, c.id)
        c.call(r.report_trust, c.id, a.id)
        a.udp.sendto(b.encode(b.PunchRequest(a.id, c.id)), rendezvous.beacon)
        assert b.decode(a.udp.recv(100)) == b.PunchCommand(*c.udp.getsockname())
        assert b.decode(c.udp.recv(100)) == b.PunchCommand(*a.udp.getsockname())
        c.udp.settimeout(0.3)
        try:
            extra = c.udp.recv(100)
        except socket.timeout:
            extra = None
        assert extra is None  # the spoofed relay never arrived
    finally:
        a.close()
        c.close()


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_state_survives_kill_9_and_truncated_snapshot_is_refused(start_rendezvous, tmp_path):
    store = tmp_path / "store" / "registry.json"
    rv = start_rendezvous(store=store)
    a, c = Node(rv), Node(rv)
    a.register()
    c.register()
    a.call(r.set_hostname, a.id, "alice")
    a.call(r.report_trust, a.id, c.id)
    c.call(r.report_trust, c.id, a.id)
    a.close()
    c.close()
    wait_for(lambda: store.exists() and b"alice" in store.read_bytes())
    rv.kill(signal.SIGKILL)

    rv2 = start_rendezvous(store=store)
    with RegistryClient(rv2.registry) as cl:
        assert cl.call(r.resolve_hostname("alice"))["node_id"] == a.id
        assert cl.call(r.register(a.pub, "0.0.0.0:1"))["node_id"] == a.id
        assert cl.call(r.resolve(c.id, a.id, a.key))["type"] == "resolve_ok"
    rv2.kill(signal.SIGTERM)
    assert rv2.proc.returncode == 0

    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    broken = start_rendezvous(store=store, wait=False)
    assert broken.proc.wait(15) == 2
    assert "truncated or corrupt" in broken.log()
    assert store.read_bytes() == data[: len(data) // 2]  # never silently reset


def test_bad_input_is_dropped_and_others_are_still_served(start_rendezvous):
    rv = start_rendezvous("--request-rate", "50", "--frame-timeout", "1")
    good = RegistryClient(rv.registry, source="127.0.0.2")
    try:
        for raw in (b"\x00\x00\x00\x05hello", struct.pack(">I", (1 << 20) + 1), b"\x00\x00\x00\x03[1]",
                    b"\x00\x00\x00\x00"):
            with RegistryClient(rv.registry, source="127.0.0.3") as bad:
                bad.send_raw(raw)
                assert bad.closed_by_peer(), raw
        with RegistryClient(rv.registry, source="127.0.0.3") as odd:
            assert odd.call({"type": "no_such_type"}) == {"type": "error", "error": "request failed", "code": "unknown_type"}
            odd.send_raw(b"\x00\x00\x00\x04null")
            assert r.reply_error(odd.recv())[1] == "unknown_type"
            key = Ed25519PrivateKey.generate()
            node = odd.call(r.register(key.public_key().public_bytes_raw(), ""))["node_id"]
            wrong = odd.call(r.heartbeat(node, Ed25519PrivateKey.generate()))
            assert wrong == {"type": "error", "error": "request failed", "code": "auth"}
        # A frame left half-sent is cut after --frame-timeout; the server stays up.
        with RegistryClient(rv.registry, source="127.0.0.3") as slow:
            slow.send_raw(b"\x00\x00\x01\x00{\"ty")
            assert slow.closed_by_peer(timeout=4)

        # A flood from one source is throttled; another source is served meanwhile.
        with RegistryClient(rv.registry, source="127.0.0.4") as flood:
            for _ in range(300):
                flood.send(r.list_networks())
            codes = [r.reply_error(flood.recv()) for _ in range(300)]
            assert sum(1 for c in codes if c and c[1] == "rate_limited") > 100
        assert good.call(r.list_networks())["type"] == "list_networks_ok"

        # UDP garbage at the beacon does not stop it answering.
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(3)
        for junk in (b"", b"\xff" * 100, b"\x05\x00", b"\x07" + b"\xff" * 10, b"PILT1234"):
            udp.sendto(junk, rv.beacon)
        udp.sendto(b.encode(b.Discover(0)), rv.beacon)
        assert isinstance(b.decode(udp.recv(100)), b.DiscoverReply)
        udp.close()
        assert rv.alive()
    finally:
        good.close()


def test_tls_certificate_is_persistent_and_pinnable(start_rendezvous, tmp_path):
    rv = start_rendezvous("-tls")
    assert rv.fingerprint
    client = RegistryClient(rv.registry, tls=tls.pinned_client_context())
    assert tls.der_fingerprint(client.sock.getpeercert(binary_form=True)) == rv.fingerprint
    assert client.call(r.list_networks())["type"] == "list_networks_ok"
    client.close()
    rv.kill(signal.SIGTERM)
    again = start_rendezvous("-tls")
    assert again.fingerprint == rv.fingerprint  # R-D12


def test_http_health_metrics_and_stats(rendezvous):
    with RegistryClient(rendezvous.registry) as cl:
        cl.call(r.register(Ed25519PrivateKey.generate().public_key().public_bytes_raw(), ""))
        cl.call({"type": "bogus"})
    base = f"http://{rendezvous.http[0]}:{rendezvous.http[1]}"
    assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
    metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    assert 'pilot_requests_total{type="register"} 1' in metrics
    assert 'pilot_errors_total{type="unknown"} 1' in metrics
    assert "pilot_nodes_total 1" in metrics and "pilot_relay_bytes_total 0" in metrics
    stats = json.load(urllib.request.urlopen(base + "/api/stats", timeout=5))
    assert stats["total_nodes"] == 1 and len(stats["nodes"]) == 1
