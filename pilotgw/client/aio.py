"""The asyncio driver: ``client = await pilotgw.connect()``.

One Unix-socket session per :class:`Client`, one read path, no threads. The
protocol class feeds bytes to :class:`~pilotgw.client.core.DriverCore` and
routes the events: replies complete futures, stream data lands in per-
connection :class:`asyncio.StreamReader` objects, accepts go to listeners and
datagrams to the datagram iterators that asked for their port.

Back-pressure is real in both directions. Writing: Send frames go straight to
the socket and :meth:`PilotStreamWriter.drain` waits for the transport's
buffer to drain, which stalls while the daemon stops reading because the
peer's window is closed. Reading: when an application leaves more than
``read_limit`` bytes unread on one connection, the client pauses reading
the IPC socket until that reader catches up; the daemon then stops pushing,
its receive buffer fills and the remote sender's window closes. (The IPC
contract multiplexes all connections on one socket, so the pause holds up
the other connections of this client too; use a separate client for a
connection that may sit unread.)
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence

from pilotgw.client import calls, core, mailbox, messaging, tasks, wire
from pilotgw.client.calls import Call, as_addr
from pilotgw.client.errors import (
    ConnectionFailed,
    DaemonDisconnected,
    DaemonError,
    InvalidArgument,
    NotFound,
    NotRunning,
    PilotError,
    ProtocolError,
)
from pilotgw.overlay import eventstream
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, PORT_EVENT_STREAM, PORT_TASK_SUBMIT, Addr, SocketAddr, parse_target
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.tasksubmit import (
    ACCEPTED,
    DECLINED,
    EXECUTING,
    JUST_ACCEPTED,
    JUST_EXECUTING,
    JUST_SUCCEEDED,
    SUCCEEDED,
    TaskStatusUpdate,
)

if TYPE_CHECKING:
    from pilotgw.services.filetransfer import Delivery

READ_LIMIT = 1 << 20
"""Default bytes buffered per connection before the IPC socket is paused."""

ACCEPT_BACKLOG = 64
DATAGRAM_QUEUE = 256


class _PauseGate:
    """Stands in for the transport inside each connection's StreamReader:
    the socket stays paused while any reader is over its limit."""

    def __init__(self, client: "Client", conn_id: int) -> None:
        self._client = client
        self._conn_id = conn_id

    def pause_reading(self) -> None:
        self._client._pause_for(self._conn_id)

    def resume_reading(self) -> None:
        self._client._resume_for(self._conn_id)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class PilotStreamWriter:
    """The writing half of an overlay stream, shaped like :class:`asyncio.StreamWriter`.

    ``write`` splits data into Send frames of at most 64 KiB (so any size is
    fine); ``drain`` applies back-pressure and raises if the daemon refused an
    earlier write. The contract has no half-close: ``write_eof`` is not
    supported and ``close`` sends FIN and ends both directions.
    """

    def __init__(self, client: "Client", conn_id: int, remote: SocketAddr, local_port: int | None) -> None:
        self._client = client
        self.conn_id = conn_id
        self.remote = remote
        self.local_port = local_port
        self._error: PilotError | None = None
        self._closed: asyncio.Future[None] | None = None

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed is not None:
            raise ConnectionFailed(f"connection {self.conn_id} is closed")
        self._client._check_open()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        self._client._write_frames(self._client._core.send(self.conn_id, data))

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    async def drain(self) -> None:
        self._check()
        await self._client._drain()
        if self._error is not None:
            raise self._error

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("the IPC contract has no half-close; close() sends FIN and ends the stream")

    def is_closing(self) -> bool:
        return self._closed is not None

    def close(self) -> None:
        if self._closed is None:
            self._closed = self._client._close_conn(self.conn_id)

    async def wait_closed(self) -> None:
        if self._closed is not None:
            try:
                await asyncio.shield(self._closed)
            except DaemonDisconnected:
                pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.remote, "conn_id": self.conn_id, "sockname": self.local_port}.get(name, default)

    def __repr__(self) -> str:
        return f"<PilotStreamWriter conn={self.conn_id} peer={self.remote}>"


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: PilotStreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class Listener:
    """Connections accepted on a bound port: ``async for reader, writer in listener``.

    The contract has no Unbind: the port stays bound for the life of the
    client. :meth:`close` stops accepting here (new arrivals are closed).
    """

    def __init__(self, client: "Client", port: int) -> None:
        self._client = client
        self.port = port
        self._queue: asyncio.Queue[tuple[asyncio.StreamReader, PilotStreamWriter] | None] = asyncio.Queue(
            ACCEPT_BACKLOG
        )
        self._done = False

    def _offer(self, pair: tuple[asyncio.StreamReader, PilotStreamWriter]) -> bool:
        if self._done:
            return False
        try:
            self._queue.put_nowait(pair)
        except asyncio.QueueFull:
            return False
        return True

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            while True:
                try:
                    pending = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if pending is not None:
                    pending[1].close()
            self._queue.put_nowait(None)

    async def accept(self) -> tuple[asyncio.StreamReader, PilotStreamWriter]:
        """The next accepted connection; raises :class:`DaemonDisconnected` if the
        session ends and :class:`ConnectionFailed` once the listener is closed."""
        if self._done and self._queue.empty():
            raise self._client._closed_error or ConnectionFailed(f"listener on port {self.port} is closed")
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)
            raise self._client._closed_error or ConnectionFailed(f"listener on port {self.port} is closed")
        return item

    def close(self) -> None:
        self._client._listeners.pop(self.port, None)
        self._finish()

    def __aiter__(self) -> AsyncIterator[tuple[asyncio.StreamReader, PilotStreamWriter]]:
        return self

    async def __anext__(self) -> tuple[asyncio.StreamReader, PilotStreamWriter]:
        try:
            return await self.accept()
        except PilotError:
            raise StopAsyncIteration from None


class DatagramStream:
    """Datagrams for one port (or all ports): ``async for dg in client.datagrams(port)``.

    Registered when created, so nothing that arrives afterwards is missed; at
    most 256 wait unread, beyond that new ones are dropped (datagrams are
    unreliable anyway). Iteration ends when the client closes.
    """

    def __init__(self, client: "Client", port: int | None) -> None:
        self._client = client
        self.port = port
        self._queue: asyncio.Queue[wire.Datagram | None] = asyncio.Queue(DATAGRAM_QUEUE + 1)
        self.dropped = 0
        self._done = False

    def _offer(self, datagram: wire.Datagram) -> None:
        if self._done or (self.port is not None and datagram.dst_port != self.port):
            return
        if self._queue.qsize() >= DATAGRAM_QUEUE:
            self.dropped += 1
            return
        self._queue.put_nowait(datagram)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._queue.put_nowait(None)

    async def receive(self) -> wire.Datagram:
        if self._done and self._queue.empty():
            raise self._client._closed_error or ConnectionFailed("datagram stream closed")
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)
            raise self._client._closed_error or ConnectionFailed("datagram stream closed")
        return item

    def close(self) -> None:
        if self in self._client._datagram_streams:
            self._client._datagram_streams.remove(self)
        self._finish()

    def __aiter__(self) -> AsyncIterator[wire.Datagram]:
        return self

    async def __anext__(self) -> wire.Datagram:
        try:
            return await self.receive()
        except PilotError:
            raise StopAsyncIteration from None


class Subscription:
    """Events of one topic from a node's event-stream broker (port 1002):
    ``async for event in sub`` yields :class:`~pilotgw.overlay.eventstream.Event`
    (``topic``, ``payload``) until the broker closes the stream. Close it
    with :meth:`close` or ``async with``."""

    def __init__(self, reader: asyncio.StreamReader, writer: PilotStreamWriter, target: Addr, topic: str) -> None:
        self.target = target
        self.topic = topic
        self._reader = reader
        self._writer = writer
        self._events = messaging.EventQueue(target)

    async def receive(self) -> eventstream.Event:
        """The next event; :class:`ConnectionFailed` when the stream ended."""
        while not self._events:
            try:
                self._events.feed(await self._reader.read(messaging.READ_CHUNK))
            except ProtocolError:
                self.close()
                raise
        return self._events.pop()

    def close(self) -> None:
        self._writer.close()

    def __aiter__(self) -> AsyncIterator[eventstream.Event]:
        return self

    async def __anext__(self) -> eventstream.Event:
        try:
            return await self.receive()
        except ConnectionFailed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class _Protocol(asyncio.Protocol):
    def __init__(self, client: "Client") -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client._data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._connection_lost(exc)

    def pause_writing(self) -> None:
        self._client._write_paused = True

    def resume_writing(self) -> None:
        self._client._write_paused = False
        self._client._wake_drainers()


class Client:
    """One IPC session with the local daemon. Create with :func:`connect`.

    Every request method raises a :class:`PilotError`: :class:`DaemonError`
    when the daemon refuses (message ``<label>: daemon: <text>`` as the
    reference driver words it), :class:`DaemonDisconnected` if the session
    ends, :class:`InvalidArgument` for input rejected before sending.
    """

    def __init__(self, socket_path: str, read_limit: int = READ_LIMIT) -> None:
        self.socket_path = socket_path
        self.read_limit = read_limit
        self._core = core.DriverCore()
        self._transport: asyncio.Transport | None = None
        self._waiters: dict[int, tuple[asyncio.Future[Any], Call | None]] = {}
        self._conns: dict[int, _Conn] = {}
        self._listeners: dict[int, Listener] = {}
        self._datagram_streams: list[DatagramStream] = []
        self._sendto_error: str | None = None
        self._closed_error: PilotError | None = None
        self._paused_by: set[int] = set()
        self._write_paused = False
        self._drainers: list[asyncio.Future[None]] = []

    # -- session ------------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_unix_connection(lambda: _Protocol(self), self.socket_path)
        except OSError as exc:
            raise NotRunning() from exc
        self._transport = transport  # type: ignore[assignment]

    def _check_open(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if self._transport is None:
            raise DaemonDisconnected("client is not connected")

    async def close(self) -> None:
        """End the session: the daemon closes every connection and port of it."""
        if self._transport is not None and self._closed_error is None:
            self._transport.close()
            self._connection_lost(None)

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writing --------------------------------------------------------------

    def _write_frames(self, frames: list[bytes]) -> None:
        assert self._transport is not None
        self._transport.writelines(frames)

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def _drain(self) -> None:
        while self._write_paused and self._closed_error is None:
            fut = asyncio.get_running_loop().create_future()
            self._drainers.append(fut)
            await fut
        if self._closed_error is not None:
            raise self._closed_error

    def _wake_drainers(self) -> None:
        drainers, self._drainers = self._drainers, []
        for fut in drainers:
            if not fut.done():
                fut.set_result(None)

    def _pause_for(self, conn_id: int) -> None:
        if not self._paused_by and self._transport is not None:
            self._transport.pause_reading()
        self._paused_by.add(conn_id)

    def _resume_for(self, conn_id: int) -> None:
        if conn_id in self._paused_by:
            self._paused_by.discard(conn_id)
            if not self._paused_by and self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    async def call(self, call: Call) -> Any:
        """Send one request and wait for its reply (the building block of
        every request method; public for callers that build :class:`Call` s)."""
        self._check_open()
        token = self._core.rpc(call.expect)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[token] = (fut, call)
        self._write(call.request)
        return await fut

    # -- reading --------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        try:
            events = self._core.receive(data)
        except DecodeError as exc:
            self._fail(ProtocolError(f"daemon protocol error: {exc}"))
            return
        for event in events:
            self._on_event(event)

    def _on_event(self, event: core.Event) -> None:
        if isinstance(event, core.Data):
            conn = self._conns.get(event.conn_id)
            if conn is not None:
                conn.reader.feed_data(event.data)
        elif isinstance(event, core.Reply):
            self._on_reply(event)
        elif isinstance(event, core.Eof):
            conn = self._conns.get(event.conn_id)
            if conn is not None:
                conn.reader.feed_eof()
                self._resume_for(event.conn_id)
                if conn.writer.is_closing():
                    self._forget(event.conn_id)
        elif isinstance(event, core.Failed):
            fut, call = self._waiters.pop(event.token, (None, None))
            if fut is not None and not fut.done():
                fut.set_exception(DaemonError(call.label if call else "close", event.message))
        elif isinstance(event, core.Accepted):
            self._on_accept(event.accept)
        elif isinstance(event, core.DatagramIn):
            for stream in list(self._datagram_streams):
                stream._offer(event.datagram)
        elif isinstance(event, core.SendFailed):
            conn = self._conns.get(event.conn_id)
            if conn is not None and conn.writer._error is None:
                conn.writer._error = DaemonError("write", event.message)
                self._wake_drainers()
        elif isinstance(event, core.SendToFailed):
            self._sendto_error = event.message

    def _on_reply(self, event: core.Reply) -> None:
        fut, call = self._waiters.pop(event.token, (None, None))
        if fut is None:
            return
        if call is None:  # a Close
            if not fut.done():
                fut.set_result(None)
            return
        try:
            result = call.parse(event.payload, call.label)
        except PilotError as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if call.expect == wire.DIAL_OK:
            remote = call.request  # Dial frame: len(4) cmd(1) addr(6) port(2)
            peer = SocketAddr(Addr.from_bytes(remote[5:11]), int.from_bytes(remote[11:13], "big"))
            conn = self._new_conn(result, peer, None)
            if fut.done():  # the caller gave up waiting: do not leak the stream
                conn.writer.close()
                return
            result = (conn.reader, conn.writer)
        if not fut.done():
            fut.set_result(result)

    def _new_conn(self, conn_id: int, remote: SocketAddr, local_port: int | None) -> _Conn:
        reader = asyncio.StreamReader(limit=self.read_limit)
        reader.set_transport(_PauseGate(self, conn_id))  # type: ignore[arg-type]
        conn = _Conn(reader, PilotStreamWriter(self, conn_id, remote, local_port))
        self._conns[conn_id] = conn
        return conn

    def _forget(self, conn_id: int) -> None:
        self._conns.pop(conn_id, None)
        self._resume_for(conn_id)
        self._core.forget(conn_id)

    def _close_conn(self, conn_id: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed_error is not None:
            fut.set_result(None)
            self._forget(conn_id)
            return fut
        token, request = self._core.close(conn_id)
        self._waiters[token] = (fut, None)
        self._write(request)
        conn = self._conns.get(conn_id)
        if conn is not None:
            if not conn.reader.at_eof():
                conn.reader.feed_eof()
            self._forget(conn_id)
        return fut

    def _on_accept(self, accept: wire.Accept) -> None:
        conn = self._new_conn(accept.conn_id, SocketAddr(accept.remote_addr, accept.remote_port), accept.local_port)
        listener = self._listeners.get(accept.local_port)
        if listener is None or not listener._offer((conn.reader, conn.writer)):
            conn.writer.close()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._closed_error is None:
            self._fail(DaemonDisconnected())

    def _fail(self, error: PilotError) -> None:
        if self._closed_error is not None:
            return
        self._closed_error = error
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        waiters, self._waiters = self._waiters, {}
        for fut, call in waiters.values():
            if not fut.done():
                if call is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        for conn in list(self._conns.values()):
            if not conn.reader.at_eof():
                conn.reader.set_exception(error)
            conn.writer._error = conn.writer._error or error
        self._conns.clear()
        for listener in list(self._listeners.values()):
            listener._finish()
        for stream in list(self._datagram_streams):
            stream._finish()
        self._wake_drainers()

    # -- streams and datagrams --------------------------------------------------

    async def dial(self, addr: Addr | str | int, port: int) -> tuple[asyncio.StreamReader, PilotStreamWriter]:
        """Open a stream to ``addr:port``. May take up to ~30 s while the daemon
        sets up the tunnel; wrap in :func:`asyncio.wait_for` for a shorter limit."""
        return await self.call(calls.dial(as_addr(addr), port))  # type: ignore[no-any-return]

    async def listen(self, port: int) -> Listener:
        """Bind ``port`` and return the iterator of connections accepted on it."""
        wire.check_port(port)
        if port in self._listeners:
            raise InvalidArgument(f"port {port} is already bound by this client")
        listener = Listener(self, port)
        self._listeners[port] = listener  # before Bind: an Accept may follow BindOK at once
        try:
            await self.call(calls.bind(port))
        except BaseException:
            self._listeners.pop(port, None)
            raise
        return listener

    async def send_to(
        self, addr: Addr | str | int, port: int, data: bytes, *, from_port: int | None = None
    ) -> None:
        """Send one datagram. The daemon does not acknowledge datagrams; if it
        refused an earlier one, that error is raised here, on the next call.

        ``from_port`` (a port this client bound with :meth:`listen`) sends
        from that port, so replies come back to it (our SendToFrom
        extension; a reference daemon refuses it); otherwise the daemon
        picks a fresh ephemeral source port for each datagram."""
        self._check_open()
        if self._sendto_error is not None:
            message, self._sendto_error = self._sendto_error, None
            raise DaemonError("send_to", message)
        self._write(self._core.send_to(as_addr(addr), port, bytes(data), from_port))
        await self._drain()

    def datagrams(self, port: int | None = None) -> DatagramStream:
        """Datagrams addressed to ``port`` (all ports if ``None``) from now on."""
        if port is not None:
            wire.check_port(port)
        self._check_open()
        stream = DatagramStream(self, port)
        self._datagram_streams.append(stream)
        return stream

    async def disconnect(self, conn_id: int) -> None:
        """Close connection ``conn_id`` by ID and wait for the daemon's CloseOK
        (the reference driver waits forever here, defect D-11)."""
        self._check_open()
        wire.check_node(conn_id)
        conn = self._conns.get(conn_id)
        fut = conn.writer._closed if conn is not None and conn.writer._closed is not None else None
        if fut is None:
            fut = self._close_conn(conn_id)
            if conn is not None:
                conn.writer._closed = fut
        await asyncio.shield(fut)

    # -- data services: files, messages, events (ports 1001, 1004, 1002) -----------

    async def target(self, target: Addr | str | int) -> Addr:
        """An address, a bare node ID (network 0), or a hostname resolved
        through the daemon (``not_found`` when it does not resolve)."""
        if not isinstance(target, str):
            return as_addr(target)
        try:
            addr = parse_target(target)
        except DecodeError as exc:
            raise InvalidArgument(str(exc)) from None
        if addr is not None:
            return addr
        try:
            reply = await self.resolve_hostname(target)
            return as_addr(reply.get("address") or int(reply["node_id"]))
        except (DaemonError, KeyError, TypeError, ValueError):
            raise NotFound(f'cannot resolve "{target}"') from None

    async def send_file(
        self,
        targets: Addr | str | int | Sequence[Addr | str | int],
        path: str | os.PathLike[str],
        progress: Callable[[str, int, int], None] | None = None,
        *,
        name: str | None = None,
    ) -> list[Delivery]:
        """Send one file to one node or to many (services issue item 4).

        The file is read once: pilotgw receivers form a chain (each saves and
        forwards), reference nodes get the single FILE frame they accept on
        port 1001 (at most 16 MiB minus the name). ``progress(node, done,
        total)`` is called per receiver. Returns one :class:`Delivery` per
        target, in order; failures at a receiver are reported there
        (``ok=False``, ``error``), problems with the file itself raise
        (``not_found``, ``invalid_argument``, ``internal``).
        """
        from pilotgw.services.filetransfer import TransferError, send_file

        many = not isinstance(targets, (Addr, str, int))
        addrs = [await self.target(t) for t in (targets if many else [targets])]  # type: ignore[union-attr]
        try:
            return await send_file(self.dial, addrs, path, name=name, progress=progress)
        except TransferError as exc:
            raise PilotError(str(exc), exc.code) from None

    async def send_message(
        self, target: Addr | str | int, data: Any, *, kind: str | None = None, timeout: float = messaging.ACK_TIMEOUT
    ) -> str | None:
        """Deliver a typed message into ``target``'s inbox: ``str`` as text,
        bytes as binary, other values as JSON (or say ``kind=`` ``"text"``,
        ``"json"``, ``"binary"``). Returns the receiver's ACK text (e.g.
        ``ACK TEXT 5 bytes``), ``None`` if none came within ``timeout``."""
        kind = messaging.message_kind(data, kind)
        payload = messaging.message_payload(data, kind)
        reader, writer = await self.dial(await self.target(target), PORT_DATA_EXCHANGE)
        try:
            writer.write(messaging.message_frame(kind, payload))
            await writer.drain()
            acks = messaging.AckReader()
            try:
                async with asyncio.timeout(timeout):
                    while (chunk := await reader.read(messaging.READ_CHUNK)):
                        if (ack := acks.feed(chunk)) is not None:
                            return ack
            except (TimeoutError, PilotError):
                pass
            return None
        finally:
            writer.close()

    async def subscribe(self, target: Addr | str | int, topic: str) -> Subscription:
        """Subscribe to ``topic`` (``*`` for every topic) on ``target``'s broker."""
        frame = messaging.subscribe_frame(topic)
        addr = await self.target(target)
        reader, writer = await self.dial(addr, PORT_EVENT_STREAM)
        try:
            writer.write(frame)
            await writer.drain()
        except BaseException:
            writer.close()
            raise
        return Subscription(reader, writer, addr, topic)

    async def publish(self, target: Addr | str | int, topic: str, data: str | bytes) -> None:
        """Publish one event on ``topic`` at ``target``'s broker; every
        subscriber of the topic (and of ``*``) gets it, the publisher not."""
        frames = messaging.publish_frames(topic, messaging.as_payload(data))
        _, writer = await self.dial(await self.target(target), PORT_EVENT_STREAM)
        try:
            writer.write(frames)
            await writer.drain()
        finally:
            writer.close()
        await writer.wait_closed()

    def inbox(self, pilot_dir: str | None = None) -> list[mailbox.Message]:
        """Messages the local daemon saved (``~/.pilot/inbox``; no IPC), as
        ``pilotctl inbox`` lists them."""
        return mailbox.read_inbox(pilot_dir) or []

    def received(self, pilot_dir: str | None = None) -> list[mailbox.ReceivedFile]:
        """Files the local daemon saved (``~/.pilot/received``; no IPC)."""
        return mailbox.read_received(pilot_dir) or []

    # -- task submit (port 1003; task files in the local ~/.pilot/tasks) -----------

    async def submit_task(
        self, target: Addr | str | int, description: str, *, timeout: float | None = None, pilot_dir: str | None = None
    ) -> dict[str, Any]:
        """Ask ``target`` to do ``description``; returns ``pilotctl task
        submit``'s data (``accepted``, ``status`` 200/400, ``message``,
        ``task_id`` ...). Accepted tasks are recorded in ``submitted/``."""
        addr = await self.target(target)
        request = tasks.submit_request(str((await self.info())["address"]), addr, description)
        try:
            reader, writer = await self.dial(addr, PORT_TASK_SUBMIT)
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            raise tasks.dial_failed(addr) from None
        responses = tasks.ResponseReader()
        try:
            writer.write(request.encode())
            await writer.drain()
            async with asyncio.timeout(tasks.SUBMIT_TIMEOUT if timeout is None else timeout):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise ConnectionFailed("unexpected EOF" if responses.partial else "EOF")
                    if (response := responses.feed(chunk)) is not None:
                        break
        except TimeoutError:
            raise ConnectionFailed("submit: no response in time") from None
        except (PilotError, DecodeError) as exc:
            raise ConnectionFailed(f"submit: {getattr(exc, 'message', exc)}") from None
        finally:
            writer.close()
        tasks.record_submitted(request, response, pilot_dir, time.time())
        return tasks.submit_reply(request, response)

    async def _task_frames(self, addr: Addr, frames: bytes) -> None:
        _, writer = await self.dial(addr, PORT_TASK_SUBMIT)
        try:
            writer.write(frames)
            await writer.drain()
        finally:
            writer.close()

    async def send_task_status(self, task: Any, status: str, justification: str) -> bool:
        """Tell ``task``'s submitter its new status; False if that failed."""
        addr = tasks.submitter(task)
        try:
            await self._task_frames(addr, TaskStatusUpdate(task.task_id, status, justification).encode())
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            return False
        return True

    async def accept_task(self, task_id: str, *, pilot_dir: str | None = None) -> dict[str, Any]:
        """Accept a NEW received task (within its minute) and tell the submitter."""
        task = tasks.accept(tasks.TaskStore(pilot_dir), task_id, time.time())
        return tasks.accept_reply(task, await self.send_task_status(task, ACCEPTED, JUST_ACCEPTED))

    async def decline_task(self, task_id: str, justification: str, *, pilot_dir: str | None = None) -> dict[str, Any]:
        task = tasks.decline(tasks.TaskStore(pilot_dir), task_id, justification, time.time())
        return tasks.decline_reply(task, await self.send_task_status(task, DECLINED, justification))

    async def execute_task(self, *, pilot_dir: str | None = None) -> dict[str, Any]:
        """Start the head of the queue. Nothing is run: the agent does the
        work, then calls :meth:`send_task_results`."""
        task = tasks.execute(tasks.TaskStore(pilot_dir), time.time())
        try:
            await self.send_task_status(task, EXECUTING, JUST_EXECUTING)
        except InvalidArgument:
            pass
        return tasks.execute_reply(task)

    async def send_task_results(
        self, task_id: str, *, text: str = "", file: str = "", pilot_dir: str | None = None
    ) -> dict[str, Any]:
        """Mark the task SUCCEEDED and deliver ``text`` or the file ``file``
        (an allowed type) to the submitter: SEND_RESULTS, then the SUCCEEDED
        status update on a second connection (C-5)."""
        if not text and not file:
            raise InvalidArgument("either --results or --file is required")
        results = tasks.prepare_results(tasks.TaskStore(pilot_dir), task_id, text, file, time.time())
        addr = tasks.submitter(results.task)
        try:
            _, writer = await self.dial(addr, PORT_TASK_SUBMIT)
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            raise tasks.submitter_unreachable(addr) from None
        try:
            writer.write(results.message.encode())
            await writer.drain()
        except PilotError as exc:
            raise ConnectionFailed(f"failed to send results: {exc.message}") from None
        finally:
            writer.close()
        await self.send_task_status(results.task, SUCCEEDED, JUST_SUCCEEDED)
        return results.data

    def task_list(self, category: str = "", *, pilot_dir: str | None = None) -> list[dict[str, Any]]:
        """Received then submitted tasks (or one ``category``); no IPC."""
        return tasks.list_tasks(tasks.TaskStore(pilot_dir), category)

    def task_queue(self, *, pilot_dir: str | None = None) -> list[dict[str, Any]]:
        """Accepted tasks waiting for execution, head first; no IPC."""
        return tasks.queue(tasks.TaskStore(pilot_dir))

    # -- node management --------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return await self.call(calls.info())  # type: ignore[no-any-return]

    async def resolve_hostname(self, hostname: str) -> dict[str, Any]:
        return await self.call(calls.resolve_hostname(hostname))  # type: ignore[no-any-return]

    async def set_hostname(self, hostname: str) -> dict[str, Any]:
        return await self.call(calls.set_hostname(hostname))  # type: ignore[no-any-return]

    async def set_visibility(self, public: bool) -> dict[str, Any]:
        return await self.call(calls.set_visibility(public))  # type: ignore[no-any-return]

    async def set_tags(self, tags: list[str]) -> dict[str, Any]:
        return await self.call(calls.set_tags(tags))  # type: ignore[no-any-return]

    async def set_webhook(self, url: str) -> dict[str, Any]:
        return await self.call(calls.set_webhook(url))  # type: ignore[no-any-return]

    async def set_task_exec(self, enabled: bool) -> dict[str, Any]:
        return await self.call(calls.set_task_exec(enabled))  # type: ignore[no-any-return]

    async def deregister(self) -> dict[str, Any]:
        return await self.call(calls.deregister())  # type: ignore[no-any-return]

    # -- trust --------------------------------------------------------------------

    async def handshake(self, node_id: int, justification: str = "") -> dict[str, Any]:
        return await self.call(calls.handshake(node_id, justification))  # type: ignore[no-any-return]

    async def approve(self, node_id: int) -> dict[str, Any]:
        return await self.call(calls.approve(node_id))  # type: ignore[no-any-return]

    async def reject(self, node_id: int, reason: str = "") -> dict[str, Any]:
        return await self.call(calls.reject(node_id, reason))  # type: ignore[no-any-return]

    async def pending(self) -> list[dict[str, Any]]:
        return await self.call(calls.pending())  # type: ignore[no-any-return]

    async def trusted(self) -> list[dict[str, Any]]:
        return await self.call(calls.trusted())  # type: ignore[no-any-return]

    async def revoke(self, node_id: int) -> dict[str, Any]:
        return await self.call(calls.revoke(node_id))  # type: ignore[no-any-return]

    # -- expose (our extension) -----------------------------------------------------

    async def expose(self, port: int, target: str) -> dict[str, Any]:
        """Publish the local TCP service ``target`` (``host:port``) on pilot
        ``port``: the daemon bridges every accepted stream to a new TCP
        connection, under the usual trust rules, and keeps it across
        restarts. Re-exposing a port replaces its target."""
        return await self.call(calls.expose(port, target))  # type: ignore[no-any-return]

    async def unexpose(self, port: int) -> dict[str, Any]:
        return await self.call(calls.unexpose(port))  # type: ignore[no-any-return]

    async def exposed(self) -> list[dict[str, Any]]:
        """The published services with their counters, sorted by port."""
        return await self.call(calls.exposed())  # type: ignore[no-any-return]


async def connect(socket_path: str | None = None, *, read_limit: int = READ_LIMIT) -> Client:
    """Open a session with the local daemon.

    ``socket_path`` defaults to ``PILOT_SOCKET``, then ``socket`` in
    ``~/.pilot/config.json``, then ``/tmp/pilot.sock``. Raises
    :class:`NotRunning` when nothing listens there.
    """
    client = Client(socket_path or calls.default_socket_path(), read_limit)
    await client._open()
    return client
