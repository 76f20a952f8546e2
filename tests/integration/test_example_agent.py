"""The README's example agent (examples/agent.py) works against real daemons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import pilot_network

AGENT = Path(__file__).resolve().parents[2] / "examples" / "agent.py"


def test_example_agent_answers_over_the_overlay(tmp_path: Path) -> None:
    with pilot_network(tmp_path, "alice", "bob") as (_rv, (alice, bob)):
        server = subprocess.Popen([sys.executable, str(AGENT), "serve"], env=bob.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            banner = server.stdout.readline()
            assert banner.startswith(f"serving on {bob.address}:1000"), banner
            for question in ("what is pilot?", "second question"):
                started = time.monotonic()
                asked = subprocess.run([sys.executable, str(AGENT), "ask", bob.address, question], env=alice.env(),
                                       capture_output=True, text=True, timeout=60)
                assert asked.returncode == 0, asked.stderr
                assert asked.stdout.strip() == question.upper()
                assert time.monotonic() - started < 30
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
