#!/usr/bin/env python3
"""Mutation fuzzer for every decoder in :mod:`pilotgw.overlay`.

The contract under test (``pilotgw/overlay/errors.py``): a decoder fed any
bytes returns a value or raises :class:`DecodeError`, nothing else. For each
target in :data:`TARGETS` this script builds valid seeds with the module's
own encoders, derives ``--count`` inputs from them (bit flips, byte
overwrites, truncation, extension, splices, random bytes, length-field
tampering, JSON token swaps) and counts the outcomes. Any other exception is
a bug: the first traceback and input per target are printed and the exit
status is 1.

Targets import their module lazily; one whose module (or function) is not
in the tree yet is skipped and listed as such. Work is spread over
``--jobs`` processes (default: every core) in deterministic chunks, so a
run is reproducible from ``--seed``.

    python tools/fuzz_decoders.py                 # 1,000,000 inputs per target
    python tools/fuzz_decoders.py --count 5000 --only ipc
    python tools/fuzz_decoders.py --json
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import random
import re
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

Decoder = Callable[[bytes], object]
CHUNK = 20_000  # inputs per work unit


@dataclass(frozen=True)
class Target:
    """A decoder entry: ``build`` imports lazily and returns the function to
    fuzz plus its seeds; ``length_fields`` are ``(offset, size)`` of length
    or count fields worth tampering with; ``json`` enables token swaps."""

    name: str
    module: str
    build: Callable[[], tuple[Decoder, list[bytes]]]
    length_fields: tuple[tuple[int, int], ...] = ()
    json: bool = False


def _mod(name: str) -> Any:
    return importlib.import_module(f"pilotgw.overlay.{name}")


def _chunked(feed: Callable[[bytes], object], data: bytes) -> list[object]:
    """Feed ``data`` to an incremental reader in three uneven chunks."""
    a, b = len(data) // 3, (2 * len(data)) // 3 + 1
    return [feed(data[:a]), feed(data[a:b]), feed(data[b:])]


def _first_ok(*calls: Callable[[], object]) -> list[object]:
    """Run every call; re-raise the first DecodeError if none succeeded, so a
    target that tries several readings counts as accepted only if one does."""
    DecodeError = _mod("errors").DecodeError
    results, first = [], None
    for call in calls:
        try:
            results.append(call())
        except DecodeError as exc:
            first = first or exc
    if not results and first is not None:
        raise first
    return results


# --- seeds and decoders per target ------------------------------------------------


def _address() -> tuple[Decoder, list[bytes]]:
    address = _mod("address")

    def decode(data: bytes) -> object:
        text = data.decode("utf-8", "surrogateescape")
        if ":" not in text:
            return address.parse_target(text)  # a bare node number, else a hostname
        return _first_ok(lambda: address.parse_addr(text), lambda: address.parse_socket_addr(text))

    seeds = [b"0:0000.0000.0005", b"0:0000.FFFF.FFFF:1001", b"163:00A3.0001.1170", b"70000", b"1:00A3.F291.0004"]
    return decode, seeds


def _packet_seeds() -> list[bytes]:
    packet, sack = _mod("packet"), _mod("sack")
    P = packet.Packet
    return [
        packet.encode(P(packet.PROTO_STREAM, packet.FLAG_SYN, 0, 1, 0, 2, 49152, 1000, 0, 0, 512)),
        packet.encode(P(packet.PROTO_STREAM, packet.FLAG_ACK, 0, 1, 0, 2, 49152, 1000, 1, 1, 502, b"hello")),
        packet.encode(P(packet.PROTO_STREAM, packet.FLAG_ACK, 0, 2, 0, 1, 1000, 49152, 1, 1, 510, sack.encode([(4097, 8193)]))),
        packet.encode(P(packet.PROTO_DATAGRAM, 0, 0, 1, 0, 2, 49153, 1001, payload=b"ping" * 50)),
        packet.encode(P(packet.PROTO_CONTROL, packet.FLAG_ACK, 0, 2, 0, 1, 0, 49154, 7, 8, payload=b"abc")),
    ]


def _packet() -> tuple[Decoder, list[bytes]]:
    return _mod("packet").decode, _packet_seeds()


def _sack() -> tuple[Decoder, list[bytes]]:
    sack = _mod("sack")

    def decode(data: bytes) -> object:
        return sack.looks_like_sack(data), sack.decode(data)

    seeds = [sack.encode([(4097, 8193), (12289, 16385)]), sack.encode([(1, 2)] * 4), sack.encode([(0xFFFFFF00, 5)])]
    return decode, seeds


def _goread() -> tuple[Decoder, list[bytes]]:
    goread = _mod("goread")
    schema = {"node_id": goread.u32, "name": goread.string, "ts": goread.i64, "ok": goread.boolean,
              "tags": goread.string_list, "n": goread.number}  # fmt: skip

    def decode(data: bytes) -> object:
        value = goread.loads(data)
        goread.plain(value)
        return goread.fields(value, schema)

    seeds = [b'{"node_id":5,"name":"a\\u003c","ts":-7,"ok":true,"tags":["x",null],"n":1.5e3}', b"[1,{},[]]", b"null"]
    return decode, seeds


def _handshake_seeds() -> list[bytes]:
    handshake = _mod("handshake")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    now = 1736944496
    return [
        handshake.build(handshake.REQUEST, 7, 9, key, now, justification="hi <there> & \u00e9").encode(),
        handshake.build(handshake.ACCEPT, 9, 7, key, now).encode(),
        handshake.build(handshake.REJECT, 9, 7, key, now, reason="no").encode(),
        handshake.build(handshake.REVOKE, 4294967295, 0, key, now).encode(),
    ]


def _handshake() -> tuple[Decoder, list[bytes]]:
    handshake = _mod("handshake")
    DecodeError = _mod("errors").DecodeError

    def decode(data: bytes) -> object:
        msg = handshake.decode(data)
        for check in (lambda: handshake.verify(msg, 9), lambda: handshake.check_fresh(msg, 1736944496)):
            try:
                check()
            except DecodeError:
                pass
        return handshake.replay_key(msg)

    return decode, _handshake_seeds()


def _handshake_stream() -> tuple[Decoder, list[bytes]]:
    handshake = _mod("handshake")

    def decode(data: bytes) -> object:
        asm = handshake.Assembler(limit=4096)
        got = [m for m in _chunked(asm.feed, data) if m is not None]
        return got or asm.eof()

    return decode, _handshake_seeds()


def _dataexchange_seeds() -> list[bytes]:
    dx = _mod("dataexchange")
    return [
        dx.Frame(dx.TEXT, b"hello").encode(),
        dx.file_frame("a.txt", b"hi").encode(),
        dx.Frame(dx.JSON, b'{"a":1}').encode() + dx.Frame(dx.BINARY, bytes(range(40))).encode(),
        dx.Frame(dx.FILE, b"\x00\x09ab").encode(),
        dx.ack(dx.FILE, 1024).encode(),
    ]


def _dataexchange() -> tuple[Decoder, list[bytes]]:
    dx = _mod("dataexchange")

    def decode(data: bytes) -> object:
        frame = dx.decode(data)
        return frame.filename, frame.data

    return decode, _dataexchange_seeds()


def _dataexchange_stream() -> tuple[Decoder, list[bytes]]:
    dx = _mod("dataexchange")

    def decode(data: bytes) -> object:
        reader, asm = dx.StreamReader(max_length=1 << 16), dx.FrameAssembler(max_length=1 << 16)
        events = _chunked(reader.feed, data)
        frames = _chunked(asm.feed, data)
        return events, frames, reader.at_boundary, asm.at_boundary

    return decode, _dataexchange_seeds()


def _eventstream() -> tuple[Decoder, list[bytes]]:
    es = _mod("eventstream")

    def decode(data: bytes) -> object:
        try:
            return es.decode(data)
        finally:
            _chunked(es.EventReader().feed, data)

    seeds = [es.subscribe("news"), es.Event("*", b"payload").encode(), es.Event("t\xff", b"").encode() + es.subscribe("x")]
    return decode, seeds


def _tasksubmit() -> tuple[Decoder, list[bytes]]:
    tsm = _mod("tasksubmit")

    def decode(data: bytes) -> object:
        frame = tsm.decode(data)
        return _first_ok(
            lambda: tsm.decode_message(frame),
            lambda: tsm.SubmitResponse.decode(frame),
            lambda: tsm.TaskFile.parse(frame.payload),
        )

    tid = "00010203-0405-0607-0809-0a0b0c0d0e0f"
    file = tsm.TaskFile.new(tid, "d <&>", "0:0000.0000.0001", "0:0000.0000.0002", 1736944496)
    file.accepted_at, file.time_idle_ms = file.created_at, 1500
    seeds = [
        tsm.SubmitRequest(tid, "summarise \u00e9", "0:0000.0000.0001", "0:0000.0000.0002").encode(),
        tsm.SubmitResponse(tid, 400, "Polo score too low: submitter=-1, receiver=1").encode(),
        tsm.TaskStatusUpdate(tid, "ACCEPTED", "Task accepted").encode(),
        tsm.TaskResultMessage(tid, "file", "2026-01-15T12:34:56Z", filename="a.png", file_data=b"\x89PNG",
                              time_idle_ms=5, time_staged_ms=6, time_cpu_ms=7).encode(),
        tsm.TaskResult("d", "done", {"k": [1, 2]}, "2026-01-15T12:34:56Z", error="e").encode(),
        tsm.encode_frame(tsm.SUBMIT, file.to_json()),
    ]
    return decode, seeds


def _ipc_seeds() -> list[bytes]:
    ipc = _mod("ipc")
    from pilotgw.overlay.address import Addr

    msgs = [
        ipc.Info(), ipc.Bind(1000), ipc.Dial(Addr(0, 5), 7), ipc.Send(1, b"hi"), ipc.Close(3),
        ipc.SendTo(Addr(0, 9), 1001, b"ping"), ipc.HandshakeRequest(9, "please"), ipc.HandshakeApprove(9),
        ipc.HandshakeReject(9, "no"), ipc.HandshakePending(), ipc.HandshakeTrusted(), ipc.HandshakeRevoke(9),
        ipc.ResolveHostname("alice"), ipc.SetHostname("bob"), ipc.SetVisibility(True), ipc.Deregister(),
        ipc.SetTags(("a", "b")), ipc.SetWebhook("http://x/"), ipc.SetTaskExec(True),
        ipc.BindOK(1000), ipc.DialOK(1), ipc.Accept(1000, 2, Addr(0, 9), 49152), ipc.Recv(1, b"data"),
        ipc.CloseOK(1), ipc.Error("bind: missing port"), ipc.RecvFrom(Addr(0, 9), 49153, 1001, b"x"),
        ipc.status_reply(9, "sent"), ipc.pending_reply([ipc.PendingEntry(9, "k", "j", 5)]),
        ipc.trusted_reply([ipc.TrustedEntry(9, "k", 5, True, 1)]), ipc.set_tags_reply(5, []),
        ipc.info_reply(ipc.NodeInfo(5, "0:0000.0000.0005", uptime_secs=1.5, peer_list=(ipc.PeerInfo(9, "1.2.3.4:5"),),
                                    conn_list=(ipc.ConnInfo(1, 1000, "0:0000.0000.0009", 7, "ESTABLISHED"),))),
    ]  # fmt: skip
    return [m.encode() for m in msgs]


def _ipc() -> tuple[Decoder, list[bytes]]:
    ipc = _mod("ipc")
    DecodeError = _mod("errors").DecodeError

    def decode(data: bytes) -> object:
        out = _first_ok(lambda: ipc.decode_request_frame(data), lambda: ipc.decode_reply_frame(data))
        for reply in out:
            if isinstance(reply, ipc.JsonReply):
                for view in (ipc.parse_info, ipc.parse_pending, ipc.parse_trusted):
                    try:  # typed views of the JSON: each may not apply
                        view(reply)
                    except DecodeError:
                        pass
        return out

    return decode, _ipc_seeds()


def _ipc_stream() -> tuple[Decoder, list[bytes]]:
    ipc = _mod("ipc")
    DecodeError = _mod("errors").DecodeError

    def decode(data: bytes) -> object:
        splitter = ipc.FrameSplitter(max_body=1 << 16)
        out = []
        for bodies in _chunked(splitter.feed, data):
            for body in bodies:
                try:
                    out.append(ipc.decode_request(body))
                except DecodeError:
                    out.append(ipc.decode_reply(body))
        return out

    seeds = _ipc_seeds()
    return decode, seeds + [seeds[0] + b"\0\0\0\0" + seeds[3] + seeds[-1]]


def _tunnel_seeds() -> list[bytes]:
    tunnel = _mod("tunnel")
    pkts = _packet_seeds()
    return [
        tunnel.encode_pilt(pkts[1]),
        tunnel.encode_pils(1, bytes(12), b"\xaa" * 60),
        tunnel.PilkFrame(5, bytes(range(32))).encode(),
        tunnel.PilaFrame(5, bytes(range(32)), bytes(range(32, 64)), bytes(64)).encode(),
        tunnel.PILP_FRAME,
        b"\x01\x00\x00\x00\x05",
    ]


def _tunnel() -> tuple[Decoder, list[bytes]]:
    tunnel = _mod("tunnel")
    by_kind = {
        tunnel.FrameKind.PILT: tunnel.decode_pilt,
        tunnel.FrameKind.PILS: tunnel.decode_pils,
        tunnel.FrameKind.PILK: tunnel.decode_pilk,
        tunnel.FrameKind.PILA: tunnel.decode_pila,
    }

    def decode(data: bytes) -> object:
        kind = tunnel.classify(data)
        fn = by_kind.get(kind)
        return fn(data) if fn else kind

    return decode, _tunnel_seeds()


def _crypto() -> tuple[Decoder, list[bytes]]:
    crypto, tunnel = _mod("crypto"), _mod("tunnel")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    priv_a, priv_b = (X25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in (1, 2))
    a, b = crypto.PeerCrypto(priv_a), crypto.PeerCrypto(priv_b)
    a.install(crypto.x25519_public_bytes(priv_b), 0.0)
    b.install(crypto.x25519_public_bytes(priv_a), 0.0)
    seeds = [bytes(a.seal(1, p)) for p in _packet_seeds()]
    clock = [0.0]

    def decode(data: bytes) -> object:
        clock[0] += 0.001
        return b.open(tunnel.decode_pils(data), clock[0])

    return decode, seeds


def _pila() -> tuple[Decoder, list[bytes]]:
    crypto, tunnel, identity = _mod("crypto"), _mod("tunnel"), _mod("identity")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    ident = identity.Identity(b"\x07" * 32)
    ours = X25519PrivateKey.from_private_bytes(b"\x03" * 32)
    frame = crypto.sign_pila(ident, 5, crypto.x25519_public_bytes(ours))

    def decode(data: bytes) -> object:
        got = tunnel.decode_pila(data)
        crypto.verify_pila(got, ident.public_key)
        return crypto.x25519_shared(ours, got.x25519_public)

    return decode, [frame.encode()]


def _identity() -> tuple[Decoder, list[bytes]]:
    identity = _mod("identity")
    return identity.from_json, [identity.Identity(b"\x07" * 32).to_json()]


def _securechannel() -> tuple[Decoder, list[bytes]]:
    sc = _mod("securechannel")
    key = bytes(range(32))
    server = sc.SecureChannel(sc.Role.SERVER, key)
    seeds = [server.seal(b"hello"), server.seal(b"") + server.seal(b"x" * 100)]

    def decode(data: bytes) -> object:
        sc.decode_record(data)
        client = sc.SecureChannel(sc.Role.CLIENT, key)
        return _chunked(client.receive, data)

    # Seeds after the first continue the server's counter; re-seal from a
    # fresh channel so every seed is valid on its own.
    fresh = sc.SecureChannel(sc.Role.SERVER, key)
    return decode, [seeds[0], fresh.seal(b"") + fresh.seal(b"x" * 100)]


def _registry() -> tuple[Decoder, list[bytes]]:
    registry = _mod("registry")
    DecodeError = _mod("errors").DecodeError
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    msgs = [
        registry.heartbeat(5, key),
        registry.register(b"\x01" * 32, "203.0.113.7:4000"),
        registry.request_handshake(5, 9, "hi", key),
        registry.set_tags(5, ["a", "b"], key),
        {"type": "lookup_ok", "node_id": 9, "public_key": "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=", "tags": None},
        {"type": "error", "error": "request failed"},
    ]
    frames = [registry.encode_frame(m) for m in msgs]

    def decode(data: bytes) -> object:
        splitter = registry.FrameSplitter()
        out = []
        splitter.feed(data)
        while (body := splitter.next_body()) is not None:
            msg = registry.decode_body(body)
            out.append((registry.id_field(msg, "node_id"), registry.str_field(msg, "type"),
                        registry.bool_field(msg, "accept"), registry.reply_error(msg)))  # fmt: skip
            try:
                registry.decode_public_key(registry.str_field(msg, "public_key"))
            except DecodeError:
                pass
            if registry.str_field(msg, "type") in registry.SIGNED:
                challenge, _ = registry.challenge_for(msg)
                try:
                    registry.verify(key.public_key(), challenge, msg.get("signature"))
                except DecodeError:
                    pass
        return out

    return decode, frames + [frames[0] + frames[4]]


def _beacon() -> tuple[Decoder, list[bytes]]:
    beacon = _mod("beacon")
    seeds = [bytes.fromhex(h) for h in (
        "0100000005", "0204cb0071079c40", "021020010db80000000000000000000000012329", "030000000500000009",
        "0404c6336414c350", "05000000050000000950494c50", "060000000550494c50", "070000000100020000000500000009",
    )]  # fmt: skip

    def decode(data: bytes) -> object:
        msg = beacon.decode(data)
        if isinstance(msg, beacon.Relay) and msg.payload:
            return beacon.decode(beacon.relay_to_deliver(data))
        return msg

    return decode, seeds


TARGETS: list[Target] = [
    Target("address", "address", _address),
    Target("packet", "packet", _packet, ((2, 2),)),
    Target("sack", "sack", _sack, ((4, 1),)),
    Target("goread", "goread", _goread, json=True),
    Target("handshake", "handshake", _handshake, json=True),
    Target("handshake.stream", "handshake", _handshake_stream, json=True),
    Target("dataexchange", "dataexchange", _dataexchange, ((4, 4), (8, 2))),
    Target("dataexchange.stream", "dataexchange", _dataexchange_stream, ((4, 4), (8, 2), (17, 4))),
    Target("eventstream", "eventstream", _eventstream, ((0, 2), (6, 4))),
    Target("tasksubmit", "tasksubmit", _tasksubmit, ((0, 4), (4, 4)), json=True),
    Target("ipc", "ipc", _ipc, ((0, 4), (5, 1)), json=True),
    Target("ipc.stream", "ipc", _ipc_stream, ((0, 4), (5, 4)), json=True),
    Target("tunnel", "tunnel", _tunnel, ((6, 2), (4, 4))),
    Target("crypto.pils", "crypto", _crypto, ((4, 4), (12, 8))),
    Target("crypto.pila", "crypto", _pila, ((4, 4),)),
    Target("identity", "identity", _identity, json=True),
    Target("securechannel", "securechannel", _securechannel, ((0, 4), (8, 8))),
    Target("registry", "registry", _registry, ((0, 4),), json=True),
    Target("beacon", "beacon", _beacon, ((1, 1), (5, 2))),
]


# --- mutations ---------------------------------------------------------------------------

_INTERESTING = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x400, 0x401, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, 0x7FFFFFFF, 0xFFFFFFFF)  # fmt: skip
_JSON_SWAPS = (b"5.0", b"-1", b"-0", b"1e3", b"99999999999999999999999", b"null", b"true", b'"5"', b"{}", b"[]",
               b"[1,2]", b'"\\ud800"', b'"\xff"', b"NaN", b"0", b"4294967296", b"9223372036854775808", b'""')  # fmt: skip
_JSON_TOKEN = re.compile(rb'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*"|true|false|null')
_BYTES = b'\x00\xff\x7f\x80{}[]":,\\ -.0123456789eE'


def _tamper_length(rng: random.Random, data: bytearray, fields: tuple[tuple[int, int], ...]) -> None:
    if fields and rng.random() < 0.7:
        offset, size = rng.choice(fields)
    else:
        size = rng.choice((1, 2, 4, 8))
        offset = rng.randrange(max(1, len(data)))
    value = rng.choice(_INTERESTING + (len(data), len(data) - offset, len(data) + 1, max(0, len(data) - 1)))
    value = (value + rng.choice((0, 0, 0, -1, 1))) % (1 << (8 * size))
    raw = value.to_bytes(size, "big")
    if offset + size > len(data):
        data.extend(bytes(offset + size - len(data)))
    data[offset : offset + size] = raw


def mutate(rng: random.Random, seeds: list[bytes], target: Target) -> bytes:
    """One input: a seed with 1-3 stacked mutations, or fresh random bytes."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(0, 2 * max(len(s) for s in seeds) + 2))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(10 if target.json else 9)
        n = len(data)
        if op == 0 and n:  # bit flips
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # byte overwrites
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(n)] = rng.choice(_BYTES) if rng.random() < 0.5 else rng.randrange(256)
        elif op == 2:  # truncation
            del data[rng.randrange(n + 1) :]
        elif op == 3:  # extension
            data += rng.randbytes(rng.randint(1, 64)) if rng.random() < 0.5 else rng.choice(seeds)
        elif op == 4:  # length-field tampering
            _tamper_length(rng, data, target.length_fields)
        elif op == 5:  # splice two seeds
            other = rng.choice(seeds)
            data = data[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
        elif op == 6 and n:  # delete a range
            i = rng.randrange(n)
            del data[i : i + rng.randint(1, 16)]
        elif op == 7:  # insert bytes
            i = rng.randrange(n + 1)
            data[i:i] = bytes(rng.choice(_BYTES) for _ in range(rng.randint(1, 8)))
        elif op == 8 and n:  # duplicate a range
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 32))
            data[j:j] = data[i:j]
        elif op == 9:  # JSON token swap
            tokens = list(_JSON_TOKEN.finditer(data))
            if tokens:
                tok = rng.choice(tokens)
                data[tok.start() : tok.end()] = rng.choice(_JSON_SWAPS)
    return bytes(data)


