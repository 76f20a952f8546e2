"""Webhook delivery: every daemon event as an HTTP POST (trust-and-ipc.md §A4, D-17).

One :class:`Webhooks` dispatcher per daemon, used by every emitter (tunnel,
connections, handshake, data exchange, pub/sub) so a URL swap through IPC
``SetWebhook`` reaches all of them at once -- the reference's broker kept the
client it captured at start (D-17).

Delivery contract kept from the reference (Q19): :meth:`Webhooks.emit` never
blocks; events wait in a queue of 1024 and one worker posts them in emission
order, each POST bounded by a 5 s timeout; a full queue drops the event with
a warning (counted, logged at most once a second so a flood cannot flood the
log too). ``close`` stops intake, delivers what is queued, then returns.

Retries (the reference has none): an event is re-posted, with exponential
backoff, only when it provably was not processed -- the connection could not
be opened, or the server answered 429 or 503. A timeout or any other answer
is logged and not retried, because consumers may not be idempotent.

Only ``http://`` and ``https://`` (stdlib :mod:`ssl`, system trust store)
URLs deliver; any other string is accepted by ``SetWebhook`` (its reply never
fails) but disables delivery with a log line saying why.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from pilotgw.daemon.log import Log
from pilotgw.overlay import gojson

log = Log("webhook")

QUEUE_SIZE = 1024
TIMEOUT = 5.0
RETRIES = 3
BACKOFF = 0.5
BACKOFF_MAX = 8.0
#: Bound on how long ``close`` waits for the queue to drain.
CLOSE_DRAIN = 30.0
_RETRY_STATUS = frozenset({429, 503})


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC: fraction with trailing zeros removed."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def envelope(event: str, node_id: int, ns: int, data: dict[str, Any] | None) -> bytes:
    """``{"event","node_id","timestamp","data"}`` in that order; ``data``
    keys sorted (a map in the reference), the key omitted when ``None``."""
    doc: dict[str, Any] = {"event": event, "node_id": node_id, "timestamp": rfc3339_nano(ns)}
    if data is not None:
        doc["data"] = dict(sorted(data.items()))
    return gojson.dumpb(doc, sort_keys=False)


class _Target:
    """A parsed delivery URL."""

    __slots__ = ("url", "host", "port", "path", "tls", "host_header")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"webhook URL has no host: {url!r}")
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"webhook URL has a bad port: {url!r}") from exc
        self.port = port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.host_header = parts.netloc.rpartition("@")[2]


class _Unprocessed(Exception):
    """The server cannot have acted on the event: safe to post again."""


class Webhooks:
    """The daemon's webhook dispatcher. ``node_id`` is read at emission time."""

    def __init__(
        self,
        url: str = "",
        *,
        node_id: Callable[[], int],
        queue_size: int = QUEUE_SIZE,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
    ) -> None:
        self._node_id = node_id
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._queue: asyncio.Queue[tuple[_Target, bytes] | None] = asyncio.Queue(queue_size)
        self._target: _Target | None = None
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        self._dropped = 0
        self._last_drop_log = 0.0
        self.delivered = 0
        self.failed = 0
        self.set_url(url)

    @property
    def url(self) -> str:
        return self._target.url if self._target is not None else ""

    @property
    def dropped(self) -> int:
        return self._dropped

    def set_url(self, url: str) -> None:
        """Swap the target for every later event (IPC SetWebhook). ``""``
        disables delivery; an unusable URL disables it too, with a log line."""
        if not url:
            self._target = None
            return
        try:
            self._target = _Target(url)
        except ValueError as exc:
            self._target = None
            log.warning("webhook delivery disabled", reason=str(exc))

    def emit(self, event: str, data: dict[str, Any] | None = None) -> None:
        """Queue one event; never blocks, never raises."""
        target = self._target
        if target is None:
            return
        if self._closed:
            self._drop(event, "dispatcher closed")
            return
        body = envelope(event, self._node_id(), time.time_ns(), data)
        try:
            self._queue.put_nowait((target, body))
        except asyncio.QueueFull:
            self._drop(event, "queue full")
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    def _drop(self, event: str, reason: str) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("webhook event dropped", webhook_event=event, reason=reason, dropped_total=self._dropped)

    async def close(self) -> None:
        """Stop accepting events, deliver the queued ones (bounded), return."""
        self._closed = True
        if self._worker is None:
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # the worker exits when it sees _closed with an empty queue
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), CLOSE_DRAIN)
        except asyncio.TimeoutError:
            log.warning("webhook queue not drained at close", left=self._queue.qsize())
            self._worker.cancel()

    async def _run(self) -> None:
        while True:
            if self._closed and self._queue.empty():
                return
            item = await self._queue.get()
            if item is None:
                if self._queue.empty():
                    return
                continue
            target, body = item
            await self._deliver(target, body)

    async def _deliver(self, target: _Target, body: bytes) -> None:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                status = await asyncio.wait_for(_post(target, body), self._timeout)
            except _Unprocessed as exc:
                if attempt < self._retries:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                log.warning("webhook delivery failed", url=target.url, error=str(exc), attempts=attempt + 1)
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                log.warning("webhook delivery failed", url=target.url, error=str(exc) or type(exc).__name__)
            else:
                if status < 400:
                    self.delivered += 1
                    return
                log.warning("webhook endpoint answered an error", url=target.url, status=status)
            self.failed += 1
            return


async def _post(target: _Target, body: bytes) -> int:
    """One POST; returns the status code. Connection failures and 429/503
    raise :class:`_Unprocessed`."""
    try:
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=ssl.create_default_context() if target.tls else None
        )
    except OSError as exc:
        raise _Unprocessed(f"connect: {exc}") from exc
    try:
        head = (
            f"POST {target.path} HTTP/1.1\r\n"
            f"Host: {target.host_header}\r\n"
            "User-Agent: pilotgw-webhook\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        writer.write(head + body)
        await writer.drain()
        line = await reader.readline()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"bad HTTP status line {line[:80]!r}")
        status = int(parts[1])
        if status in _RETRY_STATUS:
            raise _Unprocessed(f"HTTP {status}")
        return status
    finally:
        writer.close()
