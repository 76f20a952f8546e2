"""The TUN slow path: ICMP echo and UDP for mapped IPs.

Only these reach the TUN device (TCP is redirected to :mod:`.tcp` before
routing, and nftables refuses the rest). Here:

* an echo request to a mapped IP starts an overlay ping to the agent; the
  echo reply is written back only if the agent answered within
  ``ping_timeout`` and the IP is still mapped — so ``ping 10.4.0.1`` tells
  whether the *agent* is up, never just the gateway;
* each UDP flow (client IP and port → mapped IP and port) gets an overlay
  port of its own (:meth:`Overlay.bind_datagrams`); its datagrams go to the
  agent's same port, and datagrams the agent sends back from that port
  become UDP packets to the client, from the mapped IP. Flows expire after
  ``udp_idle`` seconds; the number of flows and of datagrams queued per flow
  is bounded, and excess is dropped, as UDP may be.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable

from pilotgw.overlay.errors import DecodeError
from pilotgw.proxy.mapping import Mapping
from pilotgw.proxy.metrics import MappingMetrics
from pilotgw.proxy.overlay import DatagramPort, Overlay
from pilotgw.tun import ipv4
from pilotgw.tun.device import TunDevice

log = logging.getLogger(__name__)

DEFAULT_PING_TIMEOUT = 3.0
DEFAULT_UDP_IDLE = 60.0
MAX_FLOWS = 1024
MAX_PINGS = 64
FLOW_QUEUE = 64
READS_PER_WAKEUP = 64

FlowKey = tuple[ipaddress.IPv4Address, int, ipaddress.IPv4Address, int]


class _UdpFlow:
    """One client UDP conversation with a mapped IP and port."""

    def __init__(self, relay: "PacketRelay", key: FlowKey, mapping: Mapping, metrics: MappingMetrics) -> None:
        self.relay = relay
        self.client_ip, self.client_port, self.local_ip, self.remote_port = key
        self.key = key
        self.mapping = mapping
        self.metrics = metrics
        self.loop = asyncio.get_running_loop()
        self.last_used = self.loop.time()
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(FLOW_QUEUE)
        self.task = asyncio.ensure_future(self._run())

    def submit(self, data: bytes) -> None:
        self.last_used = self.loop.time()
        if self.queue.full():
            self.relay.dropped += 1
            return
        self.queue.put_nowait(data)

    async def _run(self) -> None:
        try:
            port = await self.relay.overlay.bind_datagrams()
        except Exception as exc:
            log.info("bind overlay datagram port failed: %r", exc)
            self.metrics.errors += 1
            self.relay.forget(self)
            return
        receiver = asyncio.ensure_future(self._receive(port))
        try:
            while True:
                data = await self.queue.get()
                try:
                    await port.send(self.mapping.addr, self.remote_port, data)
                except Exception as exc:
                    log.debug("overlay sendto %s:%d failed: %r", self.mapping.addr, self.remote_port, exc)
                    self.metrics.errors += 1
                    continue
                self.metrics.datagrams_to_overlay += 1
        finally:
            receiver.cancel()
            port.close()

    async def _receive(self, port: DatagramPort) -> None:
        while True:
            try:
                datagram = await port.recv()
            except EOFError:
                return
            if datagram.addr != self.mapping.addr or datagram.port != self.remote_port:
                self.relay.dropped += 1
                continue
            try:
                packet = ipv4.build_udp(
                    self.local_ip,
                    self.client_ip,
                    self.remote_port,
                    self.client_port,
                    datagram.data,
                    ident=self.relay.next_ident(),
                )
            except DecodeError:
                self.relay.dropped += 1
                continue
            self.last_used = self.loop.time()
            if self.relay.tun.write(packet):
                self.metrics.datagrams_from_overlay += 1
            else:
                self.relay.dropped += 1

    def close(self) -> None:
        self.task.cancel()


class PacketRelay:
    """Reads the TUN device and answers ICMP echo and UDP for mapped IPs."""

    def __init__(
        self,
        overlay: Overlay,
        tun: TunDevice,
        resolve: Callable[[ipaddress.IPv4Address], Mapping | None],
        metrics_for: Callable[[Mapping], MappingMetrics],
        *,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        udp_idle: float = DEFAULT_UDP_IDLE,
        max_flows: int = MAX_FLOWS,
    ) -> None:
        self.overlay = overlay
        self.tun = tun
        self.resolve = resolve
        self.metrics_for = metrics_for
        self.ping_timeout = ping_timeout
        self.udp_idle = udp_idle
        self.max_flows = max_flows
        self.dropped = 0
        self._flows: OrderedDict[FlowKey, _UdpFlow] = OrderedDict()
        self._pings: set[asyncio.Task[None]] = set()
        self._ident = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.tun.fd, self._on_readable)
        self._sweeper = self._loop.call_later(self.udp_idle / 2, self._sweep)

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def flows(self, ip: ipaddress.IPv4Address) -> int:
        return sum(1 for flow in self._flows.values() if flow.local_ip == ip)

    def forget(self, flow: _UdpFlow) -> None:
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]

    def close_mapping(self, ip: ipaddress.IPv4Address) -> None:
        """Drop the UDP flows of ``ip`` (it was just unmapped)."""
        for flow in [flow for flow in self._flows.values() if flow.local_ip == ip]:
            self.forget(flow)
            flow.close()

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.tun.fd)
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [flow.task for flow in self._flows.values()] + list(self._pings)
        for task in tasks:
            task.cancel()
        self._flows.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_readable(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            packet = self.tun.read()
            if packet is None:
                return
            self.handle_packet(packet)

    def handle_packet(self, raw: bytes) -> None:
        """Act on one packet from the TUN device; anything unusable is dropped."""
        if not raw or raw[0] >> 4 != 4:
            return  # IPv6 housekeeping from the kernel: not ours
        try:
            packet = ipv4.parse_ipv4(raw)
            mapping = self.resolve(packet.dst)
            if mapping is None:
                raise DecodeError(f"{packet.dst} is not mapped", "unmapped")
            if packet.protocol == ipv4.PROTO_ICMP:
                self._echo(packet, ipv4.parse_icmp_echo(packet), mapping)
            elif packet.protocol == ipv4.PROTO_UDP:
                self._udp(packet, ipv4.parse_udp(packet), mapping)
            else:
                raise DecodeError(f"IP protocol {packet.protocol}", "unsupported")
        except DecodeError as exc:
            log.debug("dropped TUN packet: %s", exc)
            self.dropped += 1

    def _echo(self, packet: ipv4.IPv4Packet, echo: ipv4.IcmpEcho, mapping: Mapping) -> None:
        if len(self._pings) >= MAX_PINGS:
            self.dropped += 1
            return
        task = asyncio.ensure_future(self._answer_echo(packet, echo, mapping))
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    async def _answer_echo(self, packet: ipv4.IPv4Packet, echo: ipv4.IcmpEcho, mapping: Mapping) -> None:
        metrics = self.metrics_for(mapping)
        try:
            await asyncio.wait_for(self.overlay.ping(mapping.addr), self.ping_timeout)
        except Exception as exc:  # the agent did not answer: neither do we
            log.debug("overlay ping %s failed: %r", mapping.addr, exc)
            metrics.pings_unanswered += 1
            return
        if self.resolve(packet.dst) != mapping:
            return  # unmapped while the ping was in flight
        metrics.pings_answered += 1
        self.tun.write(ipv4.build_echo_reply(packet.dst, packet.src, echo, ident=self.next_ident()))

    def _udp(self, packet: ipv4.IPv4Packet, datagram: ipv4.UdpDatagram, mapping: Mapping) -> None:
        key = (packet.src, datagram.src_port, packet.dst, datagram.dst_port)
        flow = self._flows.get(key)
        if flow is None or flow.mapping != mapping:
            if flow is not None:
                self.forget(flow)
                flow.close()
            if len(self._flows) >= self.max_flows:
                _, oldest = self._flows.popitem(last=False)
                oldest.close()
            flow = _UdpFlow(self, key, mapping, self.metrics_for(mapping))
            self._flows[key] = flow
        else:
            self._flows.move_to_end(key)
        flow.submit(datagram.data)

    def _sweep(self) -> None:
        assert self._loop is not None
        deadline = self._loop.time() - self.udp_idle
        for flow in [flow for flow in self._flows.values() if flow.last_used < deadline]:
            self.forget(flow)
            flow.close()
        self._sweeper = self._loop.call_later(self.udp_idle / 2, self._sweep)
