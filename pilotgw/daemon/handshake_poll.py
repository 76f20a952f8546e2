"""Relayed handshakes: the loop that polls the registry's handshake inbox.

Our rendezvous holds a ``poll_handshakes`` that carries ``"wait": N`` (our
extension) until something arrives or N seconds pass, so one request per
wait period delivers relayed handshakes within moments. A reference
registry ignores ``wait`` and answers at once, and a reference daemon polls
only after each heartbeat (rendezvous.md §2.10). Re-polling as soon as such
an empty answer arrives would be a tight loop against that registry, so an
empty answer that came back well before the wait we asked for means "this
registry does not hold requests": the next poll waits for the heartbeat
interval, as the reference's does. Answers with entries are consumed and
polled again at once (more may be queued).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Optional

from pilotgw.daemon.registry_client import RegistryError

#: Seconds we ask the registry to hold an empty poll.
POLL_WAIT = 25
#: Pause after a failed poll (the registry client reconnects meanwhile).
ERROR_PAUSE = 2.0

Consumer = Callable[[dict], Awaitable[None]]


async def poll_loop(
    poll: Callable[[int], Awaitable[dict]],
    consumer: Callable[[], Optional[Consumer]],
    *,
    idle_interval: float,
    wait: int = POLL_WAIT,
    error_pause: float = ERROR_PAUSE,
) -> None:
    """Poll forever (cancel to stop).

    ``poll(wait)`` sends one ``poll_handshakes`` asking the registry to hold
    it ``wait`` seconds; ``consumer()`` is what takes non-empty replies, or
    None while nobody should poll (no trust service, deregistered), which
    is checked again every ``idle_interval`` -- also the pace against a
    registry that answers at once.
    """
    loop = asyncio.get_running_loop()
    while True:
        consume = consumer()
        if consume is None:
            await asyncio.sleep(idle_interval)
            continue
        started = loop.time()
        try:
            reply = await poll(wait)
        except RegistryError:
            await asyncio.sleep(error_pause)
            continue
        if reply.get("requests") or reply.get("responses"):
            await consume(reply)
        elif loop.time() - started < wait / 2:
            await asyncio.sleep(idle_interval)
