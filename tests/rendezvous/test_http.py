"""R-D9: the operator HTTP surface decides "local" from the TCP peer only;
an ``X-Real-IP`` header cannot unlock ``/metrics`` (rendezvous.md Part 3)."""

from __future__ import annotations

import asyncio

import pytest

from pilotgw.rendezvous import http


class Writer:
    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.out = bytearray()

    def get_extra_info(self, name: str):
        return self.peer if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def serve(request: bytes, peer: tuple[str, int], rv=None) -> bytes:
    async def main() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(request)
        reader.feed_eof()
        writer = Writer(peer)
        await http.handler(rv)(reader, writer)  # type: ignore[arg-type]
        return bytes(writer.out)

    return asyncio.run(main())


@pytest.mark.parametrize("header", [b"X-Real-IP: 127.0.0.1", b"X-Forwarded-For: 127.0.0.1", b"X-Real-IP: ::1"])
def test_spoofed_proxy_header_does_not_make_a_remote_peer_local(header):
    reply = serve(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n", ("192.0.2.7", 40000))
    assert reply.startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_remote_peers_get_health_but_not_metrics():
    assert serve(b"GET /healthz HTTP/1.1\r\n\r\n", ("192.0.2.7", 40000)).endswith(b"\r\n\r\nok\n")
    assert serve(b"GET /metrics HTTP/1.1\r\n\r\n", ("192.0.2.7", 40000)).startswith(b"HTTP/1.1 403")
