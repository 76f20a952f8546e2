"""gateway start | stop | map | unmap | list | expose | unexpose | exposed
(services-and-cli.md §A18.3, defects C-7/C-8, issue 8).

Where we differ from the reference, outputs, codes and messages stay the
contract's and information is only added:

* ``start`` runs ``pilot-gateway`` detached (own session, log
  ``~/.pilot/gateway.log``) and returns once it answers on its control
  socket, as ``daemon start`` does; ``--foreground`` replaces pilotctl with
  it and keeps the contract's blocking behaviour. Without CAP_NET_ADMIN it
  fails at once, before anything is touched: code ``permission_denied``,
  hint ``run with sudo, or grant the capability ...``. The gateway
  writes ``~/.pilot/gateway.pid`` itself. Output as the contract says:
  ``{mappings, pid, subnet}`` (mappings restored from the last run included),
  text ``mapped <ip> → <addr>`` lines and ``gateway running``.
* ``map``/``unmap``/``list`` talk to the running gateway over
  ``~/.pilot/gateway.sock`` (C-7). ``map`` also takes hostnames (resolved
  through the daemon, §A9.4); with no gateway running it records the
  mapping for the next start instead of building a throw-away gateway.
  ``list`` entries carry ``metrics`` (connections, bytes each way, errors,
  datagrams, pings) in JSON; text lines are unchanged.
* ``stop`` asks the gateway to stop and waits until it has exited (its
  kernel objects are gone then); ``{pid}`` as in the contract, plus
  ``forced: true`` if it had to be killed.
* ``expose <pilot-port> <local-host:port>`` / ``unexpose <pilot-port>`` /
  ``exposed`` publish local TCP services on pilot ports through the daemon
  (no root, persisted by the daemon, trust rules as for any port). Outputs:
  ``{port, target}`` (text ``exposed <target> on pilot port <port>``),
  ``{port, target}`` (text ``unexposed pilot port <port> (was <target>)``),
  ``{exposed: [{port, target, connections, active_connections, bytes_in,
  bytes_out, errors}], total}``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pilotgw.client.errors import DaemonError, InvalidArgument, PilotError
from pilotgw.cli import config, process
from pilotgw.cli.args import need, parse_flags, parse_port
from pilotgw.cli.commands.daemon import _open_log, _program
from pilotgw.cli.runtime import Ctx, fail

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
POLL = 0.1
SUBCOMMANDS = "start | stop | map | unmap | list | expose | unexpose | exposed"
START_HINT = "start with: pilotctl gateway start"


def _control_path() -> str:
    return config.path("gateway.sock")


def _request(op: str, **args: Any) -> Any:
    from pilotgw.gateway import control

    try:
        return control.request(_control_path(), op, **args)
    except control.ControlError as exc:
        raise PilotError(str(exc), exc.code, exc.hint) from None


def _live_pid() -> int:
    pid = config.read_pid("gateway.pid")
    return pid if process.running(pid) else 0


def _require_running(hint: str = START_HINT) -> int:
    pid = _live_pid()
    if not pid:
        raise fail("not_running", "gateway is not running", hint)
    return pid


def _start_argv(flags: Any) -> list[str]:
    argv = _program("pilot-gateway", "pilotgw.gateway") + [
        "--json",
        "--socket", config.socket_path(),
        "--state-dir", config.pilot_dir(),
    ]  # fmt: skip
    if flags.get("subnet"):
        argv += ["--subnet", flags.get("subnet")]
    if flags.get("ports"):
        argv += ["--ports", flags.get("ports")]
    for key in ("log-level", "log-format"):
        if flags.get(key):
            argv += [f"--{key}", flags.get(key)]
    return argv + flags.positional


def _check_start_args(flags: Any) -> None:
    """Reject bad --subnet/--ports/addresses with the contract's texts before spawning."""
    from pilotgw.proxy.mapping import MappingError, parse_subnet

    if flags.get("subnet"):
        try:
            parse_subnet(flags.get("subnet"))
        except MappingError as exc:
            raise InvalidArgument(str(exc)) from None
    if flags.get("ports"):
        for item in flags.get("ports").split(","):
            port = parse_port(item.strip())
            if port == 0:
                raise InvalidArgument(f'invalid port "{item.strip()}": must be 1-65535')


def _gateway_error(log_path: str, offset: int) -> PilotError | None:
    """The error envelope the gateway printed in its log (it runs with --json)."""
    import json

    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith('{"code"'):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            return PilotError(str(obj.get("message", "")), str(obj.get("code", "internal")), obj.get("hint"))
    return None


def _start(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    pid = _live_pid()
    if pid:
        raise fail("already_exists", f"gateway is already running (pid {pid})", "stop it first with: pilotctl gateway stop")
    _check_start_args(flags)
    from pilotgw.tun.errors import KernelError
    from pilotgw.tun.privileges import require_net_admin

    try:
        require_net_admin()
    except KernelError as exc:
        raise PilotError(str(exc), exc.code, exc.hint or None) from None
    argv = _start_argv(flags)
    if flags.bool("foreground"):
        if not ctx.json:
            argv.remove("--json")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)
    os.makedirs(config.pilot_dir(), mode=0o700, exist_ok=True)
    log_path = config.path("gateway.log")
    log_fd = _open_log(log_path)
    offset = os.lseek(log_fd, 0, os.SEEK_END)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fd,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        raise fail("internal", f"start gateway: {exc}") from None
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + READY_TIMEOUT
    status = None
    while status is None:
        if proc.poll() is not None:
            error = _gateway_error(log_path, offset)
            if error is not None:
                raise error
            raise fail("internal", f"start gateway: exited with status {proc.returncode}", f"check logs: tail {log_path}")
        if time.monotonic() > deadline:
            raise fail("timeout", f"gateway started (pid {proc.pid}) but did not answer within {READY_TIMEOUT:g}s",
                       f"check logs: tail -f {log_path}")
        try:
            status = _request("status")
        except PilotError:
            time.sleep(POLL)
            continue
        if config.read_pid("gateway.pid") != proc.pid:  # still between control socket and PID file
            status = None
            time.sleep(POLL)
    data = {"mappings": status["mappings"], "pid": status["pid"], "subnet": status["subnet"]}
    lines = [f"mapped {m['local_ip']} → {m['pilot_addr']}" for m in data["mappings"] or ()]
    ctx.out.note(f"gateway logs: {log_path}")
    ctx.out.success(data, lines + ["gateway running"])


