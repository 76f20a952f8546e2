"""A shell script written for the reference CLI (grep/awk/jq) runs unchanged
against the real pilotctl binary and the scripted daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "reference_user.sh"


@pytest.mark.timeout(60)
def test_reference_style_script(fake, home: str) -> None:  # type: ignore[no-untyped-def]
    bindir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bindir, "pilotctl")):
        pytest.skip("pilotctl console script not installed")
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (apt-get install jq)")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    result = subprocess.run(["bash", str(SCRIPT)], cwd=home, env=env, capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK")
