"""The daemon's registry client against a scripted asyncio registry:
deadlines, reconnection with on_connect, error replies, cached and
coalesced lookups."""

from __future__ import annotations

import asyncio
import base64

import pytest

from pilotgw.daemon.registry_client import RegistryClient, RegistryError
from pilotgw.overlay import registry as reg

KEY = bytes(range(32))


class FakeRegistry:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict] = []
        self.conns = 0
        self.server = None
        self.writers = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader, writer) -> None:
        self.conns += 1
        self.writers.append(writer)
        splitter = reg.FrameSplitter()
        try:
            while data := await reader.read(65536):
                splitter.feed(data)
                while (body := splitter.next_body()) is not None:
                    msg = reg.decode_body(body)
                    self.requests.append(msg)
                    if self.mode == "silent":
                        continue
                    if msg["type"] == "lookup":
                        await asyncio.sleep(0.05)
                        reply = {"type": "lookup_ok", "node_id": msg["node_id"],
                                 "public_key": base64.b64encode(KEY).decode()}
                    elif msg["type"] == "resolve_hostname":
                        reply = {"type": "error", "error": "request failed", "code": "not_found"}
                    else:
                        reply = {"type": msg["type"] + "_ok"}
                    writer.write(reg.encode_frame(reply))
        except ConnectionError:
            pass

    def drop_all(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()


def test_request_deadline_and_error_codes():
    async def main():
        fake = FakeRegistry("silent")
        port = await fake.start()
        client = RegistryClient("127.0.0.1", port, request_timeout=0.3)
        await client.connect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(RegistryError) as info:
            await client.request(reg.lookup(5))
        elapsed = loop.time() - t0
        fake.mode = "ok"
        with pytest.raises(RegistryError) as err:
            await client.request(reg.resolve_hostname("nobody"))
        await client.close()
        fake.server.close()
        return info.value.code, elapsed, err.value.code, str(err.value)

    code, elapsed, code2, text = asyncio.run(main())
    assert code == "timeout" and elapsed < 1.0
    assert code2 == "not_found" and text == "registry: request failed"


def test_reconnects_and_calls_on_connect():
    async def main():
        fake = FakeRegistry()
        port = await fake.start()
        reconnected = asyncio.Event()

        async def on_connect():
            reconnected.set()

        client = RegistryClient("127.0.0.1", port, on_connect=on_connect)
        await client.connect()
        await client.request(reg.heartbeat(5, None))
        fake.drop_all()
        await asyncio.wait_for(reconnected.wait(), 5)
        reply = await client.request(reg.heartbeat(5, None))
        await client.close()
        fake.server.close()
        return reply, fake.conns

    reply, conns = asyncio.run(main())
    assert reply["type"] == "heartbeat_ok" and conns == 2


def test_unreachable_registry_fails_fast():
    async def main():
        client = RegistryClient("127.0.0.1", 1, connect_timeout=0.5)
        with pytest.raises(RegistryError) as info:
            await client.connect(attempts=2)
        return info.value.code

    assert asyncio.run(main()) == "unreachable"


def test_lookups_are_cached_copies_and_coalesced():
    async def main():
        fake = FakeRegistry()
        port = await fake.start()
        client = RegistryClient("127.0.0.1", port)
        keys = await asyncio.gather(*(client.lookup_key(9) for _ in range(10)))
        again = await client.lookup_key(9)
        refreshed = await client.lookup_key(9, refresh=True)
        await client.close()
        fake.server.close()
        return keys, again, refreshed, [r["type"] for r in fake.requests]

    keys, again, refreshed, sent = asyncio.run(main())
    assert all(k == KEY and type(k) is bytes for k in keys) and again == KEY == refreshed
    assert sent == ["lookup", "lookup"]  # ten concurrent lookups, one request; then one refresh
