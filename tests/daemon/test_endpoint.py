"""The tunnel socket survives ICMP errors under both event loops.

With ``IP_RECVERR`` set, a datagram to a closed port leaves an error on the
socket's error queue. If a later ``sendto`` collects the pending error, the
queue must still be emptied, or the socket polls as in error forever: the
stock loop spins a core and uvloop crashes (SIGSEGV) -- which took down a
daemon as soon as a peer it talked to stopped.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, socket, sys, time
    from pilotgw.daemon.endpoint import open_endpoint

    async def main():
        got = []
        ep, _ = await open_endpoint("127.0.0.1", 0, lambda data, addr: got.append(data))
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))
        dead_addr = dead.getsockname()
        dead.close()
        live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        live.bind(("127.0.0.1", 0))
        live.settimeout(2)
        for _ in range(3):
            ep.sendto(b"to-dead", dead_addr)
            time.sleep(0.05)  # the ICMP error arrives while the loop is not polling
            assert ep.sendto(b"to-live", live.getsockname())  # collects the pending error
            assert live.recv(100) == b"to-live"
            await asyncio.sleep(0.05)  # the loop polls the socket
        cpu = time.process_time()
        await asyncio.sleep(0.5)
        busy = time.process_time() - cpu
        ep.sendto(b"to-dead", dead_addr)  # the loop itself reads this error
        await asyncio.sleep(0.2)
        ep.close()
        print("cpu", round(busy, 3))

    if sys.argv[1] == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(main())
    """
)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_icmp_errors_neither_crash_nor_spin_the_loop(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    done = subprocess.run([sys.executable, "-c", SCRIPT, loop], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr)
    busy = float(done.stdout.split()[-1])
    assert busy < 0.2, f"the loop spun for {busy} s of CPU in 0.5 s"
