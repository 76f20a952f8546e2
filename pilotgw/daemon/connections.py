"""The daemon side of streams: the connection table, one timer heap, SYN
limits, and the large-segment negotiation between pilotgw nodes.

The sans-IO :class:`~pilotgw.overlay.stream.demux.StreamTable` routes packets
by (local port, remote address, remote port), answers SYNs to closed ports
and over-limit SYNs with RST, and allocates ephemeral ports from a random
start. Here we add what needs the daemon:

* the reference's SYN token buckets (global ``-syn-rate-limit``/s, 10/s per
  source, silently dropping) and a trust-check hook on inbound SYNs. Peers we
  trust skip the buckets: their SYNs arrive over an authenticated tunnel, and
  a gateway opening hundreds of connections to an agent on behalf of curl
  and browsers must not be paced at 10 per second (the connection limits
  still apply);
* an accept queue of 64 per listener for owners that are not taking
  connections (the IPC client's socket is full): beyond it, RST;
* one :class:`~pilotgw.daemon.timers.TimerHeap` for every connection's next
  deadline -- no task or loop timer per connection;
* coalesced transmission: input marks a connection dirty and one
  ``call_soon`` flushes every dirty connection, so a burst of received
  segments produces one ACK decision and a burst of writes fills segments;
* local congestion: ``transmit`` returns False when the node's UDP socket
  refused a packet (ENOBUFS/EAGAIN from a full qdisc or buffer); those
  packets go back to the stream (:meth:`Connection.send_failed`), which
  treats them as lost and backs off, instead of them vanishing silently;
* owner callbacks (an IPC client or a built-in service): ``on_data``,
  ``on_writable``, ``on_closed``; data stays in the stream's receive buffer
  until the owner reads it, which is the backpressure.

Large segments (ours): a dialler's SYN carries an 8-byte extension
``"PGX1" ‖ u32 max segment``. A reference responder ignores data on a SYN;
a pilotgw responder accepts with ``min(ours, theirs)`` and echoes the
extension in its SYN-ACK, and only then does the dialler raise its segment
size (:meth:`Connection.raise_segment_size`). A reference peer therefore
never sees a segment over 4096 bytes.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from pilotgw.daemon.log import Log
from pilotgw.daemon.ratelimit import TokenBucket
from pilotgw.daemon.timers import TimerHeap
from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.packet import FLAG_ACK, FLAG_SYN, Packet
from pilotgw.overlay.stream import events as ev
from pilotgw.overlay.stream.connection import Connection
from pilotgw.overlay.stream.demux import StreamTable
from pilotgw.overlay.stream.options import REFERENCE_MSS, StreamOptions
from pilotgw.overlay.stream.states import State, StreamStateError

if TYPE_CHECKING:  # pragma: no cover
    pass

log = Log("conns")

EXT_MAGIC = b"PGX1"
_EXT = struct.Struct(">4sI")
ACCEPT_QUEUE = 64
PER_SOURCE_SYN_RATE = 10
MAX_SYN_SOURCES = 4096


class Owner(Protocol):
    """Who holds a connection: an IPC client or a built-in service."""

    def on_data(self, conn: "Conn") -> None: ...

    def on_writable(self, conn: "Conn") -> None: ...

    def on_closed(self, conn: "Conn") -> None: ...


class Listener(Protocol):
    """Who accepts connections on a bound port."""

    writable: bool

    def on_accept(self, conn: "Conn") -> None: ...


class Conn:
    """A daemon-side handle on one stream connection (IPC ``conn_id``)."""

    __slots__ = ("id", "stream", "table", "local_port", "remote", "remote_port", "owner", "push_enabled",
                 "close_pushed", "local_closed", "eof", "error", "dial_future", "ext", "writer_waiting",
                 "syns", "__weakref__")

    def __init__(self, stream: Connection, table: "ConnTable") -> None:
        self.id: int = stream.conn_id  # type: ignore[assignment]
        self.stream = stream
        self.table = table
        self.local_port = stream.local.port
        self.remote: Addr = stream.remote.addr
        self.remote_port = stream.remote.port
        self.owner: Optional[Owner] = None
        self.push_enabled = True
        self.close_pushed = False
        self.local_closed = False
        self.eof = False  # no more data will arrive (FIN, RST, error, closed)
        self.error: Optional[str] = None
        self.dial_future: Optional[asyncio.Future[Conn]] = None
        self.ext = 0  # negotiated large segment size (0: none)
        self.writer_waiting: Any = None
        self.syns = 0  # SYNs sent by this dialler

    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` received bytes (frees window)."""
        data = self.stream.read(max_bytes)
        if data:
            self.table.mark(self)
        return data

    @property
    def readable(self) -> int:
        return self.stream.readable

    @property
    def finished(self) -> bool:
        """The receive side is over and everything was read (IPC CloseOK push)."""
        return (self.eof or self.local_closed) and not self.stream.readable

    @property
    def state_name(self) -> str:
        return self.stream.state.name

    def __repr__(self) -> str:
        return f"<Conn {self.id} :{self.local_port} -> {self.remote}:{self.remote_port} {self.state_name}>"


