"""Daemon configuration: the reference's flag set, its config file, and our defaults.

Precedence (trust-and-ipc.md §A3.2, §A3.5): an explicit command-line flag
beats the ``-config`` JSON file, which beats the environment
(``PILOT_SOCKET``, ``PILOT_REGISTRY``), which beats the built-in default.

The defaults differ from the reference on purpose: no default may point at a
public address, so with no registry configured anywhere we use a rendezvous on
127.0.0.1 (``127.0.0.1:9000`` / beacon ``127.0.0.1:9001``) and the node logs
that it did (``Config.notes``).

Config-file values the reference silently drops (numbers >= 1e6, bare-number
durations, parse errors) are accepted where they make sense and warned about
otherwise (D-18): every such warning lands in ``Config.notes`` so the daemon
can log it once its logger exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

DEFAULT_REGISTRY = "127.0.0.1:9000"
DEFAULT_BEACON = "127.0.0.1:9001"
DEFAULT_SOCKET = "/tmp/pilot.sock"


class ConfigError(ValueError):
    """A configuration value that cannot be used; ``code`` is machine-readable."""

    def __init__(self, message: str, code: str = "invalid_config") -> None:
        super().__init__(message)
        self.code = code


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | int | float) -> float:
    """Go ``time.ParseDuration`` syntax (``"30s"``, ``"1m30s"``, ``"500ms"``) in
    seconds; a bare number means seconds (D-18: the reference rejects it)."""
    if isinstance(text, bool):
        raise ConfigError(f"invalid duration {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip()
        try:
            value = float(s)
        except ValueError:
            sign = -1.0 if s.startswith("-") else 1.0
            body = s.lstrip("+-")
            pos, total = 0, 0.0
            for m in _DURATION_PART.finditer(body):
                if m.start() != pos:
                    break
                total += float(m.group(1)) * _UNIT[m.group(2)]
                pos = m.end()
            if pos != len(body) or not body:
                raise ConfigError(f"invalid duration {text!r}") from None
            value = sign * total
    if not math.isfinite(value):  # float() takes "nan" and "inf"; Go's parser does not
        raise ConfigError(f"invalid duration {text!r}")
    if value < 0:
        raise ConfigError(f"invalid duration {text!r}: negative")
    return value


def parse_bool(text: str | bool) -> bool:
    """Go ``strconv.ParseBool``: 1 t T TRUE true True / 0 f F FALSE false False."""
    if isinstance(text, bool):
        return text
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ConfigError(f"invalid boolean {text!r}")


def parse_int(text: str | int | float) -> int:
    """A non-negative integer; JSON floats are accepted only when whole (D-18)."""
    if isinstance(text, bool):
        raise ConfigError(f"invalid integer {text!r}")
    if isinstance(text, float):
        if not text.is_integer():
            raise ConfigError(f"invalid integer {text!r}")
        text = int(text)
    if isinstance(text, str):
        try:
            text = int(text.strip(), 10)
        except ValueError:
            raise ConfigError(f"invalid integer {text!r}") from None
    if text < 0:
        raise ConfigError(f"invalid integer {text!r}: negative")
    return text


def parse_hostport(text: str, *, what: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; an empty host (``:0``) means all interfaces."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{what}: expected host:port, got {text!r}")
    host, _, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text, 10)
    except ValueError:
        raise ConfigError(f"{what}: invalid port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what}: port out of range in {text!r}")
    return host, port


@dataclass
class Config:
    """Every daemon setting, with the effective (post-precedence) values.

    Durations are float seconds. Zero for a tuning value means "use the
    default", as with the reference's flags; :meth:`effective` resolves that.
    """

    registry: str = DEFAULT_REGISTRY
    beacon: str = DEFAULT_BEACON
    listen: str = ":0"
    socket: str = DEFAULT_SOCKET
    endpoint: str = ""
    encrypt: bool = True
    registry_tls: bool = False
    registry_fingerprint: str = ""
    identity: str = ""
    owner: str = ""
    keepalive: float = 0.0
    idle_timeout: float = 0.0
    syn_rate_limit: int = 0
    max_conns_per_port: int = 0
    max_conns_total: int = 0
    time_wait: float = 0.0
    public: bool = False
    hostname: str = ""
    no_echo: bool = False
    no_dataexchange: bool = False
    no_eventstream: bool = False
    webhook: str = ""
    log_level: str = "info"
    log_format: str = "text"
    config: str = ""
    # Ours (not in the reference): accept PILT from peers without key state
    # (T-D13; off = strict), and the largest stream segment we negotiate with
    # other pilotgw nodes (0 = default, 4096 disables the extension).
    allow_plaintext: bool = False
    segment_size: int = 0
    # Human-readable notes produced while loading (defaults applied, values
    # ignored); the node logs them once logging is set up.
    notes: list[str] = field(default_factory=list, compare=False)

    # Effective values for the "0 means default" knobs (§2.22).
    @property
    def keepalive_s(self) -> float:
        return self.keepalive or 30.0

    @property
    def idle_timeout_s(self) -> float:
        return self.idle_timeout or 120.0

    @property
    def syn_rate(self) -> int:
        return self.syn_rate_limit or 100

    @property
    def conns_per_port(self) -> int:
        return self.max_conns_per_port or 1024

    @property
    def conns_total(self) -> int:
        return self.max_conns_total or 4096

    @property
    def time_wait_s(self) -> float:
        return self.time_wait or 10.0

    @property
    def segment_size_max(self) -> int:
        return self.segment_size or LARGE_SEGMENT

    def validate(self) -> None:
        """Raise :class:`ConfigError` for settings the daemon cannot start with."""
        parse_hostport(self.registry, what="registry")
        if self.beacon:
            parse_hostport(self.beacon, what="beacon")
        parse_hostport(self.listen, what="listen")
        if self.endpoint:
            parse_hostport(self.endpoint, what="endpoint")
        if self.registry_tls and not self.registry_fingerprint:
            raise ConfigError(
                "registry TLS requires RegistryFingerprint for certificate pinning", "tls_pin_required"
            )
        if self.registry_fingerprint and not re.fullmatch(r"[0-9a-fA-F]{64}", self.registry_fingerprint):
            raise ConfigError("registry fingerprint must be 64 hex digits (SHA-256)", "bad_fingerprint")
        if self.log_level.lower() not in ("debug", "info", "warn", "warning", "error"):
            raise ConfigError(f"invalid log level {self.log_level!r}", "bad_log_level")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"invalid log format {self.log_format!r}", "bad_log_format")
        if not self.socket:
            raise ConfigError("socket path must not be empty", "bad_socket")
        if self.segment_size and not 512 <= self.segment_size <= LARGE_SEGMENT:
            raise ConfigError(f"segment size must be 512..{LARGE_SEGMENT}", "bad_segment_size")


# The largest stream payload that fits one PILS frame in a 65,507-byte UDP
# payload: 65,507 - 70 bytes of framing, rounded down to a multiple of 16.
LARGE_SEGMENT = 65424

_PARSERS: dict[str, Callable[[Any], Any]] = {}
for _f in dataclasses.fields(Config):
    if _f.name == "notes":
        continue
    if _f.type in ("bool", bool):
        _PARSERS[_f.name] = parse_bool
    elif _f.type in ("float", float):
        _PARSERS[_f.name] = parse_duration
    elif _f.type in ("int", int):
        _PARSERS[_f.name] = parse_int
    else:
        _PARSERS[_f.name] = lambda v: v if isinstance(v, str) else _not_string(v)


def _not_string(value: Any) -> str:
    raise ConfigError(f"expected a string, got {json.dumps(value)}")


def field_name(flag: str) -> str | None:
    """``log-level`` / ``log_level`` / ``--log-level`` -> ``log_level``; None if unknown."""
    name = flag.lstrip("-").replace("-", "_").lower()
    return name if name in _PARSERS else None


def is_bool_field(name: str) -> bool:
    return _PARSERS.get(name) is parse_bool


def parse_value(name: str, value: Any) -> Any:
    return _PARSERS[name](value)


def load_file(path: str) -> dict[str, Any]:
    """Read a ``-config`` file: a JSON object keyed by flag names (either spelling)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}", "config_unreadable") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: invalid JSON: {exc}", "config_invalid") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a JSON object", "config_invalid")
    return data


