"""The gateway end to end in a namespace lab, the way an operator uses it.

``gw`` (behind a port-restricted NAT) runs ``pilot-daemon`` + ``pilot-gateway``;
the agent ``bob`` (behind a full-cone NAT: two NATs between them) runs
``pilot-daemon``, stays private, and publishes an ordinary HTTP server on
127.0.0.1:8080 with ``pilotctl gateway expose 80 127.0.0.1:8080``; trust
comes from ``pilotctl handshake`` / ``approve``. Then curl, ping, UDP,
``gateway list/unmap/stop`` and a kill -9 are checked from ``gw``'s
namespace, and after each stop the test lists what could be left behind.
The tests share one lab and run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from benchmarks.gateway_lab import AGENT, GATEWAY, GatewayLab, wait_for
from pilotgw.lab import netns

REASON = netns.unavailable_reason()
pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"gateway lab tests skipped: {REASON}"),
]

PAGE = "<html><body><h1>agent bob</h1></body></html>\n"
UDP_PORT = 5300

UDP_ECHO = textwrap.dedent(
    f"""
    import asyncio, sys
    import pilotgw

    async def main():
        client = await pilotgw.connect()
        await client.listen({UDP_PORT})          # owns the port, so replies go out from it
        print("ready", flush=True)
        async for dg in client.datagrams({UDP_PORT}):
            await client.send_to(dg.src_addr, dg.src_port, b"echo:" + dg.data, from_port={UDP_PORT})

    asyncio.run(main())
    """
)


def png(width: int, height: int) -> bytes:
    """A minimal valid grey PNG, so the browser test can read naturalWidth."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_www(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(PAGE)
    (root / "pixel.png").write_bytes(png(37, 5))
    (root / "app.js").write_text(
        "window.addEventListener('load', function () {\n"
        "  var img = document.getElementById('pic');\n"
        "  var out = document.createElement('p');\n"
        "  out.id = 'result';\n"
        "  out.textContent = 'width=' + img.naturalWidth + ' height=' + img.naturalHeight;\n"
        "  document.body.appendChild(out);\n"
        "});\n"
    )
    (root / "browser.html").write_text(
        "<!doctype html><html><head><script src='/app.js'></script></head>"
        "<body><img id='pic' src='/pixel.png'></body></html>\n"
    )
    return root


