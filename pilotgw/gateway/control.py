"""The gateway's local control socket (C-7: ``gateway map/unmap/list`` reach
the running gateway, which the reference never could).

Protocol: JSON lines over a Unix stream socket, ``<state dir>/gateway.sock``,
mode 0600 from the moment it exists (only the gateway's user can steer it;
it is invisible to other nodes). Each request is one line holding a JSON
object ``{"op": <name>, ...arguments}``; each gets exactly one reply line, in
order:

* ``{"ok": true, "data": <value>}``
* ``{"ok": false, "code": <cli error code>, "message": <text>[, "hint": <text>]}``

Operations (see :class:`pilotgw.gateway.service.GatewayService`): ``status``,
``list``, ``metrics``, ``map`` (``target``, optional ``ip``), ``unmap``
(``ip``), ``stop``. A request line is at most :data:`MAX_LINE` bytes; a
longer or malformed one gets an ``invalid_argument`` reply (and the
connection is closed if the line was too long). The error codes are the
CLI's, so ``pilotctl`` passes them through unchanged.

:class:`ControlServer` is the asyncio side; :func:`request` the blocking
client ``pilotctl`` uses (no asyncio import on the CLI's path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "gateway.sock"
MAX_LINE = 64 * 1024
DEFAULT_TIMEOUT = 30.0

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class ControlError(Exception):
    """A failed control request; ``code`` and ``hint`` are the CLI's."""

    def __init__(self, message: str, code: str = "internal", hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The reply line for a failed request: errors that carry a ``code``
    (mapping, kernel, client and control errors all do) keep it."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    reply: dict[str, Any] = {
        "ok": False,
        "code": code if isinstance(code, str) and code else "internal",
        "message": message if isinstance(message, str) and message else str(exc) or type(exc).__name__,
    }
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        reply["hint"] = hint
    return reply


class ControlServer:
    """Serves the control protocol on ``path`` with ``handler(op, request)``."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind (0600); a live socket at ``path`` means another gateway: ``already_exists``."""
        if os.path.exists(self.path):
            if _answers(self.path):
                raise ControlError(
                    f"a gateway already answers on {self.path}", "already_exists", "stop it first with: pilotctl gateway stop"
                )
            os.unlink(self.path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_line(error_reply(ControlError(f"request longer than {MAX_LINE} bytes", "invalid_argument"))))
                    await writer.drain()
                    return
                writer.write(_line(await self._answer(line)))
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError as exc:
            return error_reply(ControlError(f"bad request: {exc}", "invalid_argument"))
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return error_reply(ControlError("bad request: want a JSON object with an \"op\" string", "invalid_argument"))
        try:
            return {"ok": True, "data": await self.handler(request["op"], request)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if getattr(exc, "code", None) is None:
                log.exception("control request %r failed", request.get("op"))
            return error_reply(exc)


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _answers(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def request(path: str, op: str, timeout: float = DEFAULT_TIMEOUT, **args: Any) -> Any:
    """One blocking request; returns ``data`` or raises :class:`ControlError`.

    Nothing listening at ``path`` raises ``not_running``.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError:
            raise ControlError("gateway is not running", "not_running", "start with: pilotctl gateway start") from None
        try:
            sock.sendall(_line({"op": op, **args}))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ControlError("gateway closed the control connection without a reply", "connection_failed")
                buf += chunk
        except socket.timeout:
            raise ControlError(f"gateway did not answer {op!r} within {timeout:g}s", "timeout") from None
        except OSError as exc:
            raise ControlError(f"gateway control socket: {exc}", "connection_failed") from None
    finally:
        sock.close()
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        raise ControlError(f"bad reply from the gateway: {exc}", "internal") from None
    if not isinstance(reply, dict):
        raise ControlError("bad reply from the gateway: not an object", "internal")
    if reply.get("ok") is True:
        return reply.get("data")
    raise ControlError(str(reply.get("message", "gateway error")), str(reply.get("code", "internal")), reply.get("hint"))
