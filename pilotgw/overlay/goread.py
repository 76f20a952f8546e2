"""JSON read the way the reference (Go's encoding/json into a struct) reads it.

The reference drops a whole message when one field does not fit its Go type
(trust-and-ipc.md §0), so a peer that sends ``"node_id": 5.0`` is ignored by
it. Our decoders apply the same rules, for two reasons: a message we accept
must be one the reference would also accept (no silent divergence between
implementations), and the rules are what keep untrusted input in range:

* integers must be plain JSON integers -- ``5`` yes; ``5.0``, ``5e0``,
  strings, ``-1`` or ``-0`` for unsigned fields no -- and must fit the
  field's width;
* field names match case-insensitively (Go's simple folding, so ``ſ`` matches
  ``s`` and the Kelvin sign matches ``k``); a later duplicate key wins;
  ``null`` leaves the field at its zero value; unknown fields are ignored;
* invalid UTF-8 becomes U+FFFD one byte at a time and lone ``\\ud800``-style
  escapes become U+FFFD, as Go does; ``NaN``/``Infinity`` are not JSON.

Every failure is a :class:`DecodeError`.
"""

from __future__ import annotations

import codecs
import json
from typing import Any, Callable, Mapping

from pilotgw.overlay.errors import DecodeError

Buffer = bytes | bytearray | memoryview


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports an invalid sequence one byte at a time, so
    # a truncated 3-byte sequence yields two U+FFFD where Python's "replace"
    # yields one.
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return "\ufffd", err.start + 1


codecs.register_error("pilotgw-go-replace", _go_replace)


def go_string(data: Buffer) -> str:
    """Bytes as Go's ``string(b)`` prints through encoding/json: valid UTF-8
    kept, each byte of an invalid sequence replaced by U+FFFD."""
    return bytes(data).decode("utf-8", "pilotgw-go-replace")


class _Fraction(float):
    """A number written with a fraction or exponent: never an integer field."""


class _NegativeZero(int):
    """``-0``: zero for signed fields, a syntax error for unsigned ones."""


def _parse_int(text: str) -> int:
    return _NegativeZero(0) if text == "-0" else int(text)


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"invalid character {name[0]!r} looking for beginning of value", "json")


class JsonObject(list):
    """A decoded JSON object as its ``(key, value)`` pairs, in input order.

    Not a dict: duplicate keys and their order must survive until field
    matching, where Go's "later key wins" is applied. A list subclass so that
    ``{}`` and ``[]`` stay distinguishable.
    """


def _strict_pairs(pairs: list[tuple[str, Any]]) -> JsonObject:
    return JsonObject(pairs)


_DECODER = json.JSONDecoder(
    parse_float=_Fraction,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
    object_pairs_hook=_strict_pairs,
)


def go_error_text(text: str, exc: json.JSONDecodeError) -> str:
    """An error text shaped like Go's for a syntax error at ``exc.pos``."""
    if exc.pos >= len(text.rstrip(" \t\r\n")):
        return "unexpected end of JSON input"
    char = text[exc.pos]
    shown = repr(char) if char.isprintable() else f"'\\x{ord(char):02x}'"
    return f"invalid character {shown} looking for beginning of value"


def loads(data: Buffer | str) -> Any:
    """Parse one JSON document. Objects come back as :class:`JsonObject` pairs
    (use :func:`fields` or :func:`plain` on them); numbers with a
    fraction or exponent are a float subclass that integer fields refuse."""
    text = data if isinstance(data, str) else go_string(data)
    try:
        return _DECODER.decode(text)
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise DecodeError(go_error_text(text, exc), "json") from None
    except RecursionError:
        raise DecodeError("exceeded max depth", "json") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise DecodeError(f"invalid number: {exc}", "json") from None


def _fold(name: str) -> str:
    # Go folds with unicode.SimpleFold; for ASCII field names the only
    # non-ASCII partners are U+017F (long s) and U+212A (Kelvin sign).
    return name.replace("\u017f", "s").replace("\u212a", "k").lower()


def _clean_str(value: str) -> str:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:  # a lone surrogate from a \uD800 escape
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _type_error(field: str, value: Any, go_type: str) -> DecodeError:
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, (int, float)):
        kind = "number"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, JsonObject):
        kind = "object"
    else:
        kind = "array"
    return DecodeError(f"json: cannot unmarshal {kind} into Go struct field .{field} of type {go_type}", "json")


def _integer(field: str, value: Any, lo: int, hi: int, go_type: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(field, value, go_type)
    if lo == 0 and isinstance(value, _NegativeZero):
        raise DecodeError(f"json: cannot unmarshal number -0 into Go struct field .{field} of type {go_type}", "json")
    if not lo <= value <= hi:
        raise DecodeError(f"json: cannot unmarshal number {value} into Go struct field .{field} of type {go_type}", "json")
    return int(value)


def u16(field: str, value: Any) -> int:
    return _integer(field, value, 0, 0xFFFF, "uint16")


def u32(field: str, value: Any) -> int:
    return _integer(field, value, 0, 0xFFFFFFFF, "uint32")


def u64(field: str, value: Any) -> int:
    return _integer(field, value, 0, 0xFFFFFFFFFFFFFFFF, "uint64")


def i64(field: str, value: Any) -> int:
    return _integer(field, value, -(1 << 63), (1 << 63) - 1, "int64")


def string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(field, value, "string")
    return _clean_str(value)


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(field, value, "bool")
    return value


def number(field: str, value: Any) -> float:
    """Any JSON number (a Go float64 field); ``int`` stays ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(field, value, "float64")
    return float(value) if isinstance(value, float) else int(value)


def string_list(field: str, value: Any) -> list[str]:
    """A JSON array of strings (``null`` elements become ``""`` as in Go)."""
    if not isinstance(value, list) or isinstance(value, JsonObject):
        raise _type_error(field, value, "[]string")
    return ["" if item is None else string(field, item) for item in value]


Reader = Callable[[str, Any], Any]


def fields(obj: Any, schema: Mapping[str, Reader]) -> dict[str, Any]:
    """Pick ``schema``'s fields out of a decoded object the way Go fills a
    struct. Missing or ``null`` fields are absent from the result (callers
    supply the zero value); anything that is not an object is an error."""
    if not isinstance(obj, JsonObject):
        raise _type_error("(root)", obj, "struct")
    by_fold = {_fold(name): name for name in schema}
    out: dict[str, Any] = {}
    for key, value in obj:
        name = key if key in schema else by_fold.get(_fold(key))
        if name is None or value is None:
            continue
        out[name] = schema[name](name, value)
    return out


def plain(value: Any) -> Any:
    """Turn :func:`loads` output into ordinary dicts, lists and numbers
    (later duplicate keys win, as in a Go map)."""
    if isinstance(value, JsonObject):
        return {_clean_str(k): plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, _Fraction):
        return float(value)
    if isinstance(value, _NegativeZero):
        return 0
    return value
