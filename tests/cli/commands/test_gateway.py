"""pilotctl gateway ...: dispatch errors, no-gateway behaviour (C-7), offline
map, the privilege check before anything is touched, and expose over the
daemon's Expose extension (fake daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotgw.overlay import ipc
from tests.client.fakedaemon import FakeDaemon


def _json_err(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.err)


def test_subcommand_dispatch_errors(cli) -> None:  # type: ignore[no-untyped-def]
    missing = cli("--json", "gateway")
    assert missing.status == 1 and _json_err(missing)["message"] == "missing subcommand"
    assert _json_err(missing)["hint"].startswith("available: pilotctl gateway start | stop | map | unmap | list")
    unknown = cli("gateway", "frobnicate")
    assert unknown.status == 1 and unknown.err.startswith("error: unknown gateway subcommand: frobnicate\nhint:  available: ")


def test_without_a_gateway_list_unmap_stop_are_not_running(cli) -> None:  # type: ignore[no-untyped-def]
    listing = cli("--json", "gateway", "list")
    assert _json_err(listing) == {
        "code": "not_running",
        "hint": "start with: pilotctl gateway start [--ports <list>] [<pilot-addr>...]",
        "message": "gateway is not running",
        "status": "error",
    }
    unmap = cli("--json", "gateway", "unmap", "10.4.0.1")
    assert _json_err(unmap)["code"] == "not_running" and _json_err(unmap)["hint"] == "start with: pilotctl gateway start"
    stop = cli("--json", "gateway", "stop")
    assert _json_err(stop) == {"code": "not_running", "message": "gateway is not running", "status": "error"}
    usage = cli("--json", "gateway", "unmap")
    assert _json_err(usage)["message"] == "usage: pilotctl gateway unmap <local-ip>"


def test_map_without_a_gateway_is_saved_for_the_next_start(cli, fake: FakeDaemon, home: str) -> None:  # type: ignore[no-untyped-def]
    first = cli("--json", "gateway", "map", "bob")
    assert first.status == 0, first.err
    assert json.loads(first.out) == {"data": {"local_ip": "10.4.0.1", "pilot_addr": "0:0000.0000.0009"}, "status": "ok"}
    second = cli("gateway", "map", "0:0000.0000.0005", "10.4.7.7")
    assert json.loads(second.out) == {"local_ip": "10.4.7.7", "pilot_addr": "0:0000.0000.0005"}
    assert "saved for the next" in second.err
    again = cli("--json", "gateway", "map", "9")  # already mapped: same IP
    assert json.loads(again.out)["data"]["local_ip"] == "10.4.0.1"
    saved = json.loads((Path(home) / ".pilot" / "gateway-mappings.json").read_text())
    assert [m["local_ip"] for m in saved["mappings"]] == ["10.4.0.1", "10.4.7.7"]
    outside = cli("--json", "gateway", "map", "7", "192.168.1.1")
    assert _json_err(outside) == {"code": "invalid_argument", "message": "IP 192.168.1.1 not in subnet 10.4.0.0/16",
                                  "status": "error"}
    unknown = cli("--json", "gateway", "map", "nobody")
    assert _json_err(unknown)["code"] == "not_found"


def test_map_needs_the_daemon_first(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "gateway", "map", "0:0000.0000.0005")
    assert _json_err(result)["code"] == "not_running"


def test_start_rejects_bad_arguments_before_anything(cli) -> None:  # type: ignore[no-untyped-def]
    subnet = cli("--json", "gateway", "start", "--subnet", "10.4.0.0")
    assert _json_err(subnet) == {"code": "invalid_argument", "message": "parse subnet: invalid CIDR address: 10.4.0.0",
                                 "status": "error"}
    port = cli("--json", "gateway", "start", "--ports", "80,http")
    assert _json_err(port)["message"].startswith('invalid port "http": strconv.ParseUint')


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop CAP_NET_ADMIN with setpriv")
def test_start_without_cap_net_admin_fails_at_once_with_a_hint(home: str) -> None:
    env = {**os.environ, "HOME": home}
    done = subprocess.run(
        ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--",
         sys.executable, "-m", "pilotgw.cli.main", "--json", "gateway", "start"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    err = json.loads(done.stderr)
    assert err["code"] == "permission_denied" and "sudo" in err["hint"] and "setcap" in err["hint"]
    assert not (Path(home) / ".pilot" / "gateway.pid").exists()
    assert not (Path(home) / ".pilot" / "gateway.log").exists()


def _expose_hook(cmd: int, payload: bytes) -> bytes | None:
    if cmd != ipc.EXPOSE:
        return None
    request = ipc.decode_request(bytes([cmd]) + payload)
    if isinstance(request, ipc.ExposeAdd):
        if request.port == 1001:
            return ipc.Error("expose: port 1001 already bound").encode()
        return ipc.JsonReply(ipc.EXPOSE_OK, {"port": request.port, "target": request.target}).encode()
    if isinstance(request, ipc.ExposeRemove):
        return ipc.Error(f"expose: port {request.port} is not exposed").encode()
    entry = {"active_connections": 0, "bytes_in": 10, "bytes_out": 20, "connections": 1, "errors": 0, "port": 80,
             "target": "127.0.0.1:8080"}
    return ipc.JsonReply(ipc.EXPOSE_OK, {"exposed": [entry]}).encode()


def test_expose_unexpose_exposed(cli, fake: FakeDaemon) -> None:  # type: ignore[no-untyped-def]
    fake.hook = _expose_hook
    done = cli("gateway", "expose", "80", "127.0.0.1:8080")
    assert (done.status, done.out) == (0, "exposed 127.0.0.1:8080 on pilot port 80\n")
    busy = cli("--json", "gateway", "expose", "1001", "127.0.0.1:9")
    assert _json_err(busy) == {"code": "already_exists", "message": "expose: port 1001 already bound",
                               "status": "error"}
    gone = cli("--json", "gateway", "unexpose", "81")
    assert _json_err(gone)["code"] == "not_found"
    listing = cli("--json", "gateway", "exposed")
    assert json.loads(listing.out)["data"]["total"] == 1
    bad = cli("--json", "gateway", "expose", "80", "8080")
    assert _json_err(bad)["code"] == "invalid_argument"
    zero = cli("--json", "gateway", "expose", "0", "127.0.0.1:8080")
    assert _json_err(zero)["code"] == "invalid_argument"


def test_expose_against_a_reference_daemon_says_unsupported(cli, fake: FakeDaemon) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "gateway", "exposed")
    assert _json_err(result)["code"] == "unavailable"
