"""The event-stream broker on port 1002 (services-and-cli.md §A4, C-11).

Wire behaviour is the reference's: the first event on a connection is its
subscription (payload ignored, not published), every later event is a
publish delivered byte-identically to the subscribers of its exact topic and
to ``*`` subscribers, never back to its sender.

What differs is that nobody waits for anybody (C-11). The reference fans out
under a lock with blocking writes, so one subscriber that stops reading
stalls every publisher. Here each subscriber has its own bounded outbound
queue and its own writer task; a publish only appends to queues and never
awaits. Order is preserved per subscriber (one queue, one writer), hence in
order per publisher.

Slow-subscriber policy: a subscriber whose queue would exceed
:data:`QUEUE_BYTES` bytes or :data:`QUEUE_EVENTS` events is **disconnected**
(logged, ``pubsub.unsubscribed`` emitted) rather than silently losing events
-- a subscriber either sees every event published to it in order, or sees
its connection end. A single event larger than the byte bound is still
accepted into an empty queue so a 16 MiB event can be delivered.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Protocol

from pilotgw.daemon.log import Log
from pilotgw.daemon.webhooks import Webhooks
from pilotgw.overlay import eventstream
from pilotgw.overlay.address import SocketAddr
from pilotgw.overlay.errors import DecodeError

log = Log("eventstream")

QUEUE_BYTES = 8 * 1024 * 1024
QUEUE_EVENTS = 4096
READ_CHUNK = 64 * 1024


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class _Subscriber:
    """One connection's outbound side: a bounded queue drained by one task."""

    __slots__ = ("writer", "remote", "queue", "queued_bytes", "wakeup", "dead", "task", "max_bytes", "max_events")

    def __init__(self, writer: Writer, remote: SocketAddr, max_bytes: int, max_events: int) -> None:
        self.writer = writer
        self.remote = remote
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.dead = False
        self.task: asyncio.Task[None] | None = None
        self.max_bytes = max_bytes
        self.max_events = max_events

    def offer(self, frame: bytes) -> bool:
        """Queue ``frame``; False when the subscriber is too far behind."""
        if self.queue and (
            self.queued_bytes + len(frame) > self.max_bytes or len(self.queue) >= self.max_events
        ):
            return False
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        self.wakeup.set()
        return True

    async def run(self) -> None:
        try:
            while not self.dead:
                if not self.queue:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                # Write everything queued, then wait for the transport once.
                while self.queue:
                    frame = self.queue.popleft()
                    self.queued_bytes -= len(frame)
                    self.writer.write(frame)
                await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("subscriber write failed", remote=str(self.remote), error=str(exc))
            self.kill()

    def kill(self) -> None:
        if not self.dead:
            self.dead = True
            self.queue.clear()
            self.wakeup.set()
            self.writer.close()


class Broker:
    """Topic table plus per-connection handling. ``handle`` is the service
    entry point for one accepted connection."""

    def __init__(
        self,
        webhooks: Webhooks | None = None,
        *,
        queue_bytes: int = QUEUE_BYTES,
        queue_events: int = QUEUE_EVENTS,
    ) -> None:
        self._webhooks = webhooks
        self._queue_bytes = queue_bytes
        self._queue_events = queue_events
        self._subs: eventstream.Subscriptions[_Subscriber] = eventstream.Subscriptions()
        self.published = 0
        self.disconnected_slow = 0

    def __len__(self) -> int:
        return len(self._subs)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if self._webhooks is not None:
            self._webhooks.emit(event, data)

    async def handle(self, reader: Reader, writer: Writer, remote: SocketAddr) -> None:
        sub = _Subscriber(writer, remote, self._queue_bytes, self._queue_events)
        parser = eventstream.EventReader()
        topic: str | None = None
        try:
            while not sub.dead:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                for event in parser.feed(data):
                    if topic is None:
                        topic = event.topic
                        self._subs.add(sub, topic)
                        sub.task = asyncio.get_running_loop().create_task(sub.run())
                        self._emit("pubsub.subscribed", {"topic": topic, "remote": str(remote)})
                    else:
                        self._publish(sub, event)
        except DecodeError as exc:
            log.info("bad event-stream data; closing", remote=str(remote), error=str(exc))
        except (ConnectionError, OSError) as exc:
            log.debug("event-stream read failed", remote=str(remote), error=str(exc))
        finally:
            self._subs.remove(sub)
            sub.kill()
            if sub.task is not None:
                sub.task.cancel()
            if topic:
                self._emit("pubsub.unsubscribed", {"topic": topic, "remote": str(remote)})

    def _publish(self, sender: _Subscriber, event: eventstream.Event) -> None:
        frame = eventstream.encode(event)
        for sub in self._subs.recipients(event.topic, sender):
            if not sub.offer(frame):
                self.disconnected_slow += 1
                log.warning(
                    "subscriber too slow; disconnecting",
                    remote=str(sub.remote),
                    queued_bytes=sub.queued_bytes,
                    queued_events=len(sub.queue),
                )
                self._subs.remove(sub)
                sub.kill()
        self.published += 1
        self._emit("pubsub.published", {"from": str(sender.remote), "size": len(event.payload), "topic": event.topic})
