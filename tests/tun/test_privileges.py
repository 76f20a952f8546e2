"""Without CAP_NET_ADMIN the kernel side refuses up front, with a code and a hint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pilotgw.tun.errors import KernelError
from pilotgw.tun.privileges import CAP_NET_ADMIN, effective_capabilities

STATUS = "Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"


def test_effective_capabilities_parsed():
    assert effective_capabilities(STATUS) >> CAP_NET_ADMIN & 1
    assert effective_capabilities("CapEff:\t0000000000000000\n") == 0


def test_missing_capeff_line_is_an_error():
    with pytest.raises(KernelError):
        effective_capabilities("Name:\tx\n")


CHILD = """
import asyncio, json, sys
from pathlib import Path
from pilotgw.proxy.gateway import Gateway
from pilotgw.tun.errors import KernelError
state = Path(sys.argv[1])
try:
    asyncio.run(Gateway(overlay=None, state_dir=state).start())
except KernelError as exc:
    print(json.dumps({"code": exc.code, "hint": exc.hint, "message": str(exc), "touched": state.exists()}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop a capability"
)
def test_gateway_without_net_admin_fails_before_touching_anything(tmp_path):
    drop = ["setpriv", "--inh-caps=-net_admin", "--ambient-caps=-net_admin", "--bounding-set=-net_admin"]
    state = tmp_path / "state"
    done = subprocess.run(
        [*drop, sys.executable, "-c", CHILD, str(state)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == "permission_denied"
    assert "CAP_NET_ADMIN" in result["message"]
    assert "sudo" in result["hint"] and "cap_net_admin" in result["hint"]
    assert result["touched"] is False