# --- running -------------------------------------------------------------------------------


@dataclass
class Stats:
    inputs: int = 0
    accepted: int = 0
    decode_errors: int = 0
    unexpected: int = 0
    max_ms: float = 0.0
    first_traceback: str | None = None
    first_input: str | None = None
    seconds: float = 0.0
    error_codes: dict[str, int] = field(default_factory=dict)

    def merge(self, other: "Stats") -> None:
        self.inputs += other.inputs
        self.accepted += other.accepted
        self.decode_errors += other.decode_errors
        self.unexpected += other.unexpected
        self.max_ms = max(self.max_ms, other.max_ms)
        self.seconds += other.seconds
        if self.first_traceback is None and other.first_traceback is not None:
            self.first_traceback, self.first_input = other.first_traceback, other.first_input
        for code, n in other.error_codes.items():
            self.error_codes[code] = self.error_codes.get(code, 0) + n


_BUILT: dict[str, tuple[Decoder, list[bytes]]] = {}


def _target(name: str) -> Target:
    return next(t for t in TARGETS if t.name == name)


def run_chunk(task: tuple[str, int, int, int]) -> tuple[str, Stats]:
    """Fuzz ``count`` inputs of one target; deterministic in (seed, index)."""
    name, index, count, seed = task
    target = _target(name)
    if name not in _BUILT:
        _BUILT[name] = target.build()
    decode, seeds = _BUILT[name]
    DecodeError = _mod("errors").DecodeError
    rng = random.Random(f"{seed}:{name}:{index}")
    stats = Stats()
    started = time.perf_counter()
    for _ in range(count):
        data = mutate(rng, seeds, target)
        t0 = time.perf_counter()
        try:
            decode(data)
            stats.accepted += 1
        except DecodeError as exc:
            stats.decode_errors += 1
            stats.error_codes[exc.code] = stats.error_codes.get(exc.code, 0) + 1
        except Exception:  # noqa: BLE001 -- exactly what the fuzzer looks for
            stats.unexpected += 1
            if stats.first_traceback is None:
                stats.first_traceback = traceback.format_exc()
                stats.first_input = data.hex()
        stats.max_ms = max(stats.max_ms, (time.perf_counter() - t0) * 1000)
        stats.inputs += 1
    stats.seconds = time.perf_counter() - started
    return name, stats


