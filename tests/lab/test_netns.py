"""The namespace helpers on real namespaces (root only): thread-local entry,
per-namespace sysctls and sockets, emptying a namespace of stubborn processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pilotgw.lab import netns
from pilotgw.lab.errors import LabError

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"lab tests skipped: {REASON}")]


def own_netns() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"plabtest-{os.getpid()}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)
    assert not netns.exists(name)


def test_entered_moves_only_for_the_body_even_on_error(ns: str) -> None:
    home = own_netns()
    with netns.entered(ns):
        assert own_netns() != home
    assert own_netns() == home
    with pytest.raises(ZeroDivisionError):
        with netns.entered(ns):
            1 / 0
    assert own_netns() == home


def test_entering_a_missing_namespace_is_a_lab_error() -> None:
    with pytest.raises(LabError) as err:
        with netns.entered("plabtest-missing"):
            pass
    assert err.value.code == "no-netns"


def test_sysctls_are_per_namespace(ns: str) -> None:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_value = f.read().strip()
    wanted = "0" if host_value == "1" else "1"
    netns.sysctl(ns, "net.ipv4.ip_forward", wanted)
    assert netns.read_sysctl(ns, "net.ipv4.ip_forward") == wanted
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == host_value
    with pytest.raises(LabError):
        netns.sysctl(ns, "net.ipv4.no_such_knob", 1)


def test_sockets_live_in_the_namespace(ns: str) -> None:
    with netns.open_socket(ns) as inside, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside:
        inside.bind(("127.0.0.1", 0))
        inside.settimeout(0.2)
        outside.sendto(b"from the host", inside.getsockname())  # another namespace's loopback
        with pytest.raises(socket.timeout):
            inside.recv(100)
        with netns.open_socket(ns) as peer:
            peer.sendto(b"from inside", inside.getsockname())
            assert inside.recv(100) == b"from inside"
    with netns.Netlink(ns) as nl:
        assert nl.mtu("lo") == 65536


def test_remove_kills_processes_that_ignore_sigterm(ns: str) -> None:
    stubborn = subprocess.Popen(
        netns.command(ns, [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"]),
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"up\n"
    assert netns.pids([ns]) == [stubborn.pid]
    start = time.monotonic()
    assert netns.kill_processes([ns], grace=0.3) == [stubborn.pid]
    assert stubborn.wait(5) == -9
    assert time.monotonic() - start < 3
    assert netns.pids([ns]) == []


def test_command_runs_inside(ns: str) -> None:
    out = subprocess.run(netns.command(ns, ["ip", "-o", "link"]), capture_output=True, text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]


def test_nft_errors_carry_nft_message(ns: str) -> None:
    with pytest.raises(LabError) as err:
        netns.nft(ns, "add table ip bad name\n")
    assert err.value.code == "nft" and "syntax error" in str(err.value)
