"""A snapshot of one stream connection's figures, for diagnostics.

The daemon's Info reply lists every connection with its congestion, RTT,
window and counter values (trust-and-ipc.md §A2.6, shown by ``pilotctl
connections``). The connection keeps these anyway for its own work, or as a
single integer add on a path it already takes, so taking a snapshot costs a
few attribute reads and nothing per packet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Figures of one connection at the moment :meth:`Connection.stats` ran.

    Sizes are bytes, times seconds, counts are totals since the connection
    was created. Field names follow the Info ``conn_list`` keys where the
    unit is the same.
    """

    #: Congestion window.
    cong_win: int
    #: Slow-start threshold; very large (``2**62``) until the first loss.
    ssthresh: int
    #: Bytes sent and not cumulatively acknowledged (SACKed bytes included,
    #: as the reference counts them).
    in_flight: int
    #: Smoothed RTT and its variation; 0.0 until the first sample.
    srtt: float
    rttvar: float
    #: Segments sent and not cumulatively acknowledged.
    unacked: int
    #: Out-of-order pieces held beyond a hole (about one per segment).
    ooo_buf: int
    #: What the peer last advertised, in bytes.
    peer_recv_win: int
    #: What we advertise now: free receive buffer in whole 4096-byte units, as bytes.
    recv_win: int
    #: A loss episode is being repaired.
    in_recovery: bool
    #: Payload bytes: distinct bytes sent (retransmissions not counted again)
    #: and in-order bytes received.
    bytes_sent: int
    bytes_recv: int
    #: New data segments sent; data-bearing segments received (duplicates included).
    segs_sent: int
    segs_recv: int
    #: Segments sent again, for any reason (loss detection, probe or timeout).
    retransmits: int
    #: Segments declared lost from SACK/RACK evidence, before any timeout.
    fast_retx: int
    #: ACKs carrying SACK blocks, received and sent.
    sack_recv: int
    sack_sent: int
    #: Pure ACKs received that acknowledged nothing new while data was outstanding.
    dup_acks: int
    #: Retransmission timeouts that fired with data outstanding.
    timeouts: int = 0
    #: Data segments the local network stack refused (``send_failed``).
    local_drops: int = 0
    #: Size of new segments now (loss-adaptive, see ``segsize``).
    segment_size: int = 0
