"""pilot-gateway's command line: targets with local IPs, ports, usage errors
as clear codes, and the contract's start output."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.cli.output import Output
from pilotgw.gateway.cli import UsageError, announce, main, pair_targets, parse_ports


def test_an_ip_belongs_to_the_address_before_it() -> None:
    assert pair_targets(["0:0000.0000.0004", "10.4.0.9", "agent-alpha", "5"]) == [
        ("0:0000.0000.0004", "10.4.0.9"),
        ("agent-alpha", None),
        ("5", None),
    ]
    with pytest.raises(UsageError):
        pair_targets(["10.4.0.9"])
    with pytest.raises(UsageError):
        pair_targets(["4", "10.4.0.1", "10.4.0.2"])


def test_ports() -> None:
    assert parse_ports("") is None
    assert parse_ports(" 80, 443 ,8080") == [80, 443, 8080]
    for bad in ("0", "65536", "http", "80,,81", "-1"):
        with pytest.raises(UsageError):
            parse_ports(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789, x-", max_size=20))
def test_ports_either_parse_in_range_or_raise_usage(text: str) -> None:
    try:
        ports = parse_ports(text)
    except UsageError:
        return
    assert ports is None or all(1 <= p <= 65535 for p in ports)


def test_usage_errors_exit_2_with_a_json_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--ports", "99999"]) == 2
    err = json.loads(capsys.readouterr().err)
    assert err["status"] == "error" and err["code"] == "invalid_argument" and "99999" in err["message"]
    assert main(["--log-format", "xml"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_announce_text_and_json() -> None:
    data = {"mappings": [{"local_ip": "10.4.0.1", "pilot_addr": "0:0000.0000.0004"}], "pid": 42, "subnet": "10.4.0.0/16"}
    text = io.StringIO()
    announce(Output(False, stdout=text), data)
    assert text.getvalue() == "mapped 10.4.0.1 → 0:0000.0000.0004\ngateway running\n"
    js = io.StringIO()
    announce(Output(True, stdout=js), dict(data, mappings=None))
    assert js.getvalue() == '{"data":{"mappings":null,"pid":42,"subnet":"10.4.0.0/16"},"status":"ok"}\n'
