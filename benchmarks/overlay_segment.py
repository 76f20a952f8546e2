"""Per-segment CPU cost of the overlay data path, without any I/O.

One round trip = encode a 4096-byte stream data Packet, seal it as a PILS
frame, split the frame, open it (replay check, GCM, window commit) and decode
the packet. The baseline is raw AES-256-GCM encrypt + decrypt of the same
encoded packet with one preconstructed ``AESGCM`` object, so the ratio shows
what the protocol layer adds on top of the cipher.

Usage: ``python benchmarks/overlay_segment.py [--n 20000] [--runs 7] [--json]``
Prints the median microseconds per segment over ``--runs`` runs of ``--n``
segments each. Target: under 15 µs per round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pilotgw.overlay import packet, tunnel
from pilotgw.overlay.crypto import PeerCrypto, x25519_public_bytes

SEGMENT = 4096
TARGET_US = 15.0


def _peers() -> tuple[PeerCrypto, PeerCrypto]:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sender, receiver = PeerCrypto(a), PeerCrypto(b)
    sender.install(x25519_public_bytes(b), 0.0)
    receiver.install(x25519_public_bytes(a), 0.0)
    return sender, receiver


def run_segments(n: int) -> float:
    """Microseconds per full encode/seal/open/decode round trip."""
    sender, receiver = _peers()
    payload = os.urandom(SEGMENT)
    pkt = packet.Packet(
        packet.PROTO_STREAM, packet.FLAG_ACK, 0, 1, 0, 2, 49152, 1000, 1, 1, 512, payload
    )
    encode, decode, decode_pils = packet.encode, packet.decode, tunnel.decode_pils
    seal, open_ = sender.seal, receiver.open
    start = time.perf_counter()
    for i in range(n):
        pkt.seq = i
        frame = seal(1, encode(pkt))
        got = decode(open_(decode_pils(frame), 0.0))
    elapsed = time.perf_counter() - start
    if got.seq != n - 1 or bytes(got.payload) != payload:
        raise SystemExit("round trip produced the wrong packet")
    return elapsed / n * 1e6


def run_baseline(n: int) -> float:
    """Microseconds per raw AES-GCM encrypt + decrypt of the same buffer."""
    aead = AESGCM(os.urandom(32))
    data = packet.encode(
        packet.Packet(packet.PROTO_STREAM, packet.FLAG_ACK, 0, 1, 0, 2, 49152, 1000, 1, 1, 512, os.urandom(SEGMENT))
    )
    nonce = os.urandom(12)
    encrypt, decrypt = aead.encrypt, aead.decrypt
    start = time.perf_counter()
    for _ in range(n):
        decrypt(nonce, encrypt(nonce, data, None), None)
    return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="segments per run (default 20000)")
    parser.add_argument("--runs", type=int, default=7, help="runs; the median is reported (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.n < 1 or args.runs < 1:
        parser.error("--n and --runs must be positive")

    segment = statistics.median(run_segments(args.n) for _ in range(args.runs))
    baseline = statistics.median(run_baseline(args.n) for _ in range(args.runs))
    result = {
        "segment_bytes": SEGMENT,
        "n": args.n,
        "runs": args.runs,
        "round_trip_us": round(segment, 3),
        "aesgcm_baseline_us": round(baseline, 3),
        "ratio": round(segment / baseline, 2),
        "target_us": TARGET_US,
        "meets_target": segment < TARGET_US,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"segment round trip ({SEGMENT} B): {segment:.2f} us  (target < {TARGET_US} us)")
        print(f"raw AES-GCM enc+dec baseline:    {baseline:.2f} us")
        print(f"ratio:                           {segment / baseline:.2f}x")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
