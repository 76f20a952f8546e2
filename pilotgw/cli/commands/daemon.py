"""daemon start | stop | status, and _daemon-run (services-and-cli.md §A11,
trust-and-ipc.md §A3.5).

``daemon start`` runs ``pilot-daemon`` in the background in its own session,
logs to ``~/.pilot/pilot.log``, records its PID in ``~/.pilot/pilot.pid`` and
returns once the IPC socket answers Info. When no registry is configured
anywhere (no flag, no config, no ``PILOT_REGISTRY``) it uses 127.0.0.1:9000
and, if nothing answers there, starts a local ``pilot-rendezvous`` first and
says so -- a fresh machine gets a working node, and never talks to a public
address by default.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from pilotgw.client.errors import InvalidArgument, PilotError
from pilotgw.cli import config, process
from pilotgw.cli.args import Flags, parse_flags
from pilotgw.cli.output import hms
from pilotgw.cli.runtime import Ctx, fail

READY_TIMEOUT = 15.0
POLL = 0.2
STOP_TIMEOUT = 10.0
RENDEZVOUS_READY = 10.0


def _program(script: str, module: str) -> list[str]:
    """Our console script next to this interpreter, else ``python -m module``."""
    candidate = os.path.join(os.path.dirname(sys.executable), script)
    if os.access(candidate, os.X_OK):
        return [candidate]
    found = shutil.which(script)
    return [found] if found else [sys.executable, "-m", module]


def _socket_answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True


def _info(path: str) -> dict[str, Any] | None:
    from pilotgw.client import calls
    from pilotgw.client.sync import SyncClient

    try:
        with SyncClient(path, connect_timeout=1.0) as c:
            return c.call(calls.info(), timeout=2.0)  # type: ignore[no-any-return]
    except PilotError:
        return None


def _tcp_answers(addr: str, timeout: float = 0.5) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _open_log(path: str) -> int:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise fail("internal", f"open log file: {exc}") from None


def _write_pid(name: str, pid: int) -> None:
    path = config.path(name)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(pid))
    os.replace(path + ".tmp", path)


def _spawn(argv: list[str], log_path: str) -> subprocess.Popen[bytes]:
    log_fd = _open_log(log_path)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise fail("internal", f"start daemon: {exc}") from None
    finally:
        os.close(log_fd)


def _start_local_rendezvous(ctx: Ctx, registry: str, beacon: str) -> dict[str, Any]:
    """Start ``pilot-rendezvous`` on loopback and wait until it accepts TCP."""
    argv = _program("pilot-rendezvous", "pilotgw.rendezvous") + [
        "-registry-addr",
        registry,
        "-beacon-addr",
        beacon,
    ]
    log_path = config.path("rendezvous.log")
    proc = _spawn(argv, log_path)
    _write_pid("rendezvous.pid", proc.pid)
    deadline = time.monotonic() + RENDEZVOUS_READY
    while not _tcp_answers(registry, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise fail(
                "internal",
                f"local rendezvous did not start on {registry}",
                f"check logs: tail -f {log_path}",
            )
        time.sleep(POLL)
    ctx.out.note(
        f"no registry configured: started a local rendezvous on {registry} (beacon {beacon}, pid {proc.pid}, "
        f"logs {log_path})"
    )
    return {"beacon": beacon, "log_file": log_path, "pid": proc.pid, "registry": registry}


def _config_file_value(path: str, key: str) -> str:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _settings(flags: Flags) -> dict[str, Any]:
    """The values daemon start uses, with the reference's precedence (§A11 step 3)."""
    cfg = config.load()
    registry_defaulted = False
    if flags.get("registry"):
        registry = flags.get("registry")
    elif isinstance(cfg.get("registry"), str) and cfg["registry"]:
        registry = cfg["registry"]
    elif os.environ.get("PILOT_REGISTRY"):
        registry = os.environ["PILOT_REGISTRY"]
    else:
        registry, registry_defaulted = config.DEFAULT_REGISTRY, True
    beacon = flags.get("beacon") or (cfg["beacon"] if isinstance(cfg.get("beacon"), str) and cfg["beacon"] else "")
    beacon = beacon or config.DEFAULT_BEACON
    conf = flags.get("config")
    if conf:  # like the reference: the file's registry/beacon replace values still at their defaults
        if registry == config.DEFAULT_REGISTRY and _config_file_value(conf, "registry"):
            registry, registry_defaulted = _config_file_value(conf, "registry"), False
        if beacon == config.DEFAULT_BEACON and _config_file_value(conf, "beacon"):
            beacon = _config_file_value(conf, "beacon")

    def cfg_str(key: str) -> str:
        return flags.get(key) or (cfg[key] if isinstance(cfg.get(key), str) else "")

    return {
        "registry": registry,
        "registry_defaulted": registry_defaulted,
        "beacon": beacon,
        "listen": flags.get("listen") or ":0",
        "socket": flags.get("socket") or config.socket_path(cfg),
        "identity": flags.get("identity") or config.path("identity.key"),
        "owner": flags.get("owner"),
        "hostname": cfg_str("hostname"),
        "webhook": cfg_str("webhook"),
        "log_level": flags.get("log-level") or "info",
        "log_format": flags.get("log-format") or "text",
        "public": flags.bool("public"),
        "encrypt": not flags.bool("no-encrypt"),
        "config": conf,
    }


