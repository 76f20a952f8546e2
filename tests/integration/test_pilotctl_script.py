"""A script written for the reference pilotctl (grep/awk on `info`, `trust`,
`pending`, `ping`; jq on --json) runs unchanged against the real pilotctl
and real daemons (issue 7, Done-when 2)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.conftest import PilotNode, pilot_network

SCRIPT = Path(__file__).parent.parent / "cli" / "scripts" / "reference_user.sh"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt-get install jq)"),
]


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _trusts(node: PilotNode, peer: PilotNode) -> bool:
    return any(t["node_id"] == peer.node_id for t in node.ok("trust")["trusted"])


def _pending(node: PilotNode, peer: PilotNode) -> bool:
    return any(p["node_id"] == peer.node_id for p in node.ok("pending")["pending"])


def test_reference_style_script_against_real_daemons(tmp_path: Path) -> None:
    with pilot_network(tmp_path, "alice", "bob", "carol") as (_, (alice, bob, carol)):
        # alice and bob trust each other mutually; carol waits in alice's pending list.
        alice.ok("handshake", str(bob.node_id), "we work together")
        wait_for(lambda: _pending(bob, alice))
        bob.ok("handshake", str(alice.node_id))
        wait_for(lambda: _trusts(alice, bob) and _trusts(bob, alice))
        carol.ok("handshake", "alice", "let me in")
        wait_for(lambda: _pending(alice, carol))
        endpoints = " ".join(f"127.0.0.1:{n.daemon.tunnel_port}" for n in (bob, carol))
        env = alice.env(
            EXPECT_NODE_ID=str(alice.node_id),
            EXPECT_ADDRESS=alice.address,
            EXPECT_HOSTNAME="alice",
            EXPECT_PEER_ID=str(bob.node_id),
            EXPECT_PEER_HOSTNAME="bob",
            EXPECT_PENDING_ID=str(carol.node_id),
            EXPECT_PEER_ENDPOINTS=endpoints,
        )
        r = subprocess.run(["bash", str(SCRIPT)], cwd=alice.home, env=env, capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().endswith("OK")
        # The script's approve loop really approved carol.
        assert _trusts(alice, carol)
        assert alice.ok("pending")["pending"] == []
