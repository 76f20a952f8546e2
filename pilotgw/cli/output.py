"""How pilotctl writes: envelopes, error lines, and the reference's formatters.

Scripts parse these bytes (services-and-cli.md §A9.1, §0), so everything
here is exact: ``{"data":…,"status":"ok"}`` on stdout, errors on stderr as
``{"code":…,"hint":…,"message":…,"status":"error"}`` or ``error: <msg>`` /
``hint:  <hint>``, Go-JSON with sorted keys and HTML escaping, Go duration
text, ``formatBytes`` and Go ``%q``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from pilotgw.overlay import gojson

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def to_json(obj: Any) -> str:
    """Compact Go-JSON with map keys sorted (how pilotctl prints everything)."""
    return gojson.dumps(obj, sort_keys=True)


def to_indented(obj: Any) -> str:
    return gojson.dumps(obj, sort_keys=True, indent=True)


def format_bytes(n: int | float) -> str:
    """Binary units with decimal labels: ``1536`` → ``1.5 KB``."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KB"
    return f"{int(n)} B"


def _frac(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for an integer number of nanoseconds."""
    if ns == 0:
        return "0s"
    u = abs(ns)
    if u < 1_000:
        text = f"{u}ns"
    elif u < 1_000_000:
        text = _frac(u, 1_000) + "µs"
    elif u < 1_000_000_000:
        text = _frac(u, 1_000_000) + "ms"
    else:
        hours, rest = divmod(u, 3600 * 10**9)
        minutes, rest = divmod(rest, 60 * 10**9)
        prefix = f"{hours}h{minutes}m" if hours else (f"{minutes}m" if minutes else "")
        text = prefix + _frac(rest, 10**9) + "s"
    return "-" + text if ns < 0 else text


def seconds_ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def round_ms(ns: int) -> int:
    """Go's ``Duration.Round(time.Millisecond)`` (halves away from zero)."""
    q, r = divmod(abs(ns), 1_000_000)
    if r * 2 >= 1_000_000:
        q += 1
    return (q if ns >= 0 else -q) * 1_000_000


def go_quote(text: str) -> str:
    """Go ``%q``: a double-quoted literal (JSON-identical for printable text)."""
    return json.dumps(text, ensure_ascii=False)


def hms(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


class Output:
    """Where a command's results go, in text or ``--json`` mode."""

    def __init__(self, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def line(self, text: str = "") -> None:
        """A text-mode stdout line (callers check ``json`` first when it matters)."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text: str, end: str = "\n") -> None:
        """Text-mode progress on stderr; silent in JSON mode."""
        if not self.json:
            self.stderr.write(text + end)
            self.stderr.flush()

    def ndjson(self, obj: Any) -> None:
        self.stdout.write(to_json(obj) + "\n")
        self.stdout.flush()

    def success(self, data: Any, text: str | list[str] | None = None) -> None:
        """JSON: the envelope. Text: ``text`` lines if given, else the data
        indented (maps) or as plain lines."""
        if self.json:
            self.stdout.write(to_json({"data": data, "status": "ok"}) + "\n")
        elif text is not None:
            lines = [text] if isinstance(text, str) else text
            if lines:
                self.stdout.write("\n".join(lines) + "\n")
        elif isinstance(data, (dict, list)):
            self.stdout.write(to_indented(data) + "\n")
        elif data is not None:
            self.stdout.write(f"{data}\n")
        self.stdout.flush()

    def error(self, code: str, message: str, hint: str | None = None) -> int:
        if self.json:
            obj: dict[str, Any] = {"code": code, "message": message, "status": "error"}
            if hint:
                obj["hint"] = hint
            self.stderr.write(to_json(obj) + "\n")
        else:
            self.stderr.write(f"error: {message}\n")
            if hint:
                self.stderr.write(f"hint:  {hint}\n")
        self.stderr.flush()
        return EXIT_ERROR
