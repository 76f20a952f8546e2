"""Registry codec: RV-TV1/RV-TV2 vectors, framing limits, §1.3 value rules."""

from __future__ import annotations

import json
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import gojson, registry
from pilotgw.overlay.errors import DecodeError

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
PUB_B64 = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="

RV_TV1 = [
    (("heartbeat", 5), "Vayk7vaXZVVJjGkNrV9JxPllSCBLQVqr/2MPPHutRfwj+PemQEu7Vii0HKDdDOVFAmzIEVGQZW1U0Fiyc3ujDQ=="),
    (("resolve", 5, 9), "LWHDxvV0RdGLPmK6V9hJdbQ2JPqDsOGqbjg5WL+srJfrZ8i+pV4EcVAPS9o3lt1wrSUYS+QPSemjVziJ48W9Cw=="),
    (("set_hostname", 5), "sFAeMXi+hoSIraAepw9BOGempbONF7BeuKws1elYWuUDqCv8PbBS8VLJEqgFJYqH1K8qWO3kKMhvNXi53hSNAQ=="),
    (("set_visibility", 5), "gYgEpEVyNOA9FXBSzYiHkZNgdSIR0W5K5z5PaZxC5lst9OYUQdKuidQU39Ll1ZZqRczgPiX7pA+Qkp0OKjuWDg=="),
    (("set_tags", 5), "FKL+5Sg5h0iyOJSdsMLRV+t4ZYxZho7je9sIasMLNlHs8gRV2nRU8dXnvmzqy2CxxvGUxsm6VzntlviJlt0XAA=="),
    (("report_trust", 5, 9), "nJXHh7c5yo/Z2LV7xk5rARirUSFnvQMH7sSPp2pdSM4Vr/pWSik1x5p1uQ5h+UfoErwUv4roF2K18sDeiSHaAw=="),
    (("handshake", 5, 9), "GEwYY2cCT8ncgwxFFC9eZAwgDkAQgGPpsUiDx5iDbecDXbt9nYvTxwfQhGPFTVhNbCV7vCKiIcL0voG5Cad7CQ=="),
    (("poll_handshakes", 5), "15QQk2bWqg1W5H08ZcYJIfkpqi9udFVmyRzXUAVduKzkp0QkmgSfWKzY34zHoUZXid8zxIt4hGtp+vYh1P4qDw=="),
    (("respond", 5, 9), "u/G35dq0mC4BnhqopNqMWyl5ynmRkPNx7OONSoazKoPIBl7JVq2blTU7QfRPpMyr2juWrBzh4kRx2WnlBfhPAg=="),
    (("deregister", 5), "+ZMmTkYiK9O3YfJ+1Ou12o0cpNzqpTTOxdtxzIo72M6yDZCAbyA1g8NF+9zkpBRt98SMNAKzDhw2v3YgsuheAA=="),
    (("rotate", 5), "LD3XZe1WFwmUOp41DBynBDrYUZdO68NTvuS8P30EgIJ49QtZQQ0NbyK3Ht5tapm516Bud20bPbmsrUHRkRxIDQ=="),
    (("punch", 5, 9), "zBK5PLhFHHrs7/fPhWrZbIlCJ5oXAqWH1Snna4ewpeVmkaeWiuICavv8/BDDT3KHNiI0BZjtUCwwyWUYyYbeBA=="),
]


@pytest.mark.parametrize(("parts", "expected"), RV_TV1)
def test_rv_tv1_signatures(parts, expected):
    data = registry.challenge(*parts)
    assert registry.sign(KEY, data) == expected
    registry.verify(KEY.public_key().public_bytes_raw(), data, expected)


def test_rv_tv1_public_key_and_hex():
    assert registry.encode_public_key(KEY.public_key().public_bytes_raw()) == PUB_B64
    sig = KEY.sign(b"heartbeat:5").hex()
    assert sig.startswith("55aca4eef6976555") and sig.endswith("2737ba30d")


def test_sign_accepts_a_callable_signer():
    assert registry.sign(KEY.sign, b"heartbeat:5") == RV_TV1[0][1]
    with pytest.raises(ValueError):
        registry.sign(lambda data: b"short", b"x")


def test_rv_tv2_frames():
    assert registry.encode_frame(registry.heartbeat(5, KEY)).hex() == (
        "000000877b226e6f64655f6964223a352c227369676e6174757265223a225661796b377661585a56564a6a476b4e72"
        "56394a78506c6c5343424c515671722f324d50504875745266776a2b50656d5145753756696930484b4464444f56"
        "46416d7a49455647515a573155304669796333756a44513d3d222c2274797065223a22686561727462656174227d"
    )
    reg = registry.register(KEY.public_key().public_bytes_raw(), "203.0.113.7:4000")
    assert registry.encode_frame(reg).hex() == (
        "000000707b226c697374656e5f61646472223a223230332e302e3131332e373a34303030222c227075626c69635f"
        "6b6579223a22366b7073592b4b635567712b39564237457937462b5a56486471362b766e755351683771615252473069"
        "773d222c2274797065223a227265676973746572227d"
    )
    assert registry.encode_frame(registry.lookup(9)).hex() == (
        "0000001d7b226e6f64655f6964223a392c2274797065223a226c6f6f6b7570227d"
    )


