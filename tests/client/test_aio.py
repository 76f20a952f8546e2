"""The asyncio Client against a scripted daemon on a real Unix socket."""

from __future__ import annotations

import asyncio
import os

import pytest

import pilotgw
from pilotgw.client import DaemonError, InvalidArgument, NotRunning, PilotError
from pilotgw.overlay.address import Addr, SocketAddr

pytestmark = pytest.mark.timeout(30)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_connect_to_missing_socket_is_not_running(sockdir: str) -> None:
    with pytest.raises(NotRunning) as exc:
        run(pilotgw.connect(os.path.join(sockdir, "nope.sock")))
    assert exc.value.code == "not_running"
    assert exc.value.hint == "start the daemon with: pilotctl daemon start"


def test_info_and_management_calls(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with await pilotgw.connect(fake.path) as c:
            info, found, vis = await asyncio.gather(
                c.info(), c.resolve_hostname("bob"), c.set_visibility(True)
            )
            assert info["node_id"] == 5 and found["node_id"] == 9 and vis["visibility"] == "public"
            assert (await c.set_tags(["a", "b"]))["tags"] == ["a", "b"]
            assert (await c.pending())[0]["node_id"] == 12
            assert (await c.trusted())[0]["mutual"] is True
            assert (await c.approve(12))["status"] == "approved"

    run(main())


def test_daemon_error_text_is_composed_like_the_go_driver(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        with pytest.raises(DaemonError) as exc:
            await c.revoke(77)
        assert str(exc.value) == "revoke: daemon: handshake revoke: node 77 was not trusted"
        assert exc.value.code == "connection_failed"
        # The session survives the error.
        assert (await c.info())["address"] == "0:0000.0000.0005"
        await c.close()

    run(main())


def test_dial_echo_round_trip_with_large_write(fake) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(3 * 1024 * 1024 + 17)  # above the 1 MiB IPC frame limit

    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        reader, writer = await c.dial("0:0000.0000.0009", 7)
        assert writer.get_extra_info("peername") == SocketAddr(Addr(0, 9), 7)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sender = asyncio.ensure_future(send())
        got = await reader.readexactly(len(payload))
        await sender
        assert got == payload
        writer.close()
        await writer.wait_closed()
        assert reader.at_eof()
        await c.close()

    run(main())


def test_dial_failure_and_bad_address(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        with pytest.raises(DaemonError, match="^dial: daemon: dial timeout$"):
            await c.dial(404, 7)
        with pytest.raises(InvalidArgument):
            await c.dial("1:0000.0000.0001", 7)  # network mismatch
        with pytest.raises(InvalidArgument):
            await c.dial(9, 65536)
        await c.close()

    run(main())


def test_listen_accepts_and_reads(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        listener = await c.listen(1000)
        conn_id = fake.push_accept(1000, 9, 49152, b"hello")
        reader, writer = await listener.accept()
        assert writer.conn_id == conn_id and writer.remote == SocketAddr(Addr(0, 9), 49152)
        assert await reader.readexactly(5) == b"hello"
        writer.write(b"back")
        await writer.drain()
        fake.close_stream(conn_id)
        assert await reader.read() == b""
        writer.close()
        with pytest.raises(DaemonError, match="port 1000 already bound"):
            c2 = await pilotgw.connect(fake.path)
            await c2.listen(1000)
        await c.close()
        await asyncio.sleep(0.05)
        assert fake.stream_received(conn_id) == b"back"

    run(main())


def test_datagrams_filtered_by_port(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        stream = c.datagrams(5000)
        await c.send_to("0:0000.0000.0009", 4000, b"other port")
        await c.send_to(9, 5000, b"mine")
        dg = await stream.receive()
        assert (dg.src_addr, dg.dst_port, dg.data) == (Addr(0, 9), 5000, b"mine")
        with pytest.raises(InvalidArgument):
            await c.send_to(Addr(0, 0xFFFFFFFF), 5000, b"x")
        await c.close()
        assert [d async for d in stream] == []

    run(main())


def test_disconnect_returns_on_close_ok(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        _, writer = await c.dial(9, 7)
        await asyncio.wait_for(c.disconnect(writer.conn_id), 2)
        await asyncio.wait_for(c.disconnect(999), 2)  # unknown IDs are answered too
        await c.close()

    run(main())


def test_daemon_going_away_fails_waiters(fake) -> None:  # type: ignore[no-untyped-def]
    fake.hook = lambda cmd, p: b"" if cmd == 0x0D else None  # never answer Info

    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        reader, _ = await c.dial(9, 1000)
        task = asyncio.ensure_future(c.info())
        await asyncio.sleep(0.1)
        fake.close()
        with pytest.raises(PilotError, match="daemon disconnected"):
            await task
        with pytest.raises(PilotError):
            await reader.read()

    run(main())


def test_write_error_surfaces_on_drain(fake) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        c = await pilotgw.connect(fake.path)
        _, writer = await c.dial(9, 7)
        fake._streams.pop(writer.conn_id)  # the daemon forgets the stream
        writer.write(b"x")
        await c.info()  # the error frame arrives before this reply
        with pytest.raises(DaemonError, match=f"connection {writer.conn_id} not found"):
            await writer.drain()
        await c.close()

    run(main())
