"""Structured logs: one line per event, ``text`` (logfmt, like Go's slog text
handler) or ``json`` (one object per line), selected by ``-log-format``.

Every call site passes a short constant message plus key/value fields
(``log.info("peer keyed", node=5, endpoint="127.0.0.1:4000")``), so logs can
be grepped and parsed by machines. Level checks happen before any formatting:
the packet path may call ``log.debug`` freely.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR"}


def _timestamp(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(c in text for c in ' ="\\\n\t') :
        return json.dumps(text, ensure_ascii=False)
    return text


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        level = _NAMES.get(record.levelno, record.levelname)
        msg = record.getMessage()
        if self._json:
            obj: dict[str, Any] = {"time": _timestamp(record.created), "level": level,
                                   "component": record.name.rpartition(".")[2], "msg": msg}
            for k, v in fields.items():
                obj[k] = v if isinstance(v, (int, float, bool, str, type(None))) else str(v)
            if record.exc_info:
                obj["error"] = self.formatException(record.exc_info)
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        parts = [f"time={_timestamp(record.created)}", f"level={level}",
                 f"component={record.name.rpartition('.')[2]}", f"msg={_logfmt_value(msg)}"]
        parts.extend(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        if record.exc_info:
            parts.append(f"error={_logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class Log:
    """A component logger taking key/value fields."""

    __slots__ = ("_logger",)

    def __init__(self, component: str) -> None:
        self._logger = logging.getLogger(f"pilotgw.daemon.{component}")

    def enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, msg: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields}, exc_info=exc)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields, exc=True)


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Route every ``pilotgw.daemon.*`` logger to ``stream`` (stderr by default)."""
    root = logging.getLogger("pilotgw.daemon")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    root.propagate = False
