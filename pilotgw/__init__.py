"""pilotgw: Pilot Protocol (wire spec v0.5) in Python, built around its gateway.

The package root stays import-light on purpose: ``import pilotgw.overlay``
must not drag in sockets or asyncio, and ``pilotctl`` must start fast. The
agent-facing API (``pilotgw.connect`` and friends) lives in
:mod:`pilotgw.client` and is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_CLIENT_API = frozenset({"connect", "Client", "SyncClient", "PilotError"})


def __getattr__(name: str) -> Any:
    # Lazy re-export so that `import pilotgw` costs nothing until an agent
    # actually asks for the client API.
    if name in _CLIENT_API:
        from pilotgw import client

        return getattr(client, name)
    raise AttributeError(f"module 'pilotgw' has no attribute {name!r}")
