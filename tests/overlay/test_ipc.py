"""Daemon <-> driver IPC (trust-and-ipc.md §A2.2-A2.7, Q13/Q14, D-12/D-13)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import ipc
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError


def _hex(spaced: str) -> bytes:
    return bytes.fromhex(spaced.replace(" ", ""))


# A2.3 byte-level examples, length prefix included.
EXAMPLES = [
    (ipc.Info(), "00 00 00 01 0D"),
    (ipc.Bind(1000), "00 00 00 03 01 03 E8"),
    (ipc.BindOK(1000), "00 00 00 03 02 03 E8"),
    (ipc.Dial(Addr(0, 5), 7), "00 00 00 09 03 00 00 00 00 00 05 00 07"),
    (ipc.DialOK(1), "00 00 00 05 04 00 00 00 01"),
    (ipc.Send(1, b"hi"), "00 00 00 07 06 00 00 00 01 68 69"),
    (ipc.Accept(1000, 2, Addr(0, 9), 49152), "00 00 00 0F 05 03 E8 00 00 00 02 00 00 00 00 00 09 C0 00"),
    (ipc.HandshakeApprove(9), "00 00 00 06 0F 02 00 00 00 09"),
    (ipc.Error("bind: missing port"), "00 00 00 15 0A 00 01" + b"bind: missing port".hex()),
]


@pytest.mark.parametrize("msg, wire", EXAMPLES, ids=[type(m).__name__ for m, _ in EXAMPLES])
def test_byte_examples(msg: ipc.Message, wire: str) -> None:
    assert msg.encode() == _hex(wire)
    decode = ipc.decode_reply_frame if msg.code in (ipc.BIND_OK, ipc.DIAL_OK, ipc.ACCEPT, ipc.ERROR) else ipc.decode_request_frame
    assert decode(_hex(wire)) == msg


def test_command_codes() -> None:
    codes = [
        ipc.BIND, ipc.BIND_OK, ipc.DIAL, ipc.DIAL_OK, ipc.ACCEPT, ipc.SEND, ipc.RECV, ipc.CLOSE, ipc.CLOSE_OK,
        ipc.ERROR, ipc.SEND_TO, ipc.RECV_FROM, ipc.INFO, ipc.INFO_OK, ipc.HANDSHAKE, ipc.HANDSHAKE_OK,
        ipc.RESOLVE_HOSTNAME, ipc.RESOLVE_HOSTNAME_OK, ipc.SET_HOSTNAME, ipc.SET_HOSTNAME_OK, ipc.SET_VISIBILITY,
        ipc.SET_VISIBILITY_OK, ipc.DEREGISTER, ipc.DEREGISTER_OK, ipc.SET_TAGS, ipc.SET_TAGS_OK, ipc.SET_WEBHOOK,
        ipc.SET_WEBHOOK_OK, ipc.SET_TASK_EXEC, ipc.SET_TASK_EXEC_OK,
    ]  # fmt: skip
    assert codes == list(range(0x01, 0x1F))
    assert (ipc.HS_REQUEST, ipc.HS_APPROVE, ipc.HS_REJECT, ipc.HS_PENDING, ipc.HS_TRUSTED, ipc.HS_REVOKE) == tuple(range(1, 7))
    assert ipc.PUSH_CODES == {0x05, 0x07, 0x09, 0x0C}


REQUESTS = [
    ipc.Bind(0),
    ipc.Dial(Addr(1, 0xFFFFFFFF), 65535),
    ipc.Send(7, b""),
    ipc.Send(7, b"\x00" * 100),
    ipc.Close(3),
    ipc.SendTo(Addr(0, 9), 1001, b"ping"),
    ipc.Info(),
    ipc.HandshakeRequest(9, "let me in"),
    ipc.HandshakeRequest(9),
    ipc.HandshakeApprove(9),
    ipc.HandshakeReject(9, "no"),
    ipc.HandshakePending(),
    ipc.HandshakeTrusted(),
    ipc.HandshakeRevoke(9),
    ipc.ResolveHostname("alice"),
    ipc.SetHostname(""),
    ipc.SetVisibility(True),
    ipc.SetVisibility(False),
    ipc.Deregister(),
    ipc.SetTags(()),
    ipc.SetTags(("gpu", "#inference", "x")),
    ipc.SetWebhook("http://127.0.0.1:8080/hook"),
    ipc.SetTaskExec(True),
]


@pytest.mark.parametrize("msg", REQUESTS, ids=repr)
def test_request_round_trip(msg: ipc.Message) -> None:
    assert ipc.decode_request_frame(msg.encode()) == msg


def test_request_payload_layouts() -> None:
    assert ipc.HandshakeRequest(9, "hi").body() == b"\x0f\x01\x00\x00\x00\x09hi"
    assert ipc.HandshakeReject(9, "no").body() == b"\x0f\x03\x00\x00\x00\x09no"
    assert ipc.HandshakePending().body() == b"\x0f\x04"
    assert ipc.HandshakeTrusted().body() == b"\x0f\x05"
    assert ipc.HandshakeRevoke(5).body() == b"\x0f\x06\x00\x00\x00\x05"
    assert ipc.SendTo(Addr(0, 9), 1001, b"x").body() == _hex("0B 0000 00000009 03E9 78")
    assert ipc.SetVisibility(True).body() == b"\x15\x01"
    assert ipc.SetTaskExec(False).body() == b"\x1d\x00"
    assert ipc.SetTags(("a", "b")).body() == b'\x19["a","b"]'
    assert ipc.SetHostname("").body() == b"\x13"
    assert ipc.Deregister().body() == b"\x17"


def test_visibility_any_value_but_one_is_private() -> None:
    assert ipc.decode_request(b"\x15\x02") == ipc.SetVisibility(False)
    assert ipc.decode_request(b"\x1d\xff") == ipc.SetTaskExec(False)


def test_fixed_size_commands_ignore_trailing_bytes() -> None:
    assert ipc.decode_request(b"\x01\x03\xe8extra") == ipc.Bind(1000)
    assert ipc.decode_request(b"\x08\x00\x00\x00\x05xx") == ipc.Close(5)
    assert ipc.decode_request(b"\x0d\x00") == ipc.Info()
    assert ipc.decode_request(b"\x0f\x02\x00\x00\x00\x09\x01") == ipc.HandshakeApprove(9)
    assert ipc.decode_request(b"\x0f\x04junk") == ipc.HandshakePending()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"\x01", "bind: missing port"),
        (b"\x01\x03", "bind: missing port"),
        (b"\x03" + b"\0" * 7, "dial: missing address/port"),
        (b"\x06\x00\x00\x01", "send: missing conn_id"),
        (b"\x08", "close: missing conn_id"),
        (b"\x0b\x00\x00", "sendto: missing address/port"),
        (b"\x0f", "handshake: missing sub-command"),
        (b"\x0f\x07", "handshake: unknown sub-command 0x07"),
        (b"\x0f\xab", "handshake: unknown sub-command 0xAB"),
        (b"\x0f\x01\x00\x00\x00", "handshake request: missing node_id"),
        (b"\x0f\x02", "handshake approve: missing node_id"),
        (b"\x0f\x03\x00", "handshake reject: missing node_id"),
        (b"\x0f\x06\x00\x00", "handshake revoke: missing node_id"),
        (b"\x11", "resolve_hostname: missing hostname"),
        (b"\x15", "set_visibility: missing value"),
        (b"\x1d", "set_task_exec: missing value"),
        (b'\x19["a","b","c","d"]', "set_tags: maximum 3 tags allowed"),
        (b"\x19", "set_tags: invalid JSON: unexpected end of JSON input"),
        (b'\x19["a"', "set_tags: invalid JSON: unexpected end of JSON input"),
        (b"\x19x", "set_tags: invalid JSON: invalid character 'x' looking for beginning of value"),
        (b"\x19[1]", "set_tags: invalid JSON: json: cannot unmarshal number into Go value of type string"),
        (b'\x19{"a":1}', "set_tags: invalid JSON: json: cannot unmarshal object into Go value of type []string"),
        (b'\x19"a"', "set_tags: invalid JSON: json: cannot unmarshal string into Go value of type []string"),
        (b"\x02\x03\xe8", "unknown command: 0x02"),
        (b"\x0a\x00\x01x", "unknown command: 0x0A"),
        (b"\x1f", "unknown command: 0x1F"),
        (b"\xff", "unknown command: 0xFF"),
        (b"\x00", "unknown command: 0x00"),
    ],
)
def test_request_error_texts(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        ipc.decode_request(body)
    assert str(info.value) == message


def test_error_frame_carries_the_text_verbatim() -> None:
    try:
        ipc.decode_request(b"\x01")
    except DecodeError as exc:
        frame = ipc.Error(str(exc)).encode()
    assert frame == _hex("00 00 00 15 0A 00 01") + b"bind: missing port"


def test_set_tags_null_and_null_elements() -> None:
    assert ipc.decode_request(b"\x19null") == ipc.SetTags(())
    assert ipc.decode_request(b'\x19["a",null]') == ipc.SetTags(("a", ""))
    assert ipc.decode_request(b'\x19 ["x"] ') == ipc.SetTags(("x",))


def test_text_payloads_invalid_utf8_replaced_per_byte() -> None:
    assert ipc.decode_request(b"\x0f\x01\x00\x00\x00\x09a\xe2\x82") == ipc.HandshakeRequest(9, "a\ufffd\ufffd")
    assert ipc.decode_request(b"\x13\xff") == ipc.SetHostname("\ufffd")


REPLIES = [
    ipc.BindOK(0),
    ipc.DialOK(2**32 - 1),
    ipc.Accept(1000, 2, Addr(3, 4), 49152),
    ipc.Recv(1, b"data"),
    ipc.Recv(1, b""),
    ipc.CloseOK(1),
    ipc.Error("connection 5 not found"),
    ipc.Error("", 7),
    ipc.RecvFrom(Addr(0, 9), 49153, 1001, b"ping"),
    ipc.status_reply(9, "sent"),
    ipc.deregister_reply(),
]


@pytest.mark.parametrize("msg", REPLIES, ids=repr)
def test_reply_round_trip(msg: ipc.Message) -> None:
    assert ipc.decode_reply_frame(msg.encode()) == msg


def test_reply_layouts() -> None:
    assert ipc.RecvFrom(Addr(0, 9), 49153, 1001, b"x").body() == _hex("0C 0000 00000009 C001 03E9 78")
    assert ipc.Recv(1, b"x").body() == _hex("07 00000001 78")
    assert ipc.CloseOK(1).body() == _hex("09 00000001")


@pytest.mark.parametrize(
    "reply, json_text",
    [
        (ipc.status_reply(9, "sent"), '{"node_id":9,"status":"sent"}'),
        (ipc.status_reply(9, "revoked"), '{"node_id":9,"status":"revoked"}'),
        (ipc.pending_reply([]), '{"pending":[]}'),
        (ipc.trusted_reply([]), '{"trusted":[]}'),
        (
            ipc.pending_reply([ipc.PendingEntry(9, "k=", "hi <3", 1736944496)]),
            '{"pending":[{"justification":"hi \\u003c3","node_id":9,"public_key":"k=","received_at":1736944496}]}',
        ),
        (
            ipc.trusted_reply([ipc.TrustedEntry(12, "", ipc.GO_ZERO_TIME, True, 3)]),
            '{"trusted":[{"approved_at":-62135596800,"mutual":true,"network":3,"node_id":12,"public_key":""}]}',
        ),
        (ipc.set_hostname_reply(5, "alice"), '{"hostname":"alice","node_id":5,"type":"set_hostname_ok"}'),
        (ipc.set_visibility_reply(5, True), '{"node_id":5,"type":"set_visibility_ok","visibility":"public"}'),
        (ipc.set_visibility_reply(5, False), '{"node_id":5,"type":"set_visibility_ok","visibility":"private"}'),
        (ipc.deregister_reply(), '{"type":"deregister_ok"}'),
        (ipc.set_tags_reply(5, []), '{"node_id":5,"tags":null,"type":"set_tags_ok"}'),
        (ipc.set_tags_reply(5, ["gpu"]), '{"node_id":5,"tags":["gpu"],"type":"set_tags_ok"}'),
        (ipc.set_webhook_reply("http://x/?a&b"), '{"webhook":"http://x/?a\\u0026b"}'),
        (ipc.set_task_exec_reply(5, True), '{"node_id":5,"task_exec":true,"type":"set_task_exec_ok"}'),
        (
            ipc.resolve_hostname_reply(
                {"type": "resolve_hostname_ok", "node_id": 5, "address": "0:0000.0000.0005", "hostname": "alice", "public": False}
            ),
            '{"address":"0:0000.0000.0005","hostname":"alice","node_id":5,"public":false,"type":"resolve_hostname_ok"}',
        ),
    ],
)
def test_json_replies_byte_exact(reply: ipc.JsonReply, json_text: str) -> None:
    assert reply.payload() == json_text.encode()
    assert ipc.decode_reply(reply.body()) == reply


def test_reply_codes_of_builders() -> None:
    assert ipc.status_reply(1, "sent").code == ipc.HANDSHAKE_OK
    assert ipc.set_tags_reply(1, []).code == ipc.SET_TAGS_OK
    assert ipc.resolve_hostname_reply({}).code == ipc.RESOLVE_HOSTNAME_OK
    with pytest.raises(ValueError):
        ipc.JsonReply(ipc.BIND_OK, {})


def test_pending_and_trusted_parse() -> None:
    entries = [ipc.PendingEntry(9, "k", "j", 5), ipc.PendingEntry(10)]
    assert ipc.parse_pending(ipc.decode_reply(ipc.pending_reply(entries).body())) == entries
    trusted = [ipc.TrustedEntry(12, "k", 7, True, 3)]
    assert ipc.parse_trusted(ipc.decode_reply(ipc.trusted_reply(trusted).body())) == trusted
    assert ipc.parse_trusted(ipc.JsonReply(ipc.HANDSHAKE_OK, {"trusted": None})) == []
    with pytest.raises(DecodeError):
        ipc.parse_trusted(ipc.JsonReply(ipc.HANDSHAKE_OK, {"trusted": [{"node_id": "x"}]}))
    with pytest.raises(DecodeError):
        ipc.parse_pending(ipc.JsonReply(ipc.HANDSHAKE_OK, {"pending": 5}))


INFO = ipc.NodeInfo(
    node_id=5,
    address="0:0000.0000.0005",
    hostname="alice",
    uptime_secs=3600,
    connections=1,
    ports=5,
    peers=1,
    encrypted_peers=1,
    authenticated_peers=1,
    encrypt=True,
    identity=True,
    public_key="6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=",
    owner="",
    bytes_sent=10,
    bytes_recv=20,
    pkts_sent=1,
    pkts_recv=2,
    peer_list=(ipc.PeerInfo(9, "127.0.0.1:4000", True, True),),
    conn_list=(ipc.ConnInfo(1, 49152, "0:0000.0000.0009", 7, "ESTABLISHED", srtt_ms=12, rttvar_ms=3, recv_win=2097152),),
)


def test_info_keys_sorted_and_complete() -> None:
    body = INFO.to_json()
    text = ipc.info_reply(INFO).payload().decode()
    assert text.startswith('{"address":"0:0000.0000.0005","authenticated_peers":1,"bytes_recv":20,')
    assert set(body) == {
        "node_id", "address", "hostname", "uptime_secs", "connections", "ports", "peers", "encrypted_peers",
        "authenticated_peers", "encrypt", "identity", "public_key", "owner", "bytes_sent", "bytes_recv",
        "pkts_sent", "pkts_recv", "peer_list", "conn_list",
    }  # fmt: skip
    assert set(body["conn_list"][0]) == {
        "id", "local_port", "remote_addr", "remote_port", "state", "cong_win", "ssthresh", "in_flight", "srtt_ms",
        "rttvar_ms", "unacked", "ooo_buf", "peer_recv_win", "recv_win", "in_recovery", "bytes_sent", "bytes_recv",
        "segs_sent", "segs_recv", "retransmits", "fast_retx", "sack_recv", "sack_sent", "dup_acks",
    }  # fmt: skip
    assert '"peer_list":[{"authenticated":true,"encrypted":true,"endpoint":"127.0.0.1:4000","node_id":9}]' in text
    assert '"uptime_secs":3600' in text


def test_info_peer_path_extension_round_trips_and_is_absent_for_reference_entries() -> None:
    info = ipc.NodeInfo(node_id=1, address="0:0000.0000.0001", peer_list=(
        ipc.PeerInfo(2, "10.0.0.2:4000", True, True, path="punched"),
        ipc.PeerInfo(3, "10.0.0.9:9001", True, True, path="relay", relay=True),
        ipc.PeerInfo(4, "10.0.0.4:4000", True, True),  # as parsed from a reference daemon
    ))
    peers = info.to_json()["peer_list"]
    assert peers[0]["path"] == "punched" and peers[0]["relay"] is False
    assert (peers[1]["path"], peers[1]["relay"]) == ("relay", True)
    assert "path" not in peers[2] and "relay" not in peers[2]
    assert ipc.parse_info(ipc.info_reply(info)).peer_list == info.peer_list


def test_info_empty_lists_are_arrays() -> None:
    text = ipc.info_reply(ipc.NodeInfo(1, "0:0000.0000.0001")).payload()
    assert b'"conn_list":[]' in text and b'"peer_list":[]' in text


def test_info_parse_round_trip_and_zero_values() -> None:
    assert ipc.parse_info(ipc.decode_reply(ipc.info_reply(INFO).body())) == INFO
    sparse = ipc.parse_info(ipc.JsonReply(ipc.INFO_OK, {"node_id": 3, "uptime_secs": 1.5, "conn_list": None}))
    assert (sparse.node_id, sparse.uptime_secs, sparse.conn_list, sparse.address) == (3, 1.5, (), "")
    for bad in ({"node_id": -1}, {"peer_list": {}}, {"conn_list": [5]}, {"encrypt": 1}):
        with pytest.raises(DecodeError):
            ipc.parse_info(ipc.JsonReply(ipc.INFO_OK, bad))


@pytest.mark.parametrize(
    "body",
    [b"", b"\x02\x03", b"\x04\x00", b"\x05" + b"\0" * 13, b"\x07\x00", b"\x09", b"\x0a\x00", b"\x0c" + b"\0" * 9,
     b"\x0e", b"\x0e{", b"\x10[1,", b"\x01\x00\x00", b"\x0d", b"\x99"],
)  # fmt: skip
def test_reply_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        ipc.decode_reply(body)


def test_splitter_any_chunking_and_zero_length_skipped() -> None:
    stream = ipc.Info().encode() + b"\x00\x00\x00\x00" + ipc.Send(1, b"x" * 1000).encode() + ipc.Bind(7).encode()
    splitter = ipc.FrameSplitter()
    bodies = []
    for i in range(len(stream)):
        bodies += splitter.feed(stream[i : i + 1])
    assert [ipc.decode_request(b) for b in bodies] == [ipc.Info(), ipc.Send(1, b"x" * 1000), ipc.Bind(7)]
    assert splitter.buffered == 0


def test_splitter_limit() -> None:
    splitter = ipc.FrameSplitter()
    assert splitter.feed(struct.pack(">I", ipc.MAX_BODY)) == []  # exactly 1 MiB may follow
    with pytest.raises(DecodeError, match=r"^frame too large$") as info:
        ipc.FrameSplitter().feed(struct.pack(">I", ipc.MAX_BODY + 1))
    assert info.value.code == "oversize"


def test_largest_send_fits_and_writer_refuses_more() -> None:
    assert ipc.MAX_SEND_DATA == 1_048_571
    frame = ipc.Send(1, b"\0" * ipc.MAX_SEND_DATA).encode()
    assert len(frame) == 4 + ipc.MAX_BODY
    with pytest.raises(ValueError):
        ipc.Send(1, b"\0" * (ipc.MAX_SEND_DATA + 1)).encode()


def test_encode_send_chunks() -> None:
    data = bytes(range(256)) * 1000  # 256000 bytes
    frames = list(ipc.encode_send(3, data))
    assert len(frames) == 4 and all(len(f) <= 4 + 5 + ipc.SEND_CHUNK for f in frames)
    splitter = ipc.FrameSplitter()
    sends = [ipc.decode_request(b) for f in frames for b in splitter.feed(f)]
    assert b"".join(s.data for s in sends) == data and {s.conn_id for s in sends} == {3}
    assert list(ipc.encode_send(3, b"")) == []
    with pytest.raises(ValueError):
        list(ipc.encode_send(3, b"x", chunk=ipc.MAX_SEND_DATA + 1))


def test_encoders_refuse_out_of_range_fields() -> None:
    for msg in (ipc.Bind(65536), ipc.DialOK(-1), ipc.Dial(Addr(70000, 1), 1), ipc.Accept(1, 1, Addr(0, 2**32), 1)):
        with pytest.raises(ValueError):
            msg.encode()


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addrs = st.builds(Addr, u16, u32)
blobs = st.binary(max_size=200)
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
requests = st.one_of(
    st.builds(ipc.Bind, u16),
    st.builds(ipc.Dial, addrs, u16),
    st.builds(ipc.Send, u32, blobs),
    st.builds(ipc.Close, u32),
    st.builds(ipc.SendTo, addrs, u16, blobs),
    st.just(ipc.Info()),
    st.builds(ipc.HandshakeRequest, u32, texts),
    st.builds(ipc.HandshakeApprove, u32),
    st.builds(ipc.HandshakeReject, u32, texts),
    st.just(ipc.HandshakePending()),
    st.just(ipc.HandshakeTrusted()),
    st.builds(ipc.HandshakeRevoke, u32),
    st.builds(ipc.ResolveHostname, texts.filter(bool)),
    st.builds(ipc.SetHostname, texts),
    st.builds(ipc.SetVisibility, st.booleans()),
    st.just(ipc.Deregister()),
    st.builds(ipc.SetTags, st.lists(texts, max_size=3).map(tuple)),
    st.builds(ipc.SetWebhook, texts),
    st.builds(ipc.SetTaskExec, st.booleans()),
)
replies = st.one_of(
    st.builds(ipc.BindOK, u16),
    st.builds(ipc.DialOK, u32),
    st.builds(ipc.Accept, u16, u32, addrs, u16),
    st.builds(ipc.Recv, u32, blobs),
    st.builds(ipc.CloseOK, u32),
    st.builds(ipc.Error, texts, u16),
    st.builds(ipc.RecvFrom, addrs, u16, u16, blobs),
    st.builds(ipc.status_reply, u32, texts),
    st.builds(ipc.set_tags_reply, u32, st.lists(texts, max_size=3)),
    st.builds(ipc.pending_reply, st.lists(st.builds(ipc.PendingEntry, u32, texts, texts, st.integers(-(2**40), 2**40)), max_size=3)),
)


@settings(max_examples=400)
@given(requests)
def test_request_round_trip_property(msg: ipc.Message) -> None:
    assert ipc.decode_request_frame(msg.encode()) == msg


@settings(max_examples=400)
@given(replies)
def test_reply_round_trip_property(msg: ipc.Message) -> None:
    assert ipc.decode_reply_frame(msg.encode()) == msg


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bodies_value_or_decode_error(body: bytes) -> None:
    for decode in (ipc.decode_request, ipc.decode_reply, ipc.decode_request_frame, ipc.decode_reply_frame):
        try:
            decode(body)
        except DecodeError:
            pass
    try:
        for b in ipc.FrameSplitter().feed(body):
            ipc.decode_request(b)
    except DecodeError:
        pass


@settings(max_examples=500)
@given(requests | replies, st.data())
def test_mutated_frames_value_or_decode_error(msg: ipc.Message, data: st.DataObject) -> None:
    wire = bytearray(msg.encode())
    i = data.draw(st.integers(4, len(wire) - 1))
    wire[i] = data.draw(st.integers(0, 255))
    wire = wire[: data.draw(st.integers(4, len(wire)))]
    wire[0:4] = struct.pack(">I", len(wire) - 4)
    for decode in (ipc.decode_request_frame, ipc.decode_reply_frame):
        try:
            decode(bytes(wire))
        except DecodeError:
            pass


def test_splitter_returns_frames_before_a_bad_prefix_then_fails() -> None:
    splitter = ipc.FrameSplitter()
    assert splitter.feed(ipc.Info().encode() + struct.pack(">I", ipc.MAX_BODY + 1)) == [b"\x0d"]
    for _ in range(2):
        with pytest.raises(DecodeError, match="frame too large"):
            splitter.feed(b"")
