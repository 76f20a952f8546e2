"""The Compose lab end to end: build the images with no registry, bring up
compose.yaml, prove the overlay works across both NATs (agent to agent, and
``curl http://10.4.0.1/`` in the gateway container fetching agent-a's page),
tear everything down.

The engine is Debian's ``docker.io`` started by ``tools/dockerd.py`` (no
systemd here); images come from ``tools/images.py`` (debootstrap base +
host-built wheels). Docker objects are inspected with the ``docker`` SDK;
the lab itself is driven with compose v1 (``docker-compose``) as a user
would. When the engine was started by this module it is stopped at the end,
and the host must be left without containers, networks, volumes, DOCKER*
iptables chains or Docker bridges.

Skipped (with the reason) unless root with ``dockerd``, ``docker-compose``,
``debootstrap`` and the ``docker`` package installed; ``.ci/compose-stage``
installs them. Set ``PILOTGW_COMPOSE_TIMINGS=<file>`` to get each step's
duration as JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
PROJECT = "pilotgwtest"
LOCK = Path("/run/pilotgw/compose-test.lock")
TIMINGS: dict[str, float] = {}


def _unavailable() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (runs dockerd and containers with NET_ADMIN)"
    missing = [tool for tool in ("dockerd", "docker-compose", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install docker.io docker-compose debootstrap; see .ci/compose-stage)"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker Python package is missing (pip install -e '.[test]')"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (the gateway container needs it)"
    return None


REASON = _unavailable()
pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.compose,
    pytest.mark.skipif(REASON is not None, reason=f"compose lab skipped: {REASON}"),
    pytest.mark.timeout(900),
]


def _tool(name: str, *args: str, step: str, timeout: float = 600) -> dict[str, Any]:
    """Run tools/<name> --json; its JSON result, or ``{"error", "code"}`` when it failed."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    TIMINGS[step] = round(time.monotonic() - t0, 1)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"{name} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def _ok(result: dict[str, Any], what: str) -> dict[str, Any]:
    if "error" in result:
        pytest.fail(f"{what}: {result['error']} (code {result['code']})")
    return result


