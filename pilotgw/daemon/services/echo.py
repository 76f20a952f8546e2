"""The echo service on port 7: every byte read is written back.

``pilotctl ping`` and the reference CLI measure round trips with it, and the
benchmarks use it for RTT. It honours backpressure (``drain``) so a client
that does not read cannot make the daemon buffer without bound.
"""

from __future__ import annotations

from pilotgw.daemon.services import ServiceStream
from pilotgw.overlay.address import PORT_ECHO, SocketAddr


class EchoService:
    port = PORT_ECHO

    async def handle(self, reader: ServiceStream, writer: ServiceStream, remote: SocketAddr) -> None:
        while True:
            data = await reader.read()
            if not data:
                return
            writer.write(data)
            await writer.drain()
