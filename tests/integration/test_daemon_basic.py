"""Two real daemons and a real rendezvous on loopback: registration, lookup,
echo over an encrypted tunnel, datagrams, a 100 MiB stream, IPC contract."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import time

import pytest

from pilotgw.client import SyncClient
from pilotgw.overlay import ipc
from pilotgw.overlay.address import Addr
from tests.integration.conftest import RegistryClient


def _run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def pair(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    b = start_daemon(rendezvous, "b")
    return rendezvous, a, b


def test_register_and_find(pair):
    rv, a, b = pair
    ia, ib = a.info(), b.info()
    assert ia["node_id"] == a.node_id and ib["node_id"] == b.node_id and a.node_id != b.node_id
    assert ia["identity"] is True and ia["encrypt"] is True
    with RegistryClient(rv.registry) as reg:
        look = reg.call({"type": "lookup", "node_id": b.node_id})
    assert look["public_key"] == ib["public_key"]
    # Registered endpoint is the tunnel socket's own port (T-D15).
    assert look["real_addr"].endswith(f":{b.tunnel_port}")
    with SyncClient(str(b.socket)) as cb:
        cb.set_hostname("bravo")
    with SyncClient(str(a.socket)) as ca:
        found = ca.resolve_hostname("bravo")
    assert found["node_id"] == b.node_id and found["hostname"] == "bravo"


def test_echo_over_encrypted_tunnel(pair):
    _, a, b = pair

    async def main():
        import pilotgw

        client = await pilotgw.connect(str(a.socket))
        reader, writer = await client.dial(b.node_id, 7)
        for i in range(20):
            msg = f"ping {i}".encode() * 10
            writer.write(msg)
            await writer.drain()
            assert await reader.readexactly(len(msg)) == msg
        writer.close()
        info = await client.info()
        await client.close()
        return info

    info = _run(main())
    peers = {p["node_id"]: p for p in info["peer_list"]}
    assert peers[b.node_id]["encrypted"] and peers[b.node_id]["authenticated"]


def test_info_conn_list_shows_real_transfer_figures(pair):
    """Info's conn_list after 300 KB through echo: both ends count every
    byte, the RTT was measured, windows and congestion figures are real."""
    _, a, b = pair
    total = 300_000
    data = os.urandom(total)
    with SyncClient(str(a.socket)) as ca:
        conn = ca.dial(b.node_id, 7, timeout=15)
        conn.send(data)
        got = bytearray()
        while len(got) < total:
            got += conn.recv(65535, timeout=10)
        assert bytes(got) == data
        deadline = time.monotonic() + 5
        while True:  # the last ACK may still be on its way
            ours = [c for c in ca.info()["conn_list"] if c["id"] == conn.conn_id]
            if ours and ours[0]["unacked"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        (mine,) = ours
        theirs = [c for c in b.info()["conn_list"] if c["local_port"] == 7 and c["remote_port"] == mine["local_port"]]
        conn.close()
    (peer,) = theirs
    assert mine["in_flight"] == 0 and mine["unacked"] == 0
    for entry in (mine, peer):
        assert entry["state"] == "ESTABLISHED"
        assert entry["bytes_sent"] == entry["bytes_recv"] == total
        assert entry["segs_sent"] >= 1 and entry["segs_recv"] >= 1
        assert entry["cong_win"] > 0 and entry["ssthresh"] > 0
        assert entry["recv_win"] > 0 and entry["recv_win"] % 4096 == 0 and entry["peer_recv_win"] > 0
        assert isinstance(entry["srtt_ms"], int) and isinstance(entry["rttvar_ms"], int)
    # Every segment we sent arrived at least once (duplicates count too).
    assert peer["segs_recv"] >= mine["segs_sent"]


def test_datagrams(pair):
    _, a, b = pair

    async def main():
        import pilotgw

        ca = await pilotgw.connect(str(a.socket))
        cb = await pilotgw.connect(str(b.socket))
        inbox = cb.datagrams(5000)
        got = []
        # The first datagram may wait for the key exchange; send a few.
        for i in range(5):
            await ca.send_to(b.node_id, 5000, b"dgram %d" % i)
        while len(got) < 5:
            d = await asyncio.wait_for(inbox.receive(), 10)
            got.append(bytes(d.data))
        await ca.close()
        await cb.close()
        return got

    got = _run(main())
    assert sorted(got) == [b"dgram %d" % i for i in range(5)]  # none lost, none duplicated


def test_stream_100mib_byte_exact(pair):
    _, a, b = pair
    total = 100 * 1024 * 1024
    block = os.urandom(1 << 20)

    async def main():
        import pilotgw

        ca = await pilotgw.connect(str(a.socket))
        cb = await pilotgw.connect(str(b.socket))
        listener = await cb.listen(1000)

        async def sink():
            reader, writer = await listener.accept()
            h = hashlib.sha256()
            n = 0
            while True:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            return n, h.hexdigest()

        task = asyncio.ensure_future(sink())
        reader, writer = await ca.dial(b.node_id, 1000)
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for i in range(total // len(block)):
            data = block[i % 7:] + block[: i % 7]
            h.update(data)
            writer.write(data)
            await writer.drain()
        writer.close()
        n, digest = await task
        elapsed = time.perf_counter() - t0
        await ca.close()
        await cb.close()
        return n, digest, h.hexdigest(), elapsed

    n, got, want, elapsed = _run(main(), timeout=180)
    print(f"100 MiB in {elapsed:.2f} s = {total / elapsed / 1e6:.0f} MB/s")
    assert n == total
    assert got == want


def _raw(sock_path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock_path))
    s.settimeout(10)
    return s


def _read_frame(s):
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return body


def test_ipc_contract_errors_and_order(pair):
    _, a, b = pair
    s = _raw(a.socket)
    try:
        s.sendall(bytes.fromhex("0000000120"))  # unknown command 0x20
        assert _read_frame(s) == b"\x0a\x00\x01unknown command: 0x20"
        s.sendall(bytes.fromhex("00000003 0103E8".replace(" ", "")))  # Bind 1000
        assert _read_frame(s) == bytes.fromhex("0203E8")
        s.sendall(bytes.fromhex("000000030103E8"))
        assert _read_frame(s) == b"\x0a\x00\x01port 1000 already bound"
        s.sendall(bytes.fromhex("000000050800000063"))  # Close unknown 99 -> CloseOK
        assert _read_frame(s) == bytes.fromhex("0900000063")
        s.sendall(bytes.fromhex("00000006060000006378"))  # Send to unknown conn 99
        assert _read_frame(s) == b"\x0a\x00\x01connection 99 not found"
        # Replies stay in request order: a slow dial, then a fast Info.
        s.sendall(ipc.Dial(Addr(0, b.node_id), 7).encode() + ipc.Info().encode())
        first = ipc.decode_reply(_read_frame(s))
        assert isinstance(first, ipc.DialOK)
        second = ipc.decode_reply(_read_frame(s))
        assert isinstance(second, ipc.JsonReply) and second.value["node_id"] == a.node_id
        # Frames split across many reads are reassembled.
        for byte in ipc.Info().encode() + ipc.Bind(1500).encode():
            s.sendall(bytes([byte]))
            time.sleep(0.005)
        assert ipc.decode_reply(_read_frame(s)).value["node_id"] == a.node_id
        assert _read_frame(s) == bytes.fromhex("0205DC")
        # Broadcast datagram refused with the reference text.
        s.sendall(ipc.SendTo(Addr(0, 0xFFFFFFFF), 9, b"x").encode())
        err = ipc.decode_reply(_read_frame(s))
        assert err == ipc.Error("sendto: broadcast is not available \u2014 custom networks are WIP")
        # An oversized frame is answered, then the client is closed (D-13).
        s.sendall(struct.pack(">I", (1 << 20) + 1))
        assert _read_frame(s) == b"\x0a\x00\x01frame too large"
        assert s.recv(10) == b""
    finally:
        s.close()
    assert a.info()["node_id"] == a.node_id  # daemon still serves others


def test_socket_mode_and_sigterm_cleanup(pair):
    _, a, _ = pair
    assert oct(os.stat(a.socket).st_mode & 0o777) == "0o600"
    assert a.stop() == 0
    assert not a.socket.exists()
    assert "daemon stopped" in a.log()
