"""R-D21: the registry client retries only idempotent requests, once, and
never one that may already have been applied (rendezvous.md R-D21)."""

from __future__ import annotations

import asyncio

import pytest

from pilotgw.daemon.registry_client import RegistryClient, RegistryError
from pilotgw.overlay import registry as reg
from pilotgw.overlay.identity import generate


class DroppingRegistry:
    """Reads every request, then kills the connection without replying to the
    first one; later requests get ``<type>_ok``."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = reg.FrameSplitter()
        try:
            while data := await reader.read(65536):
                splitter.feed(data)
                while (body := splitter.next_body()) is not None:
                    msg = reg.decode_body(body)
                    self.requests.append(msg["type"])
                    if len(self.requests) == 1:
                        writer.transport.abort()  # the request may have been applied; the reply is lost
                        return
                    writer.write(reg.encode_frame({"type": msg["type"] + "_ok"}))
        except ConnectionError:
            pass


def _run(msg: reg.Message) -> tuple[list[str], str | None]:
    async def main() -> tuple[list[str], str | None]:
        fake = DroppingRegistry()
        port = await fake.start()
        client = RegistryClient("127.0.0.1", port, request_timeout=3.0)
        await client.connect()
        code = None
        try:
            await client.request(msg)
        except RegistryError as exc:
            code = exc.code
        await asyncio.sleep(0.1)
        await client.close()
        assert fake.server is not None
        fake.server.close()
        return fake.requests, code

    return asyncio.run(asyncio.wait_for(main(), 30))


SIGN = generate().sign


@pytest.mark.parametrize("msg", [
    reg.update_polo_score(5, 1),
    reg.request_handshake(5, 6, "hi", SIGN),
    reg.respond_handshake(5, 6, True, SIGN),
], ids=lambda m: m["type"])
def test_non_idempotent_request_is_sent_once_and_fails(msg):
    requests, code = _run(msg)
    assert requests == [msg["type"]]
    assert code == "unreachable"


@pytest.mark.parametrize("msg", [reg.lookup(5), reg.heartbeat(5, SIGN), reg.report_trust(5, 6, SIGN)],
                         ids=lambda m: m["type"])
def test_idempotent_request_is_retried_once_on_a_new_connection(msg):
    requests, code = _run(msg)
    assert requests == [msg["type"], msg["type"]]
    assert code is None
