"""The composition API: a :class:`Gateway` ties the mapping table, the
kernel side and the bridges together.

::

    gateway = Gateway(overlay, subnet="10.4.0.0/16", ports=None, state_dir=Path("~/.pilot"))
    await gateway.start()                  # needs CAP_NET_ADMIN
    mapping = await gateway.map(addr)      # -> Mapping(local_ip=10.4.0.1, addr=...)
    ...                                    # curl http://10.4.0.1:<any port>/
    await gateway.unmap("10.4.0.1")
    await gateway.stop()

Files in ``state_dir``: ``gateway-mappings.json`` (the table, kept across
restarts) and ``gateway-kernel.json`` (what the running gateway added to the
kernel; gone after a clean stop, replayed by :meth:`Gateway.start` after a
crash). The control socket and the CLI are built on top of this class
elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from pilotgw.overlay.address import Addr
from pilotgw.proxy.mapping import DEFAULT_SUBNET, Mapping, MappingError, MappingTable, parse_subnet
from pilotgw.proxy.metrics import MappingMetrics
from pilotgw.proxy.overlay import Overlay
from pilotgw.proxy.packets import DEFAULT_PING_TIMEOUT, DEFAULT_UDP_IDLE, PacketRelay
from pilotgw.proxy.tcp import DEFAULT_DIAL_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER, TcpProxy
from pilotgw.tun.errors import KernelError
from pilotgw.tun.plumbing import DEFAULT_DEVICE, DEFAULT_RULE_PRIORITY, DEFAULT_TABLE, SubnetPlumbing
from pilotgw.tun.privileges import require_net_admin
from pilotgw.tun.state import cleanup_stale

log = logging.getLogger(__name__)

MAPPINGS_FILE = "gateway-mappings.json"
KERNEL_STATE_FILE = "gateway-kernel.json"
T = TypeVar("T")


async def run_blocking(func: Callable[..., T], *args: object) -> T:
    """Run a blocking kernel operation in a new thread and await its result.

    A fresh thread rather than the default executor: a thread inherits the
    network namespace of the thread that creates it, and executor threads may
    have been created in another one.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = func(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=f"pilotgw-{getattr(func, '__name__', 'kernel')}", daemon=True).start()
    return await future


def parse_ports(ports: Iterable[int] | None) -> frozenset[int] | None:
    """``None`` (every port) or a non-empty set of TCP/UDP ports 1-65535."""
    if ports is None:
        return None
    chosen = frozenset(ports)
    if not chosen:
        raise MappingError("the port list is empty", "invalid_argument")
    for port in chosen:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise MappingError(f"invalid port {port!r}: must be 1-65535", "invalid_argument")
    return chosen