def test_builders_sign_the_documented_challenges():
    pub = KEY.public_key().public_bytes_raw()
    cases = [
        registry.resolve(9, 5, KEY),
        registry.set_hostname(5, "alice", KEY),
        registry.set_visibility(5, True, KEY),
        registry.set_tags(5, ["a"], KEY),
        registry.set_task_exec(5, True, KEY),
        registry.report_trust(5, 9, KEY),
        registry.revoke_trust(5, 9, KEY),
        registry.request_handshake(5, 9, "hi", KEY),
        registry.poll_handshakes(5, KEY, wait=10),
        registry.respond_handshake(5, 9, True, KEY),
        registry.deregister(5, KEY),
        registry.punch(5, 5, 9, KEY),
    ]
    for msg in cases:
        data, signer_id = registry.challenge_for(msg)
        assert signer_id == 5
        registry.verify(pub, data, msg["signature"])
    assert "signature" not in registry.heartbeat(5, None)
    assert registry.poll_handshakes(5, None) == {"type": "poll_handshakes", "node_id": 5}
    with pytest.raises(ValueError):
        registry.poll_handshakes(5, None, wait=31)


def test_register_omits_empty_owner_and_hostname():
    msg = registry.register(PUB_B64, "1.2.3.4:5")
    assert set(msg) == {"type", "public_key", "listen_addr"}
    assert registry.register(PUB_B64, owner="o", hostname="h")["owner"] == "o"


@pytest.mark.parametrize(
    ("signature", "why"),
    [(None, "required"), ("", "required"), ("!!!", "encoding"), ("AAAA", "failed"), (RV_TV1[1][1], "failed")],
)
def test_verify_rejects_bad_signatures_with_auth_code(signature, why):
    with pytest.raises(DecodeError, match=why) as info:
        registry.verify(KEY.public_key().public_bytes_raw(), b"heartbeat:5", signature)
    assert info.value.code == "auth"


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_splitter_handles_byte_at_a_time_and_pipelined_frames():
    data = frame(b'{"type":"a"}') + frame(b'{"type":"b"}')
    splitter = registry.FrameSplitter()
    bodies = []
    for i in range(len(data)):
        splitter.feed(data[i : i + 1])
        while (body := splitter.next_body()) is not None:
            bodies.append(registry.decode_body(body)["type"])
    assert bodies == ["a", "b"]
    assert splitter.pending == 0


def test_splitter_accepts_exactly_one_mib_and_refuses_one_more():
    splitter = registry.FrameSplitter()
    splitter.feed(struct.pack(">I", registry.MAX_FRAME) + b" " * registry.MAX_FRAME)
    assert len(splitter.next_body()) == registry.MAX_FRAME
    splitter.feed(struct.pack(">I", registry.MAX_FRAME + 1))
    with pytest.raises(DecodeError) as info:
        splitter.next_body()
    assert info.value.code == "too_large"


def test_encode_frame_refuses_oversize():
    with pytest.raises(ValueError):
        registry.encode_frame({"type": "x", "pad": "a" * registry.MAX_FRAME})


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"[1]", "not_object"), (b'"s"', "not_object"), (b"", "json"), (b"{", "json"), (b"NaN", "json"),
     (b'{"a":Infinity}', "json"), (b"[" * 100000, "json"), (b"9" * 5000, "json")],
)
def test_decode_body_refuses_non_objects(body, code):
    with pytest.raises(DecodeError) as info:
        registry.decode_body(body)
    assert info.value.code == code


def test_decode_body_null_is_empty_object_and_bad_utf8_is_replaced():
    assert registry.decode_body(b"null") == {}
    assert registry.decode_body(b'{"type":"\xff"}') == {"type": "\ufffd"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (5.9, 5), ("5", 0), (True, 0), (-1, 0), (None, 0), (4294967295, 4294967295), (4294967296, 0), (1e300, 0)],
)
def test_id_field_follows_the_reference(value, expected):
    assert registry.id_field({"node_id": value}, "node_id") == expected


def test_network_id_is_u16_and_other_fields():
    assert registry.id_field({"network_id": 70000}, "network_id", registry.MAX_U16) == 0
    assert registry.bool_field({"public": 1}, "public") is False
    assert registry.bool_field({"public": True}, "public") is True
    assert registry.str_field({"hostname": 5}, "hostname") == ""


@pytest.mark.parametrize("text", ["", "!!", "AAAA", PUB_B64[:-1]])
def test_decode_public_key_refuses_bad_keys(text):
    with pytest.raises(DecodeError) as info:
        registry.decode_public_key(text)
    assert info.value.code == "bad_key"


def test_reply_error_reads_shape_and_code():
    assert registry.reply_error({"type": "lookup_ok"}) is None
    assert registry.reply_error({"type": "error", "error": "request failed"}) == ("request failed", "unknown")
    assert registry.reply_error({"type": "error", "error": "request failed", "code": "auth"}) == ("request failed", "auth")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_encode_body_matches_go_style_json(msg):
    assert registry.encode_body(msg) == gojson.dumpb(msg)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_arbitrary_bodies_decode_or_raise_decode_error(data):
    try:
        assert isinstance(registry.decode_body(data), dict)
    except DecodeError:
        pass


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=8), st.integers(0, 2**32) | st.text(max_size=8), max_size=5))
def test_frames_round_trip(msg):
    splitter = registry.FrameSplitter()
    splitter.feed(registry.encode_frame(msg))
    assert registry.decode_body(splitter.next_body()) == json.loads(json.dumps(msg))