def build(
    flags: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Config:
    """Combine parsed command-line ``flags`` (field name -> already-parsed value),
    the config file they name and ``env`` into a validated :class:`Config`."""
    env = os.environ if env is None else env
    cfg = Config()
    values: dict[str, Any] = {}
    config_path = flags.get("config", "")
    if config_path:
        for key, raw in load_file(config_path).items():
            name = field_name(str(key))
            if name is None or name == "config":
                cfg.notes.append(f"config file: unknown key {key!r} ignored")
                continue
            try:
                values[name] = parse_value(name, raw)
            except ConfigError as exc:
                cfg.notes.append(f"config file: {key}: {exc}; value ignored")
    env_values = {}
    if env.get("PILOT_SOCKET"):
        env_values["socket"] = env["PILOT_SOCKET"]
    if env.get("PILOT_REGISTRY"):
        env_values["registry"] = env["PILOT_REGISTRY"]
    for name, value in env_values.items():
        if name in values and values[name] != value and name not in flags:
            cfg.notes.append(f"config file {name}={values[name]!r} overrides ${name.upper()} ({value!r})")
        values.setdefault(name, value)
    values.update(flags)
    for name, value in values.items():
        setattr(cfg, name, value)
    if "registry" not in values:
        cfg.notes.append(f"no registry configured: using the local rendezvous at {DEFAULT_REGISTRY}")
    if "beacon" not in values:
        cfg.notes.append(f"no beacon configured: using {DEFAULT_BEACON}")
    cfg.validate()
    return cfg
