"""Sans-IO heart of the driver: request bookkeeping and reply matching.

The daemon answers one client's requests strictly in order, sends nothing
for a successful Send/SendTo, and interleaves pushes (Accept, Recv, CloseOK,
RecvFrom) between replies (trust-and-ipc.md §A2.8). :class:`DriverCore`
keeps the ordered list of what is in flight -- Sends included, so that an
Error caused by a Send is not blamed on the next RPC (defect D-12) -- and
turns the daemon's byte stream into small event objects. The asyncio
:class:`~pilotgw.client.aio.Client` and the blocking
:class:`~pilotgw.client.sync.SyncClient` are thin I/O shells around it.
"""

from __future__ import annotations

import re
from collections import deque
from typing import NamedTuple, Union

from pilotgw.client import wire
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError

_RPC, _SEND, _SENDTO, _CLOSE = range(4)
_NOT_FOUND = re.compile(r"connection (\d+) not found")


class Reply(NamedTuple):
    """Request ``token`` succeeded with reply frame ``code``/``payload``."""

    token: int
    code: int
    payload: bytes


class Failed(NamedTuple):
    """Request ``token`` failed; ``message`` is the daemon's raw error text."""

    token: int
    message: str


class Data(NamedTuple):
    conn_id: int
    data: bytes


class Eof(NamedTuple):
    """The daemon closed the receive side of ``conn_id`` (CloseOK push)."""

    conn_id: int


class Accepted(NamedTuple):
    accept: wire.Accept


class DatagramIn(NamedTuple):
    datagram: wire.Datagram


class SendFailed(NamedTuple):
    """A Send on ``conn_id`` was refused; later writes should fail with it."""

    conn_id: int
    message: str


class SendToFailed(NamedTuple):
    message: str


Event = Union[Reply, Failed, Data, Eof, Accepted, DatagramIn, SendFailed, SendToFailed]


class _Entry:
    """One in-flight request. Consecutive Sends on one connection share an
    entry (``count``) so a long upload costs O(1) bookkeeping."""

    __slots__ = ("kind", "token", "expect", "conn_id", "count")

    def __init__(self, kind: int, token: int, expect: int, conn_id: int, count: int = 1) -> None:
        self.kind = kind
        self.token = token
        self.expect = expect
        self.conn_id = conn_id
        self.count = count


