"""Wiring of the trust and data services into a started node.

One call, :func:`install`, made by the node right after echo: it loads the
trust state (``trust.json`` next to the identity file, memory only without
one, A1.11), installs the inbound policy (D-5), and binds the handshake
(444), data exchange (1001 and the bulk extension port) and event stream
(1002) and task submit (1003) services, honouring ``-no-dataexchange`` / ``-no-eventstream``, and
re-publishes the exposed local services (``expose.json``, our extension).
Received files and the inbox live under the daemon process's
``$HOME/.pilot`` (A3.6).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pilotgw.daemon.ipc_server import NodeError
from pilotgw.daemon.services.dataexchange import DataExchange, Storage
from pilotgw.daemon.services.eventstream import Broker
from pilotgw.daemon.services.expose import Exposer, expose_path
from pilotgw.daemon.services.handshake import HandshakeError, Handshakes
from pilotgw.daemon.services.tasks import install as install_tasks
from pilotgw.daemon.trust import InboundPolicy, TrustStore
from pilotgw.overlay import ipc
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, PORT_EVENT_STREAM, PORT_HANDSHAKE, Addr, SocketAddr
from pilotgw.services import xfer

if TYPE_CHECKING:  # pragma: no cover
    from pilotgw.daemon.node import Node


class _Bound:
    """A handler bound to a port, in the shape ``Node.add_service`` takes."""

    def __init__(self, port: int, handle: Callable[[Any, Any, SocketAddr], Awaitable[None]]) -> None:
        self.port = port
        self.handle = handle


def trust_path(identity_path: str) -> str | None:
    """``<identity dir>/trust.json``; ``None`` (no persistence) without identity."""
    if not identity_path:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(identity_path)), "trust.json")


def pilot_home() -> Path:
    return Path(os.path.expanduser("~")) / ".pilot"


def install(node: "Node", *, home: Path | None = None) -> None:
    cfg = node.cfg
    assert node.identity is not None and node.registry is not None
    store = TrustStore(trust_path(cfg.identity))
    node.trust = store  # type: ignore[attr-defined]

    async def dial(addr: Addr, port: int) -> tuple[Any, Any]:
        stream = await node.open_stream(addr, port)
        return stream, stream

    def drop_tunnel(peer: int) -> None:
        if node.tunnel is not None:
            node.tunnel.drop(peer)

    def refused(src: int, port: int, kind: str) -> None:
        if node.webhooks is not None:
            node.webhooks.emit("security.untrusted_refused", {"src_addr": str(Addr(0, src)), "dst_port": port, "kind": kind})

    policy = InboundPolicy(store, is_public=lambda: node.public, local_node=lambda: node.node_id, on_refused=refused)
    node.inbound_check = policy.check
    node.is_trusted = store.is_trusted
    node.trust_policy = policy  # type: ignore[attr-defined]

    handshakes = Handshakes(
        store,
        node_id=lambda: node.node_id,
        sign=node.identity.sign,
        public_key=node.identity.public_key,
        registry=node.registry,
        dial=dial,
        webhooks=node.webhooks,
        drop_tunnel=drop_tunnel,
    )
    node.handshakes = handshakes  # type: ignore[attr-defined]

    async def handshake_ipc(req: Any) -> ipc.Message:
        try:
            return ipc.JsonReply(ipc.HANDSHAKE_OK, await handshakes.ipc(req))
        except HandshakeError as exc:
            raise NodeError(str(exc)) from None

    node.handshake_handler = handshake_ipc
    node.handshake_consumer = handshakes.consume_poll
    node.add_service(_Bound(PORT_HANDSHAKE, handshakes.handle))

    if not cfg.no_dataexchange:
        exchange = DataExchange(Storage(home or pilot_home()), webhooks=node.webhooks,
                                me=lambda: str(node.address), dial=dial)
        node.add_service(_Bound(PORT_DATA_EXCHANGE, exchange.handle))
        node.add_service(_Bound(xfer.PORT, exchange.handle_bulk))
    if not cfg.no_eventstream:
        broker = Broker(node.webhooks)
        node.add_service(_Bound(PORT_EVENT_STREAM, broker.handle))
    install_tasks(node, home or pilot_home(), dial)  # port 1003: always on, as in the reference (A1)

    exposer = Exposer(node, expose_path(cfg.identity))
    exposer.restore()
    node.expose_handler = exposer.ipc
