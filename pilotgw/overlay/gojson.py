"""JSON written the way the reference (Go's encoding/json) writes it.

Needed wherever bytes are compared or scripts parse our output
(trust-and-ipc.md §0, services-and-cli.md §0): compact separators, keys of
*maps* sorted (callers pass ``sort_keys=False`` and an ordered dict for
*structs*, whose declared field order is kept), non-ASCII left raw, and the
HTML-safe escapes ``<`` ``>`` ``&`` U+2028 U+2029 as ``\\u003c`` and friends.
Floats print in Go's shortest form (``3600`` not ``3600.0``; exponent only
below 1e-6 or from 1e21).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def format_float(value: float) -> str:
    """Go's shortest float text as encoding/json writes it: no ``.0`` on whole
    numbers, exponent form (``1e-07``, ``1e+21``) only below 1e-6 or from 1e21."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"JSON cannot encode {value}")
    abs_v = abs(value)
    if abs_v != 0 and (abs_v < 1e-6 or abs_v >= 1e21):
        mantissa, _, exp = repr(value).partition("e")
        if not exp:  # repr chose positional form; force the exponent form
            mantissa, _, exp = f"{value:.16e}".partition("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
        mantissa = mantissa[:-2] if mantissa.endswith(".0") else mantissa
        e = int(exp)
        return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)
    if "e" in text:  # Python uses exponents below 1e-4 and from 1e16; Go not
        # The shortest repr's digits, zero-padded: 7.161626836463073e+16 is
        # "71616268364630730" in Go, not the float's exact integer value.
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _encode(obj: Any, sort_keys: bool, indent: bool, level: int, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False).translate(_ESCAPES))
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        out.append(format_float(obj))
    elif isinstance(obj, dict):
        items = sorted(obj.items()) if sort_keys else list(obj.items())
        if not items:
            out.append("{}")
            return
        out.append("{")
        for i, (key, value) in enumerate(items):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            if i:
                out.append(",")
            if indent:
                out.append("\n" + "  " * (level + 1))
            out.append(json.dumps(key, ensure_ascii=False).translate(_ESCAPES))
            out.append(": " if indent else ":")
            _encode(value, sort_keys, indent, level + 1, out)
        if indent:
            out.append("\n" + "  " * level)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            if indent:
                out.append("\n" + "  " * (level + 1))
            _encode(value, sort_keys, indent, level + 1, out)
        if indent:
            out.append("\n" + "  " * level)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: Any, *, sort_keys: bool = True, indent: bool = False) -> str:
    """Serialise ``obj`` as Go would. ``sort_keys=False`` keeps the dicts'
    insertion order (for structs); ``indent=True`` gives Go's 2-space form."""
    out: list[str] = []
    _encode(obj, sort_keys, indent, 0, out)
    return "".join(out)


def dumpb(obj: Any, *, sort_keys: bool = True) -> bytes:
    """Compact Go-style JSON as UTF-8 bytes (lone surrogates become U+FFFD)."""
    text = dumps(obj, sort_keys=sort_keys)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