def _compose(*args: str, step: str, env: dict[str, str] | None = None) -> str:
    cmd = ["docker-compose", "--no-ansi", "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, **(env or {})})
    TIMINGS[step] = round(time.monotonic() - t0, 1)
    if proc.returncode != 0:
        pytest.fail(f"docker-compose {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc.stdout


class Lab:
    """The running Compose project: exec into its containers, tear it down once."""

    def __init__(self, client: Any, engine_ours: bool) -> None:
        self.client = client
        self.engine_ours = engine_ours
        self.is_down = False
        self.engine_stopped = False

    def container(self, service: str) -> Any:
        found = self.client.containers.list(
            filters={"label": [f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]}
        )
        assert found, f"no running container for service {service}"
        return found[0]

    def run(self, service: str, *cmd: str, check: bool = True) -> tuple[int, str]:
        code, out = self.container(service).exec_run(list(cmd))
        text = out.decode(errors="replace")
        if check and code != 0:
            pytest.fail(f"{service}: {' '.join(cmd)} exited {code}: {text[-2000:]}\n{self.logs(service)}")
        return code, text

    def pilotctl(self, service: str, *args: str) -> dict[str, Any]:
        _, text = self.run(service, "pilotctl", "--json", *args)
        reply = json.loads(text)
        assert reply.get("status") == "ok", f"{service}: pilotctl {' '.join(args)}: {reply}"
        return reply["data"]

    def logs(self, service: str) -> str:
        return self.container(service).logs(tail=40).decode(errors="replace")

    def down(self) -> None:
        """compose down -v (once)."""
        if not self.is_down:
            self.is_down = True
            _compose("down", "-v", "--remove-orphans", "--timeout", "5", step="down")

    def stop_engine(self) -> dict[str, Any]:
        """Stop the engine (once) if this module started it; tools/dockerd.py's result."""
        if self.engine_stopped or not self.engine_ours:
            return {}
        self.engine_stopped = True
        self.client.close()
        return _ok(_tool("dockerd.py", "stop", step="engine-stop", timeout=120), "stopping the engine")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    import docker

    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        # One Compose lab per machine: its subnets are fixed.
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = _tool("dockerd.py", "start", step="engine-start", timeout=120)
        if "error" in started:
            pytest.skip(f"compose lab skipped: the Docker engine did not start: {started['error']}")
        lab = Lab(docker.from_env(version="auto"), engine_ours=started["engine"] == "started")
        try:
            built = _ok(_tool("images.py", "build", step="images", timeout=900), "building the images")
            TIMINGS.update({f"images.{k}": v for k, v in built["timings"].items()})
            subprocess.run(
                ["docker-compose", "-p", PROJECT, "-f", str(COMPOSE_FILE), "down", "-v", "--timeout", "1"],
                capture_output=True,
                timeout=120,
            )
            _compose("up", "-d", step="up")
            yield lab
        finally:
            try:
                lab.down()
            finally:
                try:
                    lab.stop_engine()
                finally:
                    target = os.environ.get("PILOTGW_COMPOSE_TIMINGS")
                    if target:
                        Path(target).write_text(json.dumps(TIMINGS, indent=2) + "\n")


def _registered_endpoint(lab: Lab, service: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"msg=registered .*endpoint=(\S+)", lab.logs(service))
        if m:
            return m.group(1)
        time.sleep(0.5)
    pytest.fail(f"{service} did not register within 30 s:\n{lab.logs(service)}")


def test_nodes_register_through_their_nat(lab: Lab) -> None:
    """Each node registers, and the rendezvous sees it at its router's public address."""
    assert _registered_endpoint(lab, "agent-a").startswith("198.51.100.20:")
    assert _registered_endpoint(lab, "agent-b").startswith("198.51.100.21:")
    assert _registered_endpoint(lab, "gateway").startswith("198.51.100.21:")
    _, route = lab.run("agent-a", "ip", "route", "show", "default")
    assert "via 192.168.1.1" in route


def _trust(lab: Lab, src: str, dst: str) -> tuple[int, int]:
    """``src`` asks ``dst`` for trust through the rendezvous and ``dst`` approves;
    returns both node ids."""
    src_id = lab.pilotctl(src, "info")["node_id"]
    dst_id = lab.pilotctl(dst, "info")["node_id"]
    assert lab.pilotctl(src, "handshake", dst, "compose lab")["status"] == "sent"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pending = lab.pilotctl(dst, "pending")["pending"] or []
        if any(p["node_id"] == src_id for p in pending):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{dst} never saw {src}'s handshake:\n{lab.logs(dst)}")
    assert lab.pilotctl(dst, "approve", str(src_id))["status"] == "approved"
    return src_id, dst_id


def _peer(lab: Lab, service: str, node_id: int) -> dict[str, Any]:
    peers = lab.pilotctl(service, "peers")["peers"] or []
    return next(p for p in peers if p["node_id"] == node_id)


def test_agent_b_reaches_agent_a_across_both_nats(lab: Lab) -> None:
    """Trust handshake through the rendezvous, then echo pings over the tunnel."""
    t0 = time.monotonic()
    _, a_id = _trust(lab, "agent-b", "agent-a")
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        results = lab.pilotctl("agent-b", "ping", "agent-a")["results"]
        if any("error" not in r for r in results):
            break
        time.sleep(1)
    assert [r for r in results if "error" not in r], f"no echo reply from agent-a: {results}\n{lab.logs('agent-b')}"
    peer = _peer(lab, "agent-b", a_id)
    # agent-b talks to agent-a's NAT mapping, never to its private address.
    assert peer["endpoint"].startswith("198.51.100.20:")
    assert peer["encrypted"]
    TIMINGS["test-ping"] = round(time.monotonic() - t0, 1)


def test_curl_through_the_gateway_reaches_the_page_behind_the_other_nat(lab: Lab) -> None:
    """The product: agent-a serves a page on pilot port 80 behind nat-a; the
    gateway behind nat-b maps it to 10.4.0.1 and plain curl fetches it."""
    t0 = time.monotonic()
    _, a_id = _trust(lab, "gateway", "agent-a")
    mapping = lab.pilotctl("gateway", "gateway", "map", "agent-a", "10.4.0.1")
    assert mapping["local_ip"] == "10.4.0.1"
    code, page = 1, ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, page = lab.run("gateway", "curl", "-sS", "-m", "10", "http://10.4.0.1/", check=False)
        if code == 0:
            break
        time.sleep(1)
    assert code == 0, f"curl failed: {page}\n{lab.logs('gateway')}"
    assert "hello from agent-a, behind nat-a" in page
    assert _peer(lab, "gateway", a_id)["endpoint"].startswith("198.51.100.20:")
    TIMINGS["test-curl"] = round(time.monotonic() - t0, 1)


def test_down_and_engine_stop_leave_nothing_behind(lab: Lab) -> None:
    """Last: compose down removes the project's containers, networks and volumes;
    stopping an engine this module started removes its chains and bridges."""
    label = f"com.docker.compose.project={PROJECT}"
    lab.down()
    assert lab.client.containers.list(all=True, filters={"label": label}) == []
    assert lab.client.networks.list(filters={"label": label}) == []
    assert lab.client.volumes.list(filters={"label": label}) == []
    if not lab.engine_ours:
        return
    assert lab.stop_engine()["engine"] == "stopped"
    assert _tool("dockerd.py", "status", step="engine-status")["engine"] == "stopped"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not re.search(r"^\d+: (docker0|br-[0-9a-f]{12})[:@]", links, re.M), links
    if shutil.which("iptables"):
        for table in ("filter", "nat"):
            rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
            assert "DOCKER" not in rules, rules
