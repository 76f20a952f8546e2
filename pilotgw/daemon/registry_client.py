"""The daemon's registry client: one persistent TCP (or pinned-TLS) connection.

Unlike the reference client (rendezvous.md §2.7, R-D21) it never blocks the
packet path and never hangs: every request has a deadline, the connection
has a dial timeout, and nothing holds a lock across I/O. Requests are
pipelined on the connection -- the registry answers in request order -- and
matched to a FIFO of futures. A request whose deadline passes poisons the
connection (a late reply would be matched to the wrong request), so the
connection is dropped and re-dialled.

Reconnection runs in the background with backoff (0.5 s doubling to 10 s,
forever) as soon as a connection is lost; ``on_connect`` runs after every
successful dial, which is how the node re-registers when the rendezvous
restarts. Only idempotent requests are retried, once, and only when no reply
was received.

``lookup_key`` and ``resolve`` cache their answers with an expiry; the cached
Ed25519 keys are copies (``bytes``), never views of a receive buffer (T-D1),
and concurrent lookups of one node share a single request (T-D12).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from typing import Awaitable, Callable

from pilotgw.daemon.log import Log
from pilotgw.overlay import registry as reg
from pilotgw.overlay.errors import DecodeError

log = Log("registry")

Message = reg.Message

KEY_CACHE_TTL = 300.0
RESOLVE_CACHE_TTL = 60.0
_IDEMPOTENT = frozenset({"lookup", "resolve", "heartbeat", "resolve_hostname", "register",
                         "set_hostname", "set_visibility", "set_tags", "set_task_exec",
                         "report_trust", "deregister", "get_polo_score", "list_networks",
                         "list_nodes", "poll_handshakes"})


class RegistryError(Exception):
    """A failed registry request. ``code``: ``unreachable``, ``timeout``,
    ``protocol``, or the registry's own code (``unknown`` for a reference one)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _Conn:
    """One established registry connection and its in-order reply waiters."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiters: list[asyncio.Future[Message]] = []
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    def fail_all(self, exc: BaseException) -> None:
        self.closed = True
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
        try:
            self.writer.transport.abort()
        except Exception:  # already closed
            pass


class RegistryClient:
    """Registry requests with deadlines, reconnection, and key/endpoint caches."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        fingerprint: str = "",
        on_connect: Callable[[], Awaitable[None]] | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._fingerprint = fingerprint.lower()
        self.on_connect = on_connect
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._clock = clock
        self._conn: _Conn | None = None
        self._connecting: asyncio.Task[_Conn] | None = None
        self._closed = False
        self._connected_once = False
        self._keys: dict[int, tuple[bytes, float]] = {}
        self._endpoints: dict[int, tuple[str, float]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future] = {}
        self._bg: set[asyncio.Task] = set()

    # -- connection management ---------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def _dial(self) -> _Conn:
        ctx = None
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # Pinning replaces CA and hostname checks (rendezvous.md §1.5).
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=ctx, limit=reg.MAX_FRAME + 8),
            self._connect_timeout,
        )
        if self._tls:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            actual = hashlib.sha256(der or b"").hexdigest()
            if actual != self._fingerprint:
                writer.transport.abort()
                raise RegistryError(
                    f"registry certificate fingerprint mismatch: got {actual}", "tls_pin_mismatch"
                )
        conn = _Conn(reader, writer)
        conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))
        return conn

    async def _connect_loop(self) -> _Conn:
        delay = 0.5
        while not self._closed:
            try:
                conn = await self._dial()
            except RegistryError as exc:
                log.error("registry connection refused", error=str(exc), code=exc.code)
            except (OSError, asyncio.TimeoutError) as exc:
                log.debug("registry dial failed", addr=f"{self.host}:{self.port}", error=str(exc) or type(exc).__name__)
            else:
                self._conn = conn
                again = self._connected_once
                self._connected_once = True
                if again:
                    log.info("registry reconnected", addr=f"{self.host}:{self.port}")
                if self.on_connect is not None and again:
                    self._spawn(self.on_connect())
                return conn
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise RegistryError("registry client closed", "closed")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _ensure_connecting(self) -> asyncio.Task[_Conn]:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect_loop())
            self._connecting.add_done_callback(_consume_exception)
        return self._connecting

    async def _get_conn(self) -> _Conn:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise RegistryError("registry client closed", "closed")
        return await asyncio.shield(self._ensure_connecting())

    async def _read_loop(self, conn: _Conn) -> None:
        splitter = reg.FrameSplitter()
        error: BaseException = ConnectionResetError("registry connection closed")
        try:
            while True:
                data = await conn.reader.read(256 * 1024)
                if not data:
                    break
                splitter.feed(data)
                while (body := splitter.next_body()) is not None:
                    reply = reg.decode_body(body)
                    if not conn.waiters:
                        raise DecodeError("unsolicited registry reply", "protocol")
                    fut = conn.waiters.pop(0)
                    if not fut.done():
                        fut.set_result(reply)
        except DecodeError as exc:
            error = RegistryError(f"bad registry reply: {exc}", "protocol")
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = ConnectionResetError(str(exc))
        except asyncio.CancelledError:
            conn.fail_all(RegistryError("registry client closed", "closed"))
            raise
        conn.fail_all(error)
        if self._conn is conn:
            self._conn = None
            if not self._closed:
                log.warning("registry connection lost", addr=f"{self.host}:{self.port}")
                self._ensure_connecting()

    async def connect(self, attempts: int = 5) -> None:
        """Dial now (start-up), retrying with backoff; a pinning failure is
        final at once. Raises :class:`RegistryError`."""
        delay = 0.25
        last = "unreachable"
        for attempt in range(attempts):
            try:
                conn = await self._dial()
            except RegistryError:
                raise
            except (OSError, asyncio.TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
                if attempt + 1 < attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                continue
            self._conn = conn
            self._connected_once = True
            return
        raise RegistryError(f"registry {self.host}:{self.port} unreachable: {last}", "unreachable")

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail_all(RegistryError("registry client closed", "closed"))
            if conn.task is not None:
                conn.task.cancel()
        for task in list(self._bg):
            task.cancel()

    # -- requests -------------------------------------------------------------

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        """Send ``msg`` and return the reply; :class:`RegistryError` on failure
        (including an error reply)."""
        deadline = timeout or self._request_timeout
        frame = reg.encode_frame(msg)
        retry = msg.get("type") in _IDEMPOTENT
        for attempt in (0, 1):
            try:
                conn = await asyncio.wait_for(self._get_conn(), deadline)
            except asyncio.TimeoutError:
                raise RegistryError(f"registry {self.host}:{self.port} unreachable", "unreachable") from None
            fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            conn.waiters.append(fut)
            conn.writer.write(frame)
            try:
                reply = await asyncio.wait_for(fut, deadline)
            except asyncio.TimeoutError:
                conn.fail_all(ConnectionResetError("request timed out"))
                if self._conn is conn:
                    self._conn = None
                    self._ensure_connecting()
                raise RegistryError(f"registry request {msg.get('type')} timed out", "timeout") from None
            except ConnectionResetError as exc:
                if retry and attempt == 0 and not self._closed:
                    continue
                raise RegistryError(f"registry connection lost: {exc}", "unreachable") from None
            failure = reg.reply_error(reply)
            if failure is not None:
                raise RegistryError(f"registry: {failure[0]}", failure[1])
            return reply
        raise RegistryError("registry request failed", "unreachable")  # pragma: no cover

    # -- cached lookups -------------------------------------------------------

    def cached_key(self, node: int) -> bytes | None:
        entry = self._keys.get(node)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        return None

    def forget_key(self, node: int) -> None:
        self._keys.pop(node, None)

    async def _coalesced(self, kind: str, node: int, make: Callable[[], Awaitable]) -> object:
        key = (kind, node)
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.ensure_future(make())
        self._inflight[key] = fut
        fut.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return await asyncio.shield(fut)

    async def lookup_key(self, node: int, *, refresh: bool = False) -> bytes:
        """The Ed25519 key the registry holds for ``node`` (a cached copy)."""
        if not refresh:
            cached = self.cached_key(node)
            if cached is not None:
                return cached

        async def fetch() -> bytes:
            reply = await self.request(reg.lookup(node))
            try:
                key = bytes(reg.decode_public_key(reg.str_field(reply, "public_key")))
            except DecodeError as exc:
                raise RegistryError(f"lookup {node}: {exc}", "protocol") from None
            self._keys[node] = (key, self._clock() + KEY_CACHE_TTL)
            return key

        return await self._coalesced("lookup", node, fetch)  # type: ignore[return-value]

    async def resolve(self, node: int, me: int, signer: reg.Signer) -> str:
        """The peer's ``real_addr`` (``ip:port``), cached for a minute."""
        entry = self._endpoints.get(node)
        if entry is not None and entry[1] > self._clock():
            return entry[0]

        async def fetch() -> str:
            reply = await self.request(reg.resolve(node, me, signer))
            real = reg.str_field(reply, "real_addr")
            if not real:
                raise RegistryError(f"node {node} has no real address", "no_address")
            self._endpoints[node] = (real, self._clock() + RESOLVE_CACHE_TTL)
            return real

        return await self._coalesced("resolve", node, fetch)  # type: ignore[return-value]

    def forget_endpoint(self, node: int) -> None:
        self._endpoints.pop(node, None)


def _consume_exception(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()
