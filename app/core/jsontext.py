"""JSON in and out, strictly (RFC 8259) and exactly. Pure, no I/O.

Python's json module takes NaN, Infinity and lone surrogates ("\\ud800"), and reads 1e400 as infinity:
none of those can be stored, and a string with a lone surrogate cannot even be sent to the database.
orjson refuses all of them, and nesting past 1024 levels, but reads an integer past 64 bits as a
float and cannot write one at all; JSON that may hold one is read and written by the json module,
which keeps every digit. Everything the gateway parses from a caller or stores for one goes through
here, so a value is either kept exactly or refused, never half-written (issue 24).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson

# A number that may be past 64 bits (or a long digit string): 19 digits in a row. Found by mapping
# every digit to "0" and everything else to " " (bytes.translate) and a substring search: both C
# loops, several times faster than a regex over digit-heavy text.
_DIGITS_ONLY = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_LONG_RUN = b"0" * 19


def may_hold_long_integers(body: bytes) -> bool:
    """Could orjson read a number in `body` inexactly (an integer past 64 bits)?"""
    return _LONG_RUN in body.translate(_DIGITS_ONLY)


def parse(body: bytes | str) -> Any:
    """The JSON value of `body`; json.JSONDecodeError (orjson's is one) saying what is wrong and where."""
    value = orjson.loads(body)
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if not may_hold_long_integers(data):
        return value
    try:
        return json.loads(body)  # integers exact; orjson has already refused everything else
    except (ValueError, RecursionError) as exc:  # past int()'s 4300 digits, deep nesting
        raise json.JSONDecodeError(f"cannot be read: {exc}", data.decode("utf-8", "replace"), 0) from None


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact JSON bytes, every integer exact. orjson writes it unless it holds an
    integer past 64 bits, which the json module writes instead (same text otherwise)."""
    try:
        return orjson.dumps(value, default=default)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise

    def what_orjson_writes(item: Any) -> Any:
        if isinstance(item, (dt.date, dt.time)):  # orjson's own forms (RFC 3339)
            return item.isoformat()
        if default is None:
            raise TypeError(f"Type is not JSON serializable: {type(item).__name__}")
        return default(item)

    return json.dumps(
        value, default=what_orjson_writes, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def lines(values: Sequence[Any], default: Callable[[Any], Any] | None = None) -> bytes:
    """`values` as JSON Lines (one compact value a line), every integer exact: orjson for the whole
    batch, and `dumps` value by value only for a batch that holds an integer past 64 bits."""
    option = orjson.OPT_APPEND_NEWLINE
    try:
        return b"".join([orjson.dumps(value, default=default, option=option) for value in values])
    except orjson.JSONEncodeError:
        return b"".join([dumps(value, default) + b"\n" for value in values])