def available(target: Target) -> str | None:
    """``None`` if the target can run here, else why it is skipped."""
    try:
        _mod(target.module)
        target.build()
    except ImportError as exc:
        return f"module not present ({exc})"
    except AttributeError as exc:
        return f"API not present ({exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="inputs per decoder (default 1,000,000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; runs are reproducible")
    parser.add_argument("--only", action="append", default=[], help="run only targets whose name starts with this")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    selected = [t for t in TARGETS if not args.only or any(t.name.startswith(p) for p in args.only)]
    skipped: dict[str, str] = {}
    runnable = []
    for target in selected:
        reason = available(target)
        if reason is None:
            runnable.append(target)
        else:
            skipped[target.name] = reason

    tasks = [
        (t.name, i, min(CHUNK, args.count - start), args.seed)
        for t in runnable
        for i, start in enumerate(range(0, args.count, CHUNK))
    ]
    totals = {t.name: Stats() for t in runnable}
    started = time.perf_counter()
    if args.jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for name, stats in pool.imap_unordered(run_chunk, tasks):
                totals[name].merge(stats)
    else:
        for task in tasks:
            name, stats = run_chunk(task)
            totals[name].merge(stats)
    wall = time.perf_counter() - started

    failed = any(s.unexpected for s in totals.values())
    if args.json:
        out = {
            "count": args.count,
            "seed": args.seed,
            "jobs": args.jobs,
            "wall_seconds": round(wall, 2),
            "ok": not failed,
            "decoders": {
                name: {
                    "inputs": s.inputs,
                    "accepted": s.accepted,
                    "decode_error": s.decode_errors,
                    "unexpected": s.unexpected,
                    "max_ms": round(s.max_ms, 3),
                    "cpu_seconds": round(s.seconds, 2),
                    "error_codes": dict(sorted(s.error_codes.items())),
                    "first_traceback": s.first_traceback,
                    "first_input_hex": s.first_input,
                }
                for name, s in totals.items()
            },
            "skipped": skipped,
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"{'decoder':<22}{'inputs':>11}{'accepted':>11}{'DecodeError':>13}{'unexpected':>12}{'max ms':>9}")
        for name, s in totals.items():
            print(f"{name:<22}{s.inputs:>11,}{s.accepted:>11,}{s.decode_errors:>13,}{s.unexpected:>12,}{s.max_ms:>9.2f}")
        for name, reason in skipped.items():
            print(f"{name:<22}skipped: {reason}")
        print(f"wall time {wall:.1f} s, {args.jobs} job(s), seed {args.seed}")
        for name, s in totals.items():
            if s.first_traceback:
                print(f"\n=== {name}: first unexpected exception (input hex {s.first_input})\n{s.first_traceback}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
