"""A small blocking driver: ``SyncClient`` for scripts and for ``pilotctl``.

It speaks the same protocol through the same :class:`~pilotgw.client.core.DriverCore`
as the asyncio :class:`~pilotgw.client.aio.Client`, on a plain blocking
socket with ``select``, so it starts without importing asyncio (``pilotctl``
must start in well under 150 ms). Whenever it waits -- for a reply, for data,
or for the socket to take a write -- it keeps reading, so a large upload
never deadlocks against the echoes or pushes coming back.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from pilotgw.client import calls, core, wire
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
    Timeout,
)
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, PORT_EVENT_STREAM, Addr, SocketAddr, parse_target
from pilotgw.overlay.errors import DecodeError

if TYPE_CHECKING:  # the data-service helpers load on first use: pilotctl info must start fast
    from pilotgw.client import mailbox
    from pilotgw.overlay.eventstream import Event
    from pilotgw.services.filetransfer import Delivery

_ACK_TIMEOUT = 30.0
_READ_CHUNK = 64 * 1024

_DATAGRAM_QUEUE = 256
_ACCEPT_BACKLOG = 64


class SyncConnection:
    """A blocking overlay stream. ``recv`` returns ``b""`` at end of stream."""

    def __init__(self, client: "SyncClient", conn_id: int, remote: SocketAddr, local_port: int | None) -> None:
        self._client = client
        self.conn_id = conn_id
        self.remote = remote
        self.local_port = local_port
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: PilotError | None = None
        self.closed = False

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (any size; chunked) and block until the socket took it."""
        if self._error is not None:
            raise self._error
        if self.closed:
            raise ConnectionFailed(f"connection {self.conn_id} is closed")
        self._client._send(self.conn_id, data)
        if self._error is not None:
            raise self._error

    sendall = send

    def recv(self, max_bytes: int = 65535, timeout: float | None = None) -> bytes:
        """The next received bytes (at most ``max_bytes``), ``b""`` at EOF;
        raises :class:`Timeout` after ``timeout`` seconds without data."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._client._wait(lambda: bool(self._chunks) or self._eof, deadline)
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        if len(chunk) > max_bytes:
            self._chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    def recv_available(self) -> int:
        """Read whatever already arrived without waiting; return the byte count
        consumed (for counters such as ``pilotctl bench``)."""
        self._client._poll(0)
        total = sum(len(c) for c in self._chunks)
        self._chunks.clear()
        return total

    def close(self) -> None:
        """Send Close (FIN) without waiting for the daemon's answer."""
        if not self.closed:
            self.closed = True
            self._client._close_conn(self)

    def __enter__(self) -> "SyncConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncListener:
    def __init__(self, client: "SyncClient", port: int) -> None:
        self._client = client
        self.port = port
        self._queue: deque[SyncConnection] = deque()

    def accept(self, timeout: float | None = None) -> SyncConnection:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._client._wait(lambda: bool(self._queue), deadline)
        return self._queue.popleft()


def read_ack(conn: SyncConnection, timeout: float) -> str | None:
    """The receiver's ACK text (data exchange), or ``None`` if the stream
    ends or nothing complete arrives within ``timeout`` seconds (Q1)."""
    from pilotgw.client.messaging import AckReader

    acks = AckReader()
    deadline = time.monotonic() + timeout
    try:
        while True:
            chunk = conn.recv(_READ_CHUNK, timeout=max(deadline - time.monotonic(), 0.0))
            if not chunk:
                return None
            if (ack := acks.feed(chunk)) is not None:
                return ack
    except PilotError:
        return None


