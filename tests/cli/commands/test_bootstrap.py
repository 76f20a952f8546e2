"""init, config, context (§A10)."""

from __future__ import annotations

import json
import os


def test_init_writes_config(cli, home) -> None:  # type: ignore[no-untyped-def]
    r = cli("init", "--hostname", "alice", "--json")
    path = os.path.join(home, ".pilot", "config.json")
    assert json.loads(r.out)["data"] == {
        "beacon": "127.0.0.1:9001",
        "config_path": path,
        "hostname": "alice",
        "registry": "127.0.0.1:9000",
        "socket": "/tmp/pilot.sock",
    }
    with open(path) as f:
        text = f.read()
    assert text.endswith("}\n") and '\n  "beacon": "127.0.0.1:9001",\n' in text
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"


def test_config_set_and_show(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("config", "--set", "registry=10.0.0.1:9000", "--json").out)["data"] == {
        "key": "registry",
        "value": "10.0.0.1:9000",
    }
    data = json.loads(cli("config", "--json").out)["data"]
    assert data["registry"] == "10.0.0.1:9000"
    assert data["socket"] == os.environ["PILOT_SOCKET"]
    assert data["pid_file"] == os.path.join(home, ".pilot", "pilot.pid")
    err = json.loads(cli("config", "--set", "novalue", "--json").err)
    assert err["message"] == "usage: pilotctl config --set key=value"


def test_unreadable_config_is_empty(cli, home) -> None:  # type: ignore[no-untyped-def]
    os.makedirs(os.path.join(home, ".pilot"))
    with open(os.path.join(home, ".pilot", "config.json"), "w") as f:
        f.write("[not an object")
    assert json.loads(cli("config", "--json").out)["data"]["registry"] == "127.0.0.1:9000"


def test_context_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("context", "--json")
    data = json.loads(r.out)["data"]
    assert len(data["commands"]) == 49 and data["version"] == "1.2" and len(data["error_codes"]) == 7
    assert '"\\u003cnode_id\\u003e"' in r.out
    assert "34.71.57.205" not in r.out
    text = cli("context").out
    assert text.startswith('{\n  "commands": {\n    "approve": {')
