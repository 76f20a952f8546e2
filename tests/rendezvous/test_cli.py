"""pilot-rendezvous options: Go-style and --long spellings, -config, errors."""

from __future__ import annotations

import json
import logging

import pytest

from pilotgw.rendezvous import cli


@pytest.fixture(autouse=True)
def restore_logging():
    """main() configures the "pilotgw" logger for the process; undo it so
    later tests' caplog still sees pilotgw records."""
    logger = logging.getLogger("pilotgw")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_defaults_bind_all_interfaces_on_reference_ports():
    opts = cli.resolve_options([])
    assert cli.parse_listen(opts["registry_addr"], "x") == (None, 9000)
    assert cli.parse_listen(opts["beacon_addr"], "x") == (None, 9001)
    assert opts["tls"] is False and opts["store"] == ""


def test_single_dash_long_and_equals_spellings():
    opts = cli.resolve_options(["-registry-addr=127.0.0.1:1", "--beacon-addr", "[::1]:2", "-tls", "-store", "s.json",
                                "--log-level=debug", "-one-sided-trust=false"])
    assert opts["registry_addr"] == "127.0.0.1:1"
    assert cli.parse_listen(opts["beacon_addr"], "x") == ("::1", 2)
    assert opts["tls"] is True and opts["one_sided_trust"] is False
    assert opts["store"] == "s.json" and opts["log_level"] == "debug"


def test_config_file_fills_what_the_command_line_leaves(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"registry-addr": "127.0.0.1:7", "beacon_addr": "127.0.0.1:8", "tls": "true",
                                "request-rate": 5}))
    opts = cli.resolve_options(["-config", str(path), "-beacon-addr", "127.0.0.1:9"])
    assert opts["registry_addr"] == "127.0.0.1:7" and opts["beacon_addr"] == "127.0.0.1:9"
    assert opts["tls"] is True and opts["request_rate"] == 5.0


@pytest.mark.parametrize("content", ["[1]", "{\"nope\": 1}", "{\"tls\": \"maybe\"}", "{\"store\": [1]}", "{"])
def test_bad_config_is_a_usage_error(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(cli.UsageError):
        cli.resolve_options(["-config", str(path)])


def test_main_exits_2_on_bad_addresses_and_corrupt_store(tmp_path, capsys):
    assert cli.main(["-registry-addr", "nope"]) == 2
    assert "not host:port" in capsys.readouterr().err
    store = tmp_path / "registry.json"
    store.write_text('{"nodes": {')
    assert cli.main(["-store", str(store), "-registry-addr", "127.0.0.1:0", "-beacon-addr", "127.0.0.1:0"]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert cli.main(["-log-format", "xml"]) == 2
