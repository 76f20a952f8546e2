"""Formatters scripts depend on (services-and-cli.md §0, §A9.1)."""

from __future__ import annotations

import io

import pytest

from pilotgw.cli.output import Output, format_bytes, go_duration, round_ms


@pytest.mark.parametrize(
    "ns,text",
    [
        (0, "0s"),
        (850, "850ns"),
        (1500, "1.5µs"),
        (12_345_678, "12.345678ms"),
        (1_500_000_000, "1.5s"),
        (60 * 10**9, "1m0s"),
        (2 * 3600 * 10**9, "2h0m0s"),
        (3723_500_000_000, "1h2m3.5s"),
        (30 * 10**9, "30s"),
        (-1500, "-1.5µs"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    "n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (1048576, "1.0 MB"), (3 << 30, "3.0 GB")]
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_round_ms() -> None:
    assert round_ms(1_499_999) == 1_000_000 and round_ms(1_500_000) == 2_000_000


def test_envelopes_and_error_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    Output(True, out, err).success({"b": "<x>", "a": 1.0})
    assert out.getvalue() == '{"data":{"a":1,"b":"\\u003cx\\u003e"},"status":"ok"}\n'
    Output(True, out, err).error("not_found", "gone", "look elsewhere")
    assert err.getvalue() == '{"code":"not_found","hint":"look elsewhere","message":"gone","status":"error"}\n'
    out, err = io.StringIO(), io.StringIO()
    Output(False, out, err).error("internal", "boom", "try again")
    assert err.getvalue() == "error: boom\nhint:  try again\n" and out.getvalue() == ""
    Output(False, out, err).success({"z": [], "a": None})
    assert out.getvalue() == '{\n  "a": null,\n  "z": []\n}\n'
