"""Reading JSON with the reference's Go rules (trust-and-ipc.md §0)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import goread
from pilotgw.overlay.errors import DecodeError

SCHEMA = {"node_id": goread.u32, "name": goread.string, "ts": goread.i64, "ok": goread.boolean, "port": goread.u16}


def read(text: str | bytes) -> dict[str, object]:
    return goread.fields(goread.loads(text), SCHEMA)


def test_plain_integers_only() -> None:
    assert read('{"node_id":5}') == {"node_id": 5}
    for bad in ("5.0", "5e0", "5E+0", "5.5", '"5"', "-1", "-0", "true", "[5]", "{}"):
        with pytest.raises(DecodeError):
            read(f'{{"node_id":{bad}}}')
    assert read('{"ts":-0}') == {"ts": 0}
    assert read('{"ts":-9223372036854775808}') == {"ts": -(2**63)}


@pytest.mark.parametrize(
    "field, value",
    [("node_id", 2**32), ("port", 65536), ("ts", 2**63), ("ts", -(2**63) - 1)],
)
def test_ranges(field: str, value: int) -> None:
    with pytest.raises(DecodeError):
        read(f'{{"{field}":{value}}}')


def test_field_names() -> None:
    assert read('{"Node_ID":1,"NAME":"a","unknown":[{"x":1}]}') == {"node_id": 1, "name": "a"}
    assert read('{"name":"a","Name":"b"}') == {"name": "b"}  # later duplicate wins
    assert read('{"t\u017f":1,"o\u212a":true}') == {"ts": 1, "ok": True}  # ſ ~ s, K (Kelvin) ~ k
    assert read('{"node_id":null,"name":null}') == {}  # null leaves the zero value


def test_only_objects_fill_structs() -> None:
    for bad in ("[]", '"x"', "5", "true"):
        with pytest.raises(DecodeError):
            read(bad)


def test_syntax_errors_have_go_like_texts() -> None:
    for text, message in [
        ("", "unexpected end of JSON input"),
        ("  ", "unexpected end of JSON input"),
        ('{"a":', "unexpected end of JSON input"),
        ("x", "invalid character 'x' looking for beginning of value"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("Infinity", "invalid character 'I' looking for beginning of value"),
    ]:
        with pytest.raises(DecodeError) as info:
            goread.loads(text)
        assert str(info.value) == message


def test_not_json_in_python_either() -> None:
    for bad in ("{} {}", "[1,]", "{'a':1}", "01", '"\x01"', "\ufeff{}", "1" * 5000, "[" * 5000):
        with pytest.raises(DecodeError):
            goread.loads(bad)


def test_utf16_is_not_sniffed() -> None:
    with pytest.raises(DecodeError):
        goread.loads('{"a":1}'.encode("utf-16"))


def test_invalid_utf8_replaced_per_byte() -> None:
    assert goread.go_string(b"a\xe2\x82b") == "a\ufffd\ufffdb"
    assert goread.go_string(b"\xed\xa0\x80") == "\ufffd" * 3  # an encoded surrogate
    assert goread.go_string("✓".encode()) == "✓"
    assert read(b'{"name":"\xff"}') == {"name": "\ufffd"}


def test_lone_surrogate_escape_becomes_replacement() -> None:
    assert read('{"name":"\\ud800x"}') == {"name": "\ufffdx"}
    assert read('{"name":"\\ud83d\\ude00"}') == {"name": "\U0001f600"}


def test_plain() -> None:
    assert goread.plain(goread.loads('{"a":[1,2.5,{},[]],"b":null,"a":-0}')) == {"a": 0, "b": None}
    assert goread.plain(goread.loads("[{}, []]")) == [{}, []]


def test_string_list_and_number() -> None:
    assert goread.string_list("t", ["a", None]) == ["a", ""]
    with pytest.raises(DecodeError):
        goread.string_list("t", goread.loads('{"a":"b"}'))
    assert goread.number("x", goread.loads("1.5")) == 1.5
    assert goread.number("x", 3) == 3
    with pytest.raises(DecodeError):
        goread.number("x", True)


@settings(max_examples=500)
@given(st.binary(max_size=100) | st.text(alphabet='{}[]":,.-+eE0123456789 truefalsnl\\u', max_size=60))
def test_any_input_gives_value_or_decode_error(data: bytes | str) -> None:
    try:
        goread.fields(goread.loads(data), SCHEMA)
    except DecodeError:
        pass
