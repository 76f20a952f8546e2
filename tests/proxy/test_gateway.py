"""The gateway end to end in a private namespace, with a fake overlay whose
agent is this host: local clients reach 10.4.0.1:<port> as the agent's port."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time

import pytest
from tests.proxy.fake_overlay import AGENT, FakeOverlay
from tests.proxy.helpers import curl, eventually, http_server, icmp_echo, run, running_gateway, udp_client, udp_echo_server

from pilotgw.overlay.address import Addr
from pilotgw.proxy.mapping import MappingError

pytestmark = pytest.mark.root


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_curl_reaches_the_agent_on_any_port(namespace, tmp_path, loop):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>agent</h1>")

    async def main():
        overlay = FakeOverlay()
        async with http_server(site) as port_a, http_server(site) as port_b:
            async with running_gateway(tmp_path / "state", overlay) as gateway:
                mapping = await gateway.map(AGENT)
                assert str(mapping.local_ip) == "10.4.0.1"
                for port in (port_a, port_b):
                    status, body, err = await curl(f"http://10.4.0.1:{port}/index.html")
                    assert (status, body) == (0, b"<h1>agent</h1>"), err
                assert overlay.dials == [(AGENT, port_a), (AGENT, port_b)]
                await eventually(lambda: gateway.metrics()["10.4.0.1"]["active_connections"] == 0)
                metrics = gateway.metrics()["10.4.0.1"]
                assert metrics["connections"] == 2
                assert metrics["bytes_from_overlay"] > 2 * len("<h1>agent</h1>")
                assert metrics["bytes_to_overlay"] > 0 and metrics["errors"] == 0

    run(main(), loop=loop)


def test_large_download_is_byte_exact(namespace, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    blob = os.urandom(64 << 20)
    (site / "blob").write_bytes(blob)
    out = tmp_path / "out"

    async def main():
        async with http_server(site) as port, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            started = time.monotonic()
            status, _, err = await curl(f"http://10.4.0.1:{port}/blob", out)
            elapsed = time.monotonic() - started
            assert status == 0, err
            assert gateway.metrics()["10.4.0.1"]["bytes_from_overlay"] > len(blob)
            print(f"64 MiB through the gateway in {elapsed:.2f} s ({64 / elapsed:.0f} MiB/s)")

    run(main())
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(blob).digest()


def test_client_half_close_reaches_agent_and_reply_still_arrives(namespace, tmp_path):
    async def main():
        async def agent(reader, writer):
            request = await reader.read()  # until the client's FIN
            writer.write(b"got %d bytes" % len(request))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            writer.write(b"x" * 100_000)
            writer.write_eof()
            assert await reader.read() == b"got 100000 bytes"
            writer.close()

    run(main())


def test_agent_half_close_reaches_client_which_can_still_send(namespace, tmp_path):
    received = []

    async def main():
        async def agent(reader, writer):
            writer.write(b"banner")
            writer.write_eof()  # agent is done talking, still listening
            received.append(await reader.read())
            writer.close()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            assert await reader.read() == b"banner"  # EOF seen while our side is open
            writer.write(b"late data")
            await writer.drain()
            writer.write_eof()
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.02)
            writer.close()

    run(main())
    assert received == [b"late data"]


def test_without_overlay_half_close_the_connection_lingers_then_ends(namespace, tmp_path):
    """C-8: after the client's EOF the reply still arrives; silence then ends it."""

    async def main():
        async def agent(reader, writer):
            await reader.readexactly(7)  # never sees EOF: it cannot be expressed
            writer.write(b"reply")
            await writer.drain()
            await reader.read()

        overlay = FakeOverlay()
        overlay.can_half_close = False
        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state", overlay, linger=0.5) as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            writer.write(b"request")
            writer.write_eof()
            assert await reader.readexactly(5) == b"reply"
            started = time.monotonic()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 3)
            assert time.monotonic() - started < 2.0
            writer.close()

    run(main())


def test_dial_failure_resets_the_client_at_once(namespace, tmp_path):
    async def main():
        overlay = FakeOverlay()
        overlay.dial_error = ConnectionRefusedError("agent refused")
        async with running_gateway(tmp_path / "state", overlay) as gateway:
            await gateway.map(AGENT)
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("10.4.0.1", 8080)
            with pytest.raises(ConnectionResetError):
                await reader.read()
            assert time.monotonic() - started < 1.0
            writer.close()
            assert gateway.metrics()["10.4.0.1"]["errors"] == 1
            status, _, err = await curl("http://10.4.0.1:8080/")
            assert status in (7, 56), err  # refused at connect, or reset on receive

    run(main())


def test_agent_reset_resets_the_client(namespace, tmp_path):
    async def main():
        async def agent(reader, writer):
            await reader.readexactly(5)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            writer.write(b"hello")
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()

    run(main())


def test_clients_resetting_mid_transfer_are_handled_cleanly(namespace, tmp_path):
    """Clients that vanish (RST with data unread) cost an error count, nothing more."""
    unhandled = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))

        async def agent(reader, writer):
            await reader.read(1)
            try:
                writer.write(bytes(4 << 20))
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            for _ in range(20):
                reader, writer = await asyncio.open_connection("10.4.0.1", port)
                writer.write(b"g")
                await reader.readexactly(1)
                writer.close()  # 4 MiB unread: the kernel sends RST
            await eventually(lambda: gateway.metrics()["10.4.0.1"]["active_connections"] == 0)
            assert gateway.metrics()["10.4.0.1"]["errors"] == 20
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            writer.write(b"g")
            assert len(await reader.read()) == 4 << 20
            writer.close()

    run(main())
    assert unhandled == []