def daemon_argv(s: dict[str, Any]) -> list[str]:
    """``pilot-daemon`` command line for the settings (Go-style flags)."""
    argv = _program("pilot-daemon", "pilotgw.daemon.cli") + [
        "-registry", s["registry"],
        "-beacon", s["beacon"],
        "-listen", s["listen"],
        "-socket", s["socket"],
        "-identity", s["identity"],
        "-log-level", s["log_level"],
        "-log-format", s["log_format"],
    ]  # fmt: skip
    if not s["encrypt"]:
        argv.append("-encrypt=false")
    for key in ("owner", "hostname", "config", "webhook"):
        if s[key]:
            argv += [f"-{key}", s[key]]
    if s["public"]:
        argv.append("-public")
    return argv


def _start(ctx: Ctx, flags: Flags) -> None:
    pid = config.read_pid()
    if config.pid_alive(pid):
        raise fail("already_exists", f"daemon is already running (pid {pid})", "stop it first with: pilotctl daemon stop")
    if pid or os.path.exists(config.path("pilot.pid")):
        try:
            os.unlink(config.path("pilot.pid"))
        except OSError:
            pass
    s = _settings(flags)
    sock = s["socket"]
    if os.path.exists(sock):
        if _socket_answers(sock):
            raise fail(
                "already_exists",
                f"daemon is already running (socket {sock} is active)",
                "stop it first with: pilotctl daemon stop",
            )
        try:
            os.unlink(sock)
        except OSError:
            pass
    os.makedirs(config.pilot_dir(), mode=0o700, exist_ok=True)
    rendezvous = None
    if s["registry_defaulted"]:
        if _tcp_answers(s["registry"]):
            ctx.out.note(f"no registry configured: using the local registry at {s['registry']}")
        else:
            rendezvous = _start_local_rendezvous(ctx, s["registry"], s["beacon"])
    argv = daemon_argv(s)
    if flags.bool("foreground"):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)
    log_path = config.path("pilot.log")
    proc = _spawn(argv, log_path)
    _write_pid("pilot.pid", proc.pid)
    ctx.out.note(f"starting daemon (pid {proc.pid})...", end="")
    start = time.monotonic()
    dots = 0
    info = None
    while time.monotonic() - start < READY_TIMEOUT:
        info = _info(sock) if os.path.exists(sock) else None
        if info is not None:
            break
        if proc.poll() is not None:
            ctx.out.note("")
            raise fail(
                "internal",
                f"daemon exited during start (status {proc.returncode})",
                f"check logs: tail -f {log_path}",
            )
        time.sleep(POLL)
        if int(time.monotonic() - start) > dots:
            dots += 1
            ctx.out.note(".", end="")
    ctx.out.note("")
    if info is None:
        raise fail(
            "timeout",
            f"daemon started (pid {proc.pid}) but did not become ready within 15s",
            f"check logs: tail -f {log_path}",
        )
    data: dict[str, Any] = {
        "address": info.get("address", ""),
        "hostname": info.get("hostname", ""),
        "log_file": log_path,
        "node_id": info.get("node_id", 0),
        "pid": proc.pid,
        "socket": sock,
    }
    if rendezvous is not None:
        data["rendezvous"] = rendezvous
    lines = [f"Daemon running (pid {proc.pid})", f"  Address:  {data['address']}"]
    if data["hostname"]:
        lines.append(f"  Hostname: {data['hostname']}")
    lines += [f"  Socket:   {sock}", f"  Logs:     {log_path}"]
    ctx.out.success(data, lines)


