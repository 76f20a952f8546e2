"""Flags, config file and environment precedence of pilot-daemon."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.daemon import cli, config
from pilotgw.daemon.config import ConfigError, parse_duration


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2", 2.0), (15, 15.0), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "-5s", "1s2", True, "nan", "inf", "-inf", float("nan")])
def test_bad_durations(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


@given(st.text(max_size=12))
@settings(max_examples=300)
def test_duration_parser_never_crashes(text):
    try:
        assert parse_duration(text) >= 0
    except ConfigError:
        pass


def test_go_style_flags():
    flags = cli.parse_args(["-registry", "10.0.0.1:9000", "--beacon=10.0.0.1:9001", "-encrypt=false", "-public",
                            "-keepalive", "10s", "-max-conns-total", "7"])
    assert flags == {"registry": "10.0.0.1:9000", "beacon": "10.0.0.1:9001", "encrypt": False, "public": True,
                     "keepalive": 10.0, "max_conns_total": 7}


@pytest.mark.parametrize(
    "argv,message",
    [(["-nope"], "not defined"), (["-socket"], "needs an argument"), (["-encrypt=maybe"], "invalid value"),
     (["stray"], "unexpected argument")],
)
def test_flag_errors(argv, message):
    with pytest.raises(cli.UsageError, match=message):
        cli.parse_args(argv)


def test_usage_exit_codes(capsys):
    assert cli.main(["-nope"]) == 2
    assert "flag provided but not defined" in capsys.readouterr().err
    assert cli.main(["-h"]) == 0


def test_defaults_never_public_and_say_so():
    cfg = config.build({}, env={})
    assert cfg.registry == "127.0.0.1:9000" and cfg.beacon == "127.0.0.1:9001"
    assert any("local rendezvous" in n for n in cfg.notes)
    assert cfg.keepalive_s == 30 and cfg.idle_timeout_s == 120 and cfg.conns_total == 4096


def test_precedence_flag_over_file_over_env(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"registry": "10.1.1.1:9000", "log_level": "debug", "idle-timeout": "5s",
                                "max-conns-total": 2000000, "keepalive": 12, "bogus": 1, "public": "yes"}))
    env = {"PILOT_REGISTRY": "10.2.2.2:9000", "PILOT_SOCKET": "/tmp/env.sock"}
    cfg = config.build({"config": str(path), "log_level": "error"}, env=env)
    assert cfg.registry == "10.1.1.1:9000"  # file beats env
    assert cfg.socket == "/tmp/env.sock"  # env beats default
    assert cfg.log_level == "error"  # flag beats file
    assert cfg.idle_timeout == 5.0 and cfg.keepalive == 12.0  # bare numbers are seconds (D-18)
    assert cfg.max_conns_total == 2_000_000  # no 1e6 cut-off (D-18)
    assert any("bogus" in n for n in cfg.notes) and any("public" in n for n in cfg.notes)


@pytest.mark.parametrize(
    "flags,code",
    [({"registry_tls": True}, "tls_pin_required"), ({"registry_fingerprint": "abc"}, "bad_fingerprint"),
     ({"log_format": "xml"}, "bad_log_format"), ({"registry": "nocolon"}, "invalid_config")],
)
def test_invalid_settings_have_codes(flags, code):
    with pytest.raises(ConfigError) as info:
        config.build(flags, env={})
    assert info.value.code == code


def test_bad_config_file(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as info:
        config.build({"config": str(path)}, env={})
    assert info.value.code == "config_invalid"
    assert cli.main(["-config", str(tmp_path / "missing.json")]) == 1
