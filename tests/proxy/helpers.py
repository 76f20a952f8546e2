"""Clients and servers for gateway tests (all inside the test's namespace)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from tests.proxy.fake_overlay import FakeOverlay

from pilotgw.proxy.gateway import Gateway, run_blocking
from pilotgw.tun import ipv4
from pilotgw.tun.leftovers import find_leftovers

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")
T = TypeVar("T")


def run(coro: Awaitable[T], *, loop: str = "uvloop", timeout: float = 120.0) -> T:
    """Run a test coroutine on uvloop (production's loop) or asyncio's own."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)

    if loop == "uvloop":
        return uvloop.run(guarded())
    return asyncio.run(guarded())


@contextlib.asynccontextmanager
async def running_gateway(state_dir: Path, overlay: Any = None, **options: Any) -> AsyncIterator[Gateway]:
    """A started gateway; on exit it is stopped and the namespace checked clean."""
    gateway = Gateway(overlay if overlay is not None else FakeOverlay(), state_dir=state_dir, **options)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
        assert await run_blocking(find_leftovers, SUBNET) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def http_server(directory: Path) -> AsyncIterator[int]:
    """``python -m http.server`` on 127.0.0.1 in its own process; yields its port."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(directory),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        yield port
    finally:
        proc.kill()
        await proc.wait()


async def curl(url: str, output: Path | None = None, *extra: str) -> tuple[int, bytes, str]:
    """``(exit status, body or b"", stderr)`` of one curl run."""
    args = ["curl", "-sS", "--max-time", "30", *extra, url]
    if output is not None:
        args[1:1] = ["-o", str(output)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err.decode(errors="replace")


async def icmp_echo(ip: str, timeout: float) -> bool:
    """Send one echo request; ``True`` if the matching reply arrives in time."""
    loop = asyncio.get_running_loop()
    ident = os.getpid() & 0xFFFF
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"pilotgw-echo"
    body = body[:2] + struct.pack("!H", ipv4.checksum(body)) + body[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setblocking(False)
        sock.sendto(body, (ip, 0))
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(loop.sock_recv(sock, 4096), left)
            except TimeoutError:
                return False
            packet = ipv4.parse_ipv4(raw)
            message = packet.payload
            if str(packet.src) == ip and message[0] == 0 and struct.unpack_from("!H", message, 4)[0] == ident:
                return message[8:] == b"pilotgw-echo"
    return False


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def udp_echo_server() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def udp_client(ip: str, port: int) -> AsyncIterator[tuple[asyncio.DatagramTransport, _Collect]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Collect, remote_addr=(ip, port))
    try:
        yield transport, protocol
    finally:
        transport.close()



async def eventually(check: Any, timeout: float = 2.0) -> None:
    """Wait until ``check()`` is true (bridges wind down just after clients exit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