class Gateway:
    """Mapped local IPs for overlay agents: TCP on any (or listed) port, UDP and ping.

    ``ports=None`` proxies every port; a list restricts TCP and UDP to it.
    Methods raise :class:`MappingError` (table rules) or :class:`KernelError`
    (permissions, kernel); both carry a CLI error ``code``.
    """

    def __init__(
        self,
        overlay: Overlay,
        subnet: str | ipaddress.IPv4Network = DEFAULT_SUBNET,
        ports: Iterable[int] | None = None,
        state_dir: Path | str | None = None,
        *,
        device: str = DEFAULT_DEVICE,
        route_table: int = DEFAULT_TABLE,
        rule_priority: int = DEFAULT_RULE_PRIORITY,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        linger: float = DEFAULT_LINGER,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        udp_idle: float = DEFAULT_UDP_IDLE,
    ) -> None:
        self.overlay = overlay
        self.subnet = subnet if isinstance(subnet, ipaddress.IPv4Network) else parse_subnet(subnet)
        self.ports = parse_ports(ports)
        self.state_dir = Path(state_dir) if state_dir is not None else Path.home() / ".pilot"
        self.mappings_path = self.state_dir / MAPPINGS_FILE
        self.kernel_state_path = self.state_dir / KERNEL_STATE_FILE
        self._plumbing = SubnetPlumbing(
            self.subnet,
            self.kernel_state_path,
            device=device,
            route_table=route_table,
            rule_priority=rule_priority,
        )
        self._timeouts = {"dial_timeout": dial_timeout, "idle_timeout": idle_timeout, "linger": linger}
        self._ping_timeout = ping_timeout
        self._udp_idle = udp_idle
        self.table = MappingTable(self.subnet)
        self._metrics: dict[ipaddress.IPv4Address, MappingMetrics] = {}
        self._tcp: TcpProxy | None = None
        self._relay: PacketRelay | None = None
        self._lock = asyncio.Lock()
        self.running = False

    @property
    def device(self) -> str:
        return self._plumbing.device

    async def start(self) -> None:
        """Check permissions, clean up after a crashed run, load the table, install, serve.

        Fails before touching anything without CAP_NET_ADMIN
        (``permission_denied``). Mappings saved outside the current subnet
        are dropped with a warning.
        """
        require_net_admin()
        async with self._lock:
            if self.running:
                raise KernelError("the gateway is already started", "already_exists")
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            undone = await run_blocking(cleanup_stale, self.kernel_state_path)
            if undone:
                log.warning("removed what a previous gateway left behind: %s", ", ".join(undone))
            self.table, dropped = MappingTable.load(self.mappings_path, self.subnet)
            for mapping in dropped:
                log.warning(
                    "dropped saved mapping %s -> %s: not usable in %s", mapping.local_ip, mapping.addr, self.subnet
                )
            self._metrics = {mapping.local_ip: MappingMetrics() for mapping in self.table.mappings()}
            tcp = TcpProxy(self.overlay, self.table.by_ip, self.metrics_for, self.ports, **self._timeouts)
            try:
                tun = await run_blocking(
                    self._plumbing.install,
                    tcp.port,
                    self.ports,
                    [mapping.local_ip for mapping in self.table.mappings()],
                )
                await tcp.start()
                relay = PacketRelay(
                    self.overlay,
                    tun,
                    self.table.by_ip,
                    self.metrics_for,
                    ping_timeout=self._ping_timeout,
                    udp_idle=self._udp_idle,
                )
                relay.start()
            except BaseException:
                await tcp.close()
                await run_blocking(self._plumbing.remove)
                raise
            self._tcp, self._relay = tcp, relay
            self.running = True

    async def stop(self) -> None:
        """Reset live connections and remove everything added to the kernel; idempotent.

        The mapping table stays on disk for the next start.
        """
        async with self._lock:
            if self._tcp is not None:
                await self._tcp.close()
                self._tcp = None
            if self._relay is not None:
                await self._relay.close()
                self._relay = None
            if self.running:
                await run_blocking(self._plumbing.remove)
            self.running = False

    async def __aenter__(self) -> "Gateway":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def map(self, addr: Addr, ip: str | ipaddress.IPv4Address | None = None) -> Mapping:
        """Map ``addr`` to ``ip`` (or the next free IP); persisted; live at once.

        Mapping an already-mapped address returns its existing IP.
        """
        async with self._lock:
            mapping, new = self.table.map(addr, ip)
            if not new:
                return mapping
            try:
                if self.running:
                    await run_blocking(self._plumbing.add_mapped, mapping.local_ip)
                self.table.save(self.mappings_path)
            except BaseException:
                self.table.unmap(mapping.local_ip)
                raise
            self._metrics[mapping.local_ip] = MappingMetrics()
            return mapping

    async def unmap(self, ip: str | ipaddress.IPv4Address) -> Mapping:
        """Remove a mapping: new connections are refused, live ones are reset."""
        async with self._lock:
            mapping = self.table.unmap(ip)
            self.table.save(self.mappings_path)
            self._metrics.pop(mapping.local_ip, None)
            if self.running:
                await run_blocking(self._plumbing.remove_mapped, mapping.local_ip)
                assert self._tcp is not None and self._relay is not None
                self._tcp.close_mapping(mapping.local_ip)
                self._relay.close_mapping(mapping.local_ip)
            return mapping

    def mappings(self) -> list[Mapping]:
        return self.table.mappings()

    def metrics_for(self, mapping: Mapping) -> MappingMetrics:
        """The counters of ``mapping`` (created on first use)."""
        return self._metrics.setdefault(mapping.local_ip, MappingMetrics())

    def metrics(self) -> dict[str, dict[str, int]]:
        """Counters per mapped IP, as plain data (for JSON output)."""
        return {
            str(mapping.local_ip): self.metrics_for(mapping).as_dict() for mapping in self.table.mappings()
        }