def _stop(ctx: Ctx) -> None:
    pid_file = config.path("pilot.pid")
    pid = config.read_pid()
    if not pid:
        if _socket_answers(config.socket_path()):
            raise fail(
                "not_running",
                "daemon socket is active but PID file is missing",
                f"find and kill the process manually: lsof -U | grep {config.socket_path()}",
            )
        raise fail("not_running", "daemon is not running")
    if not config.pid_alive(pid):
        try:
            os.unlink(pid_file)
        except OSError:
            pass
        raise fail("not_running", "daemon is not running (cleaned up stale state)")
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        raise fail("internal", f"signal daemon: {exc}") from None
    forced = process.wait_or_kill(pid, STOP_TIMEOUT, POLL)
    try:
        os.unlink(pid_file)
    except OSError:
        pass
    if forced:
        ctx.out.success({"forced": True, "pid": pid}, f"daemon force-stopped (pid {pid})")
    else:
        ctx.out.success({"pid": pid}, f"daemon stopped (pid {pid})")


def _status(ctx: Ctx, flags: Flags) -> int | None:
    sock = config.socket_path()
    if flags.bool("check"):
        return 0 if _info(sock) is not None else 1
    pid_file = config.path("pilot.pid")
    pid = config.read_pid()
    alive = process.running(pid)
    data: dict[str, Any] = {"pid": pid, "pid_file": pid_file, "running": alive, "socket": sock}
    if not _socket_answers(sock):
        if pid and not alive:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
        data["responsive"] = False
        ctx.out.success(data, ["Daemon: stopped", "  start with: pilotctl daemon start"])
        return None
    info = _info(sock)
    if info is None:
        data["responsive"] = False
        ctx.out.success(data)
        return None
    data.update(
        {
            "address": info.get("address", ""),
            "connections": info.get("connections", 0),
            "hostname": info.get("hostname", ""),
            "node_id": info.get("node_id", 0),
            "peers": info.get("peers", 0),
            "responsive": True,
            "running": True,
            "uptime_secs": info.get("uptime_secs", 0),
        }
    )
    lines = [
        f"Daemon: running (pid {pid})",  # it answered Info, so it runs (C-13)
        f"  Node ID:     {data['node_id']}",
        f"  Address:     {data['address']}",
    ]
    if data["hostname"]:
        lines.append(f"  Hostname:    {data['hostname']}")
    lines += [
        f"  Uptime:      {hms(data['uptime_secs'])}",
        f"  Peers:       {data['peers']}",
        f"  Connections: {data['connections']}",
    ]
    ctx.out.success(data, lines)
    return None


def daemon(ctx: Ctx, args: list[str]) -> int | None:
    if not args:
        raise InvalidArgument("missing subcommand", hint="available: pilotctl daemon start | stop | status")
    sub, rest = args[0], args[1:]
    if sub == "start":
        _start(ctx, parse_flags(rest))
        return None
    if sub == "stop":
        _stop(ctx)
        return None
    if sub == "status":
        return _status(ctx, parse_flags(rest))
    raise InvalidArgument(f"unknown daemon subcommand: {sub}", hint="available: start, stop, status")


def daemon_run(ctx: Ctx, args: list[str]) -> None:
    """Internal: run the daemon in this process (the reference's re-exec target)."""
    flags = parse_flags(args)
    s = _settings(flags)
    s["identity"] = flags.get("identity")  # _daemon-run defaults to an ephemeral identity
    argv = daemon_argv(s)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
