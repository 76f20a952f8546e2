"""One reliable stream (protocol 0x01) connection, sans-IO.

Driven like aioquic's ``QuicConnection``: the owner feeds it packets with
:meth:`Connection.receive`, application calls (:meth:`send`, :meth:`read`,
:meth:`close`) and timer expiries (:meth:`timer_expired`), then collects
:meth:`packets_to_send`, :meth:`next_timer` and :meth:`next_event`. It never
reads a clock: every time is the ``now`` it is given, in seconds.

Wire behaviour follows tunnel-and-transport.md §1.11 exactly (ISN 0, SYN and
SYN-ACK consume one sequence number, data always carries ACK, at most ``mss``
bytes per segment, identical retransmissions, SACK in the ACK payload, window
in 4096-byte units). Where the reference is defective we do what Part 3 says:

* loss recovery: SACK + RACK (see :mod:`.recovery`), every hole resent at
  once, a tail-loss probe, RTO per RFC 6298 (T-D7);
* flow control: a byte-accounted receive buffer advertised as at least 1; a
  received Window 0 stops new data and is probed with one byte of
  already-acknowledged data (T-D8);
* close: linger until our data is acknowledged, then FIN, retransmitted until
  the peer's FIN|ACK; answer a bare FIN at most once and never a FIN|ACK
  (T-D9, T-D10); a FIN that leaves data missing is reported (``truncated``);
* SACK safety both ways (T-D11); SYN-ACKs whose Ack is not 1 are refused with
  an RST; a duplicate SYN gets the original SYN-ACK values (T-D16); ACKs beyond
  what we sent are ignored (T-D17).

The hot path (an in-order data segment, a plain cumulative ACK, cutting and
sending a full segment) is written for CPython speed: attributes are cached
in locals, events and headers are preallocated, nothing is allocated per
segment beyond the packet, its payload slice and one scoreboard record.
"""

from __future__ import annotations

from collections import deque

from pilotgw.overlay import sack as sack_codec
from pilotgw.overlay.address import SocketAddr
from pilotgw.overlay.packet import FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, MAX_PAYLOAD, PROTO_STREAM, Packet
from pilotgw.overlay.stream.congestion import new_controller
from pilotgw.overlay.stream.events import (
    Closed,
    ConnectionReset,
    DataReceived,
    Established,
    Event,
    SendBufferLow,
    StreamEnded,
    StreamError,
)
from pilotgw.overlay.stream.options import REFERENCE_MSS, WINDOW_UNIT, StreamOptions
from pilotgw.overlay.stream.reassembly import DROPPED, DUPLICATE, FILLED, IN_ORDER, ReceiveBuffer
from pilotgw.overlay.stream.recovery import Scoreboard
from pilotgw.overlay.stream.rtt import RttEstimator
from pilotgw.overlay.stream.segsize import SegmentSizer
from pilotgw.overlay.stream.sendbuffer import SendBuffer
from pilotgw.overlay.stream.stats import StreamStats
from pilotgw.overlay.stream.seq import MASK, unwrap
from pilotgw.overlay.stream.states import CAN_SEND, SENDING, SYNCHRONIZED, TRANSITIONS, State, StreamStateError

_INF = float("inf")
_DATA_RECEIVED = DataReceived()
_ACK = FLAG_ACK
_MAX_WINDOW = 0xFFFF

_CLOSED = State.CLOSED
_SYN_SENT = State.SYN_SENT
_ESTABLISHED = State.ESTABLISHED
_FIN_WAIT = State.FIN_WAIT
_CLOSE_WAIT = State.CLOSE_WAIT
_CLOSING = State.CLOSING
_TIME_WAIT = State.TIME_WAIT


