"""The reference flag parser and value errors (services-and-cli.md §A9.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pilotgw.cli.args import go_parse_duration, parse_duration, parse_flags, parse_int, parse_node_id, parse_port
from pilotgw.client.errors import InvalidArgument


def test_greedy_flags() -> None:
    f = parse_flags(["5", "--count", "-1", "--clear", "foo", "--json-ish", "--k=v=w", "-x", "--last"])
    assert f.values == {"count": "-1", "clear": "foo", "json-ish": "true", "k": "v=w", "last": "true"}
    assert f.positional == ["5", "-x"]
    assert f.int("count", 4) == -1
    assert not f.bool("clear") and f.bool("last")


def test_bool_values() -> None:
    f = parse_flags(["--a=1", "--b=", "--c=false", "--d"])
    assert [f.bool(k) for k in "abcd"] == [True, True, False, True]


@pytest.mark.parametrize(
    "text,ns",
    [("10s", 10 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8), ("1.5h", 5400 * 10**9), ("0", 0), ("2.5", 2_500_000_000), ("5", 5 * 10**9)],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text, "timeout") == ns


def test_bad_values_use_go_texts() -> None:
    with pytest.raises(InvalidArgument, match='^invalid duration for --timeout: time: invalid duration "soon"$'):
        parse_duration("soon", "timeout")
    with pytest.raises(InvalidArgument, match='^invalid integer for --count: strconv.Atoi: parsing "x": invalid syntax$'):
        parse_int("x", "count")
    with pytest.raises(InvalidArgument, match='^invalid node_id "abc": strconv.ParseUint: parsing "abc": invalid syntax$'):
        parse_node_id("abc")
    with pytest.raises(InvalidArgument, match='^invalid port "70000": strconv.ParseUint: parsing "70000": value out of range$'):
        parse_port("70000")


@settings(max_examples=300)
@given(st.lists(st.text(alphabet="-ab=1 ", max_size=6), max_size=8))
def test_parser_never_crashes_and_keeps_positionals(args: list[str]) -> None:
    f = parse_flags(args)
    assert all(not p.startswith("--") for p in f.positional)


@settings(max_examples=300)
@given(st.text(max_size=12))
def test_duration_parser_total(text: str) -> None:
    try:
        parse_duration(text, "t")
    except InvalidArgument:
        pass
    assert go_parse_duration(text) is None or isinstance(go_parse_duration(text), int)
