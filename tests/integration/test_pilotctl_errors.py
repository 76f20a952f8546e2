"""Every error path the pilotctl contract lists, run as the real binary
against a real daemon (or none): daemon not running, invalid address, port
out of range, missing file, unknown hostname, count 0, overlong hostname,
usage errors, bad numbers and durations -- each with its code, message,
hint, exit status, and the framing rules (text: ``error:``/``hint:`` lines on
stderr; --json: one error object on stderr, stdout empty).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import pytest

from pilotgw.client import SyncClient
from tests.integration.conftest import CliResult, PilotNode, pilot_network

pytestmark = pytest.mark.timeout(120)

NOT_RUNNING = {"code": "not_running", "hint": "start the daemon with: pilotctl daemon start",
               "message": "daemon is not running", "status": "error"}
RESOLVE = 'cannot resolve "{}" — is the hostname correct and is there mutual trust? (see: pilotctl handshake)'


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PilotNode]]:
    with pilot_network(tmp_path_factory.mktemp("pilotctl-errors"), "solo", "peer") as (_, nodes):
        yield nodes


def expect_error(node: PilotNode, args: list[str], code: str, message: str, hint: Optional[str] = None,
                 **env: str) -> None:
    """Both modes: text (stderr lines, exit 1) and --json (error object)."""
    r = node.cli(*args, **env)
    text = f"error: {message}\n" + (f"hint:  {hint}\n" if hint else "")
    assert (r.status, r.out, r.err) == (1, "", text), (args, r)
    want = {"code": code, "message": message, "status": "error"}
    if hint:
        want["hint"] = hint
    got = node.cli("--json", *args, **env)
    assert got.error() == want, (args, got)
    assert list(json.loads(got.err)) == sorted(want)  # the reference's key order


def test_daemon_not_running(net: list[PilotNode], tmp_path: Path) -> None:
    solo = net[0]
    (tmp_path / "f.txt").write_text("x")
    commands = [
        ["info"], ["peers"], ["connections"], ["disconnect", "1"], ["ping", "5"], ["ping", "somehost"],
        ["traceroute", "0:0000.0000.0005"], ["bench", "5"], ["connect", "5", "--message", "x"],
        ["send", "5", "7", "--data", "x"], ["recv", "7"], ["send-file", "5", str(tmp_path / "f.txt")],
        ["send-message", "5", "--data", "x"], ["subscribe", "5", "t"], ["publish", "5", "t", "--data", "x"],
        ["listen", "7"], ["handshake", "5"], ["approve", "5"], ["reject", "5"], ["untrust", "5"], ["pending"],
        ["trust"], ["find", "x"], ["set-hostname", "x"], ["clear-hostname"], ["set-public"], ["set-private"],
        ["deregister"], ["enable-tasks"], ["disable-tasks"], ["set-tags", "a"], ["clear-tags"],
    ]
    gone = str(tmp_path / "no-daemon.sock")

    def run(args: list[str]) -> tuple[list[str], CliResult, CliResult]:
        return args, solo.cli(*args, PILOT_SOCKET=gone), solo.cli("--json", *args, PILOT_SOCKET=gone)

    with ThreadPoolExecutor(4) as pool:
        for args, text, js in pool.map(run, commands):
            assert (text.status, text.out, text.err) == (
                1, "", "error: daemon is not running\nhint:  start the daemon with: pilotctl daemon start\n"), args
            assert js.error() == NOT_RUNNING, args
            assert js.err == ('{"code":"not_running","hint":"start the daemon with: pilotctl daemon start",'
                              '"message":"daemon is not running","status":"error"}\n')
    # Without a daemon, set-webhook still saves the setting for the next start.
    r = solo.cli("set-webhook", "http://127.0.0.1:9/x", PILOT_SOCKET=gone)
    assert (r.status, r.out) == (0, "webhook set: http://127.0.0.1:9/x\nwill take effect on next daemon start\n")
    solo.ok("clear-webhook")


def test_invalid_address(net: list[PilotNode]) -> None:
    solo = net[0]
    expect_error(solo, ["traceroute", "nosuch"], "invalid_argument",
                 'parse address: invalid address: "nosuch" (expected N:XXXX.YYYY.YYYY)')
    expect_error(solo, ["traceroute", "0:0000.0001"], "invalid_argument",
                 'parse address: invalid address: "0000.0001" (expected 3 dot-separated hex groups)')
    expect_error(solo, ["traceroute", "0:zzzz.0000.0001"], "invalid_argument",
                 'parse address: invalid hex group: "zzzz": strconv.ParseUint: parsing "zzzz": invalid syntax')
    # <address|hostname> arguments: what is not an address is a hostname to resolve.
    expect_error(solo, ["ping", "1:2:3"], "not_found", RESOLVE.format("1:2:3"))
    expect_error(solo, ["handshake", "1:2"], "not_found",
                 'resolve "1:2": resolve_hostname: daemon: resolve_hostname: registry: request failed')


def test_port_out_of_range(net: list[PilotNode]) -> None:
    solo, peer = net
    for args, text in [
        (["send", str(peer.node_id), "70000", "--data", "x"], "70000"),
        (["recv", "65536"], "65536"),
        (["listen", "99999"], "99999"),
        (["connect", str(peer.node_id), "65536", "--message", "x"], "65536"),
    ]:
        expect_error(solo, args, "invalid_argument",
                     f'invalid port "{text}": strconv.ParseUint: parsing "{text}": value out of range')
    expect_error(solo, ["recv", "-1"], "invalid_argument",
                 'invalid port "-1": strconv.ParseUint: parsing "-1": invalid syntax')
    expect_error(solo, ["listen", "abc"], "invalid_argument",
                 'invalid port "abc": strconv.ParseUint: parsing "abc": invalid syntax')


def test_missing_file(net: list[PilotNode], tmp_path: Path) -> None:
    solo, peer = net
    missing = str(tmp_path / "nope.bin")
    expect_error(solo, ["send-file", str(peer.node_id), missing], "not_found", f"file not found: {missing}")
    expect_error(solo, ["send-file", str(peer.node_id), str(peer.node_id), missing], "not_found",
                 f"file not found: {missing}")


def test_unknown_hostname(net: list[PilotNode], tmp_path: Path) -> None:
    solo = net[0]
    (tmp_path / "f.txt").write_text("x")
    expect_error(solo, ["ping", "ghost"], "not_found", RESOLVE.format("ghost"))
    expect_error(solo, ["send-message", "ghost", "--data", "x"], "not_found", RESOLVE.format("ghost"))
    expect_error(solo, ["send-file", "ghost", str(tmp_path / "f.txt")], "invalid_argument", RESOLVE.format("ghost"))
    expect_error(solo, ["find", "ghost"], "not_found", 'cannot find "ghost" — hostname not found or no mutual trust',
                 'establish trust first: pilotctl handshake ghost "reason"')
    expect_error(solo, ["handshake", "ghost"], "not_found",
                 'resolve "ghost": resolve_hostname: daemon: resolve_hostname: registry: request failed')


def test_count_zero(net: list[PilotNode]) -> None:
    solo, peer = net
    r = solo.cli("ping", peer.address, "--count", "0")
    assert (r.status, r.out, r.err) == (0, f"PING {peer.address}\n", "")
    assert solo.ok("ping", peer.address, "--count", "0") == {"results": None, "target": peer.address,
                                                              "timeout": False}
    assert solo.ok("recv", "3100", "--count", "0") == {"messages": None, "timeout": False}


def test_overlong_and_invalid_hostnames(net: list[PilotNode]) -> None:
    solo = net[0]
    long_name = "a" * 64
    expect_error(solo, ["set-hostname", long_name], "connection_failed",
                 "set-hostname: set_hostname: daemon: set_hostname: registry: request failed",
                 "hostnames are at most 63 characters (this one has 64)")
    expect_error(solo, ["set-hostname", "Bad_Name"], "connection_failed",
                 "set-hostname: set_hostname: daemon: set_hostname: registry: request failed",
                 "hostnames are lowercase letters, digits and hyphens, starting and ending with a letter or digit")
    expect_error(solo, ["find", long_name], "not_found",
                 f'cannot find "{long_name}" — hostname not found or no mutual trust',
                 f'establish trust first: pilotctl handshake {long_name} "reason"')
    assert solo.ok("info")["hostname"] == "solo"  # nothing changed
    config = solo.home / ".pilot" / "config.json"
    assert not config.exists() or "hostname" not in json.loads(config.read_text())  # a refused name is not saved


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["send-file", "5"], "send-file <address|hostname> <filepath>"),
        (["send"], "send <address|hostname> <port> --data <msg> [--timeout <dur>]"),
        (["recv"], "recv <port> [--count <n>] [--timeout <dur>]"),
        (["connect"], "connect <address|hostname> [port] [--message <msg>] [--timeout <dur>]"),
        (["ping"], "ping <address|hostname> [--count <n>] [--timeout <dur>]"),
        (["traceroute"], "traceroute <address> [--timeout <dur>]"),
        (["bench"], "bench <address|hostname> [size_mb] [--timeout <dur>]"),
        (["listen"], "listen <port> [--count <n>] [--timeout <dur>]"),
        (["subscribe", "5"], "subscribe <address|hostname> <topic> [--count <n>] [--timeout <dur>]"),
        (["publish", "5"], "publish <address|hostname> <topic> --data <message>"),
        (["send-message"], "send-message <address|hostname> --data <text> [--type text|json|binary]"),
        (["handshake"], "handshake <node_id|address|hostname> [justification]"),
        (["approve"], "approve <node_id>"),
        (["reject"], "reject <node_id> [reason]"),
        (["untrust"], "untrust <node_id>"),
        (["lookup"], "lookup <node_id>"),
        (["rotate-key", "5"], "rotate-key <node_id> <owner>"),
        (["find"], "find <hostname>"),
        (["set-hostname"], "set-hostname <hostname>"),
        (["set-webhook"], "set-webhook <url>"),
        (["set-tags"], "set-tags <tag1> [tag2] ..."),
        (["disconnect"], "disconnect <conn_id>"),
        (["config", "--set", "novalue"], "config --set key=value"),
    ],
)
def test_usage_errors(net: list[PilotNode], args: list[str], usage: str) -> None:
    expect_error(net[0], args, "invalid_argument", f"usage: pilotctl {usage}")


def test_bad_values(net: list[PilotNode]) -> None:
    solo, peer = net
    target = str(peer.node_id)
    expect_error(solo, ["approve", "x"], "invalid_argument",
                 'invalid node_id "x": strconv.ParseUint: parsing "x": invalid syntax')
    expect_error(solo, ["lookup", "4294967296"], "invalid_argument",
                 'invalid node_id "4294967296": strconv.ParseUint: parsing "4294967296": value out of range')
    expect_error(solo, ["untrust", "x"], "invalid_argument",
                 'invalid node_id: strconv.ParseUint: parsing "x": invalid syntax')
    expect_error(solo, ["disconnect", "abc"], "invalid_argument",
                 'invalid connection ID: strconv.ParseUint: parsing "abc": invalid syntax')
    expect_error(solo, ["bench", target, "abc"], "invalid_argument",
                 'invalid size: strconv.ParseFloat: parsing "abc": invalid syntax')
    expect_error(solo, ["ping", target, "--count", "x"], "invalid_argument",
                 'invalid integer for --count: strconv.Atoi: parsing "x": invalid syntax')
    expect_error(solo, ["ping", target, "--timeout", "5q"], "invalid_argument",
                 'invalid duration for --timeout: time: invalid duration "5q"')
    expect_error(solo, ["send", target, "7"], "invalid_argument", "--data is required")
    expect_error(solo, ["send-message", target, "--data", "x", "--type", "xml"], "invalid_argument",
                 'unknown type "xml" (use text, json, or binary)')
    expect_error(solo, ["set-tags", "a", "b", "c", "d"], "invalid_argument", "set-tags: maximum 3 tags allowed, got 4")
    expect_error(solo, ["set-webhook", "ftp://x"], "invalid_argument", "webhook URL must start with http:// or https://")
    expect_error(solo, ["connect", target], "invalid_argument", "no data on stdin — use --message or pipe data")
    expect_error(solo, ["broadcast", "1", "x"], "unavailable", "broadcast is not available yet — custom networks are WIP")


def test_dispatch_errors(net: list[PilotNode]) -> None:
    solo = net[0]
    r = solo.cli()
    assert (r.status, r.out) == (2, "") and r.err.startswith("pilotctl — command-line client")
    r = solo.cli("frobnicate")
    assert (r.status, r.out) == (2, "") and r.err.startswith("unknown command: frobnicate\n\npilotctl — ")
    assert solo.cli("--json", "frobnicate").error() == {
        "code": "invalid_argument", "hint": "run 'pilotctl context' for the full command list",
        "message": "unknown command: frobnicate", "status": "error"}
    expect_error(solo, ["daemon"], "invalid_argument", "missing subcommand",
                 "available: pilotctl daemon start | stop | status")
    expect_error(solo, ["daemon", "restart"], "invalid_argument", "unknown daemon subcommand: restart",
                 "available: start, stop, status")


def test_unreachable_targets_and_timeouts(net: list[PilotNode]) -> None:
    solo, peer = net
    addr = peer.address
    expect_error(solo, ["connect", addr, "4444", "--message", "x"], "connection_failed",
                 f"cannot connect to {addr} port 4444", f"check that {addr} is reachable: pilotctl ping {addr}")
    with SyncClient(str(peer.daemon.socket)) as client:
        client.listen(4500)  # accepts, never answers
        expect_error(solo, ["send", addr, "4500", "--data", "x", "--timeout", "300ms"], "timeout",
                     "no response within 300ms", f"increase with --timeout, or check peer: pilotctl ping {addr}")
        expect_error(solo, ["connect", addr, "4500", "--message", "x", "--timeout", "0.3"], "timeout",
                     "no response within 300ms",
                     "increase with --timeout, or check if the target is listening on that port")


def test_registry_unreachable(net: list[PilotNode]) -> None:
    solo = net[0]
    hint = "check that the registry is running at 127.0.0.1:1, or set PILOT_REGISTRY"
    expect_error(solo, ["lookup", "1"], "connection_failed", "cannot reach registry at 127.0.0.1:1", hint,
                 PILOT_REGISTRY="127.0.0.1:1")
    expect_error(solo, ["register"], "connection_failed", "cannot reach registry at 127.0.0.1:1", hint,
                 PILOT_REGISTRY="127.0.0.1:1")


def test_gateway_commands_without_a_gateway(net: list[PilotNode]) -> None:
    solo = net[0]
    expect_error(solo, ["gateway", "stop"], "not_running", "gateway is not running")
    expect_error(solo, ["gateway", "list"], "not_running", "gateway is not running",
                 "start with: pilotctl gateway start [--ports <list>] [<pilot-addr>...]")
    expect_error(solo, ["gateway", "unmap", "10.4.0.1"], "not_running", "gateway is not running",
                 "start with: pilotctl gateway start")
    expect_error(solo, ["gateway", "map"], "invalid_argument", "usage: pilotctl gateway map <pilot-addr> [local-ip]")
    expect_error(solo, ["gateway", "unmap"], "invalid_argument", "usage: pilotctl gateway unmap <local-ip>")
