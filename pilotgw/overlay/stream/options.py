"""Per-connection tunables, with the reference's values where peers can observe them.

A frozen dataclass: the daemon builds one per policy (reference peer, pilotgw
peer on loopback...) and shares it; the connection copies the fields it uses
on the hot path into plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilotgw.overlay.packet import MAX_PAYLOAD

#: The wire's segment unit: window values count 4096-byte segments (§1.11.6).
WINDOW_UNIT = 4096
#: Largest segment a reference peer is known to accept and the default.
REFERENCE_MSS = 4096
#: A segment whose datagram fits one IP packet on an Ethernet path (MTU 1500):
#: 1500 - IPv6 40 - UDP 8 - PILS framing 36 - relay head 9 - Pilot header 34
#: = 1373, rounded down. Larger segments are IP-fragmented, and under loss
#: fragmentation hurts twice: a datagram is lost when any fragment is, and
#: every lost fragment leaves its siblings in the receiver's (and a NAT's)
#: reassembly queue for 30 s; once that memory (``ipfrag_high_thresh``) is
#: full, *every* fragmented datagram is dropped -- the lab's stalls.
MTU_MSS = 1360


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Tunables of one stream connection. Times are seconds, sizes bytes."""

    #: Largest data payload we send. 4096 to reference peers; the daemon may
    #: raise it (up to 65535) only where the peer is known to accept it.
    mss: int = REFERENCE_MSS
    #: Smallest segment the loss-adaptive sizing shrinks to (see
    #: :mod:`.segsize`); at or above ``mss`` the adaptation is off.
    min_mss: int = MTU_MSS
    #: Disable Nagle: send sub-MSS segments even while data is unacknowledged.
    no_delay: bool = False
    #: Receive buffer (unread in-order bytes). Advertised as free space in
    #: 4096-byte units, never less than 1 (0 means "unlimited" to a reference
    #: sender); in-order data beyond twice this is dropped unacknowledged.
    recv_buffer: int = 512 * WINDOW_UNIT
    #: Send buffer threshold: above it ``send_buffered`` tells the writer to
    #: pause; :class:`SendBufferLow` fires when it drains below half.
    send_buffer: int = 4 * 1024 * 1024
    #: Acknowledge every N in-order full segments (2, like the reference).
    ack_every: int = 2
    #: Delayed-ACK timer (the reference's DelayedACKTimeout).
    delayed_ack: float = 0.040
    #: Pure duplicate ACKs added per receive hole so that a reference sender's
    #: fast retransmit fires (T-D7); 0 disables them.
    hole_dupacks: int = 3
    #: Initial congestion window in segments.
    initial_window: int = 10
    #: Congestion controller name (see :mod:`pilotgw.overlay.stream.congestion`).
    congestion: str = "newreno"
    #: RFC 6298 retransmission timeout bounds and the initial value.
    initial_rto: float = 1.0
    min_rto: float = 0.200
    max_rto: float = 10.0
    #: Consecutive retransmission timeouts with nothing acknowledged in
    #: between (cumulatively or by SACK) before we give up (RST): the peer or
    #: the path is gone. With the default bounds that is about 40 s.
    max_rto_retries: int = 8
    #: Give up (RST) when the peer keeps acknowledging later data by SACK but
    #: the cumulative ACK has not moved for this long with data outstanding.
    #: Longer than the kernel's 30 s fragment-reassembly timeout, after which
    #: any path that delivers anything delivers the oldest segment too.
    stall_timeout: float = 60.0
    #: SYN retransmission schedule (the reference's DialInitialRTO/DialMaxRTO/DialMaxRetries).
    syn_rto: float = 1.0
    syn_max_rto: float = 8.0
    syn_retries: int = 6
    #: Zero-window probe backoff bounds (ZeroWinProbeInitial/Max).
    probe_initial: float = 0.5
    probe_max: float = 30.0
    #: Keepalive after this long without sending anything (well under the
    #: reference's 120 s idle timeout); and our own idle timeout.
    keepalive: float = 30.0
    idle_timeout: float = 120.0
    #: After close(): how long to wait for our data to be acknowledged before
    #: giving up (RST), and how many times to retransmit the FIN.
    linger: float = 30.0
    fin_retries: int = 3
    #: How long missing data before a peer's FIN may still arrive (reordering).
    fin_data_grace: float = 2.0
    #: TIME_WAIT duration.
    time_wait: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.mss <= MAX_PAYLOAD:
            raise ValueError(f"mss must be 1..{MAX_PAYLOAD}, not {self.mss}")
        if not 1 <= self.min_mss:
            raise ValueError(f"min_mss must be positive, not {self.min_mss}")
        if self.recv_buffer < WINDOW_UNIT:
            raise ValueError(f"recv_buffer must be at least {WINDOW_UNIT} bytes")
        if self.ack_every < 1 or self.initial_window < 1 or self.send_buffer < 1:
            raise ValueError("ack_every, initial_window and send_buffer must be positive")
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise ValueError("need 0 < min_rto <= initial_rto <= max_rto")
        if not self.stall_timeout > 0:
            raise ValueError(f"stall_timeout must be positive, not {self.stall_timeout}")