class ConnTable:
    """All stream connections of the node, driven by the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        local: Addr,
        transmit: Callable[[Packet], Optional[bool]],
        *,
        options: StreamOptions,
        large_options: Optional[StreamOptions] = None,
        syn_rate: int = 100,
        max_per_port: int = 1024,
        max_total: int = 4096,
        inbound_check: Optional[Callable[[int, int, str], bool]] = None,
        is_trusted: Optional[Callable[[int], bool]] = None,
        on_dial_retry: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.loop = loop
        self.transmit = transmit
        self.options = options
        self.large_options = large_options
        self.streams = StreamTable(local, options, max_per_port, max_total)
        self.by_id: dict[int, Conn] = {}
        self.listeners: dict[int, Listener] = {}
        self.backlog: dict[int, list[Conn]] = {}
        self.inbound_check = inbound_check
        self.is_trusted = is_trusted
        #: Called with the remote node when a dial's SYN goes out again (no
        #: SYN-ACK within the SYN timeout): the tunnel may be stale.
        self.on_dial_retry = on_dial_retry
        self.timers: TimerHeap[Conn] = TimerHeap(loop, self._on_timer)
        self._dirty: dict[Conn, None] = {}
        self._flush_handle: Optional[asyncio.Handle] = None
        self._syn_rate = syn_rate
        self._syn_bucket = TokenBucket(syn_rate, loop.time())
        # The reference's 10/s per source, scaled up when the operator raises
        # the global limit (one busy peer may then open connections faster).
        self._per_source = max(PER_SOURCE_SYN_RATE, syn_rate // 10)
        self._src_buckets: dict[int, TokenBucket] = {}
        self.syn_drops = 0
        #: Packets the local network stack refused (``transmit`` returned False).
        self.local_drops = 0

    # -- local identity ---------------------------------------------------------

    def set_local(self, local: Addr) -> None:
        """Our address changed (first registration, or a new node ID)."""
        self.streams.local = local

    # -- listeners ------------------------------------------------------------------

    def listen(self, port: int, listener: Listener) -> bool:
        if port in self.listeners:
            return False
        self.listeners[port] = listener
        self.streams.listen(port)
        return True

    def unlisten(self, port: int, listener: Any = None) -> None:
        if listener is not None and self.listeners.get(port) is not listener:
            return
        self.listeners.pop(port, None)
        self.streams.unlisten(port)
        for conn in self.backlog.pop(port, []):
            self.abort(conn)

    # -- outbound ---------------------------------------------------------------------

    def dial(self, remote: SocketAddr, owner: Optional[Owner]) -> Conn:
        """Create a connection in SYN_SENT; its ``dial_future`` completes on
        establishment or fails with a :class:`StreamError` event code."""
        now = self.loop.time()
        stream = self.streams.dial(remote, now, self.options)
        conn = Conn(stream, self)
        conn.owner = owner
        conn.dial_future = self.loop.create_future()
        if self.large_options is not None:
            conn.ext = -1  # offered, not confirmed
        self.by_id[conn.id] = conn
        self._pump(conn, now)
        return conn

    def send(self, conn: Conn, data: Any) -> bool:
        """Queue ``data``; returns True when the writer should pause.
        Raises :class:`StreamStateError`."""
        stream = conn.stream
        stream.send(data)
        self.mark(conn)
        return stream.send_buffered >= stream.options.send_buffer

    def close(self, conn: Conn) -> None:
        """Graceful close of our direction; later data from the peer is discarded."""
        conn.local_closed = True
        conn.owner = None
        conn.push_enabled = False
        if conn.stream.state == State.SYN_SENT:
            conn.stream.abort()
        else:
            conn.stream.close()
        self.mark(conn)

    def abort(self, conn: Conn) -> None:
        conn.local_closed = True
        conn.owner = None
        conn.stream.abort()
        self.mark(conn)

    def shutdown(self) -> None:
        """Daemon stop: close everything now (FIN to established peers)."""
        now = self.loop.time()
        for conn in list(self.by_id.values()):
            stream = conn.stream
            if stream.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT):
                stream.close()
                for p in stream.packets_to_send(now):
                    self._out(conn, p)
        self.timers.close()

    # -- inbound ----------------------------------------------------------------------

    def receive(self, p: Packet) -> None:
        """A stream packet from the tunnel (already authenticated and bound
        to its sender)."""
        now = self.loop.time()
        flags = p.flags
        if flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN:
            self._receive_syn(p, now)
            return
        streams = self.streams
        stream = streams.connections.get((p.dst_port, Addr(p.src_net, p.src_node), p.src_port))
        if stream is None:
            return  # stray: no RST (§2.19)
        conn = self.by_id.get(stream.conn_id)  # type: ignore[arg-type]
        if conn is None:
            return
        if flags & FLAG_SYN and conn.ext == -1:
            self._on_synack_ext(conn, p)
        stream.receive(p, now)
        self.mark(conn)

    def _receive_syn(self, p: Packet, now: float) -> None:
        streams = self.streams
        key = (p.dst_port, Addr(p.src_net, p.src_node), p.src_port)
        existing = streams.connections.get(key)
        duplicate = existing is not None and existing.state not in (State.CLOSED, State.TIME_WAIT)
        if not duplicate:
            if p.dst_port in self.listeners:
                if self.inbound_check is not None and not self.inbound_check(p.src_node, p.dst_port, "stream"):
                    streams.listeners.discard(p.dst_port)  # answered exactly like a closed port
                    try:
                        streams.receive(p, now)
                    finally:
                        streams.listeners.add(p.dst_port)
                    self._flush_table()
                    return
                if not self._syn_allowed(p.src_node, now):
                    self.syn_drops += 1
                    return
            ext = self._syn_ext(p)
            if ext:
                streams.options = self._large(ext)
        try:
            stream = streams.receive(p, now)
        finally:
            streams.options = self.options
        self._flush_table()
        if stream is None:
            return
        if duplicate:
            conn = self.by_id.get(stream.conn_id)  # type: ignore[arg-type]
            if conn is not None:
                self.mark(conn)
            return
        streams.accepted.clear()
        conn = Conn(stream, self)
        conn.ext = stream.options.mss if stream.options.mss > REFERENCE_MSS else 0
        self.by_id[conn.id] = conn
        listener = self.listeners.get(conn.local_port)
        if listener is None:  # pragma: no cover - the table checked
            self.abort(conn)
            return
        backlog = self.backlog.get(conn.local_port)
        if backlog or not listener.writable:
            backlog = self.backlog.setdefault(conn.local_port, [])
            if len(backlog) >= ACCEPT_QUEUE:
                log.info("accept queue full, resetting", port=conn.local_port, remote=str(conn.remote))
                self._pump(conn, now)  # the SYN-ACK first, then the RST (§2.12 step 9)
                self.abort(conn)
                return
            backlog.append(conn)
            self._pump(conn, now)
            return
        self._pump(conn, now)
        listener.on_accept(conn)

    def drain_backlog(self, port: int) -> None:
        """The listener can take connections again."""
        listener = self.listeners.get(port)
        backlog = self.backlog.get(port)
        while listener is not None and backlog and listener.writable:
            conn = backlog.pop(0)
            if conn.id in self.by_id:
                listener.on_accept(conn)
        if backlog is not None and not backlog:
            self.backlog.pop(port, None)

    def _syn_allowed(self, src: int, now: float) -> bool:
        if self.is_trusted is not None and self.is_trusted(src):
            return True
        if not self._syn_bucket.take(now):
            return False
        bucket = self._src_buckets.get(src)
        if bucket is None:
            if len(self._src_buckets) >= MAX_SYN_SOURCES:
                return False
            bucket = self._src_buckets[src] = TokenBucket(self._per_source, now)
        return bucket.take(now)

    def reap_syn_buckets(self, now: float) -> None:
        stale = [k for k, b in self._src_buckets.items() if now - b.refilled > 10.0]
        for k in stale:
            del self._src_buckets[k]

    # -- large-segment extension ----------------------------------------------------------

    def _syn_ext(self, p: Packet) -> int:
        if self.large_options is None or len(p.payload) != _EXT.size:
            return 0
        magic, mss = _EXT.unpack(bytes(p.payload))
        if magic != EXT_MAGIC or mss <= REFERENCE_MSS:
            return 0
        return min(mss, self.large_options.mss)

    def _large(self, mss: int) -> StreamOptions:
        base = self.large_options
        assert base is not None
        if mss == base.mss:
            return base
        return StreamOptions(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "mss": mss})

    def _on_synack_ext(self, conn: Conn, p: Packet) -> None:
        if conn.stream.state != State.SYN_SENT or p.ack != 1:
            return
        mss = self._syn_ext(p)
        if mss:
            conn.ext = mss
            conn.stream.raise_segment_size(mss)
        else:
            conn.ext = 0

    # -- driving ------------------------------------------------------------------------

    def mark(self, conn: Conn) -> None:
        """Schedule a flush of ``conn`` at the end of this loop iteration."""
        self._dirty[conn] = None
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        now = self.loop.time()
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for conn in dirty:
                self._pump(conn, now)

    def _flush_table(self) -> None:
        for p in self.streams.packets_to_send():
            self.transmit(p)

    def _on_timer(self, conn: Conn, now: float) -> None:
        conn.stream.timer_expired(now)
        self._pump(conn, now)

    def _out(self, conn: Conn, p: Packet) -> None:
        if p.flags == FLAG_SYN:
            conn.syns += 1
            if conn.syns == 2 and self.on_dial_retry is not None:
                self.on_dial_retry(conn.remote.node)
        if p.flags & FLAG_SYN and conn.ext:
            # Offer (SYN) or confirm (SYN-ACK) large segments; a reference peer
            # never gets here with ext set, it never offered.
            mss = self.large_options.mss if conn.ext == -1 else conn.ext  # type: ignore[union-attr]
            p.payload = _EXT.pack(EXT_MAGIC, mss)
        self.transmit(p)

    def _pump(self, conn: Conn, now: float) -> None:
        """Send what the stream wants sent, deliver its events, re-arm its timer."""
        stream = conn.stream
        if conn.owner is None and stream.readable:
            stream.read(-1)  # nobody will read: discard, keep the window open
        out = stream.packets_to_send(now)
        if out:
            transmit = self.transmit
            failed = None
            for p in out:
                if p.flags & FLAG_SYN:
                    self._out(conn, p)
                elif transmit(p) is False:
                    if failed is None:
                        failed = []
                    failed.append(p)
            if failed is not None:
                # The local stack refused them (full qdisc or socket buffer):
                # congestion, answered by the stream now. What it still
                # sends (ACKs) goes out once; a refusal then is left to timers.
                self.local_drops += len(failed)
                stream.send_failed(failed, now)
                for p in stream.packets_to_send(now):
                    transmit(p)
        event = stream.next_event()
        while event is not None:
            self._event(conn, event)
            event = stream.next_event()
        if stream.state == State.CLOSED:
            self.timers.cancel(conn)
            self._remove(conn)
        else:
            self.timers.schedule(conn, stream.next_timer())

    def _event(self, conn: Conn, event: ev.Event) -> None:
        owner = conn.owner
        if isinstance(event, ev.DataReceived):
            if owner is not None:
                owner.on_data(conn)
        elif isinstance(event, ev.SendBufferLow):
            if owner is not None:
                owner.on_writable(conn)
            if conn.writer_waiting is not None:
                waiting, conn.writer_waiting = conn.writer_waiting, None
                if waiting is not owner:
                    waiting.on_writable(conn)
        elif isinstance(event, ev.Established):
            fut = conn.dial_future
            if fut is not None and not fut.done():
                fut.set_result(conn)
        elif isinstance(event, ev.StreamEnded):
            conn.eof = True
            if owner is not None:
                owner.on_data(conn)
        elif isinstance(event, (ev.ConnectionReset, ev.StreamError)):
            code = "reset" if isinstance(event, ev.ConnectionReset) else event.code
            conn.error = conn.error or code
            if isinstance(event, ev.StreamError) and code not in ("refused", "dial_timeout"):
                # Why an established stream ended badly; the writer only
                # sees "connection N not found" once it is gone.
                st = conn.stream.stats()
                log.warning("stream failed", conn=conn.id, code=code, reason=event.message, remote=str(conn.remote),
                            bytes_sent=st.bytes_sent, unacked=st.unacked, retransmits=st.retransmits,
                            timeouts=st.timeouts, local_drops=st.local_drops)
            fut = conn.dial_future
            if fut is not None and not fut.done():
                fut.set_exception(StreamDialError(code))
            conn.eof = True
            if owner is not None:
                owner.on_closed(conn)
        elif isinstance(event, ev.Closed):
            conn.eof = True
            fut = conn.dial_future
            if fut is not None and not fut.done():
                fut.set_exception(StreamDialError(conn.error or "closed"))
            if owner is not None:
                owner.on_closed(conn)

    def _remove(self, conn: Conn) -> None:
        if self.by_id.pop(conn.id, None) is None:
            return
        stream = conn.stream
        key = (stream.local.port, stream.remote.addr, stream.remote.port)
        if self.streams.connections.get(key) is stream:
            del self.streams.connections[key]

    # -- introspection ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.streams.connections.values():
            out[c.state.name] = out.get(c.state.name, 0) + 1
        return out


class StreamDialError(Exception):
    """A dial that did not establish; ``code`` is the stream's error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


__all__ = ["Conn", "ConnTable", "StreamDialError", "StreamStateError", "Owner", "Listener"]