def test_ping_answered_only_while_the_agent_answers(namespace, tmp_path):
    async def main():
        overlay = FakeOverlay()
        async with running_gateway(tmp_path / "state", overlay, ping_timeout=0.3) as gateway:
            await gateway.map(AGENT)
            assert await icmp_echo("10.4.0.1", 2.0)
            overlay.ping_ok = False
            assert not await icmp_echo("10.4.0.1", 1.0)
            overlay.ping_ok = True
            assert await icmp_echo("10.4.0.1", 2.0)
            assert overlay.pings == 3
            metrics = gateway.metrics()["10.4.0.1"]
            assert (metrics["pings_answered"], metrics["pings_unanswered"]) == (2, 1)
            with pytest.raises(PermissionError):  # unmapped: refused locally, at once
                await icmp_echo("10.4.0.77", 1.0)

    run(main())


def test_udp_round_trip(namespace, tmp_path):
    async def main():
        async with udp_echo_server() as port, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            async with udp_client("10.4.0.1", port) as (transport, replies):
                for n in range(3):
                    transport.sendto(b"datagram %d" % n)
                    data, source = await asyncio.wait_for(replies.queue.get(), 3)
                    assert data == b"echo:datagram %d" % n
                    assert source == ("10.4.0.1", port)
            metrics = gateway.metrics()["10.4.0.1"]
            assert (metrics["datagrams_to_overlay"], metrics["datagrams_from_overlay"]) == (3, 3)

    run(main())


def test_large_udp_datagram_round_trip(namespace, tmp_path):
    async def main():
        async with udp_echo_server() as port, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            async with udp_client("10.4.0.1", port) as (transport, replies):
                transport.sendto(b"u" * 60_000)
                data, _ = await asyncio.wait_for(replies.queue.get(), 3)
                assert data == b"echo:" + b"u" * 60_000

    run(main())


def test_unmap_resets_live_connections_and_refuses_new_ones(namespace, tmp_path):
    async def main():
        async def agent(reader, writer):
            await reader.read()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            writer.write(b"hi")
            await writer.drain()
            await asyncio.sleep(0.1)
            assert gateway.metrics()["10.4.0.1"]["active_connections"] == 1
            assert (await gateway.unmap("10.4.0.1")).addr == AGENT
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 2)
            writer.close()
            started = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("10.4.0.1", port)
            status, _, _ = await curl(f"http://10.4.0.1:{port}/")
            assert status == 7  # curl: could not connect
            assert time.monotonic() - started < 1.0
            assert gateway.mappings() == []
            with pytest.raises(MappingError) as err:
                await gateway.unmap("10.4.0.1")
            assert err.value.code == "not_found"

    run(main())


def test_port_list_restricts_tcp(namespace, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("ok")

    async def main():
        async with http_server(site) as allowed, http_server(site) as other:
            async with running_gateway(tmp_path / "state", ports=[allowed]) as gateway:
                await gateway.map(AGENT)
                assert (await curl(f"http://10.4.0.1:{allowed}/index.html"))[:2] == (0, b"ok")
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("10.4.0.1", other)

    run(main())


def test_idle_connection_is_closed(namespace, tmp_path):
    async def main():
        async def agent(reader, writer):
            await reader.read()

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state", idle_timeout=0.4) as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port)
            started = time.monotonic()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 3)
            assert 0.3 < time.monotonic() - started < 2.0
            writer.close()

    run(main())


def test_slow_reader_bounds_what_the_gateway_buffers(namespace, tmp_path):
    """Backpressure: a client that does not read stops the agent's writes."""
    pushed = []

    async def main():
        async def agent(reader, writer):
            chunk = bytes(1 << 20)
            try:
                for _ in range(256):
                    writer.write(chunk)
                    await writer.drain()
                    pushed.append(len(chunk))
            except ConnectionError:
                pass

        server = await asyncio.start_server(agent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            reader, writer = await asyncio.open_connection("10.4.0.1", port, limit=1 << 16)
            writer.transport.pause_reading()
            await asyncio.sleep(1.0)
            stalled = sum(pushed)
            await asyncio.sleep(0.5)
            assert sum(pushed) == stalled  # the agent is blocked, not buffering into us
            assert stalled < 64 << 20  # socket buffers, not the whole 256 MiB
            writer.transport.abort()

    run(main())


def test_mappings_persist_across_restarts(namespace, tmp_path):
    async def main():
        async with running_gateway(tmp_path / "state") as gateway:
            await gateway.map(AGENT)
            await gateway.map(Addr(0, 9), "10.4.3.3")
        async with udp_echo_server() as port, running_gateway(tmp_path / "state") as gateway:
            assert [(str(m.local_ip), m.addr) for m in gateway.mappings()] == [
                ("10.4.0.1", AGENT),
                ("10.4.3.3", Addr(0, 9)),
            ]
            async with udp_client("10.4.0.1", port) as (transport, replies):
                transport.sendto(b"again")
                assert (await asyncio.wait_for(replies.queue.get(), 3))[0] == b"echo:again"
            assert str((await gateway.map(Addr(0, 10))).local_ip) == "10.4.0.2"

    run(main())
