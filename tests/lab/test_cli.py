"""pilot-lab commands that need no namespace: topologies, files, status, argument errors.

Building and removing real labs through the CLI is in tests/integration/test_lab_nat.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotgw.lab import state
from pilotgw.lab.cli import app, load_topology
from pilotgw.lab.errors import LabError
from pilotgw.lab.topology import builtin

runner = CliRunner()


def test_topologies_lists_the_builtins() -> None:
    result = runner.invoke(app, ["topologies"])
    assert result.exit_code == 0
    assert {line.split()[0] for line in result.output.splitlines()} == {"basic", "matrix", "demo"}
    data = json.loads(runner.invoke(app, ["topologies", "--json"]).output)
    assert data["demo"] == builtin("demo").to_dict()


def test_topology_files_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text(
        'name = "mine"\nrendezvous = "rv"\n'
        '[[hosts]]\nname = "rv"\n'
        '[[nats]]\nname = "nat"\nkind = "symmetric"\nlan = "10.20.0.0/24"\n'
        '[[nats.hosts]]\nname = "a"\nlink = { loss = 2.5, rate = 10000000 }\n'
    )
    topo = load_topology(str(toml))
    assert topo.nats[0].hosts[0].link.loss == 2.5 and topo.nats[0].lan == "10.20.0.0/24"
    js = tmp_path / "t.json"
    js.write_text(json.dumps(topo.to_dict()))
    assert load_topology(str(js)) == topo
    assert load_topology("demo") == builtin("demo")


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"name = ", "t.toml"), (b"\xff\xfe", "t.toml"), (b'name = "x"\n[[hosts]]\nname = "a"\nspeed = 1\n', "unknown key")],
)
def test_bad_topology_files(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(content)
    with pytest.raises(LabError) as err:
        load_topology(str(path))
    assert err.value.code == "bad-topology" and needle in str(err.value)


def test_up_with_a_missing_file_fails_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["up", str(tmp_path / "none.toml"), "--json", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] in ("bad-topology", "not-root")
    assert list(tmp_path.iterdir()) == []


def test_status_reads_state_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.netns, "list_all", lambda: [])
    empty = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert empty.exit_code == 0 and "no labs" in empty.output
    topo = builtin("demo")
    state.save(state.LabRecord("abc123", topo, ["plab-abc123-inet"]), tmp_path)
    result = runner.invoke(app, ["status", "--json", "--state-dir", str(tmp_path)])
    data = json.loads(result.output)
    (lab,) = data["labs"]
    assert lab["id"] == "abc123" and lab["owner_pid"] is None and lab["namespaces_present"] == 0
    assert {n["name"] for n in lab["nodes"]} == set(topo.node_names())
    detail = runner.invoke(app, ["status", "abc123", "--state-dir", str(tmp_path)])
    assert "detached" in detail.output and "192.168.1.11/24" in detail.output
    missing = runner.invoke(app, ["status", "ffffff", "--state-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "unknown-lab" in missing.output


def test_down_needs_exactly_one_target(tmp_path: Path) -> None:
    for args in ([], ["abc123", "--all"]):
        result = runner.invoke(app, ["down", *args, "--json", "--state-dir", str(tmp_path)])
        assert result.exit_code == 1
        assert json.loads(result.output)["error"]["code"] in ("usage", "not-root")


def test_exec_in_an_unknown_lab_fails(tmp_path: Path) -> None:
    result = runner.invoke(app, ["exec", "abc123", "rv", "--state-dir", str(tmp_path), "--", "true"])
    assert result.exit_code == 1 and "unknown-lab" in result.output
