"""``pilot-lab up`` runs Pilot in the lab: what a user types after it works.

``up demo`` starts the rendezvous, three daemons (alice and gw behind a
port-restricted NAT, bob behind a full-cone NAT), trust and the gateway;
``exec`` runs ``pilotctl`` as a node's agent; ``status`` shows the path to
each peer; ``down`` leaves no namespace, process or file behind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pilotgw.lab import netns, state

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"NAT tests skipped: {REASON}")]

CLI = [sys.executable, "-c", "from pilotgw.lab.cli import main; main()"]


def lab_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


def test_up_runs_pilot_and_down_removes_everything() -> None:
    up = lab_cli("up", "demo", "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    lab_id = info["id"]
    try:
        agents = info["pilot"]["agents"]
        assert set(agents) == {"alice", "gw", "bob"}
        # exec runs pilotctl as the node's agent: no socket or HOME to pass.
        done = lab_cli("exec", lab_id, "alice", "--", sys.executable, "-m", "pilotgw.cli.main", "--json", "info")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["data"]["address"] == agents["alice"]["address"]
        # alice and bob trust each other (private nodes): a ping goes through.
        ping = lab_cli("exec", lab_id, "alice", "--", sys.executable, "-m", "pilotgw.cli.main", "--json", "ping",
                       agents["bob"]["address"], "--count", "2")
        assert ping.returncode == 0, ping.stderr + ping.stdout
        status = lab_cli("status", lab_id, "--json")
        assert status.returncode == 0, status.stderr
        (lab,) = json.loads(status.stdout)["labs"]
        peers = {p["agent"]: p for p in lab["pilot"]["agents"]["alice"]["peers"]}
        # bob's NAT is a full cone: direct, or punched if the punch raced bob's first reply.
        assert peers["bob"]["path"] in ("direct", "punched")
        mappings = {m["pilot_addr"]: m["local_ip"] for m in info["pilot"]["extras"]["gateway"]["mappings"]}
        assert set(mappings) == {agents["alice"]["address"], agents["bob"]["address"]}
        text = lab_cli("status", lab_id)
        rows = [line.split() for line in text.stdout.splitlines() if "-> bob" in line]
        assert rows and all(row[2] in ("direct", "punched") for row in rows), text.stdout
    finally:
        down = lab_cli("down", lab_id, "--json")
    assert down.returncode == 0, down.stderr
    assert not [n for n in netns.list_all() if n.startswith(f"plab-{lab_id}-")]
    assert not state.stack_dir(state.DEFAULT_STATE_DIR, lab_id).exists()
    assert not state.state_path(state.DEFAULT_STATE_DIR, lab_id).exists()