class DriverCore:
    """Tracks requests written to one IPC session and decodes what comes back.

    Call the request methods in the order the frames are written; each
    returns the bytes to write (and a token for requests that get a reply).
    Feed everything read from the socket to :meth:`receive`. A frame the
    contract does not allow raises :class:`DecodeError`; the session is then
    unusable and the caller should close it.
    """

    def __init__(self) -> None:
        self._reader = wire.FrameReader()
        self._inflight: deque[_Entry] = deque()
        self._next_token = 1
        self._eof: set[int] = set()

    # -- requests ---------------------------------------------------------

    def _token(self) -> int:
        token = self._next_token
        self._next_token += 1
        return token

    def rpc(self, expect: int) -> int:
        """Register a request (written by the caller) whose success reply has
        code ``expect``; returns the token its reply event will carry."""
        token = self._token()
        self._inflight.append(_Entry(_RPC, token, expect, 0))
        return token

    def send(self, conn_id: int, data: bytes | bytearray | memoryview) -> list[bytes]:
        frames = wire.send_frames(conn_id, data)
        if frames:
            last = self._inflight[-1] if self._inflight else None
            if last is not None and last.kind == _SEND and last.conn_id == conn_id:
                last.count += len(frames)
            else:
                self._inflight.append(_Entry(_SEND, 0, 0, conn_id, len(frames)))
        return frames

    def send_to(self, addr: Addr, port: int, data: bytes, src_port: int | None = None) -> bytes:
        """SendTo, or the SendToFrom extension when ``src_port`` is given."""
        request = wire.send_to(addr, port, data) if src_port is None else wire.send_to_from(src_port, addr, port, data)
        self._inflight.append(_Entry(_SENDTO, 0, 0, 0))
        return request

    def close(self, conn_id: int) -> tuple[int, bytes]:
        token = self._token()
        self._inflight.append(_Entry(_CLOSE, token, wire.CLOSE_OK, conn_id))
        return token, wire.close(conn_id)

    def forget(self, conn_id: int) -> None:
        """The application is done with ``conn_id``; drop its EOF marker."""
        self._eof.discard(conn_id)

    @property
    def pending(self) -> int:
        """Requests still waiting for a reply (Sends excluded)."""
        return sum(1 for e in self._inflight if e.kind in (_RPC, _CLOSE))

    # -- replies ----------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for command, payload in self._reader.feed(data):
            self._dispatch(command, payload, events)
        return events

    def _dispatch(self, command: int, payload: bytes, events: list[Event]) -> None:
        if command == wire.RECV:
            conn_id = wire.decode_conn_id(payload, "Recv")
            if len(payload) > 4:
                events.append(Data(conn_id, payload[4:]))
        elif command == wire.CLOSE_OK:
            conn_id = wire.decode_conn_id(payload, "CloseOK")
            self._eof.add(conn_id)
            events.append(Eof(conn_id))
            entry = self._first(lambda e: e.kind in (_RPC, _CLOSE))
            if entry is not None and entry.kind == _CLOSE and entry.conn_id == conn_id:
                self._pop_through(entry)
                events.append(Reply(entry.token, command, payload))
        elif command == wire.ACCEPT:
            events.append(Accepted(wire.decode_accept(payload)))
        elif command == wire.RECV_FROM:
            events.append(DatagramIn(wire.decode_recv_from(payload)))
        elif command == wire.ERROR:
            self._error(wire.decode_error(payload), events)
        elif command in wire.REPLY_CODES:
            entry = self._first(lambda e: e.kind == _RPC)
            if entry is None:
                raise DecodeError(f"unexpected reply 0x{command:02X}: no request in flight", "unexpected")
            if entry.expect != command:
                raise DecodeError(
                    f"reply 0x{command:02X} out of order: oldest request expects 0x{entry.expect:02X}",
                    "unexpected",
                )
            self._pop_through(entry)
            events.append(Reply(entry.token, command, payload))
        else:
            raise DecodeError(f"unknown command 0x{command:02X} from daemon", "unknown_command")

    def _first(self, match) -> _Entry | None:  # type: ignore[no-untyped-def]
        for entry in self._inflight:
            if match(entry):
                return entry
        return None

    def _pop_through(self, entry: _Entry) -> None:
        """Remove ``entry`` and the Sends/SendTos written before it: the daemon
        answers in order, so they completed without error."""
        inflight = self._inflight
        kept: list[_Entry] = []
        while inflight:
            head = inflight.popleft()
            if head is entry:
                break
            if head.kind in (_RPC, _CLOSE):
                kept.append(head)  # a Close whose reply was already taken by a push
        inflight.extendleft(reversed(kept))

    def _error(self, message: str, events: list[Event]) -> None:
        not_found = _NOT_FOUND.fullmatch(message)
        if message.startswith("send:") or not_found:
            conn = int(not_found.group(1)) if not_found else None
            sends = [e for e in self._inflight if e.kind == _SEND]
            # The failing Send is the oldest on the named connection, else the
            # oldest on a connection already closed by the peer, else the oldest.
            pick = next((e for e in sends if e.conn_id == conn), None) if conn is not None else None
            pick = pick or next((e for e in sends if e.conn_id in self._eof), None) or (sends[0] if sends else None)
            if pick is not None:
                pick.count -= 1
                if pick.count == 0:
                    self._inflight.remove(pick)
                events.append(SendFailed(pick.conn_id, message))
            elif conn is not None:
                events.append(SendFailed(conn, message))
            return
        if message.startswith("sendto:"):
            pick = self._first(lambda e: e.kind == _SENDTO)
            if pick is not None:
                self._inflight.remove(pick)
            events.append(SendToFailed(message))
            return
        entry = self._first(lambda e: e.kind in (_RPC, _CLOSE))
        if entry is None:
            return  # nobody asked: an unsolicited error carries nothing to act on
        self._pop_through(entry)
        events.append(Failed(entry.token, message))