@pytest.fixture(scope="module")
def gl(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("gwlab")
    os.chmod(work, 0o755)  # the browser and servers in the lab read the web root
    with GatewayLab(work, make_www(work / "www")) as lab:
        started = lab.pilotctl_json(GATEWAY, "gateway", "start", lab.addrs[AGENT])
        assert started["mappings"] == [{"local_ip": "10.4.0.1", "pilot_addr": lab.addrs[AGENT]}]
        try:
            yield lab
        finally:
            for name in ("gateway.log",):
                print(f"---- {name} ----\n{lab.log(GATEWAY, name)[-8000:]}")


def test_curl_reaches_the_agent_through_two_nats(gl: GatewayLab) -> None:
    done = gl.curl("http://10.4.0.1/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == PAGE


def test_any_port_works_without_being_listed(gl: GatewayLab) -> None:
    gl.pilotctl_json(AGENT, "gateway", "expose", "8000", "127.0.0.1:8080")
    done = gl.curl("http://10.4.0.1:8000/")
    assert done.returncode == 0 and done.stdout == PAGE
    # A port nothing serves on the agent fails at once (reset), not after a timeout.
    start = time.monotonic()
    refused = gl.curl("http://10.4.0.1:8001/")
    assert refused.returncode != 0 and time.monotonic() - start < 10


def test_udp_echo_round_trip(gl: GatewayLab) -> None:
    echo = gl.host(AGENT).popen([sys.executable, "-c", UDP_ECHO], env=gl.env(AGENT), stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        with gl.host(GATEWAY).socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            for attempt in range(5):  # UDP: the first datagram may race the tunnel set-up
                sock.sendto(b"hello %d" % attempt, ("10.4.0.1", UDP_PORT))
                try:
                    data, peer = sock.recvfrom(2048)
                    break
                except socket.timeout:
                    continue
            else:
                pytest.fail("no UDP echo through the gateway")
        assert data.startswith(b"echo:hello ") and peer == ("10.4.0.1", UDP_PORT)
    finally:
        echo.kill()
        echo.wait()


def test_list_shows_the_mapping_with_metrics(gl: GatewayLab) -> None:
    data = gl.pilotctl_json(GATEWAY, "gateway", "list")
    assert data["total"] == 1
    entry = data["mappings"][0]
    assert (entry["local_ip"], entry["pilot_addr"]) == ("10.4.0.1", gl.addrs[AGENT])
    metrics = entry["metrics"]
    assert metrics["connections"] >= 3 and metrics["bytes_from_overlay"] >= 2 * len(PAGE)
    assert metrics["datagrams_to_overlay"] >= 1 and metrics["datagrams_from_overlay"] >= 1
    text = gl.pilotctl(GATEWAY, "gateway", "list")
    assert text.stdout == f"10.4.0.1 → {gl.addrs[AGENT]}\ntotal: 1\n"


def test_browser_renders_page_with_image_and_script(gl: GatewayLab, tmp_path: Path) -> None:
    chromium = next((c for c in ("chromium", "chromium-browser") if _which(c)), None)
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    done = gl.host(GATEWAY).run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", "http://10.4.0.1/browser.html"],
        check=False, timeout=90,
    )  # fmt: skip
    assert '<p id="result">width=37 height=5</p>' in done.stdout, done.stderr[-2000:]


def test_ping_answers_only_while_the_agent_daemon_runs(gl: GatewayLab) -> None:
    def ping() -> bool:
        return gl.host(GATEWAY).run(["ping", "-c1", "-W4", "10.4.0.1"], check=False, timeout=30).returncode == 0

    if not _which("ping"):
        pytest.skip("ping is not installed (apt-get install -y iputils-ping)")
    assert ping()
    gl.stop_daemon(AGENT)
    assert not ping()
    gl.start_daemon(AGENT)  # expose.json brings port 80 back by itself
    wait_for(ping, 90, "ping after the agent's daemon restarted", interval=1)
    wait_for(lambda: gl.curl("http://10.4.0.1/").stdout == PAGE, 60, "curl after restart", interval=1)


def test_unmap_is_live_and_curl_then_fails_fast(gl: GatewayLab) -> None:
    assert gl.pilotctl_json(GATEWAY, "gateway", "unmap", "10.4.0.1") == {"unmapped": "10.4.0.1"}
    start = time.monotonic()
    done = gl.curl("http://10.4.0.1/")
    assert done.returncode != 0 and time.monotonic() - start < 3
    assert gl.pilotctl_json(GATEWAY, "gateway", "list") == {"mappings": [], "total": 0}
    missing = gl.pilotctl(GATEWAY, "--json", "gateway", "unmap", "10.4.0.1")
    assert json.loads(missing.stderr) == {"code": "not_found", "message": "no mapping for 10.4.0.1", "status": "error"}
    # Map again by hostname-free address: freed IPs are never reused.
    again = gl.pilotctl_json(GATEWAY, "gateway", "map", gl.addrs[AGENT])
    assert again == {"local_ip": "10.4.0.2", "pilot_addr": gl.addrs[AGENT]}
    assert gl.curl("http://10.4.0.2/").stdout == PAGE


def test_stop_then_kill_and_restart_leave_nothing_behind(gl: GatewayLab) -> None:
    stopped = gl.pilotctl_json(GATEWAY, "gateway", "stop")
    assert set(stopped) == {"pid"}
    assert gl.leftovers() == []
    assert not (gl.home(GATEWAY) / ".pilot" / "gateway.pid").exists()

    # Restart: the mapping persisted; then a kill -9 leaves kernel state that
    # the next start removes first.
    started = gl.pilotctl_json(GATEWAY, "gateway", "start")
    assert started["mappings"] == [{"local_ip": "10.4.0.2", "pilot_addr": gl.addrs[AGENT]}]
    assert gl.curl("http://10.4.0.2/").stdout == PAGE
    os.kill(started["pid"], signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{started['pid']}").exists() or _zombie(started["pid"]), 10, "gateway death")
    left = gl.leftovers()
    assert any(item.startswith("rule") for item in left) and any(item.startswith("nft table") for item in left)
    busy = gl.pilotctl(GATEWAY, "--json", "gateway", "start")
    assert busy.returncode == 0, busy.stderr
    assert gl.curl("http://10.4.0.2/").stdout == PAGE
    gl.pilotctl_json(GATEWAY, "gateway", "stop")
    assert gl.leftovers() == []


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin") is not None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
