"""The gateway's overlay adapter against real daemons on loopback: streams,
ping through the echo port, datagram flows with their own source port
(SendToFrom), per-connection sessions that end with their stream, and a
clear refusal of SendToFrom from a port the session does not own."""

from __future__ import annotations

import asyncio

import pytest

import pilotgw
from pilotgw.client.errors import DaemonError
from pilotgw.gateway.overlay_adapter import DaemonOverlay
from pilotgw.overlay.address import Addr


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def pair(rendezvous, start_daemon):
    return start_daemon(rendezvous, "gw"), start_daemon(rendezvous, "agent")


def test_dial_ping_and_datagram_flow(pair) -> None:
    gw, agent = pair
    overlay = DaemonOverlay(str(gw.socket))
    target = Addr(0, agent.node_id)

    async def scenario() -> None:
        rtt = await overlay.ping(target)
        assert 0 < rtt < 5
        reader, writer = await overlay.dial(target, 7)
        writer.write(b"x" * 100_000)
        await writer.drain()
        assert await reader.readexactly(100_000) == b"x" * 100_000
        assert not writer.can_write_eof()
        writer.transport.abort()  # ends the session: the daemon closes the stream
        await writer.wait_closed()
        assert writer.is_closing()

        server = await pilotgw.connect(str(agent.socket))
        await server.listen(5300)
        incoming = server.datagrams(5300)
        flow = await overlay.bind_datagrams()
        await flow.send(target, 5300, b"ping")
        got = await asyncio.wait_for(incoming.receive(), 10)
        assert got.data == b"ping" and got.src_port == flow.port and got.src_addr == Addr(0, gw.node_id)
        await server.send_to(got.src_addr, got.src_port, b"pong", from_port=5300)
        back = await asyncio.wait_for(flow.recv(), 10)
        assert (back.addr, back.port, back.data) == (target, 5300, b"pong")
        flow.close()
        with pytest.raises(EOFError):
            await asyncio.wait_for(flow.recv(), 5)
        # A port this session did not bind cannot be used as a source.
        with pytest.raises(DaemonError, match="not bound by this client"):
            await server.send_to(target, 9, b"spoof", from_port=5301)
            await server.info()  # the error arrives asynchronously: the next call raises it
            await server.send_to(target, 9, b"again")
        await server.close()

    run(scenario())


def test_ping_of_an_unknown_node_fails(pair) -> None:
    gw, _ = pair
    overlay = DaemonOverlay(str(gw.socket))
    with pytest.raises(Exception):
        run(asyncio.wait_for(overlay.ping(Addr(0, 4242)), 15), timeout=30)
