"""kill -9 of a running gateway: what it leaves, and that nothing survives recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.proxy.fake_overlay import AGENT
from tests.proxy.helpers import SUBNET, run, running_gateway, udp_client, udp_echo_server

from pilotgw.tun.errors import KernelError
from pilotgw.tun.leftovers import find_leftovers
from pilotgw.tun.state import cleanup_stale

pytestmark = pytest.mark.root
CHILD = Path(__file__).with_name("gateway_child.py")


def start_and_kill(state_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(CHILD.parent)}
    child = subprocess.Popen([sys.executable, str(CHILD), str(state_dir)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(KernelError) as err:  # a live gateway's network is never torn down
            cleanup_stale(state_dir / "gateway-kernel.json")
        assert err.value.code == "already_exists" and f"pid {child.pid}" in str(err.value)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_kill9_leftovers_removed_by_cleanup_stale(namespace, tmp_path):
    start_and_kill(tmp_path)
    left = find_leftovers(SUBNET)
    # The TUN device (and its route) die with the process; the rest stays.
    assert sorted(left) == ["nft table ip pilotgw_pilot0", "rule 4104: to 10.4.0.0/16"]
    undone = cleanup_stale(tmp_path / "gateway-kernel.json")
    assert "nft table pilotgw_pilot0" in undone and "rule to 10.4.0.0/16 lookup 4104" in undone
    assert find_leftovers(SUBNET) == []
    assert not (tmp_path / "gateway-kernel.json").exists()


def test_restart_after_kill9_cleans_up_and_serves_saved_mappings(namespace, tmp_path):
    start_and_kill(tmp_path)
    assert find_leftovers(SUBNET) != []

    async def main():
        async with udp_echo_server() as port, running_gateway(tmp_path) as gateway:
            assert [m.addr for m in gateway.mappings()] == [AGENT]
            async with udp_client("10.4.0.1", port) as (transport, replies):
                transport.sendto(b"after the crash")
                assert (await asyncio.wait_for(replies.queue.get(), 3))[0] == b"echo:after the crash"

    run(main())  # running_gateway checks that stop leaves nothing
    assert find_leftovers(SUBNET) == []