class Connection:
    """A stream connection in one of the two roles; build it with
    :meth:`dial` or :meth:`accept`."""

    __slots__ = (
        "local",
        "remote",
        "options",
        "conn_id",
        "state",
        "retransmitted",
        "segments_sent",
        # diagnostics counters (see stats())
        "_segs_recv",
        "_fast_retx",
        "_sack_recv",
        "_sack_sent",
        "_dup_acks",
        "_rcv_base",
        # header fields
        "_src_net",
        "_src_node",
        "_dst_net",
        "_dst_node",
        "_src_port",
        "_dst_port",
        # send side
        "_snd_una",
        "_snd_nxt",
        "_sendbuf",
        "_sb",
        "_cc",
        "_rtt",
        "_seg",
        "_no_delay",
        "_peer_wnd",
        "_peer_wnd_bytes",
        "_in_recovery",
        "_recovery_point",
        "_cwnd_limited",
        "_rto_retries",
        "_refused_since_rto",
        "_progress_at",
        "_byte_ranges",
        "_pto",
        "_tlp_due",
        "_tlp_used",
        "_probe_due",
        "_probe_backoff",
        "_send_paused",
        "_hold_until",
        "_rtos",
        "_local_drops",
        # receive side
        "_rb",
        "_recv_cap",
        "_last_adv",
        "_ack_owed",
        "_ack_now",
        "_ack_every",
        "_delack",
        "_hole_at",
        "_hole_left",
        "_dupacks_owed",
        "_readable_signalled",
        # handshake and close
        "_responder",
        "_syn_sent_at",
        "_syn_tx",
        "_syn_rto",
        "_synack_sent_at",
        "_close_requested",
        "_fin_sent",
        "_fin_tx",
        "_fin_answered",
        "_peer_fin",
        "_ended",
        # timers (absolute times; inf when not armed)
        "_t_rtx",
        "_rto_deadline",
        "_tlp_deadline",
        "_t_ack",
        "_t_persist",
        "_t_linger",
        "_t_grace",
        "_t_timewait",
        "_last_send",
        "_last_recv",
        "_keepalive",
        "_idle",
        # output
        "_out",
        "_events",
    )

    def __init__(self, local: SocketAddr, remote: SocketAddr, options: StreamOptions, now: float) -> None:
        """Use :meth:`dial` or :meth:`accept`; this only sets fields."""
        self.local = local
        self.remote = remote
        self.options = options
        self.conn_id: int | None = None  # assigned by the owner's table, never sent
        self.state = _CLOSED
        self.retransmitted = 0
        self.segments_sent = 0
        self._segs_recv = 0
        self._fast_retx = 0
        self._sack_recv = 0
        self._sack_sent = 0
        self._dup_acks = 0
        self._rcv_base = 1
        self._src_net, self._src_node = local.addr
        self._dst_net, self._dst_node = remote.addr
        self._src_port = local.port
        self._dst_port = remote.port
        self._snd_una = 0
        self._snd_nxt = 0
        self._sendbuf = SendBuffer()
        self._sb = Scoreboard(1)
        self._seg = SegmentSizer(options.mss, options.min_mss)
        self._cc = new_controller(options.congestion, options.mss, options.initial_window * options.mss)
        self._rtt = RttEstimator(options.initial_rto, options.min_rto, options.max_rto)
        self._no_delay = options.no_delay
        self._peer_wnd = 1
        self._peer_wnd_bytes = WINDOW_UNIT
        self._in_recovery = False
        self._recovery_point = 0
        self._cwnd_limited = False
        self._rto_retries = 0
        self._refused_since_rto = False
        self._progress_at = now
        self._byte_ranges = options.mss > REFERENCE_MSS
        self._pto = _INF
        self._tlp_due = False
        self._tlp_used = False
        self._probe_due = False
        self._probe_backoff = options.probe_initial
        self._send_paused = False
        self._hold_until = -_INF
        self._rtos = 0
        self._local_drops = 0
        cap = options.recv_buffer
        self._rb = ReceiveBuffer(1, 2 * cap, cap, 2 * cap)
        self._recv_cap = cap
        self._last_adv = 0
        self._ack_owed = 0
        self._ack_now = False
        self._ack_every = options.ack_every
        self._delack = options.delayed_ack
        self._hole_at = -1
        self._hole_left = 0
        self._dupacks_owed = 0
        self._readable_signalled = False
        self._responder = False
        self._syn_sent_at = now
        self._syn_tx = 0
        self._syn_rto = options.syn_rto
        self._synack_sent_at = -1.0
        self._close_requested = False
        self._fin_sent = False
        self._fin_tx = 0
        self._fin_answered = False
        self._peer_fin = -1
        self._ended = False
        self._t_rtx = _INF
        self._rto_deadline = _INF
        self._tlp_deadline = _INF
        self._t_ack = _INF
        self._t_persist = _INF
        self._t_linger = _INF
        self._t_grace = _INF
        self._t_timewait = _INF
        self._last_send = now
        self._last_recv = now
        self._keepalive = options.keepalive
        self._idle = options.idle_timeout
        self._out: list[Packet] = []
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------------
    # construction

    @classmethod
    def dial(cls, local: SocketAddr, remote: SocketAddr, now: float, options: StreamOptions | None = None) -> "Connection":
        """Open a connection: the SYN is queued (Seq 0, Ack 0, our window)."""
        conn = cls(local, remote, options or StreamOptions(), now)
        conn.state = _SYN_SENT
        conn._snd_nxt = 1
        conn._syn_tx = 1
        conn._out.append(conn._packet(FLAG_SYN, 0, 0, conn._window(), b""))
        conn._t_rtx = now + conn._syn_rto
        return conn

    @classmethod
    def accept(
        cls, local: SocketAddr, remote: SocketAddr, syn: Packet, now: float, options: StreamOptions | None = None
    ) -> "Connection":
        """Answer ``syn`` (a SYN without ACK addressed to ``local``): the
        SYN-ACK is queued and, like the reference, the connection is
        ESTABLISHED at once (§2.12 step 8)."""
        conn = cls(local, remote, options or StreamOptions(), now)
        conn.state = _ESTABLISHED
        conn._responder = True
        conn._snd_una = conn._snd_nxt = 1
        conn._rb.nxt = conn._rcv_base = syn.seq + 1
        conn._set_peer_window(syn.window)
        conn._out.append(conn._packet(FLAG_SYN | FLAG_ACK, 0, (syn.seq + 1) & MASK, conn._window(), b""))
        conn._synack_sent_at = now
        conn._events.append(Established())
        return conn

    # ------------------------------------------------------------------
    # application side

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for the peer (any size; the owner watches
        :attr:`send_buffered` for backpressure). Allowed while dialling,
        established, or after the peer's FIN (half-close).

        Raises :class:`StreamStateError` in any other state."""
        if self.state not in CAN_SEND and self.state != _SYN_SENT:
            raise StreamStateError(f"cannot send in state {self.state.name}")
        if self._close_requested:
            raise StreamStateError("cannot send after close()")
        if not isinstance(data, bytes):
            data = bytes(data)
        self._sendbuf.write(data)
        if self._sendbuf.size + self._snd_nxt - self._snd_una >= self.options.send_buffer:
            self._send_paused = True

    def raise_segment_size(self, mss: int) -> None:
        """Send segments of up to ``mss`` bytes from now on.

        For an owner that negotiates larger segments than the wire contract's
        4096 with a peer it knows accepts them (the daemon's SYN extension): the
        dialler learns the peer's consent only from the SYN-ACK, after this
        connection was built with the reference size. Allowed only before any
        data segment was sent, so every segment on the wire keeps one size
        policy and retransmissions stay identical; the congestion window is
        re-based to ``initial_window`` segments of the new size.

        Raises :class:`ValueError` for a size below the current one or above
        what a packet can carry, :class:`StreamStateError` once data was sent
        or the connection is over."""
        seg = self._seg
        if not seg.maximum <= mss <= MAX_PAYLOAD:
            raise ValueError(f"segment size must be {seg.maximum}..{MAX_PAYLOAD}, not {mss}")
        if self.segments_sent or self.state not in (_SYN_SENT, _ESTABLISHED):
            raise StreamStateError(f"segment size can change only before data is sent, not in {self.state.name}"
                                   f" after {self.segments_sent} segments")
        opts = self.options
        seg.set_maximum(mss)
        self._byte_ranges = mss > REFERENCE_MSS
        self._cc = new_controller(opts.congestion, mss, opts.initial_window * mss)

    @property
    def send_buffered(self) -> int:
        """Bytes written and not yet acknowledged by the peer."""
        return self._sendbuf.size + (self._snd_nxt - self._snd_una if self.state != _SYN_SENT else 0)

    @property
    def readable(self) -> int:
        """In-order bytes waiting for :meth:`read`."""
        return self._rb.ready_bytes

    @property
    def at_eof(self) -> bool:
        """True once the peer's data is complete and has all been read."""
        return self._ended and not self._rb.ready_bytes

    def read(self, max_bytes: int = -1) -> bytes:
        """Consume up to ``max_bytes`` received bytes (all if negative).

        Freeing buffer space may owe the peer a window update: call
        :meth:`packets_to_send` afterwards."""
        rb = self._rb
        data = rb.read(max_bytes)
        self._readable_signalled = False
        if data and self.state in SYNCHRONIZED:
            w = self._window()
            gain = w - self._last_adv
            # A window update is worth a packet only when the sender may be
            # held back: our last advertisement was small, or it grew a lot.
            if gain >= 2 and (self._last_adv * WINDOW_UNIT < self._recv_cap // 2 or gain * WINDOW_UNIT >= self._recv_cap // 4):
                self._ack_now = True
        return data

    def close(self) -> None:
        """Finish our direction: buffered data is still delivered (with Nagle
        off), then the FIN. Receiving continues until the peer closes.

        Takes effect at the next :meth:`packets_to_send`. Idempotent."""
        if self.state == _CLOSED or self._close_requested:
            return
        self._close_requested = True

    def abort(self) -> None:
        """Reset now: queue an RST and go to CLOSED (emits :class:`Closed`)."""
        if self.state in (_CLOSED, _TIME_WAIT):
            if self.state == _TIME_WAIT:
                self._set_state(_CLOSED)
            return
        self._out.append(self._packet(FLAG_RST, 0, 0, 0, b""))
        self._set_state(_CLOSED)

    def stats(self) -> StreamStats:
        """A snapshot of this connection's congestion, RTT, window and
        counter figures (for the daemon's Info ``conn_list``)."""
        sb = self._sb
        rtt = self._rtt
        return StreamStats(
            cong_win=self._cc.cwnd,
            ssthresh=self._cc.ssthresh,
            in_flight=self._snd_nxt - self._snd_una if self.state != _SYN_SENT else 0,
            srtt=rtt.srtt,
            rttvar=rtt.rttvar,
            unacked=sb.outstanding,
            ooo_buf=len(self._rb.pieces),
            peer_recv_win=self._peer_wnd_bytes,
            recv_win=self._window() * WINDOW_UNIT,
            in_recovery=self._in_recovery,
            bytes_sent=self._snd_nxt - 1,
            bytes_recv=self._rb.nxt - self._rcv_base,
            segs_sent=self.segments_sent,
            segs_recv=self._segs_recv,
            retransmits=self.retransmitted,
            fast_retx=self._fast_retx,
            sack_recv=self._sack_recv,
            sack_sent=self._sack_sent,
            dup_acks=self._dup_acks,
            timeouts=self._rtos,
            local_drops=self._local_drops,
            segment_size=self._seg.size,
        )

    def next_event(self) -> Event | None:
        """Pop the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------
    # timers

    def next_timer(self) -> float | None:
        """The earliest time :meth:`timer_expired` must be called, or None."""
        t = self._t_rtx
        if self._t_ack < t:
            t = self._t_ack
        if self._t_persist < t:
            t = self._t_persist
        if self._t_linger < t:
            t = self._t_linger
        if self._t_grace < t:
            t = self._t_grace
        if self._t_timewait < t:
            t = self._t_timewait
        if self._hold_until != -_INF and self._hold_until < t:
            t = self._hold_until
        if self.state in SYNCHRONIZED:
            ka = self._last_send + self._keepalive
            if ka < t:
                t = ka
            idle = self._last_recv + self._idle
            if idle < t:
                t = idle
        return None if t == _INF else t

    def timer_expired(self, now: float) -> None:
        """Run every timer due at ``now``; then call :meth:`packets_to_send`."""
        state = self.state
        if state == _CLOSED:
            return
        if now >= self._t_ack:
            self._t_ack = _INF
            self._ack_now = True
        if now >= self._hold_until:
            self._hold_until = -_INF  # the next packets_to_send resumes sending
        if now >= self._t_rtx:
            self._on_rtx_timer(now)
        if now >= self._t_persist:
            self._t_persist = _INF
            self._probe_due = True
        if now >= self._t_grace:
            self._t_grace = _INF
            if not self._ended:
                self._ended = True
                self._events.append(
                    StreamError("truncated", f"peer closed with {self._peer_fin - self._rb.nxt} bytes missing")
                )
        if now >= self._t_linger:
            self._t_linger = _INF
            self._fail("linger_timeout", "data still unacknowledged when the linger time ran out", rst=True)
            return
        if now >= self._t_timewait:
            self._t_timewait = _INF
            self._set_state(_CLOSED)
            return
        if self.state in SYNCHRONIZED:
            if now >= self._last_recv + self._idle:
                self._idle_close()
                return
            if now >= self._last_send + self._keepalive:
                # Window 0 by contract (§1.11.7); the peer does not reply.
                self._out.append(self._packet(_ACK, self._snd_nxt & MASK, self._rb.nxt & MASK, 0, b""))
                self._last_send = now

    def _on_rtx_timer(self, now: float) -> None:
        if self.state == _SYN_SENT:
            if self._syn_tx > self.options.syn_retries:
                self._fail("dial_timeout", f"no SYN-ACK after {self._syn_tx} SYNs", rst=False)
                return
            self._syn_tx += 1
            self._out.append(self._packet(FLAG_SYN, 0, 0, self._window(), b""))
            self._syn_rto = min(self._syn_rto * 2, self.options.syn_max_rto)
            self._t_rtx = now + self._syn_rto
            return
        if self.state not in SENDING:
            self._t_rtx = _INF
            return
        sb = self._sb
        if now >= sb.reorder_deadline:
            self._after_losses(sb.detect_losses(now, self._reo_wnd()), now)
        if now >= self._tlp_deadline:
            self._tlp_deadline = _INF
            if sb.outstanding and not self._tlp_used:
                self._tlp_used = True
                self._tlp_due = True
        if now >= self._rto_deadline:
            rtt = self._rtt
            if sb.outstanding:
                if self._refused_since_rto:
                    # Our own queue refused what we sent (other streams of
                    # this node fill the uplink): no sign that the peer or the
                    # path is gone, so this timeout does not count towards
                    # giving up. The idle timeout still ends a dead peer.
                    self._refused_since_rto = False
                else:
                    self._rto_retries += 1
                if self._rto_retries > self.options.max_rto_retries:
                    self._fail("timeout", f"no acknowledgement after {self._rto_retries - 1} retransmissions", rst=True)
                    return
                flight = self._snd_nxt - self._snd_una
                sb.mark_all_lost()
                self._rtos += 1
                self._shrink()
                self._cc.on_timeout(now, flight)
                self._in_recovery = True
                self._recovery_point = self._snd_nxt
                self._tlp_deadline = _INF
                self._tlp_due = False
                rtt.on_timeout()
                self._rto_deadline = now + rtt.current_rto()
            elif self._fin_sent and self._fin_tx <= self.options.fin_retries:
                self._fin_tx += 1
                self._out.append(self._packet(FLAG_FIN, self._snd_nxt & MASK, 0, 0, b""))
                rtt.on_timeout()
                self._rto_deadline = now + rtt.current_rto()
            else:
                self._rto_deadline = _INF
        self._rearm()

    def _rearm(self) -> None:
        t = self._rto_deadline
        if self._tlp_deadline < t:
            t = self._tlp_deadline
        if self._sb.reorder_deadline < t:
            t = self._sb.reorder_deadline
        self._t_rtx = t

    def _reo_wnd(self) -> float:
        m = self._rtt.min_rtt
        return m / 4 if m != _INF else 0.0

    # ------------------------------------------------------------------
    # receive

    def receive(self, p: Packet, now: float) -> None:
        """Process one stream packet already matched to this connection
        (by the 4-tuple) and checked (version 1, protocol stream).

        Classification order is the contract's (§1.11.9): SYN, SYN-ACK, FIN
        (whatever else is set), RST, ACK. Packets with no flags are ignored."""
        flags = p.flags
        if flags == _ACK:
            if self.state in SYNCHRONIZED:
                self._on_ack_branch(p, now)
        elif flags & FLAG_SYN:
            if flags & FLAG_ACK:
                self._on_synack(p, now)
            else:
                self._on_syn(p, now)
        elif flags & FLAG_FIN:
            self._on_fin(p, now)
        elif flags & FLAG_RST:
            self._on_rst()

    def _on_ack_branch(self, p: Packet, now: float) -> None:
        self._last_recv = now
        una = self._snd_una
        nxt = self._snd_nxt
        d = (p.ack - una) & MASK
        payload = p.payload
        blocks = None
        if payload and payload[0] == 0x53 and payload[:4] == b"SACK":
            blocks = self._parse_sack(payload, una, nxt)
            if blocks is not None:
                self._sack_recv += 1
        if d <= nxt - una:
            # Not an old ACK and not beyond what we sent (T-D17).
            if d or blocks:
                self._process_ack(una + d, blocks, now)
            elif not payload and nxt != una:
                self._dup_acks += 1
            if p.window != self._peer_wnd:
                self._set_peer_window(p.window)
            if self._synack_sent_at >= 0:
                # Responder: the handshake ACK (or first data) times our SYN-ACK.
                rtt = self._rtt
                rtt.sample(now - self._synack_sent_at)
                self._synack_sent_at = -1.0
                self._pto = 2 * rtt.srtt
        if payload and blocks is None:
            self._on_data(p.seq, payload, now)

    def _parse_sack(self, payload: bytes, una: int, nxt: int) -> list[tuple[int, int]] | None:
        """Strict SACK reading (T-D11): exact length, every block non-empty
        and within what we sent. Anything else is data."""
        try:
            raw = sack_codec.decode(payload)
        except ValueError:
            return None
        blocks = []
        for lw, rw in raw:
            left = unwrap(lw, una)
            right = left + ((rw - lw) & MASK)
            if right > nxt:
                return None
            blocks.append((left, right))
        return blocks

    def _process_ack(self, ack: int, blocks: list[tuple[int, int]] | None, now: float) -> None:
        sb = self._sb
        rtt = self._rtt
        advanced = ack > self._snd_una
        delivered = sb.on_ack(ack, blocks, now, rtt.min_rtt)
        r = sb.rtt_sample
        if r >= 0.0:
            rtt.sample(r)
            self._pto = 2 * rtt.srtt
        if delivered:
            # The path works. Forget the timeout backoff at once rather than
            # at the next Karn-safe sample, which after a timeout may be many
            # round trips away (every segment in flight is a retransmission):
            # otherwise the next lost tail waits out a doubled timeout, and a
            # few in a row stall the stream for tens of seconds (QUIC resets
            # its PTO backoff on any acknowledgement). And restart the
            # timeout: while SACKs arrive, holes -- lost retransmissions
            # too -- are RACK's to find, and a timeout would only throw the
            # window away. Counting timeouts towards giving up while the peer
            # is plainly answering aborted healthy streams within a couple of
            # seconds whenever the oldest segment stayed lost; a peer that
            # answers but never lets the cumulative ACK move is caught by the
            # stall limit below instead.
            rtt.backoff = 0
            self._rto_retries = 0
            if not advanced and sb.outstanding:
                if now - self._progress_at > self.options.stall_timeout:
                    self._fail("stalled", f"no cumulative acknowledgement for {now - self._progress_at:.0f} s"
                               " while the peer acknowledged later data", rst=True)
                    return
                self._rto_deadline = now + rtt.current_rto()
        if advanced:
            self._snd_una = ack
            self._progress_at = now
            self._tlp_used = False
            if self._in_recovery and ack >= self._recovery_point:
                self._in_recovery = False
            seg = self._seg
            if ack >= seg.mark and not self._in_recovery:
                seg.on_clean(self._snd_nxt)
                self._cc.mss = seg.size
            self._rto_deadline = now + rtt.current_rto() if sb.outstanding else _INF
            if self._send_paused and self._sendbuf.size + self._snd_nxt - ack < self.options.send_buffer // 2:
                self._send_paused = False
                self._events.append(SendBufferLow())
        lost = sb.detect_losses(now, self._reo_wnd()) if sb.outstanding else 0
        if lost:
            self._after_losses(lost, now)
        elif delivered and self._cwnd_limited and not self._in_recovery:
            self._cc.on_ack(delivered, now, rtt.latest)
        if sb.outstanding and not self._tlp_used and self._pto != _INF:
            pto = self._pto
            if sb.outstanding == 1:
                pto += self._delack
            self._tlp_deadline = now + pto
        else:
            self._tlp_deadline = _INF
        self._rearm()

    def _after_losses(self, lost: int, now: float) -> None:
        self._fast_retx += lost
        if lost and not self._in_recovery:
            self._in_recovery = True
            self._recovery_point = self._snd_nxt
            self._shrink()
            self._cc.on_congestion(now, self._snd_nxt - self._snd_una)

    def _shrink(self) -> None:
        """A loss episode: new segments get smaller (see :mod:`.segsize`)."""
        seg = self._seg
        seg.on_loss(self._snd_nxt)
        self._cc.mss = seg.size

    def send_failed(self, packets: list[Packet], now: float) -> None:
        """The owner could not hand ``packets`` (from :meth:`packets_to_send`)
        to the network: the local queue refused them (``sendto`` failed with
        ENOBUFS/EAGAIN, e.g. a full qdisc).

        That is congestion at our own doorstep, so it is treated as a loss
        episode now, not after a round trip: the data segments among them are
        marked lost (they will be resent, identical, when the window allows),
        the congestion window is reduced once per episode, and nothing but
        ACKs is sent for a short hold (a quarter of the smoothed RTT, at
        least 1 ms) so the queue can drain. Call :meth:`packets_to_send`
        afterwards (ACKs may be owed); the hold is in :meth:`next_timer`."""
        sb = self._sb
        una = self._snd_una
        lost = 0
        for p in packets:
            if p.protocol != PROTO_STREAM or p.flags != _ACK or not p.payload or self.state not in SENDING:
                continue
            start = unwrap(p.seq, una)
            if sb.mark_unsent(start, now):
                lost += 1
        if not lost:
            return
        self._local_drops += lost
        self._refused_since_rto = True
        if not self._in_recovery:
            self._in_recovery = True
            self._recovery_point = self._snd_nxt
            self._shrink()
            self._cc.on_congestion(now, self._snd_nxt - self._snd_una)
        self._cc.on_local_drop(now, sb.pipe)
        srtt = self._rtt.srtt
        self._hold_until = now + (srtt / 4 if srtt > 0.004 else 0.001)

    def _set_peer_window(self, w: int) -> None:
        if w and not self._peer_wnd:
            # The window reopened: stop probing.
            self._t_persist = _INF
            self._probe_due = False
            self._probe_backoff = self.options.probe_initial
        self._peer_wnd = w
        self._peer_wnd_bytes = w * WINDOW_UNIT

    def _on_data(self, seq: int, payload: bytes, now: float) -> None:
        rb = self._rb
        self._segs_recv += 1
        start = unwrap(seq, rb.nxt)
        if self._peer_fin >= 0 and start + len(payload) > self._peer_fin:
            # Bytes at or beyond the peer's FIN cannot be data.
            keep = self._peer_fin - start
            if keep <= 0:
                self._ack_now = True
                return
            payload = payload[:keep]
        res = rb.add(start, payload)
        if res == IN_ORDER:
            self._ack_owed += 1
            if self._ack_owed >= self._ack_every:
                self._ack_now = True
            elif self._t_ack == _INF:
                self._t_ack = now + self._delack
        elif res == DROPPED:
            return
        else:
            self._ack_now = True
            if res > FILLED:  # OUT_OF_ORDER: extra pure duplicate ACKs per hole (T-D7)
                if rb.nxt != self._hole_at:
                    self._hole_at = rb.nxt
                    self._hole_left = self.options.hole_dupacks
                if self._hole_left:
                    self._hole_left -= 1
                    self._dupacks_owed += 1
                return
            if res == DUPLICATE:
                return
        if not self._readable_signalled:
            self._readable_signalled = True
            self._events.append(_DATA_RECEIVED)
        if self._peer_fin >= 0 and rb.nxt >= self._peer_fin:
            self._peer_done()

    def _on_syn(self, p: Packet, now: float) -> None:
        # A duplicate SYN (the table found us): repeat the original SYN-ACK
        # values, Seq 0 and Ack = SYN.Seq + 1 (T-D16).
        if self._responder and self.state in SYNCHRONIZED:
            self._synack_sent_at = -1.0
            self._out.append(self._packet(FLAG_SYN | FLAG_ACK, 0, (p.seq + 1) & MASK, self._window(), b""))

    def _on_synack(self, p: Packet, now: float) -> None:
        if self.state != _SYN_SENT:
            return
        if p.ack != 1:
            # Stale SYN-ACK (T-D16): reset it and keep retrying our SYN.
            self._out.append(self._packet(FLAG_RST, 0, 0, 0, b""))
            return
        self._snd_una = 1
        self._last_recv = now
        self._set_peer_window(p.window)
        if self._syn_tx == 1:
            self._rtt.sample(now - self._syn_sent_at)
            self._pto = 2 * self._rtt.srtt
        self._t_rtx = _INF
        self._ack_now = True
        self._set_state(_ESTABLISHED)
        self._events.append(Established())

    def _on_fin(self, p: Packet, now: float) -> None:
        state = self.state
        if state == _CLOSED or state == _TIME_WAIT:
            return  # never answered, and TIME_WAIT is not refreshed (T-D9)
        bare = not p.flags & FLAG_ACK
        if state == _SYN_SENT:
            if bare:
                self._answer_fin(p.seq)
            self._fail("refused", "peer closed during the handshake", rst=False)
            return
        fin = unwrap(p.seq, self._rb.nxt)
        if fin < self._rb.nxt:
            # T-D3(b): a genuine FIN carries the sender's next unsent sequence
            # number, so it is never before what we expect; one that is, is
            # stale or forged and must not end the stream.
            return
        self._last_recv = now
        if self._peer_fin < 0:
            self._peer_fin = fin
            if self._rb.nxt >= fin:
                self._peer_done()
            else:
                self._t_grace = now + self.options.fin_data_grace
        if not bare:
            # FIN|ACK: the peer is closed (and acknowledged our FIN if we sent
            # one). Never answered.
            self._fin_answered = True
            if not self._fin_sent and (self._sendbuf.size or self._snd_nxt != self._snd_una):
                self._events.append(StreamError("peer_closed", "peer closed with our data unacknowledged"))
            self._enter_time_wait(now)
            return
        if state == _ESTABLISHED:
            self._set_state(_CLOSE_WAIT)
        elif state == _FIN_WAIT:
            if self._fin_sent:
                # Simultaneous close: answer once; our FIN|ACK also closes us.
                self._answer_fin(p.seq)
                self._enter_time_wait(now)
            else:
                self._set_state(_CLOSING)
        # CLOSE_WAIT / CLOSING: a repeated FIN; the answer waits for our close.

    def _answer_fin(self, fin_seq: int) -> None:
        if not self._fin_answered:
            self._fin_answered = True
            self._out.append(self._packet(FLAG_FIN | FLAG_ACK, self._snd_nxt & MASK, (fin_seq + 1) & MASK, 0, b""))

    def _on_rst(self) -> None:
        state = self.state
        if state == _CLOSED:
            return
        if state == _SYN_SENT:
            self._events.append(StreamError("refused", "connection refused (RST)"))
        elif state != _TIME_WAIT:
            self._events.append(ConnectionReset())
        self._set_state(_CLOSED)

    def _peer_done(self) -> None:
        if not self._ended:
            self._ended = True
            self._t_grace = _INF
            self._events.append(StreamEnded())

    # ------------------------------------------------------------------
    # transmit

    def packets_to_send(self, now: float) -> list[Packet]:
        """Everything to transmit now, in order; the queue is emptied."""
        out = self._out
        state = self.state
        if state in SENDING:
            if self._close_requested and state in CAN_SEND:
                self._begin_close(now)
            self._transmit(now, out)
        elif self._close_requested and state == _SYN_SENT:
            self._out.append(self._packet(FLAG_RST, 0, 0, 0, b""))
            self._set_state(_CLOSED)
        if out:
            self._last_send = now
            self._out = []
        return out

    def _transmit(self, now: float, out: list[Packet]) -> None:
        sb = self._sb
        cc = self._cc
        rb = self._rb
        rcv_ack = rb.nxt & MASK
        adv = (self._recv_cap - rb.ready_bytes) >> 12
        if adv < 1:
            adv = 1
        elif adv > _MAX_WINDOW:
            adv = _MAX_WINDOW
        self._last_adv = adv
        src_net = self._src_net
        src_node = self._src_node
        dst_net = self._dst_net
        dst_node = self._dst_node
        sport = self._src_port
        dport = self._dst_port
        n_before = len(out)
        sent_new = False
        held = False
        if self._hold_until != -_INF:
            # After a local send failure: only ACKs until the hold ends.
            if now < self._hold_until:
                held = True
            else:
                self._hold_until = -_INF

        # 1. Segments declared lost, lowest first, within the congestion window.
        if sb.lost and not held:
            byte_ranges = self._byte_ranges
            while sb.pipe < cc.cwnd:
                seg = sb.pop_lost()
                if seg is None:
                    break
                if byte_ranges:
                    # A peer that reassembles by byte range gets a lost
                    # segment back in pieces: of the current size the first
                    # time, unfragmented ones after that (see the module doc
                    # of .segsize for why identical copies can starve).
                    cap = self._seg.size if seg.tx < 2 else self._seg.minimum
                    if seg.end - seg.start > cap:
                        sb.split(seg, cap)
                        continue
                out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, seg.start & MASK, rcv_ack, adv, seg.data))
                sb.retransmit(seg, now)
                self.retransmitted += 1
        # 2. New data, within congestion window, peer window (bytes and
        #    segments, T-D8), and Nagle.
        sendbuf = self._sendbuf
        if sendbuf.size and not held:
            if self._peer_wnd:
                mss = self._seg.size
                nagle = not (self._no_delay or self._close_requested)
                limit = self._snd_una + self._peer_wnd_bytes
                max_segs = self._peer_wnd
                nxt = self._snd_nxt
                self._cwnd_limited = False
                while True:
                    size = sendbuf.size
                    if not size:
                        break
                    if sb.pipe >= cc.cwnd:
                        self._cwnd_limited = True
                        break
                    n = mss if size > mss else size
                    if n < mss and nagle and nxt != self._snd_una:
                        break
                    room = limit - nxt
                    if room < n:
                        if nxt != self._snd_una or room <= 0:
                            break
                        n = room
                    if len(sb.segs) - sb.head >= max_segs:
                        break
                    data = sendbuf.cut(n)
                    sb.add(nxt, data, now)
                    out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, nxt & MASK, rcv_ack, adv, data))
                    nxt += len(data)
                    self.segments_sent += 1
                    sent_new = True
                self._snd_nxt = nxt
            elif self._t_persist == _INF:
                # Window 0: no new data; probe at once, then back off (T-D8).
                self._probe_due = True
        if self._probe_due:
            self._probe_due = False
            last = sb.last_acked
            byte = last.data[-1:] if last is not None else b"\x00"
            out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, (self._snd_una - 1) & MASK, rcv_ack, adv, byte))
            self._t_persist = now + self._probe_backoff
            self._probe_backoff = min(self._probe_backoff * 2, self.options.probe_max)
        # 3. Tail-loss probe: resend the highest unSACKed segment.
        if self._tlp_due and not held:
            self._tlp_due = False
            seg = sb.last_unsacked()
            if seg is not None and len(out) == n_before:
                out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, seg.start & MASK, rcv_ack, adv, seg.data))
                sb.retransmit(seg, now)
                self.retransmitted += 1
        if sent_new or (sb.outstanding and len(out) != n_before):
            if self._rto_deadline == _INF:
                # Nothing was outstanding: the stall clock starts now.
                self._rto_deadline = now + self._rtt.current_rto()
                self._progress_at = now
            if sent_new and not self._tlp_used and self._pto != _INF:
                pto = self._pto
                if sb.outstanding == 1:
                    pto += self._delack
                self._tlp_deadline = now + pto
            self._rearm()
        # 4. Our FIN (or the FIN|ACK that answers the peer's), once all our
        #    data is acknowledged (T-D10).
        if self._close_requested and not self._fin_sent and not sendbuf.size and not sb.outstanding:
            self._finish_sending(now, out)
        # 5. ACK, unless the data just sent carried it and no SACK is owed.
        if self._ack_now or self._dupacks_owed:
            if len(out) == n_before or rb.ranges or self._dupacks_owed:
                payload = b""
                if rb.ranges:
                    payload = sack_codec.encode([(a & MASK, b & MASK) for a, b in rb.sack_blocks()])
                    self._sack_sent += 1
                seq = self._snd_nxt & MASK
                out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, seq, rcv_ack, adv, payload))
                for _ in range(self._dupacks_owed):
                    out.append(Packet(PROTO_STREAM, _ACK, src_net, src_node, dst_net, dst_node, sport, dport, seq, rcv_ack, adv, b""))
                self._dupacks_owed = 0
            self._ack_now = False
            self._ack_owed = 0
            self._t_ack = _INF
        elif len(out) != n_before:
            self._ack_owed = 0
            self._t_ack = _INF

    def _begin_close(self, now: float) -> None:
        self._set_state(_FIN_WAIT if self.state == _ESTABLISHED else _CLOSING)
        self._t_linger = now + self.options.linger

    def _finish_sending(self, now: float, out: list[Packet]) -> None:
        self._fin_sent = True
        self._t_linger = _INF
        if self.state == _CLOSING:
            # The peer's FIN is waiting: a single FIN|ACK answers it and is our FIN.
            self._answer_fin(self._peer_fin)  # appends to self._out, which is ``out``
            self._enter_time_wait(now)
            return
        out.append(self._packet(FLAG_FIN, self._snd_nxt & MASK, 0, 0, b""))
        self._fin_tx = 1
        self._rto_deadline = now + self._rtt.current_rto()
        self._tlp_deadline = _INF
        self._rearm()

    # ------------------------------------------------------------------
    # state changes

    def _set_state(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise AssertionError(f"stream state machine: {self.state.name} -> {new.name} is not a transition")
        self.state = new
        if new == _CLOSED:
            self._stop_timers()
            self._t_timewait = _INF
            self._t_grace = _INF
            self._sendbuf.clear()
            self._events.append(Closed())

    def _stop_timers(self) -> None:
        self._t_rtx = self._rto_deadline = self._tlp_deadline = _INF
        self._t_ack = self._t_persist = self._t_linger = _INF
        self._hold_until = -_INF
        self._ack_now = False
        self._dupacks_owed = 0
        self._tlp_due = self._probe_due = False

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(_TIME_WAIT)
        self._stop_timers()
        self._sendbuf.clear()
        self._t_timewait = now + self.options.time_wait

    def _fail(self, code: str, message: str, rst: bool) -> None:
        if rst:
            self._out.append(self._packet(FLAG_RST, 0, 0, 0, b""))
        self._events.append(StreamError(code, message))
        self._set_state(_CLOSED)

    def _idle_close(self) -> None:
        if not self._fin_sent:
            self._out.append(self._packet(FLAG_FIN, self._snd_nxt & MASK, 0, 0, b""))
        self._events.append(StreamError("idle_timeout", f"nothing received for {self._idle:g} s"))
        self._set_state(_CLOSED)

    # ------------------------------------------------------------------
    # helpers

    def _window(self) -> int:
        """Free receive buffer in 4096-byte units, never 0 (T-D8)."""
        w = (self._recv_cap - self._rb.ready_bytes) >> 12
        return 1 if w < 1 else (_MAX_WINDOW if w > _MAX_WINDOW else w)

    def _packet(self, flags: int, seq: int, ack: int, window: int, payload: bytes) -> Packet:
        return Packet(
            PROTO_STREAM,
            flags,
            self._src_net,
            self._src_node,
            self._dst_net,
            self._dst_node,
            self._src_port,
            self._dst_port,
            seq,
            ack,
            window,
            payload,
        )

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local} -> {self.remote} {self.state.name} "
            f"una={self._snd_una} nxt={self._snd_nxt} rcv={self._rb.nxt}>"
        )
