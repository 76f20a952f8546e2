"""``scripts/demo``, the README's first command: it shows the page through the
gateway and a send-file, within the time budget, and ``scripts/demo down``
leaves nothing behind. Without root it stops at once with a hint."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pilotgw.lab import netns, state

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo"
REASON = netns.unavailable_reason()


@pytest.mark.root
@pytest.mark.skipif(REASON is not None, reason=f"demo test skipped: {REASON}")
def test_demo_shows_the_page_and_a_transfer_then_down_cleans_up() -> None:
    before = set(netns.list_all())
    t0 = time.monotonic()
    up = subprocess.run([str(DEMO)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    elapsed = time.monotonic() - t0
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "<h1>Hello from bob</h1>" in up.stdout
        assert "ACK FILE 12582912 bytes" in up.stdout
        assert "scripts/demo down" in up.stdout
        assert elapsed < 180
    finally:
        down = subprocess.run([str(DEMO), "down"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert down.returncode == 0 and "removed" in down.stdout, down.stdout + down.stderr
    assert set(netns.list_all()) <= before
    leftover = [p for p in state.DEFAULT_STATE_DIR.glob("*") if p.is_dir() and (p / "stack.json").exists()
                and '"demo": true' in (p / "stack.json").read_text()]
    assert not leftover


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop root")
def test_demo_without_root_fails_at_once_with_a_hint() -> None:
    t0 = time.monotonic()
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(DEMO)],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 1
    assert "needs root" in done.stderr and "sudo scripts/demo" in done.stderr
    assert time.monotonic() - t0 < 5
