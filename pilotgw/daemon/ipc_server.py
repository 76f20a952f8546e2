"""The IPC server on the Unix socket (trust-and-ipc.md §A2), byte-compatible
with the reference so Go drivers and ``pilotctl`` work unchanged.

Ordering (§A2.8): every request gets exactly one reply, in request order,
except a successful Send/SendTo which gets none. Slow requests (Dial, registry
calls) run concurrently, but their replies wait in a per-client FIFO of slots,
so a later fast reply never overtakes an earlier slow one. Pushes (Accept,
Recv, CloseOK, RecvFrom) are written as they happen; a dialled connection's
Recv pushes start only once its DialOK is on the wire.

Flow control without IPC messages:

* client -> daemon: when a connection's send buffer passes its high-water
  mark, we stop reading this client's socket (``pause_reading``) until the
  stream drains; the client's writes then block in its own socket buffer;
* daemon -> client: Recv data is pulled from a connection's receive buffer
  only while the client's socket accepts writes (``pause_writing`` /
  ``resume_writing``); what we do not pull stays in the stream, whose
  advertised window shrinks, so the remote sender slows down.

There is no 1 MiB hang: a frame over the limit is answered with an Error
``frame too large`` and the client is closed (D-13); ``Close`` always
returns CloseOK, and a client that disconnects has its connections closed
(FIN) and its ports unbound.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import struct
from typing import TYPE_CHECKING, Any, Callable, Optional

from pilotgw.daemon.log import Log
from pilotgw.overlay import ipc
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError

if TYPE_CHECKING:  # pragma: no cover
    from pilotgw.daemon.connections import Conn
    from pilotgw.daemon.node import Node

log = Log("ipc")

_U32 = struct.Struct(">I")
_RECV_HEAD = struct.Struct(">IBI")  # length, command, conn_id
RECV_CHUNK = 256 * 1024
WRITE_HIGH = 2 * 1024 * 1024
WRITE_LOW = 512 * 1024


class NodeError(Exception):
    """A failed request; the message is the exact IPC error text."""


class _Slot:
    __slots__ = ("frame", "done", "on_written")

    def __init__(self) -> None:
        self.frame: Optional[bytes] = None
        self.done = False
        self.on_written: Optional[Callable[[], None]] = None


class IpcClient(asyncio.Protocol):
    """One connected driver."""

    def __init__(self, server: "IpcServer") -> None:
        self.server = server
        self.node = server.node
        self.transport: Optional[asyncio.Transport] = None
        self._buf = bytearray()
        self.slots: collections.deque[_Slot] = collections.deque()
        self.conns: dict[int, "Conn"] = {}
        self.ports: set[int] = set()
        self.writable = True
        self.closed = False
        self._paused_by: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._pull_ready: dict[int, "Conn"] = {}

    # -- transport callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)  # type: ignore[union-attr]
        self.server.clients.add(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self.server.clients.discard(self)
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.conns.values()):
            self.node.close_conn(conn)
        self.conns.clear()
        for port in self.ports:
            self.node.unbind(port, self)
        self.ports.clear()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        ready, self._pull_ready = self._pull_ready, {}
        for conn in ready.values():
            self.on_data(conn)
        for port in self.ports:  # connections queued while we could not take them
            self.node.conns.drain_backlog(port)

    def data_received(self, data: bytes) -> None:
        """Cut frames out of ``data`` without copying those that arrived
        whole (their bodies are memoryview slices, valid during the call);
        only a frame split across reads is assembled in ``_buf``."""
        buf = self._buf
        n = len(data)
        pos = 0
        if buf:
            if len(buf) < 4:
                pos = min(4 - len(buf), n)
                buf += memoryview(data)[:pos]
                if len(buf) < 4:
                    return
            (length,) = _U32.unpack_from(buf)
            if length > ipc.MAX_BODY:
                self._too_large()
                return
            take = min(4 + length - len(buf), n - pos)
            buf += memoryview(data)[pos : pos + take]
            pos += take
            if len(buf) < 4 + length:
                return
            # Hand over the assembled frame and start a fresh buffer: no copy.
            self._buf = bytearray()
            if length:
                self._handle(memoryview(buf)[4:])
            buf = self._buf
        view = memoryview(data)
        unpack = _U32.unpack_from
        while n - pos >= 4 and not self.closed:
            (length,) = unpack(data, pos)
            if length > ipc.MAX_BODY:
                self._too_large()
                return
            end = pos + 4 + length
            if end > n:
                break
            if length:
                self._handle(view[pos + 4 : end])
            pos = end
        if pos < n and not self.closed:
            buf += view[pos:]

    def _too_large(self) -> None:
        self._write(ipc.Error(ipc.FRAME_TOO_LARGE).encode())
        log.warning("IPC frame too large, closing client")
        self.transport.close()  # type: ignore[union-attr]
        self.closed = True

    # -- writing ---------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(frame)

    def _reply(self, msg: ipc.Message) -> None:
        frame = msg.encode()
        if self.slots:
            slot = _Slot()
            slot.frame, slot.done = frame, True
            self.slots.append(slot)
        else:
            self._write(frame)

    def _later(self) -> _Slot:
        slot = _Slot()
        self.slots.append(slot)
        return slot

    def _complete(self, slot: _Slot, msg: Optional[ipc.Message]) -> None:
        slot.frame = None if msg is None else msg.encode()
        slot.done = True
        slots = self.slots
        while slots and slots[0].done:
            s = slots.popleft()
            if s.frame is not None:
                self._write(s.frame)
            if s.on_written is not None:
                s.on_written()

    def _run(self, slot: _Slot, coro: Any, label: str) -> None:
        async def runner() -> None:
            try:
                msg = await coro
            except NodeError as exc:
                msg = ipc.Error(str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never leave a slot unanswered
                log.exception("IPC request failed", request=label)
                msg = ipc.Error(f"{label}: {exc}")
            self._complete(slot, msg)

        task = asyncio.get_running_loop().create_task(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- pushes -------------------------------------------------------------------------

    def push(self, frame: bytes) -> None:
        self._write(frame)

    def adopt(self, conn: "Conn", push_now: bool = True) -> None:
        self.conns[conn.id] = conn
        conn.owner = self
        conn.push_enabled = push_now

    def on_accept(self, conn: "Conn") -> None:
        self.adopt(conn)
        self._write(ipc.Accept(conn.local_port, conn.id, conn.remote, conn.remote_port).encode())
        self.on_data(conn)

    def on_data(self, conn: "Conn") -> None:
        """Data (or end of stream) is available on ``conn``: push what the
        client can take now."""
        if not conn.push_enabled or self.closed:
            return
        if not self.writable:
            self._pull_ready[conn.id] = conn
            return
        transport = self.transport
        while True:
            data = conn.read(RECV_CHUNK)
            if not data:
                break
            n = len(data)
            transport.write(_RECV_HEAD.pack(n + 5, ipc.RECV, conn.id))  # type: ignore[union-attr]
            transport.write(data)  # type: ignore[union-attr]
            if not self.writable:
                self._pull_ready[conn.id] = conn
                return
        if conn.finished and not conn.close_pushed:
            conn.close_pushed = True
            self._write(ipc.CloseOK(conn.id).encode())
            self.conns.pop(conn.id, None)

    def on_closed(self, conn: "Conn") -> None:
        self.on_writable(conn)  # a closed connection no longer holds our reads back
        self.on_data(conn)

    def on_writable(self, conn: "Conn") -> None:
        """The connection's send buffer drained: read the client again."""
        self._paused_by.discard(conn.id)
        if not self._paused_by and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def on_datagram(self, frame: bytes) -> None:
        self._write(frame)

    # -- requests ------------------------------------------------------------------------

    def _handle(self, body: bytes) -> None:
        cmd = body[0]
        if cmd == ipc.SEND and len(body) >= 5:
            self._send(body)
            return
        try:
            req = ipc.decode_request(body)
        except DecodeError as exc:
            self._reply(ipc.Error(str(exc)))
            return
        node = self.node
        if isinstance(req, ipc.Bind):
            try:
                node.bind(req.port, self)
            except NodeError as exc:
                self._reply(ipc.Error(str(exc)))
                return
            self.ports.add(req.port)
            self._reply(ipc.BindOK(req.port))
        elif isinstance(req, ipc.Dial):
            self._dial(req)
        elif isinstance(req, ipc.Send):  # short body: decode_request raised above
            self._reply(ipc.Error("send: missing conn_id"))
        elif isinstance(req, ipc.Close):
            conn = node.conns.by_id.get(req.conn_id)
            self._reply(ipc.CloseOK(req.conn_id))
            if conn is not None:
                # The receive side ends too: its pusher says so (Q13: two CloseOK).
                owner = conn.owner
                if isinstance(owner, IpcClient) and not conn.close_pushed:
                    conn.close_pushed = True
                    owner.conns.pop(conn.id, None)
                    owner.push(ipc.CloseOK(conn.id).encode())
                node.close_conn(conn)
        elif isinstance(req, ipc.SendTo):
            try:
                node.send_datagram(req.addr, req.port, req.data)
            except NodeError as exc:
                self._reply(ipc.Error(str(exc)))
        elif isinstance(req, ipc.SendToFrom):  # our extension: the source port must be ours
            if req.src_port not in self.ports:
                self._reply(ipc.Error(f"sendto: port {req.src_port} is not bound by this client"))
                return
            try:
                node.send_datagram(req.addr, req.port, req.data, req.src_port)
            except NodeError as exc:
                self._reply(ipc.Error(str(exc)))
        elif isinstance(req, ipc.Info):
            self._reply(ipc.info_reply(node.info()))
        else:
            slot = self._later()
            self._run(slot, node.admin_request(req), type(req).__name__)

    def _send(self, body: bytes) -> None:
        (conn_id,) = _U32.unpack_from(body, 1)
        conn = self.node.conns.by_id.get(conn_id)
        if conn is None:
            self._reply(ipc.Error(f"connection {conn_id} not found"))
            return
        try:
            full = self.node.conn_send(conn, memoryview(body)[5:])
        except NodeError as exc:
            self._reply(ipc.Error(str(exc)))
            return
        if full:
            self._paused_by.add(conn.id)
            conn.writer_waiting = self
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _dial(self, req: ipc.Dial) -> None:
        slot = self._later()

        async def dial() -> ipc.Message:
            conn = await self.node.dial(req.addr, req.port, self)
            if self.closed:
                self.node.close_conn(conn)
                return ipc.DialOK(conn.id)
            self.adopt(conn, push_now=False)

            def enable() -> None:
                conn.push_enabled = True
                self.on_data(conn)

            slot.on_written = enable
            return ipc.DialOK(conn.id)

        self._run(slot, dial(), "dial")


class IpcServer:
    """Listens on the Unix socket; the socket is 0600 from the first moment."""

    def __init__(self, node: "Node", path: str) -> None:
        self.node = node
        self.path = path
        self.clients: set[IpcClient] = set()
        self._server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> None:
        path = self.path
        if os.path.exists(path):
            if await answers(path):
                raise NodeError(f"daemon already running on {path}")
            os.unlink(path)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # D-15: never world-connectable, not even briefly
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: IpcClient(self), sock=sock)

    def broadcast(self, frame: bytes) -> None:
        for client in self.clients:
            client.on_datagram(frame)

    async def close(self) -> None:
        if self._server is None:
            return  # never listened: the path (maybe another daemon's) is not ours
        self._server.close()
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


async def answers(path: str) -> bool:
    """True if a daemon is listening on ``path`` (D-15: do not hijack it)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


def datagram_frame(src: Addr, src_port: int, dst_port: int, data: bytes) -> bytes:
    return ipc.RecvFrom(src, src_port, dst_port, bytes(data)).encode()
