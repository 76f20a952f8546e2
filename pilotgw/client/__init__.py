"""The Python API to a local Pilot daemon, over its IPC socket.

``client = await pilotgw.connect()`` gives an asyncio :class:`Client`
(streams as ``asyncio.StreamReader`` / writer pairs, listeners, datagrams,
node and trust management, and the data services: ``send_file`` to one or
many nodes, ``send_message``, ``subscribe``/``publish``, and ``inbox()`` /
``received()`` for what the local daemon saved); :class:`SyncClient` is the
blocking equivalent for scripts. Every failure is a :class:`PilotError` with a ``code``, a
``message`` and an optional ``hint``.

The asyncio half is imported on first use so that blocking users (such as
``pilotctl``) never pay for asyncio.
"""

from __future__ import annotations

from typing import Any

from pilotgw.client.errors import (
    ConnectionFailed,
    DaemonDisconnected,
    DaemonError,
    InvalidArgument,
    NotFound,
    NotRunning,
    PilotError,
    ProtocolError,
    Timeout,
)
from pilotgw.client.sync import SyncClient, SyncConnection, SyncListener, SyncSubscription
from pilotgw.client.wire import Datagram

__all__ = [
    "Client",
    "ConnectionFailed",
    "DaemonDisconnected",
    "DaemonError",
    "Datagram",
    "DatagramStream",
    "InvalidArgument",
    "Listener",
    "NotFound",
    "NotRunning",
    "PilotError",
    "PilotStreamWriter",
    "ProtocolError",
    "SyncClient",
    "SyncConnection",
    "SyncListener",
    "SyncSubscription",
    "Subscription",
    "Timeout",
    "connect",
]

_ASYNC = frozenset({"Client", "connect", "Listener", "DatagramStream", "PilotStreamWriter", "Subscription"})


def __getattr__(name: str) -> Any:
    if name in _ASYNC:
        from pilotgw.client import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'pilotgw.client' has no attribute {name!r}")