def _stop(ctx: Ctx) -> None:
    pid = _require_running("")
    try:
        _request("stop")
    except PilotError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as exc:
            raise fail("internal", f"signal gateway: {exc}") from None
    forced = process.wait_or_kill(pid, STOP_TIMEOUT, POLL)
    try:
        os.unlink(config.path("gateway.pid"))
    except OSError:
        pass
    data: dict[str, Any] = {"pid": pid}
    if forced:
        data["forced"] = True
    ctx.out.success(data)


def _map(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "gateway map <pilot-addr> [local-ip]")
    target = args[0]
    ip = args[1] if len(args) > 1 else None
    addr = ctx.resolve(target)  # opens the daemon session first, as the reference does
    if _live_pid():
        data = _request("map", target=str(addr), ip=ip)
    else:
        from pilotgw.gateway.service import map_offline
        from pilotgw.proxy.mapping import MappingError

        try:
            mapping = map_offline(Path(config.pilot_dir()), addr, ip)
        except MappingError as exc:
            raise PilotError(str(exc), exc.code) from None
        data = mapping.as_dict()
        ctx.out.note("gateway is not running: mapping saved for the next 'pilotctl gateway start'")
    ctx.out.success(data)


def _unmap(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "gateway unmap <local-ip>")
    _require_running()
    ctx.out.success(_request("unmap", ip=args[0]))


def _list(ctx: Ctx) -> None:
    _require_running("start with: pilotctl gateway start [--ports <list>] [<pilot-addr>...]")
    data = _request("list")
    mappings = data.get("mappings") or []
    if not mappings:
        ctx.out.success(data, "no mappings")
        return
    lines = [f"{m['local_ip']} → {m['pilot_addr']}" for m in mappings]
    ctx.out.success(data, lines + [f"total: {len(mappings)}"])


def _daemon_call(label: str, call: Any) -> Any:
    """Expose requests go to the daemon; its refusals keep their meaning as codes."""
    try:
        return call()
    except DaemonError as exc:
        text = exc.daemon_message
        if "not exposed" in text:
            code = "not_found"
        elif "already bound" in text:
            code = "already_exists"
        elif "invalid" in text:
            code = "invalid_argument"
        elif "unknown command" in text:
            raise PilotError(f"{label}: the daemon does not support expose (not a pilotgw daemon?)", "unavailable") from None
        else:
            code = "connection_failed"
        raise PilotError(f"{label}: {text.removeprefix('expose: ')}", code) from None


def _expose(ctx: Ctx, args: list[str]) -> None:
    need(args, 2, "gateway expose <pilot-port> <local-host:port>")
    port = parse_port(args[0])
    if port == 0:
        raise InvalidArgument(f'invalid port "{args[0]}": must be 1-65535')
    client = ctx.client()
    data = _daemon_call("expose", lambda: client.expose(port, args[1]))
    ctx.out.success(data, f"exposed {data['target']} on pilot port {data['port']}")


def _unexpose(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "gateway unexpose <pilot-port>")
    port = parse_port(args[0])
    client = ctx.client()
    data = _daemon_call("unexpose", lambda: client.unexpose(port))
    ctx.out.success(data, f"unexposed pilot port {data['port']} (was {data['target']})")


def _exposed(ctx: Ctx) -> None:
    client = ctx.client()
    entries = _daemon_call("exposed", client.exposed)
    data = {"exposed": entries, "total": len(entries)}
    if not entries:
        ctx.out.success(data, "nothing exposed")
        return
    lines = [
        f"pilot port {e['port']} → {e['target']}  (connections {e['connections']}, in {e['bytes_in']} B, "
        f"out {e['bytes_out']} B, errors {e['errors']})"
        for e in entries
    ]
    ctx.out.success(data, lines + [f"total: {len(entries)}"])


def gateway(ctx: Ctx, args: list[str]) -> None:
    if not args:
        raise InvalidArgument("missing subcommand", hint=f"available: pilotctl gateway {SUBCOMMANDS}")
    sub, rest = args[0], args[1:]
    if sub == "start":
        _start(ctx, rest)
    elif sub == "stop":
        _stop(ctx)
    elif sub == "map":
        _map(ctx, rest)
    elif sub == "unmap":
        _unmap(ctx, rest)
    elif sub == "list":
        _list(ctx)
    elif sub == "expose":
        _expose(ctx, rest)
    elif sub == "unexpose":
        _unexpose(ctx, rest)
    elif sub == "exposed":
        _exposed(ctx)
    else:
        raise InvalidArgument(
            f"unknown gateway subcommand: {sub}",
            hint="available: start, stop, map, unmap, list, expose, unexpose, exposed",
        )
