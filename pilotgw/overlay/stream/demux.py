"""The stream connection table, listeners and ephemeral ports, sans-IO.

The daemon hands every stream packet to :meth:`StreamTable.receive`, which
finds the connection by (local port = DstPort, remote address = Src, remote
port = SrcPort) in a dict -- not the reference's linear scan -- and applies
§2.12's responder rules:

* a SYN to a port nobody listens on is answered with an RST;
* a SYN that matches a live connection is a duplicate and goes to it (it
  repeats its SYN-ACK); one that matches a TIME_WAIT entry replaces that entry
  with a fresh connection (T-D16);
* the per-port and total connection limits answer with an RST;
* a packet that is not a SYN and matches nothing is dropped silently, and an
  RST is never answered.

Rate limiting SYNs and the accept queue belong to the daemon.
"""

from __future__ import annotations

import random
from collections import Counter, deque

from pilotgw.overlay.address import PORT_EPHEMERAL_MAX, PORT_EPHEMERAL_MIN, Addr, SocketAddr
from pilotgw.overlay.packet import FLAG_ACK, FLAG_RST, FLAG_SYN, PROTO_STREAM, Packet
from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.options import StreamOptions
from pilotgw.overlay.stream.states import State

Key = tuple[int, Addr, int]  # (local port, remote address, remote port)

#: The reference's defaults (§2.22).
MAX_CONNECTIONS_PER_PORT = 1024
MAX_TOTAL_CONNECTIONS = 4096

_DONE = (State.CLOSED, State.TIME_WAIT)
_EPHEMERAL_COUNT = PORT_EPHEMERAL_MAX - PORT_EPHEMERAL_MIN + 1


class PortsExhausted(RuntimeError):
    """Every ephemeral port is held by a live connection (``code`` ``ports``)."""

    code = "ports"


class StreamTable:
    """All stream connections of one node."""

    def __init__(
        self,
        local: Addr,
        options: StreamOptions | None = None,
        max_per_port: int = MAX_CONNECTIONS_PER_PORT,
        max_total: int = MAX_TOTAL_CONNECTIONS,
        rng: random.Random | None = None,
    ) -> None:
        self.local = local
        self.options = options or StreamOptions()
        self.max_per_port = max_per_port
        self.max_total = max_total
        self.connections: dict[Key, Connection] = {}
        self.listeners: set[int] = set()
        #: Connections accepted from SYNs, for the owner to hand to applications.
        self.accepted: deque[Connection] = deque()
        self._next_id = 1
        # Start at a random point of the ephemeral range (T-D16).
        self._next_port = (rng or random.SystemRandom()).randrange(PORT_EPHEMERAL_MIN, PORT_EPHEMERAL_MAX + 1)
        self._out: list[Packet] = []

    def listen(self, port: int) -> None:
        self.listeners.add(port)

    def unlisten(self, port: int) -> None:
        self.listeners.discard(port)

    def allocate_port(self) -> int:
        """The next ephemeral port not used by a live connection.
        Raises :class:`PortsExhausted` after a full sweep."""
        live = {k[0] for k, c in self.connections.items() if c.state not in _DONE}
        for _ in range(_EPHEMERAL_COUNT):
            port = self._next_port
            self._next_port = PORT_EPHEMERAL_MIN if port == PORT_EPHEMERAL_MAX else port + 1
            if port not in live:
                return port
        raise PortsExhausted("no free ephemeral port")

    def dial(self, remote: SocketAddr, now: float, options: StreamOptions | None = None) -> Connection:
        """Create and register an outbound connection (its SYN is queued in it)."""
        port = self.allocate_port()
        conn = Connection.dial(SocketAddr(self.local, port), remote, now, options or self.options)
        self._register((port, remote.addr, remote.port), conn)
        return conn

    def receive(self, p: Packet, now: float) -> Connection | None:
        """Route one stream packet; returns the connection that took it
        (new ones are also appended to :attr:`accepted`), or None."""
        key = (p.dst_port, Addr(p.src_net, p.src_node), p.src_port)
        conn = self.connections.get(key)
        flags = p.flags
        is_syn = flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN
        if conn is not None and not (is_syn and conn.state in _DONE):
            conn.receive(p, now)
            return conn
        if not is_syn:
            return None  # no RST for stray ACKs, FINs or RSTs (§2.19)
        if p.dst_port not in self.listeners:
            self._reset(p)
            return None
        live = [c for k, c in self.connections.items() if k != key and c.state not in _DONE]
        if len(live) >= self.max_total or sum(1 for c in live if c.local.port == p.dst_port) >= self.max_per_port:
            self._reset(p)
            return None
        remote = SocketAddr(key[1], p.src_port)
        conn = Connection.accept(SocketAddr(self.local, p.dst_port), remote, p, now, self.options)
        self._register(key, conn)
        self.accepted.append(conn)
        return conn

    def remove_closed(self) -> list[Connection]:
        """Drop CLOSED connections from the table and return them."""
        gone = [k for k, c in self.connections.items() if c.state == State.CLOSED]
        return [self.connections.pop(k) for k in gone]

    def packets_to_send(self) -> list[Packet]:
        """RSTs the table itself generated (connections have their own queues)."""
        out, self._out = self._out, []
        return out

    def counts(self) -> Counter[State]:
        """Connections per state (for status output and metrics)."""
        return Counter(c.state for c in self.connections.values())

    def _register(self, key: Key, conn: Connection) -> None:
        conn.conn_id = self._next_id
        self._next_id += 1
        self.connections[key] = conn

    def _reset(self, p: Packet) -> None:
        """RST with the offending packet's ports swapped (§2.19)."""
        self._out.append(
            Packet(PROTO_STREAM, FLAG_RST, self.local.network, self.local.node, p.src_net, p.src_node, p.dst_port, p.src_port)
        )
