"""Webhook dispatcher against a local HTTP sink."""

from __future__ import annotations

import asyncio
import functools
import json
import logging

import pytest

from pilotgw.daemon import webhooks
from pilotgw.daemon.webhooks import Webhooks


def aio(fn):
    """Run an async test on a fresh event loop with a deadline."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


class Sink:
    """A tiny HTTP server recording POSTs; ``statuses`` are answered in turn."""

    def __init__(self, statuses=(), delay=0.0):
        self.requests: list[tuple[str, dict, bytes]] = []
        self.statuses = list(statuses)
        self.delay = delay
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook?x=1"

    async def _handle(self, reader, writer):
        line = await reader.readline()
        headers = {}
        while (h := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = h.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        self.requests.append((line.decode().strip(), headers, body))
        await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def close(self):
        self.server.close()


def test_envelope_bytes():
    body = webhooks.envelope("handshake.pending", 7, 1_768_480_496_789_000_000, {"peer_node_id": 9, "justification": "hi"})
    assert body == (b'{"event":"handshake.pending","node_id":7,"timestamp":"2026-01-15T12:34:56.789Z",'
                    b'"data":{"justification":"hi","peer_node_id":9}}')
    assert webhooks.envelope("node.deregistered", 7, 1_768_480_496_000_000_000, None) == (
        b'{"event":"node.deregistered","node_id":7,"timestamp":"2026-01-15T12:34:56Z"}')
    assert webhooks.rfc3339_nano(1_768_480_496_789_123_456).endswith(".789123456Z")


@aio
async def test_posts_in_order_with_headers_and_node_id_at_emission():
    sink = Sink()
    url = await sink.start()
    node = [7]
    hooks = Webhooks(url, node_id=lambda: node[0])
    hooks.emit("a", {"n": 1})
    node[0] = 8
    hooks.emit("b", {"n": 2})
    hooks.emit("node.deregistered")
    await hooks.close()
    sink.close()
    assert [r[0] for r in sink.requests] == ["POST /hook?x=1 HTTP/1.1"] * 3
    assert sink.requests[0][1]["content-type"] == "application/json"
    docs = [json.loads(r[2]) for r in sink.requests]
    assert [(d["event"], d["node_id"]) for d in docs] == [("a", 7), ("b", 8), ("node.deregistered", 8)]
    assert "data" not in docs[2]
    assert hooks.delivered == 3


@aio
async def test_retries_503_and_connect_failures_but_not_500(caplog):
    sink = Sink(statuses=[503, 503, 200, 500])
    url = await sink.start()
    hooks = Webhooks(url, node_id=lambda: 1, backoff=0.01)
    hooks.emit("retried")
    hooks.emit("not-retried")
    await hooks.close()
    sink.close()
    events = [json.loads(r[2])["event"] for r in sink.requests]
    assert events == ["retried", "retried", "retried", "not-retried"]
    assert hooks.delivered == 1 and hooks.failed == 1


@aio
async def test_unreachable_endpoint_gives_up_after_retries():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    hooks = Webhooks(f"http://127.0.0.1:{port}/", node_id=lambda: 1, retries=2, backoff=0.01)
    hooks.emit("x")
    await hooks.close()
    assert hooks.failed == 1


@aio
async def test_timeout_bounds_a_hung_endpoint():
    sink = Sink(delay=5)
    url = await sink.start()
    hooks = Webhooks(url, node_id=lambda: 1, timeout=0.2)
    hooks.emit("slow")
    hooks.emit("next")
    loop = asyncio.get_running_loop()
    start = loop.time()
    await hooks.close()
    assert loop.time() - start < 2
    assert len(sink.requests) == 2  # the hung one did not block the next
    sink.close()


@aio
async def test_full_queue_drops_with_a_log_line(caplog):
    sink = Sink(delay=0.05)
    url = await sink.start()
    hooks = Webhooks(url, node_id=lambda: 1, queue_size=2)
    with caplog.at_level(logging.WARNING, logger="pilotgw.daemon.webhook"):
        for i in range(10):
            hooks.emit("e", {"i": i})
    assert hooks.dropped >= 7
    assert any("dropped" in r.getMessage() for r in caplog.records)
    await hooks.close()
    sink.close()


@pytest.mark.parametrize("url", ["ftp://x/", "not a url", "http://"])
@aio
async def test_unusable_url_disables_delivery(url, caplog):
    with caplog.at_level(logging.WARNING, logger="pilotgw.daemon.webhook"):
        hooks = Webhooks(url, node_id=lambda: 1)
    assert hooks.url == ""
    hooks.emit("x")  # no-op, no error
    assert caplog.records


@aio
async def test_set_url_swaps_target_for_later_events():
    a, b = Sink(), Sink()
    url_a, url_b = await a.start(), await b.start()
    hooks = Webhooks(url_a, node_id=lambda: 1)
    hooks.emit("first")
    hooks.set_url(url_b)
    hooks.emit("second")
    hooks.set_url("")
    hooks.emit("none")
    await hooks.close()
    a.close(), b.close()
    assert [json.loads(r[2])["event"] for r in a.requests] == ["first"]
    assert [json.loads(r[2])["event"] for r in b.requests] == ["second"]
