"""The running gateway: daemon sessions + :class:`~pilotgw.proxy.Gateway` +
control socket + signals + persistence, composed for ``pilot-gateway``.

Start order is chosen so a failure leaves nothing behind and touches
nothing it need not: the privilege check, then the daemon (it must answer
Info), then the control socket (a second gateway stops here with
``already_exists``), then the kernel side (:meth:`Gateway.start` removes what
a crashed run left first and reloads the saved mappings), then the
requested mappings, then the PID file. Stop undoes it in reverse; SIGINT or
SIGTERM or the control socket's ``stop`` trigger it.

Files in the state dir (``~/.pilot`` by default): ``gateway.sock`` (control,
0600), ``gateway.pid`` (decimal, no newline, 0600, as the CLI contract
says), ``gateway-mappings.json`` and ``gateway-kernel.json``
(:mod:`pilotgw.proxy.gateway`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pilotgw.client.errors import DaemonError, NotFound
from pilotgw.gateway.control import SOCKET_NAME, ControlError, ControlServer
from pilotgw.gateway.overlay_adapter import DaemonOverlay
from pilotgw.overlay.address import Addr, parse_target
from pilotgw.overlay.errors import DecodeError
from pilotgw.proxy.gateway import MAPPINGS_FILE, Gateway
from pilotgw.proxy.mapping import DEFAULT_SUBNET, Mapping, MappingTable, parse_subnet
from pilotgw.tun.privileges import require_net_admin

log = logging.getLogger(__name__)

PID_FILE = "gateway.pid"
DAEMON_TIMEOUT = 5.0


def default_state_dir() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~")) / ".pilot"


def write_pid(path: Path, pid: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def mapping_view(mapping: Mapping, metrics: dict[str, int] | None = None) -> dict[str, Any]:
    """``{local_ip, pilot_addr}`` (the contract's shape) plus ``metrics`` when known."""
    view: dict[str, Any] = mapping.as_dict()
    if metrics is not None:
        view["metrics"] = metrics
    return view


async def resolve_target(overlay: DaemonOverlay, target: str) -> Addr:
    """A text address, a bare node ID (network 0), else a hostname resolved by the daemon."""
    try:
        addr = parse_target(target)
    except DecodeError as exc:
        raise ControlError(f"parse address: {exc}", "invalid_argument") from None
    if addr is not None:
        return addr
    client = await overlay.session()
    try:
        reply = await asyncio.wait_for(client.resolve_hostname(target), DAEMON_TIMEOUT)
        resolved = parse_target(str(reply.get("address", ""))) or Addr(0, int(reply["node_id"]))
    except (DaemonError, KeyError, TypeError, ValueError, DecodeError, asyncio.TimeoutError):
        raise NotFound(
            f'cannot resolve "{target}" — is the hostname correct and is there mutual trust? (see: pilotctl handshake)'
        ) from None
    finally:
        await client.close()
    log.info("resolved %r to %s", target, resolved)
    return resolved


def map_offline(state_dir: Path, addr: Addr, ip: str | None) -> Mapping:
    """Record a mapping for the next gateway start (no gateway is running).

    The table keeps the subnet it was saved with (else the default one).
    """
    path = state_dir / MAPPINGS_FILE
    subnet_text = DEFAULT_SUBNET
    with contextlib.suppress(OSError, ValueError, AttributeError):
        saved = json.loads(path.read_bytes()).get("subnet")
        if isinstance(saved, str):
            subnet_text = saved
    table, _ = MappingTable.load(path, parse_subnet(subnet_text))
    mapping, new = table.map(addr, ip)
    if new:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        table.save(path)
    return mapping


class GatewayService:
    """One gateway process's worth of state; see the module docstring."""

    def __init__(
        self,
        socket_path: str,
        subnet: str | ipaddress.IPv4Network = DEFAULT_SUBNET,
        ports: Iterable[int] | None = None,
        state_dir: Path | str | None = None,
        **gateway_options: Any,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.overlay = DaemonOverlay(socket_path)
        self.gateway = Gateway(self.overlay, subnet, ports, self.state_dir, **gateway_options)
        self.control = ControlServer(str(self.state_dir / SOCKET_NAME), self.handle)
        self.pid_path = self.state_dir / PID_FILE
        self._stopped = asyncio.Event()
        self._stopping: asyncio.Task[None] | None = None
        self._started = False

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.gateway.subnet

    async def _check_daemon(self) -> None:
        client = await self.overlay.session()  # NotRunning without a daemon
        try:
            await asyncio.wait_for(client.info(), DAEMON_TIMEOUT)
        except asyncio.TimeoutError:
            raise ControlError("daemon did not answer Info", "timeout") from None
        finally:
            await client.close()

    async def start(self, targets: Iterable[tuple[str, str | None]] = ()) -> list[Mapping]:
        """Bring the gateway up and map ``targets`` (address or hostname, optional IP).

        Returns the mappings of ``targets``. On failure everything started
        so far is undone before the error propagates.
        """
        require_net_admin()
        await self._check_daemon()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self.control.start()
        try:
            await self.gateway.start()
            mapped = [await self.map(target, ip) for target, ip in targets]
            write_pid(self.pid_path, os.getpid())
        except BaseException:
            await self.gateway.stop()
            await self.control.close()
            raise
        self._started = True
        log.info("gateway running: subnet %s, device %s, %d mappings", self.subnet, self.gateway.device,
                 len(self.gateway.mappings()))
        return mapped

    async def map(self, target: str, ip: str | None = None) -> Mapping:
        addr = await resolve_target(self.overlay, target)
        mapping = await self.gateway.map(addr, ip)
        log.info("mapped %s -> %s", mapping.local_ip, mapping.addr)
        return mapping

    def status(self) -> dict[str, Any]:
        return {
            "device": self.gateway.device,
            "mappings": [m.as_dict() for m in self.gateway.mappings()] or None,
            "pid": os.getpid(),
            "ports": sorted(self.gateway.ports) if self.gateway.ports is not None else None,
            "socket": self.control.path,
            "subnet": str(self.subnet),
        }

    def listing(self) -> dict[str, Any]:
        metrics = self.gateway.metrics()
        mappings = [mapping_view(m, metrics.get(str(m.local_ip))) for m in self.gateway.mappings()]
        return {"mappings": mappings, "total": len(mappings)}

    async def handle(self, op: str, request: dict[str, Any]) -> Any:
        """The control socket's operations (:mod:`pilotgw.gateway.control`)."""
        if op == "status":
            return self.status()
        if op == "list":
            return self.listing()
        if op == "metrics":
            return self.gateway.metrics()
        if op == "map":
            target, ip = request.get("target"), request.get("ip")
            if not isinstance(target, str) or not (ip is None or isinstance(ip, str)):
                raise ControlError("map: want a \"target\" string and an optional \"ip\" string", "invalid_argument")
            return (await self.map(target, ip or None)).as_dict()
        if op == "unmap":
            ip = request.get("ip")
            if not isinstance(ip, str):
                raise ControlError("unmap: want an \"ip\" string", "invalid_argument")
            mapping = await self.gateway.unmap(ip)
            log.info("unmapped %s (was %s)", mapping.local_ip, mapping.addr)
            return {"unmapped": str(mapping.local_ip)}
        if op == "stop":
            asyncio.get_running_loop().call_soon(self.request_stop)
            return {"pid": os.getpid()}
        raise ControlError(f"unknown operation {op!r}", "invalid_argument",
                           "available: status, list, metrics, map, unmap, stop")

    def request_stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.stop())

    async def stop(self) -> None:
        """Remove everything from the kernel, close the control socket, drop the PID file."""
        try:
            await self.control.close()
            await self.gateway.stop()
        finally:
            if self._started:
                with contextlib.suppress(FileNotFoundError):
                    if self.pid_path.read_text().strip() == str(os.getpid()):
                        self.pid_path.unlink()
            self._started = False
            self._stopped.set()
            log.info("gateway stopped")

    async def serve_forever(self) -> None:
        """Run until SIGINT/SIGTERM or a ``stop`` request, then stop cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopped.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self._stopping is not None:
                await self._stopping

