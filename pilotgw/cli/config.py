"""``~/.pilot``: paths, ``config.json`` and the socket/registry resolution rules.

trust-and-ipc.md §A3.5 and services-and-cli.md §A9.3. One deliberate
difference from the reference: no default ever names a public address. Where
the reference falls back to its public rendezvous we use ``127.0.0.1:9000``,
and commands that talk to the registry directly first ask which registry the
running daemon (the one in ``pilot.pid``) was started with.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pilotgw.client.calls import DEFAULT_SOCKET
from pilotgw.client.errors import PilotError
from pilotgw.cli.output import to_indented

DEFAULT_REGISTRY = "127.0.0.1:9000"
DEFAULT_BEACON = "127.0.0.1:9001"


def home() -> str:
    value = os.environ.get("HOME") or os.path.expanduser("~")
    if not value or value == "~":
        raise PilotError("cannot determine home directory", "internal")
    return value


def pilot_dir() -> str:
    return os.path.join(home(), ".pilot")


def path(name: str) -> str:
    return os.path.join(pilot_dir(), name)


def config_path() -> str:
    return path("config.json")


def load() -> dict[str, Any]:
    """config.json as a dict; unreadable or not a JSON object → ``{}``."""
    try:
        with open(config_path(), encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save(config: dict[str, Any]) -> None:
    """2-space indented Go-JSON, keys sorted, trailing newline; dir 0700."""
    try:
        os.makedirs(pilot_dir(), mode=0o700, exist_ok=True)
        tmp = config_path() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(to_indented(config) + "\n")
        os.replace(tmp, config_path())
    except OSError as exc:
        raise PilotError(f"save config: {exc}", "internal") from None


def _str(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    return value if isinstance(value, str) else ""


def socket_path(config: dict[str, Any] | None = None) -> str:
    """``PILOT_SOCKET`` > config ``socket`` > ``/tmp/pilot.sock``."""
    env = os.environ.get("PILOT_SOCKET", "")
    if env:
        return env
    return _str(load() if config is None else config, "socket") or DEFAULT_SOCKET


def read_pid(name: str = "pilot.pid") -> int:
    try:
        with open(path(name), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flag_from_cmdline(pid: int, name: str) -> str:
    """The value of ``-name``/``--name`` in a live process's command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return ""
    args = [a.decode("utf-8", "replace") for a in argv]
    for i, arg in enumerate(args):
        for prefix in (f"-{name}", f"--{name}"):
            if arg == prefix and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(prefix + "="):
                return arg[len(prefix) + 1 :]
    return ""


def running_daemon_registry() -> str:
    pid = read_pid()
    return _flag_from_cmdline(pid, "registry") if pid_alive(pid) else ""


def registry_addr(config: dict[str, Any] | None = None) -> str:
    """Registry for ``register``/``lookup``/``rotate-key``: ``PILOT_REGISTRY`` >
    config ``registry`` > the running daemon's ``-registry`` > 127.0.0.1:9000."""
    env = os.environ.get("PILOT_REGISTRY", "")
    if env:
        return env
    return _str(load() if config is None else config, "registry") or running_daemon_registry() or DEFAULT_REGISTRY
