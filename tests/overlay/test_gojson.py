"""Go-style JSON output (trust-and-ipc.md §0, services-and-cli.md §0)."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import gojson


def test_html_safe_escapes() -> None:
    assert gojson.dumps("<a href='x'>&\u2028\u2029</a>") == (
        '"\\u003ca href=\'x\'\\u003e\\u0026\\u2028\\u2029\\u003c/a\\u003e"'
    )


def test_non_ascii_stays_raw_and_controls_are_escaped() -> None:
    assert gojson.dumps("héllo ✓") == '"héllo ✓"'
    assert gojson.dumps('a"b\\c') == '"a\\"b\\\\c"'
    assert gojson.dumps("\n\r\t") == '"\\n\\r\\t"'
    assert gojson.dumps("\x01\x1f") == '"\\u0001\\u001f"'
    assert gojson.dumps("\x7f") == '"\x7f"'  # DEL is not escaped by Go
    assert gojson.dumps("\b\f") == '"\\b\\f"'  # Go >= 1.22 short forms


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert gojson.dumpb("a\udc80b") == '"a\ufffdb"'.encode()


def test_map_keys_sorted_struct_order_kept() -> None:
    obj = {"b": 1, "a": {"d": True, "c": None}, "é": [], "z": 2}
    assert gojson.dumps(obj) == '{"a":{"c":null,"d":true},"b":1,"z":2,"é":[]}'
    assert gojson.dumps(obj, sort_keys=False) == '{"b":1,"a":{"d":true,"c":null},"é":[],"z":2}'


def test_compact_has_no_spaces() -> None:
    assert gojson.dumps({"a": [1, 2], "b": "x y"}) == '{"a":[1,2],"b":"x y"}'


def test_indent_form() -> None:
    obj = {"trusted": [{"node_id": 12, "mutual": True}], "empty": [], "none": {}, "null": None}
    assert gojson.dumps(obj, indent=True, sort_keys=False) == (
        "{\n"
        '  "trusted": [\n'
        "    {\n"
        '      "node_id": 12,\n'
        '      "mutual": true\n'
        "    }\n"
        "  ],\n"
        '  "empty": [],\n'
        '  "none": {},\n'
        '  "null": null\n'
        "}"
    )


@pytest.mark.parametrize(
    "value, text",
    [
        (3600.0, "3600"),
        (12.345, "12.345"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e-6, "0.000001"),
        (2.5e-6, "0.0000025"),
        (1.234e-5, "0.00001234"),
        (1e-7, "1e-07"),
        (1.5e-7, "1.5e-07"),
        (1e16, "10000000000000000"),
        (1.5e20, "150000000000000000000"),
        (1e21, "1e+21"),
        (1.2345e22, "1.2345e+22"),
        (-1e21, "-1e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_float_forms(value: float, text: str) -> None:
    assert gojson.format_float(value) == text
    assert gojson.dumps(value) == text


def test_non_finite_floats_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            gojson.dumps(bad)


def test_integers_exact_and_bools() -> None:
    assert gojson.dumps([2**64 - 1, -(2**63), True, False, None]) == "[18446744073709551615,-9223372036854775808,true,false,null]"


def test_unsupported_types_refused() -> None:
    with pytest.raises(TypeError):
        gojson.dumps({1: "x"})
    with pytest.raises(TypeError):
        gojson.dumps(b"bytes")


@settings(max_examples=400)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_is_shortest_round_trip(value: float) -> None:
    text = gojson.format_float(value)
    assert float(text) == value
    assert not text.endswith(".0")
    mantissa, _, exponent = text.partition("e")
    if exponent:
        assert abs(value) < 1e-6 or abs(value) >= 1e21
        assert len(exponent.lstrip("+-")) >= 2
    else:
        assert value == 0 or 1e-6 <= abs(value) < 1e21
    # Same significant digits as Python's shortest repr.
    digits = repr(value).split("e")[0].replace("-", "").replace(".", "").strip("0")
    assert mantissa.replace("-", "").replace(".", "").strip("0") == digits or digits == ""


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | texts | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts.filter(lambda t: len(t) < 6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_output_is_json_with_the_same_value(value: object) -> None:
    text = gojson.dumpb(value).decode("utf-8")
    # Integers compared as floats: a float beyond 2**53 prints as Go's
    # shortest digits, which parse back to the same float but another int.
    assert json.loads(text, parse_int=float) == json.loads(json.dumps(value), parse_int=float)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(gojson.dumps(value, indent=True)) == json.loads(text)


def test_float_bit_patterns_round_trip() -> None:
    for bits in (0x0000000000000001, 0x000FFFFFFFFFFFFF, 0x3EB0C6F7A0B5ED8D, 0x4415AF1D78B58C40):
        (value,) = struct.unpack(">d", bits.to_bytes(8, "big"))
        assert float(gojson.format_float(value)) == value
