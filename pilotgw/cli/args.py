"""The reference's argument rules (services-and-cli.md §A9.2), reproduced.

Scripts written for the reference CLI depend on its quirks: a flag not
written as ``--k=v`` takes the next argument unless that one starts with
``--`` (so ``--count -1`` works, and ``--clear foo`` sets ``clear="foo"``);
single-dash arguments are positional; error texts embed Go's strconv and
time messages. Everything here raises :class:`InvalidArgument` with the
reference's wording.
"""

from __future__ import annotations

import re

from pilotgw.client.errors import InvalidArgument

_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_DUR_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.I)


class Flags:
    """Parsed ``--key value`` flags plus positional arguments."""

    def __init__(self, values: dict[str, str], positional: list[str]) -> None:
        self.values = values
        self.positional = positional

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.values

    def bool(self, name: str) -> bool:
        """True iff given with value ``true``, ``1`` or empty (bare ``--flag``)."""
        return name in self.values and self.values[name] in ("true", "1", "")

    def duration(self, name: str, default_ns: int) -> int:
        return parse_duration(self.values[name], name) if name in self.values else default_ns

    def int(self, name: str, default: int) -> int:
        return parse_int(self.values[name], name) if name in self.values else default


def parse_flags(args: list[str]) -> Flags:
    values: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key = arg[2:]
            if "=" in key:
                key, value = key.split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
            values[key] = value
        else:
            positional.append(arg)
        i += 1
    return Flags(values, positional)


def go_parse_duration(text: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds, or ``None`` if it fails."""
    s = text
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    pos = 0
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if not m or m.group(1) in ("", ".") or m.group(2) not in _UNITS:
            return None
        number, unit = m.group(1), _UNITS[m.group(2)]
        whole, _, frac = number.partition(".")
        value = int(whole or "0") * unit
        if frac:
            value += int(frac) * unit // 10 ** len(frac)
        total += value
        pos = m.end()
    if total > (1 << 63) - 1:
        return None
    return -total if neg else total


def parse_duration(text: str, name: str) -> int:
    """Go duration syntax, else a number of seconds, else ``invalid_argument``."""
    ns = go_parse_duration(text)
    if ns is not None:
        return ns
    if _FLOAT.fullmatch(text):
        try:
            return int(float(text) * 1e9)
        except (OverflowError, ValueError):
            pass
    raise InvalidArgument(f'invalid duration for --{name}: time: invalid duration "{text}"')


def parse_int(text: str, name: str) -> int:
    if not _INT.fullmatch(text):
        raise InvalidArgument(f'invalid integer for --{name}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < 1 << 63:
        raise InvalidArgument(f'invalid integer for --{name}: strconv.Atoi: parsing "{text}": value out of range')
    return value


def parse_uint_error(text: str, bits: int) -> str | None:
    """Go's ``strconv.ParseUint(text, 10, bits)`` error text, or ``None`` if valid."""
    if not _UINT.fullmatch(text):
        return f'strconv.ParseUint: parsing "{text}": invalid syntax'
    if int(text) >= 1 << bits:
        return f'strconv.ParseUint: parsing "{text}": value out of range'
    return None


def parse_node_id(text: str) -> int:
    err = parse_uint_error(text, 32)
    if err:
        raise InvalidArgument(f'invalid node_id "{text}": {err}')
    return int(text)


def parse_port(text: str) -> int:
    err = parse_uint_error(text, 16)
    if err:
        raise InvalidArgument(f'invalid port "{text}": {err}')
    return int(text)


def need(args: list[str], count: int, usage: str) -> None:
    """Missing positional arguments → ``usage: pilotctl <syntax>``."""
    if len(args) < count:
        raise InvalidArgument(f"usage: pilotctl {usage}")
