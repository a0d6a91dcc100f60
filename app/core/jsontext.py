"""Request bodies parsed as JSON, strictly (RFC 8259) and exactly. Pure, no I/O.

Python's json module takes NaN, Infinity and lone surrogates ("\\ud800"), and reads 1e400 as infinity:
none of those can be stored, and a string with a lone surrogate cannot even be sent to the database.
orjson refuses all of them, and nesting past 1024 levels, but reads an integer past 64 bits as a
float; a body that may hold one is read again by the json module, which keeps every digit.
"""

from __future__ import annotations

import json
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


def parse(body: bytes) -> Any:
    """The body's JSON value; json.JSONDecodeError (orjson's is one) saying what is wrong and where."""
    value = orjson.loads(body)
    if not may_hold_long_integers(body):
        return value
    try:
        return json.loads(body)  # integers exact; orjson has already refused everything else
    except (ValueError, RecursionError) as exc:  # past int()'s 4300 digits, deep nesting
        raise json.JSONDecodeError(f"cannot be read: {exc}", body.decode("utf-8", "replace"), 0) from None