class SyncSubscription:
    """Blocking view of a topic subscription: iterate for events (until the
    broker closes the stream) or call :meth:`receive` with a timeout."""

    def __init__(self, conn: SyncConnection, target: Addr, topic: str) -> None:
        from pilotgw.client.messaging import EventQueue

        self.target = target
        self.topic = topic
        self._conn = conn
        self._events = EventQueue(target)

    def receive(self, timeout: float | None = None) -> "Event":
        """The next event; :class:`Timeout` after ``timeout`` seconds,
        :class:`ConnectionFailed` when the stream ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._events:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                self._events.feed(self._conn.recv(_READ_CHUNK, timeout=remaining))
            except ProtocolError:
                self.close()
                raise
        return self._events.pop()

    def close(self) -> None:
        self._conn.close()

    def __iter__(self) -> Iterator["Event"]:
        while True:
            try:
                yield self.receive()
            except ConnectionFailed:
                return

    def __enter__(self) -> "SyncSubscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncClient:
    """Blocking IPC session. ``with SyncClient() as c: print(c.info())``.

    Raises the same :class:`PilotError` family as the asyncio client; waits
    that can time out raise :class:`Timeout`.
    """

    def __init__(self, socket_path: str | None = None, connect_timeout: float = 5.0) -> None:
        self.socket_path = socket_path or calls.default_socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise NotRunning() from exc
        sock.setblocking(False)
        self._sock: socket.socket | None = sock
        self._core = core.DriverCore()
        self._out = bytearray()
        self._results: dict[int, tuple[bool, Any]] = {}
        self._calls: dict[int, Call] = {}
        self._conns: dict[int, SyncConnection] = {}
        self._listeners: dict[int, SyncListener] = {}
        self._datagrams: deque[wire.Datagram] | None = None
        self._sendto_error: str | None = None
        self._error: PilotError | None = None
        self._close_waits: set[int] = set()

    # -- plumbing -------------------------------------------------------------

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._flush_blocking(time.monotonic() + 1.0)
            except PilotError:
                pass
            self._sock.close()
            self._sock = None
            self._error = self._error or DaemonDisconnected("client closed")

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _poll(self, timeout: float | None) -> None:
        """One select round: write what is queued, read what arrived."""
        self._check()
        sock = self._sock
        assert sock is not None
        readable, writable, _ = select.select([sock], [sock] if self._out else [], [], timeout)
        if writable:
            try:
                sent = sock.send(self._out)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(DaemonDisconnected(f"daemon disconnected: {exc}"))
                raise self._error  # type: ignore[misc]
            del self._out[:sent]
        if readable:
            try:
                data = sock.recv(1 << 18)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(DaemonDisconnected(f"daemon disconnected: {exc}"))
                raise self._error  # type: ignore[misc]
            if not data:
                self._fail(DaemonDisconnected())
                raise self._error  # type: ignore[misc]
            try:
                events = self._core.receive(data)
            except DecodeError as exc:
                self._fail(ProtocolError(f"daemon protocol error: {exc}"))
                raise self._error  # type: ignore[misc]
            for event in events:
                self._on_event(event)

    def _wait(self, done: Any, deadline: float | None) -> None:
        while not done():
            self._check()
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise Timeout("timed out")
            self._poll(timeout)

    def _flush_blocking(self, deadline: float | None = None) -> None:
        self._wait(lambda: not self._out, deadline)

    def _fail(self, error: PilotError) -> None:
        if self._error is None:
            self._error = error
            for conn in self._conns.values():
                conn._error = conn._error or error

    def _on_event(self, event: core.Event) -> None:
        if isinstance(event, core.Data):
            conn = self._conns.get(event.conn_id)
            if conn is not None:
                conn._chunks.append(event.data)
        elif isinstance(event, core.Reply):
            call = self._calls.pop(event.token, None)
            if call is None:  # a Close; only disconnect() waits for its answer
                if event.token in self._close_waits:
                    self._results[event.token] = (True, None)
                return
            try:
                value = call.parse(event.payload, call.label)
            except PilotError as exc:
                self._results[event.token] = (False, exc)
                return
            if call.expect == wire.DIAL_OK:
                req = call.request
                peer = SocketAddr(Addr.from_bytes(req[5:11]), int.from_bytes(req[11:13], "big"))
                conn = SyncConnection(self, value, peer, None)
                self._conns[conn.conn_id] = conn
                value = conn
            self._results[event.token] = (True, value)
        elif isinstance(event, core.Failed):
            call = self._calls.pop(event.token, None)
            if call is not None or event.token in self._close_waits:
                self._results[event.token] = (False, DaemonError(call.label if call else "close", event.message))
        elif isinstance(event, core.Eof):
            conn = self._conns.get(event.conn_id)
            if conn is not None:
                conn._eof = True
                if conn.closed:
                    self._forget(conn)
        elif isinstance(event, core.Accepted):
            acc = event.accept
            conn = SyncConnection(self, acc.conn_id, SocketAddr(acc.remote_addr, acc.remote_port), acc.local_port)
            listener = self._listeners.get(acc.local_port)
            if listener is None or len(listener._queue) >= _ACCEPT_BACKLOG:
                _, frame = self._core.close(acc.conn_id)
                self._out += frame
            else:
                self._conns[acc.conn_id] = conn
                listener._queue.append(conn)
        elif isinstance(event, core.DatagramIn):
            if self._datagrams is not None and len(self._datagrams) < _DATAGRAM_QUEUE:
                self._datagrams.append(event.datagram)
        elif isinstance(event, core.SendFailed):
            conn = self._conns.get(event.conn_id)
            if conn is not None and conn._error is None:
                conn._error = DaemonError("write", event.message)
        elif isinstance(event, core.SendToFailed):
            self._sendto_error = event.message

    def _forget(self, conn: SyncConnection) -> None:
        self._conns.pop(conn.conn_id, None)
        self._core.forget(conn.conn_id)

    def call(self, call: Call, timeout: float | None = None) -> Any:
        """Send one request and block for its reply."""
        self._check()
        token = self._core.rpc(call.expect)
        self._calls[token] = call
        self._out += call.request
        self._wait(lambda: token in self._results, None if timeout is None else time.monotonic() + timeout)
        ok, value = self._results.pop(token)
        if not ok:
            raise value
        return value

    def _send(self, conn_id: int, data: bytes | bytearray | memoryview) -> None:
        for frame in self._core.send(conn_id, data):
            self._out += frame
            if len(self._out) >= 1 << 18:
                self._wait(lambda: len(self._out) < 1 << 16, None)
        self._flush_blocking()

    def _close_conn(self, conn: SyncConnection) -> None:
        if self._error is not None:
            self._forget(conn)
            return
        _, frame = self._core.close(conn.conn_id)
        self._out += frame
        self._forget(conn)
        try:
            self._flush_blocking(time.monotonic() + 5.0)
        except PilotError:
            pass

    # -- API --------------------------------------------------------------------

    def dial(self, addr: Addr | str | int, port: int, timeout: float | None = None) -> SyncConnection:
        return self.call(calls.dial(as_addr(addr), port), timeout)  # type: ignore[no-any-return]

    def listen(self, port: int) -> SyncListener:
        wire.check_port(port)
        listener = self._listeners[port] = SyncListener(self, port)
        try:
            self.call(calls.bind(port))
        except BaseException:
            del self._listeners[port]
            raise
        return listener

    def send_to(self, addr: Addr | str | int, port: int, data: bytes) -> None:
        self._check()
        if self._sendto_error is not None:
            message, self._sendto_error = self._sendto_error, None
            raise DaemonError("send_to", message)
        self._out += self._core.send_to(as_addr(addr), port, bytes(data))
        self._flush_blocking()

    def watch_datagrams(self) -> None:
        """Start keeping pushed datagrams (dropped until this is called)."""
        if self._datagrams is None:
            self._datagrams = deque()

    def recv_datagram(self, port: int | None = None, timeout: float | None = None) -> wire.Datagram:
        """The next datagram for ``port`` (any port if ``None``); others are discarded."""
        self.watch_datagrams()
        queue = self._datagrams
        assert queue is not None
        deadline = None if timeout is None else time.monotonic() + timeout

        def ready() -> bool:
            while queue and port is not None and queue[0].dst_port != port:
                queue.popleft()
            return bool(queue)

        self._wait(ready, deadline)
        return queue.popleft()

    def disconnect(self, conn_id: int, timeout: float = 10.0) -> None:
        """Close ``conn_id`` and wait for the daemon's CloseOK."""
        wire.check_node(conn_id)
        self._check()
        token, frame = self._core.close(conn_id)
        self._close_waits.add(token)
        self._out += frame
        try:
            self._wait(lambda: token in self._results, time.monotonic() + timeout)
        finally:
            self._close_waits.discard(token)
        ok, value = self._results.pop(token)
        if not ok:
            raise value

    # -- data services: files, messages, events -----------------------------------

    def target(self, target: Addr | str | int) -> Addr:
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
            reply = self.resolve_hostname(target)
            return as_addr(reply.get("address") or int(reply["node_id"]))
        except (DaemonError, KeyError, TypeError, ValueError):
            raise NotFound(f'cannot resolve "{target}"') from None

    def send_file(
        self,
        targets: Addr | str | int | Sequence[Addr | str | int],
        path: str | os.PathLike[str],
        progress: Callable[[str, int, int], None] | None = None,
        *,
        name: str | None = None,
    ) -> list[Delivery]:
        """Blocking :meth:`pilotgw.client.aio.Client.send_file`: same chain to
        many receivers, same results. The transfer runs on its own asyncio
        loop and IPC session, so do not call this from a running event loop."""
        import asyncio

        from pilotgw.client.aio import connect

        many = not isinstance(targets, (Addr, str, int))
        addrs = [self.target(t) for t in (targets if many else [targets])]  # type: ignore[union-attr]

        async def transfer() -> list[Delivery]:
            async with await connect(self.socket_path) as client:
                return await client.send_file(addrs, path, progress, name=name)

        return asyncio.run(transfer())

    def send_message(
        self, target: Addr | str | int, data: Any, *, kind: str | None = None, timeout: float = _ACK_TIMEOUT
    ) -> str | None:
        """Deliver a typed message (``str`` text, bytes binary, other values
        JSON, or ``kind=``); returns the receiver's ACK text or ``None``."""
        from pilotgw.client import messaging

        kind = messaging.message_kind(data, kind)
        payload = messaging.message_payload(data, kind)
        with self.dial(self.target(target), PORT_DATA_EXCHANGE) as conn:
            conn.send(messaging.message_frame(kind, payload))
            return read_ack(conn, timeout)

    def subscribe(self, target: Addr | str | int, topic: str) -> SyncSubscription:
        """Subscribe to ``topic`` (``*`` for all) on ``target``'s broker."""
        from pilotgw.client.messaging import subscribe_frame

        frame = subscribe_frame(topic)
        addr = self.target(target)
        conn = self.dial(addr, PORT_EVENT_STREAM)
        try:
            conn.send(frame)
        except BaseException:
            conn.close()
            raise
        return SyncSubscription(conn, addr, topic)

    def publish(self, target: Addr | str | int, topic: str, data: str | bytes) -> None:
        """Publish one event on ``topic`` at ``target``'s broker."""
        from pilotgw.client.messaging import as_payload, publish_frames

        frames = publish_frames(topic, as_payload(data))
        with self.dial(self.target(target), PORT_EVENT_STREAM) as conn:
            conn.send(frames)

    def inbox(self, pilot_dir: str | None = None) -> list[mailbox.Message]:
        """Messages the local daemon saved in ``~/.pilot/inbox`` (no IPC)."""
        from pilotgw.client.mailbox import read_inbox

        return read_inbox(pilot_dir) or []

    def received(self, pilot_dir: str | None = None) -> list[mailbox.ReceivedFile]:
        """Files the local daemon saved in ``~/.pilot/received`` (no IPC)."""
        from pilotgw.client.mailbox import read_received

        return read_received(pilot_dir) or []

    def info(self) -> dict[str, Any]:
        return self.call(calls.info())  # type: ignore[no-any-return]

    def resolve_hostname(self, hostname: str) -> dict[str, Any]:
        return self.call(calls.resolve_hostname(hostname))  # type: ignore[no-any-return]

    def set_hostname(self, hostname: str) -> dict[str, Any]:
        return self.call(calls.set_hostname(hostname))  # type: ignore[no-any-return]

    def set_visibility(self, public: bool) -> dict[str, Any]:
        return self.call(calls.set_visibility(public))  # type: ignore[no-any-return]

    def set_tags(self, tags: list[str]) -> dict[str, Any]:
        return self.call(calls.set_tags(tags))  # type: ignore[no-any-return]

    def set_webhook(self, url: str) -> dict[str, Any]:
        return self.call(calls.set_webhook(url))  # type: ignore[no-any-return]

    def set_task_exec(self, enabled: bool) -> dict[str, Any]:
        return self.call(calls.set_task_exec(enabled))  # type: ignore[no-any-return]

    def deregister(self) -> dict[str, Any]:
        return self.call(calls.deregister())  # type: ignore[no-any-return]

    def handshake(self, node_id: int, justification: str = "") -> dict[str, Any]:
        return self.call(calls.handshake(node_id, justification))  # type: ignore[no-any-return]

    def approve(self, node_id: int) -> dict[str, Any]:
        return self.call(calls.approve(node_id))  # type: ignore[no-any-return]

    def reject(self, node_id: int, reason: str = "") -> dict[str, Any]:
        return self.call(calls.reject(node_id, reason))  # type: ignore[no-any-return]

    def pending(self) -> list[dict[str, Any]]:
        return self.call(calls.pending())  # type: ignore[no-any-return]

    def trusted(self) -> list[dict[str, Any]]:
        return self.call(calls.trusted())  # type: ignore[no-any-return]

    def revoke(self, node_id: int) -> dict[str, Any]:
        return self.call(calls.revoke(node_id))  # type: ignore[no-any-return]

    def expose(self, port: int, target: str) -> dict[str, Any]:
        """Publish local TCP ``target`` (``host:port``) on pilot ``port`` (extension)."""
        return self.call(calls.expose(port, target))  # type: ignore[no-any-return]

    def unexpose(self, port: int) -> dict[str, Any]:
        return self.call(calls.unexpose(port))  # type: ignore[no-any-return]

    def exposed(self) -> list[dict[str, Any]]:
        return self.call(calls.exposed())  # type: ignore[no-any-return]

    # -- task submit (port 1003) ---------------------------------------------------
    # Task files live in the local ``~/.pilot/tasks`` (``pilot_dir`` names
    # another ``.pilot``); see :mod:`pilotgw.client.tasks`.

    def submit_task(
        self, target: Addr | str | int, description: str, *, timeout: float | None = None, pilot_dir: str | None = None
    ) -> dict[str, Any]:
        """Ask ``target`` to do ``description``. Returns ``pilotctl task
        submit``'s data (``accepted``, ``status`` 200/400, ``message``,
        ``task_id`` ...); a rejection is a normal return. Accepted tasks are
        recorded in ``submitted/``."""
        from pilotgw.client import tasks
        from pilotgw.overlay.address import PORT_TASK_SUBMIT

        addr = self.target(target)
        request = tasks.submit_request(str(self.info()["address"]), addr, description)
        try:
            conn = self.dial(addr, PORT_TASK_SUBMIT)
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            raise tasks.dial_failed(addr) from None
        reader = tasks.ResponseReader()
        deadline = time.monotonic() + (tasks.SUBMIT_TIMEOUT if timeout is None else timeout)
        with conn:
            try:
                conn.send(request.encode())
                while True:
                    chunk = conn.recv(_READ_CHUNK, timeout=max(deadline - time.monotonic(), 0.0))
                    if not chunk:
                        raise ConnectionFailed("unexpected EOF" if reader.partial else "EOF")
                    if (response := reader.feed(chunk)) is not None:
                        break
            except (PilotError, DecodeError) as exc:
                raise ConnectionFailed(f"submit: {getattr(exc, 'message', exc)}") from None
        tasks.record_submitted(request, response, pilot_dir, time.time())
        return tasks.submit_reply(request, response)

    def _task_frames(self, addr: Addr, frames: bytes) -> None:
        from pilotgw.overlay.address import PORT_TASK_SUBMIT

        with self.dial(addr, PORT_TASK_SUBMIT) as conn:
            conn.send(frames)

    def send_task_status(self, task: Any, status: str, justification: str) -> bool:
        """Tell ``task``'s submitter its new status (a STATUS_UPDATE on its
        own connection); False when that failed (best effort)."""
        from pilotgw.client import tasks
        from pilotgw.overlay.tasksubmit import TaskStatusUpdate

        addr = tasks.submitter(task)
        try:
            self._task_frames(addr, TaskStatusUpdate(task.task_id, status, justification).encode())
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            return False
        return True

    def accept_task(self, task_id: str, *, pilot_dir: str | None = None) -> dict[str, Any]:
        """Accept a NEW received task (within its minute) and tell the submitter."""
        from pilotgw.client import tasks
        from pilotgw.overlay import tasksubmit as ts

        task = tasks.accept(tasks.TaskStore(pilot_dir), task_id, time.time())
        return tasks.accept_reply(task, self.send_task_status(task, ts.ACCEPTED, ts.JUST_ACCEPTED))

    def decline_task(self, task_id: str, justification: str, *, pilot_dir: str | None = None) -> dict[str, Any]:
        from pilotgw.client import tasks
        from pilotgw.overlay import tasksubmit as ts

        task = tasks.decline(tasks.TaskStore(pilot_dir), task_id, justification, time.time())
        return tasks.decline_reply(task, self.send_task_status(task, ts.DECLINED, justification))

    def execute_task(self, *, pilot_dir: str | None = None) -> dict[str, Any]:
        """Start the head of the queue. Nothing is run: the agent does the
        work and then calls :meth:`send_task_results`."""
        from pilotgw.client import tasks
        from pilotgw.overlay import tasksubmit as ts

        task = tasks.execute(tasks.TaskStore(pilot_dir), time.time())
        try:
            self.send_task_status(task, ts.EXECUTING, ts.JUST_EXECUTING)
        except InvalidArgument:
            pass
        return tasks.execute_reply(task)

    def send_task_results(
        self, task_id: str, *, text: str = "", file: str = "", pilot_dir: str | None = None
    ) -> dict[str, Any]:
        """Mark the task SUCCEEDED and deliver ``text`` or the file ``file``
        (an allowed type, A5.7) to the submitter."""
        from pilotgw.client import tasks

        if not text and not file:
            raise InvalidArgument("either --results or --file is required")
        return self.deliver_task_results(tasks.prepare_results(tasks.TaskStore(pilot_dir), task_id, text, file, time.time()))

    def deliver_task_results(self, results: Any) -> dict[str, Any]:
        """The network half of :meth:`send_task_results`: SEND_RESULTS, then
        STATUS_UPDATE(SUCCEEDED) on a second connection (C-5)."""
        from pilotgw.client import tasks
        from pilotgw.overlay import tasksubmit as ts

        from pilotgw.overlay.address import PORT_TASK_SUBMIT

        addr = tasks.submitter(results.task)
        try:
            conn = self.dial(addr, PORT_TASK_SUBMIT)
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            raise tasks.submitter_unreachable(addr) from None
        with conn:
            try:
                conn.send(results.message.encode())
            except PilotError as exc:
                raise ConnectionFailed(f"failed to send results: {exc.message}") from None
        self.send_task_status(results.task, ts.SUCCEEDED, ts.JUST_SUCCEEDED)
        return results.data  # type: ignore[no-any-return]

    def task_list(self, category: str = "", *, pilot_dir: str | None = None) -> list[dict[str, Any]]:
        """Received then submitted tasks (``category`` ``received`` or
        ``submitted`` for one kind), as ``pilotctl task list`` shows them."""
        from pilotgw.client import tasks

        return tasks.list_tasks(tasks.TaskStore(pilot_dir), category)

    def task_queue(self, *, pilot_dir: str | None = None) -> list[dict[str, Any]]:
        """Accepted tasks waiting for execution, head first."""
        from pilotgw.client import tasks

        return tasks.queue(tasks.TaskStore(pilot_dir))
