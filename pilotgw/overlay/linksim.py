"""A deterministic two-endpoint network simulator with a virtual clock.

Two sans-IO endpoints (stream connections, or anything with the same four
methods) are joined by a link with, per direction, propagation delay, a
bottleneck rate with a tail-drop queue, and seeded random loss, reordering,
duplication and corruption. Time is virtual: a 16 MiB transfer at 100 Mbit/s
"takes" 1.4 s of simulated time and however little CPU the endpoints need,
and the same seed always gives the same run, so a failure reproduces.

By default every packet is really encoded and decoded (:mod:`.packet`), so
corruption is a flipped bit that the CRC must catch, and the receiver gets
the same kind of payload as on the network path.

Typical use::

    sim = LinkSim(client, server, LinkConfig(delay=0.005, loss=0.05), seed=1,
                  on_event=lambda side, ev: ...)
    sim.start()              # flush whatever the endpoints already queued
    sim.run(until=60.0, stop=lambda: done)

After driving an endpoint from outside (``send()``, ``read()``,
``close()``) call :meth:`LinkSim.flush` for it, as a daemon would.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.packet import HEADER_LEN, Packet, decode, encode


class Endpoint(Protocol):
    """What the simulator drives (a :class:`~pilotgw.overlay.stream.connection.Connection` fits)."""

    def receive(self, packet: Packet, now: float) -> None: ...

    def packets_to_send(self, now: float) -> list[Packet]: ...

    def next_timer(self) -> float | None: ...

    def timer_expired(self, now: float) -> None: ...

    def next_event(self) -> object | None: ...


@dataclass(frozen=True)
class LinkConfig:
    """One direction of the link. Probabilities are per packet, 0..1."""

    delay: float = 0.005  #: one-way propagation delay, seconds
    bandwidth: float | None = None  #: bottleneck rate in bits/s (None: infinite)
    queue: int | None = None  #: bottleneck queue limit in bytes (None: unlimited)
    loss: float = 0.0
    reorder: float = 0.0  #: probability a packet is held back by an extra delay
    reorder_delay: float = 0.002  #: mean of that extra delay (uniform 0..2x)
    duplicate: float = 0.0
    corrupt: float = 0.0  #: probability one bit of the encoded packet flips
    overhead: int = 0  #: bytes of framing per packet counted against the rate
    #: IP MTU of the path, or None. With an MTU, a datagram larger than one
    #: IP packet is fragmented and ``loss`` applies to *each fragment*, as on a
    #: real lossy link: a 64 KB datagram (45 fragments at MTU 1500) is lost
    #: with p = 1 - (1 - loss)^45, which is what collapses large segments.
    mtu: int | None = None
    #: The bottleneck is the sender's own interface (a tc qdisc there): a
    #: packet the full queue cannot take is refused back to the sender --
    #: ``sendto`` failing with ENOBUFS -- through its ``send_failed(packets,
    #: now)`` instead of vanishing. Needs ``queue``.
    refuse: bool = False
    #: The receiving host's IP reassembly memory in bytes (Linux
    #: ``ipfrag_high_thresh``, 4 MiB by default), or None. Setting it models
    #: fragments one by one, as the kernel handles them: each fragment is lost
    #: on its own; a queue that fills in the middle of a datagram lets the
    #: fragments before that point go out (a *partial train*: with ``refuse``
    #: the sender is still told the datagram failed, as ``sendto`` reports
    #: ENOBUFS after the qdisc dropped one fragment); and every incomplete
    #: datagram pins its arrived fragments in this memory for
    #: ``reassembly_timeout``. While the memory is full, every fragmented
    #: datagram is dropped at the receiver: only unfragmented ones get through.
    #: Needs ``mtu``.
    reassembly: int | None = None
    #: How long an incomplete datagram's fragments stay (``ipfrag_time``).
    reassembly_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate", "corrupt"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability, not {v}")
        if self.delay < 0 or self.reorder_delay < 0:
            raise ValueError("delays must be >= 0")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be positive")
        if self.refuse and self.queue is None:
            raise ValueError("refuse needs a bottleneck queue")
        if self.mtu is not None and self.mtu < 68:
            raise ValueError("mtu must be at least 68 (the IPv4 minimum)")
        if self.reassembly is not None and (self.mtu is None or self.reassembly <= 0):
            raise ValueError("reassembly needs an mtu and a positive memory size")

    def fragments(self, size: int) -> int:
        """IP packets a ``size``-byte UDP payload takes on this link (1 without an MTU)."""
        if self.mtu is None:
            return 1
        per = (self.mtu - _IP_HEADER) & ~7  # fragment payloads are multiples of 8
        return -(-(size + _UDP_HEADER) // per)


@dataclass
class LinkStats:
    """Counters for one direction."""

    sent: int = 0  #: packets offered to the link
    delivered: int = 0  #: packets handed to the far endpoint
    lost: int = 0  #: dropped by random loss
    queue_drops: int = 0  #: dropped because the bottleneck queue was full
    refused: int = 0  #: refused back to the sender (``refuse``) because the queue was full
    reordered: int = 0
    duplicated: int = 0
    corrupted: int = 0  #: corrupted copies put on the link (a bit flipped)
    rejected: int = 0  #: corrupted packets the decoder refused (should equal corrupted)
    bytes_delivered: int = 0  #: wire bytes (header + payload) delivered
    payload_delivered: int = 0
    decode_errors: dict[str, int] = field(default_factory=dict)
    #: With ``reassembly``: datagrams that left only part of their fragments
    #: at the receiver (random loss or a partial train), and fragmented
    #: datagrams dropped there because the reassembly memory was full.
    partial: int = 0
    reassembly_drops: int = 0


_DELIVER = 0
_TIMER = 1
_DELIVER_FRAGMENTED = 2  #: a whole fragmented datagram: needs reassembly memory
_PIN = 3  #: an incomplete datagram's fragments arrive and pin memory
_IP_HEADER = 20
_UDP_HEADER = 8
#: What the kernel charges per fragment beyond its bytes (sk_buff and shared
#: info: its ``truesize``), roughly.
_FRAGMENT_OVERHEAD = 768


class LinkSim:
    """Joins endpoint 0 and endpoint 1; ``forward`` is 0 -> 1."""

    def __init__(
        self,
        a: Endpoint,
        b: Endpoint,
        forward: LinkConfig,
        backward: LinkConfig | None = None,
        seed: int = 0,
        wire: bool = True,
        on_event: Callable[[int, object], None] | None = None,
    ) -> None:
        self.endpoints = (a, b)
        self.links = (forward, backward if backward is not None else forward)
        self.stats = (LinkStats(), LinkStats())
        self.now = 0.0
        self.events: list[tuple[int, object]] = []  # every event, if no handler is given
        self._rng = random.Random(seed)
        self._wire = wire
        self._on_event = on_event
        self._heap: list[tuple[float, int, int, int, object]] = []
        self._order = 0
        self._busy_until = [0.0, 0.0]
        self._timer_at: list[float | None] = [None, None]
        self._timer_gen = [0, 0]
        # Reassembly memory in use at each direction's receiver, and when
        # which amount of it is released (in time order: the timeout is fixed).
        self._pinned = [0, 0]
        self._unpin: tuple[deque[tuple[float, int]], deque[tuple[float, int]]] = (deque(), deque())

    # -- driving ----------------------------------------------------------

    def start(self) -> None:
        """Flush both endpoints (e.g. a dialler's queued SYN)."""
        self.flush(0)
        self.flush(1)

    def run(self, until: float | None = None, stop: Callable[[], bool] | None = None, max_steps: int = 50_000_000) -> None:
        """Process events in time order until none remain, the clock passes
        ``until``, or ``stop()`` returns true (checked after every step)."""
        heap = self._heap
        steps = 0
        while heap:
            t = heap[0][0]
            if until is not None and t > until:
                self.now = until
                return
            _, _, kind, side, item = heapq.heappop(heap)
            self.now = t
            if kind == _DELIVER:
                self._deliver(side, item)
            elif kind == _DELIVER_FRAGMENTED:
                if self._reassembly_full(side):
                    self.stats[1 - side].reassembly_drops += 1
                else:
                    self._deliver(side, item)
            elif kind == _PIN:
                if not self._reassembly_full(side):
                    self._pinned[1 - side] += item  # type: ignore[operator]
                    self._unpin[1 - side].append((t + self.links[1 - side].reassembly_timeout, item))  # type: ignore[arg-type]
            else:
                if item != self._timer_gen[side]:
                    continue
                self._timer_at[side] = None
                self.endpoints[side].timer_expired(t)
                self.flush(side)
            steps += 1
            if stop is not None and stop():
                return
            if steps >= max_steps:
                raise RuntimeError(f"simulation did not finish within {max_steps} steps")
        if until is not None:
            self.now = until

    def flush(self, side: int) -> None:
        """Send what ``side`` has queued, hand out its events, re-arm its timer.
        Event handlers may call the endpoint again; their output is sent too."""
        ep = self.endpoints[side]
        now = self.now
        retried = False
        while True:
            pkts = ep.packets_to_send(now)
            refused = [p for p in pkts if not self._transmit(side, p)]
            if refused:
                self.stats[side].refused += len(refused)
                send_failed = getattr(ep, "send_failed", None)
                if send_failed is not None and not retried:
                    retried = True  # what it sends next (ACKs) goes once
                    send_failed(refused, now)
                    continue
            handled = False
            ev = ep.next_event()
            while ev is not None:
                handled = True
                if self._on_event is not None:
                    self._on_event(side, ev)
                else:
                    self.events.append((side, ev))
                ev = ep.next_event()
            if not handled:
                break
        t = ep.next_timer()
        if t != self._timer_at[side]:
            self._timer_gen[side] += 1
            self._timer_at[side] = t
            if t is not None:
                self._push(t if t > now else now, _TIMER, side, self._timer_gen[side])

    # -- the link ---------------------------------------------------------

    def _push(self, t: float, kind: int, side: int, item: object) -> None:
        self._order += 1
        heapq.heappush(self._heap, (t, self._order, kind, side, item))

    def _reassembly_full(self, receiver: int) -> bool:
        """Whether the reassembly memory of the host at ``receiver`` (the
        arrival side) is over its limit now, after releasing what timed out."""
        d = 1 - receiver  # the direction whose receiver that host is
        unpin = self._unpin[d]
        now = self.now
        while unpin and unpin[0][0] <= now:
            self._pinned[d] -= unpin.popleft()[1]
        limit = self.links[d].reassembly
        return limit is not None and self._pinned[d] > limit

    def _transmit(self, side: int, p: Packet) -> bool:
        """Put ``p`` on the link; False when the sender's queue refused it."""
        cfg = self.links[side]
        if cfg.reassembly is not None:
            return self._transmit_fragments(side, p, cfg)
        st = self.stats[side]
        rng = self._rng
        st.sent += 1
        size = HEADER_LEN + len(p.payload) + cfg.overhead
        now = self.now
        depart = now
        if cfg.bandwidth is not None:
            rate = cfg.bandwidth / 8.0
            busy = self._busy_until[side]
            backlog = (busy - now) * rate if busy > now else 0.0
            if cfg.queue is not None and backlog + size > cfg.queue:
                if cfg.refuse:
                    return False
                st.queue_drops += 1
                return True
            depart = (busy if busy > now else now) + size / rate
            self._busy_until[side] = depart
        if cfg.loss:
            frags = cfg.fragments(size)
            p_lost = cfg.loss if frags == 1 else 1.0 - (1.0 - cfg.loss) ** frags
            if rng.random() < p_lost:
                st.lost += 1
                return True
        item: object = p
        corrupted = False
        if self._wire:
            data = encode(p)
            if cfg.corrupt and rng.random() < cfg.corrupt:
                corrupted = True
                st.corrupted += 1
                buf = bytearray(data)
                bit = rng.randrange(len(buf) * 8)
                buf[bit >> 3] ^= 1 << (bit & 7)
                data = bytes(buf)
            item = data
        arrive = depart + cfg.delay
        if cfg.reorder and rng.random() < cfg.reorder:
            st.reordered += 1
            arrive += rng.uniform(0.0, 2.0 * cfg.reorder_delay)
        target = 1 - side
        self._push(arrive, _DELIVER, target, item)
        if cfg.duplicate and rng.random() < cfg.duplicate:
            st.duplicated += 1
            st.corrupted += corrupted  # the copy carries the same flipped bit
            self._push(arrive + rng.uniform(0.0, cfg.reorder_delay), _DELIVER, target, item)
        return True

    def _transmit_fragments(self, side: int, p: Packet, cfg: LinkConfig) -> bool:
        """:meth:`_transmit` with fragments modelled one by one (``reassembly``)."""
        st = self.stats[side]
        rng = self._rng
        st.sent += 1
        size = HEADER_LEN + len(p.payload) + cfg.overhead
        n = cfg.fragments(size)
        per = -(-size // n)  # bytes per fragment, near enough
        now = self.now
        depart = now
        admitted = n
        if cfg.bandwidth is not None:
            rate = cfg.bandwidth / 8.0
            busy = self._busy_until[side]
            backlog = (busy - now) * rate if busy > now else 0.0
            if cfg.queue is not None:
                room = cfg.queue - backlog
                admitted = min(n, int(room // per)) if room > 0 else 0
            depart = (busy if busy > now else now) + admitted * per / rate
            if admitted:
                self._busy_until[side] = depart
        arrived = admitted
        if cfg.loss:
            arrived = sum(1 for _ in range(admitted) if rng.random() >= cfg.loss)
            if arrived < admitted:
                st.lost += 1
        if arrived < n:
            if arrived and n > 1:
                st.partial += 1
                self._push(depart + cfg.delay, _PIN, 1 - side, arrived * (per + _FRAGMENT_OVERHEAD))
            if admitted < n:
                if cfg.refuse:
                    return False
                st.queue_drops += 1
            return True
        item: object = encode(p) if self._wire else p
        self._push(depart + cfg.delay, _DELIVER_FRAGMENTED if n > 1 else _DELIVER, 1 - side, item)
        return True

    def _deliver(self, side: int, item: object) -> None:
        st = self.stats[1 - side]
        if isinstance(item, bytes):
            try:
                p = decode(item)
            except DecodeError as exc:
                st.rejected += 1
                st.decode_errors[exc.code] = st.decode_errors.get(exc.code, 0) + 1
                return
        else:
            p = item  # type: ignore[assignment]
        st.delivered += 1
        st.bytes_delivered += HEADER_LEN + len(p.payload)
        st.payload_delivered += len(p.payload)
        self.endpoints[side].receive(p, self.now)
        self.flush(side)
