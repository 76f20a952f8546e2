"""Background processes that ``pilotctl`` starts and stops (the daemon, the
gateway): liveness that does not count zombies, and stop-with-deadline."""

from __future__ import annotations

import os
import signal
import time

from pilotgw.cli import config


def running(pid: int) -> bool:
    """Signal 0 succeeds on a zombie; a process that exited counts as stopped."""
    if not config.pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_or_kill(pid: int, timeout: float, poll: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit, then SIGKILL it.

    Returns whether it had to be killed (the contract's ``forced``)."""
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            return True
        time.sleep(poll)
    return False
