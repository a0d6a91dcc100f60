"""Value conversion between the outside (JSON bodies, query strings, CSV cells) and the database.

`to_db(column, value)` checks and converts one value for one column before the database sees it, and
raises InvalidValue naming the column when it does not fit. JSON values keep their JSON types;
text values (query strings, CSV cells) arrive as `str` and are parsed by the same rules.
`json_default` and the output fixers are the other way: what a driver returns -> what the JSON
response carries.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from app.core import jsontext
from app.core.echo import shown
from app.core.errors import InvalidValue
from app.db.catalog import Column


class Omitted:
    """A JSON object's key left out: the column's DEFAULT, as in a POST body (never NULL)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = Omitted()

# Integers as text; 40 digits is past every column's range and far below int()'s 4300-digit limit.
_INT_TEXT = re.compile(r"[+-]?\d{1,40}")
_LONG_INT_TEXT = re.compile(r"[+-]?\d{41,}")
_TIME_TEXT = re.compile(r"-?\d{1,3}:\d{2}(:\d{2}(\.\d{1,6})?)?")
_TRUE = {"true", "1", "t", "yes", "y", "on"}
_FALSE = {"false", "0", "f", "no", "n", "off"}
# Where an empty CSV cell can be the empty string; elsewhere (numbers, dates, JSON, ENUM) it is NULL.
TEXT_KINDS = frozenset({"string", "set", "binary"})
# CSV's standard convention (PostgreSQL's, what pandas and DuckDB read): an unquoted empty cell, or an
# unquoted \N, is NULL; quoted, the same text is text. The reader marks those quoted cells with a
# leading NUL (never in an upload: refused), so that a cell stays a str and the rest of the import
# needs no other shape; these are the marked cells and the text they stand for.
QUOTED_MARK = "\x00"
LIKE_NULL = ("", "\\N")
QUOTED_TEXT = {QUOTED_MARK + text: text for text in LIKE_NULL}


def empty_is_null(column: Column, standard: bool) -> bool:
    """Is an (unquoted) empty CSV cell NULL in this column? Outside text columns always; in a
    nullable text column in the standard convention; otherwise it is the empty string."""
    return column.kind not in TEXT_KINDS or (standard and column.nullable)


def _bad(column: Column, value: Any, reason: str) -> InvalidValue:
    return InvalidValue(
        f"column '{column.name}': {reason}",
        {"column": column.name, "type": column.column_type, "value": shown(value), "reason": reason},
    )


def _int(column: Column, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(column, value, "expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _LONG_INT_TEXT.fullmatch(value.strip()):
        number = None  # out of every range
    else:
        raise _bad(column, value, "expected an integer")
    low, high = column.int_range  # type: ignore[misc]  # set for every integer type
    if number is None or not low <= number <= high:
        raise _bad(column, value, f"out of range [{low}, {high}]")
    return number


def _bool(column: Column, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return int(value.strip().lower() in _TRUE)
    return _int(column, value)


def _decimal(column: Column, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _bad(column, value, "expected a decimal number")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise _bad(column, value, "expected a decimal number") from None
    if not number.is_finite():
        raise _bad(column, value, "expected a finite decimal number")
    scale = column.fraction_digits
    _, digits, exponent = number.as_tuple()
    fraction = max(0, -int(exponent))
    whole = max(0, len(digits) + int(exponent))
    if fraction > scale:
        # Rounding would silently change the value: refuse instead.
        trimmed = number.normalize()
        if max(0, -int(trimmed.as_tuple().exponent)) > scale:
            raise _bad(column, value, f"more than {scale} decimal places")
    if whole > column.whole_digits:
        raise _bad(column, value, f"too many digits for DECIMAL({column.precision or 65},{scale})")
    return number


def _float(column: Column, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(column, value, "expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _bad(column, value, "expected a number") from None
    if not math.isfinite(number):
        raise _bad(column, value, "expected a finite number")
    return number


def _string(column: Column, value: Any) -> str:
    if isinstance(value, (dt.date, dt.time)):  # a spreadsheet's date cell in a text column
        value = value.isoformat(" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise _bad(column, value, "expected a string")
    text = value if isinstance(value, str) else str(value)
    limit = column.max_length
    if limit is not None:
        # CHAR/VARCHAR limits count characters; TEXT limits count bytes.
        size = len(text) if column.length_in_chars else len(text.encode())
        if size > limit:
            raise _bad(column, value, f"longer than {limit}")
    return text


def _binary(column: Column, value: Any) -> bytes:
    if not isinstance(value, str):
        raise _bad(column, value, "expected base64 text")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(column, value, "expected base64 text") from None
    if column.max_length is not None and len(data) > column.max_length:
        raise _bad(column, value, f"longer than {column.max_length} bytes")
    return data


def _date(column: Column, value: Any) -> dt.date:
    # Spreadsheet cells arrive as date objects (a date cell may be a datetime at midnight).
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:  # a moment at midnight is that date (pandas has no date type: a Parquet file's dates are these)
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None and moment.time() == dt.time():
                return moment.date()
    raise _bad(column, value, "expected an ISO 8601 date (YYYY-MM-DD)")


def _datetime(column: Column, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            # Sessions run in UTC, so an offset is converted rather than dropped.
            if moment.tzinfo is not None:
                moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return moment
    raise _bad(column, value, "expected an ISO 8601 datetime (YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM])")


def _time(column: Column, value: Any) -> str:
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_time(value)
    if isinstance(value, str) and _TIME_TEXT.fullmatch(value.strip()):
        return value.strip()
    raise _bad(column, value, "expected a time (HH:MM:SS[.ffffff])")


def _year(column: Column, value: Any) -> int:
    year = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, float) and value.is_integer():  # 1999.0: pandas' integers once a NULL is among them
        year = int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        year = int(value)
    if year is None or not (1901 <= year <= 2155 or year == 0):
        raise _bad(column, value, "expected a year between 1901 and 2155")
    return year


def _member(column: Column, value: str) -> str:
    for member in column.members:
        if member == value or member.lower() == value.lower():
            return member
    raise _bad(column, value, f"not one of {list(column.members)}")


def _enum(column: Column, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(column, value, f"expected one of {list(column.members)}")
    return _member(column, value)


def _set(column: Column, value: Any) -> str:
    if isinstance(value, str):
        items = [v for v in value.split(",") if v]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise _bad(column, value, "expected a list of members or a comma-separated string")
    return ",".join(_member(column, item) for item in items)


def _bit(column: Column, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    number = int(value) if isinstance(value, str) and _INT_TEXT.fullmatch(value) else value
    width = column.precision or 1
    if not isinstance(number, int) or not 0 <= number < 2**width:
        raise _bad(column, value, f"expected an integer of at most {width} bits")
    return number


class JsonText(str):
    """A JSON column's value given as its JSON text, already checked (a Parquet column of JSON type):
    stored as it is, so the JSON value null stays that, not NULL."""


def _json(column: Column, value: Any) -> str:
    if isinstance(value, JsonText):
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits, nesting past 254 levels
        raise _bad(column, value, f"cannot be stored as JSON: {exc}") from None


def _json_text(column: Column, value: Any) -> str:
    """A JSON column's cell in a query string or CSV: it must already be JSON text."""
    if not isinstance(value, str):
        return _json(column, value)
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad(column, value, "expected JSON text") from None
    return value


_CONVERTERS: dict[str, Callable[[Column, Any], Any]] = {
    "int": _int, "bool": _bool, "decimal": _decimal, "float": _float, "string": _string,
    "binary": _binary, "date": _date, "datetime": _datetime, "timestamp": _datetime,
    "time": _time, "year": _year, "enum": _enum, "set": _set, "bit": _bit, "json": _json,
}


def to_db(column: Column, value: Any, *, text: bool = False) -> Any:
    """Check and convert one value for `column`; None stays None (NULL), if the column allows it.

    `text=True` for values that arrived as text (query string, CSV), where JSON columns hold JSON text.
    """
    if value is None:
        if not column.nullable and not column.auto_increment:
            raise _bad(column, value, "may not be null")
        return None
    if column.generated:
        raise _bad(column, value, "is a generated column and cannot be written")
    if text and column.kind == "json":
        return _json_text(column, value)
    return _CONVERTERS[column.kind](column, value)


def to_compare(column: Column, value: Any, *, text: bool = False) -> Any:
    """A value compared with `column` (a filter, a cursor): converted like a written one, but a
    generated column may be compared with, and NULL checks are the caller's."""
    if value is None:
        return None
    if text and column.kind == "json":
        return _json_text(column, value)
    return _CONVERTERS[column.kind](column, value)


# --- database -> JSON ------------------------------------------------------------------------


def format_time(delta: dt.timedelta) -> str:
    """MySQL TIME values arrive as timedelta; render them the way MySQL does: [-]HH:MM:SS[.ffffff]."""
    sign = "-" if delta < dt.timedelta(0) else ""
    delta = abs(delta)
    hours, rest = divmod(delta.days * 86400 + delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{delta.microseconds:06d}" if delta.microseconds else text


def json_default(value: Any) -> Any:
    """orjson's fallback for what it cannot encode: exact decimals as strings (as the database
    writes them: 0.00000001, never 1E-8), binary as base64."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.timedelta):
        return format_time(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, (set, frozenset)):
        return ",".join(sorted(value))
    raise TypeError(f"cannot encode {type(value).__name__}")


def bit_out(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, (bytes, bytearray)) else value


def json_out(value: Any) -> Any:
    """A JSON column's text as its value (an integer past 64 bits another writer stored stays exact)."""
    return jsontext.parse(value) if isinstance(value, (str, bytes)) else value


def output_fixers(columns: tuple[Column, ...]) -> list[tuple[str, Callable[[Any], Any]]]:
    """The few columns whose driver value is not what JSON should carry (the rest pass through)."""
    fixers: list[tuple[str, Callable[[Any], Any]]] = []
    for column in columns:
        if column.kind == "json":
            fixers.append((column.name, json_out))
        elif column.kind == "bit":
            fixers.append((column.name, bit_out))
    return fixers


def rows_to_dicts(
    names: Sequence[str], rows: Sequence[tuple], fixers: list[tuple[str, Callable[[Any], Any]]]
) -> list[dict]:
    result = [dict(zip(names, row)) for row in rows]
    if fixers:
        for record in result:
            for name, fix in fixers:
                if name in record and record[name] is not None:
                    record[name] = fix(record[name])
    return result


# --- text cells in bulk (CSV import) -----------------------------------------------------------


def text_converter(
    column: Column, null: str = "\\N", *, standard: bool = False, null_value: Any = None, binary_as_text: bool = False
) -> Callable[[str], Any]:
    """A converter for one column's CSV cells, built once per import.

    `null` (and, outside text columns, the empty cell) means NULL. `standard`: CSV's standard
    convention, where the empty cell is NULL in a nullable text column too, and a quoted "" or "\\N"
    (marked by the reader: QUOTED_TEXT) is that text. Otherwise the same rules as
    `to_db(column, cell, text=True)`, which it falls back to for anything that is not a plain common
    case (and so for every error message). Cheap cases keep or give text where the database reads it
    exactly (a valid DECIMAL stays a string: no float ever touches it).

    For LOAD DATA the import asks for NULL as `null_value` and binary as its (checked) base64 text.
    """
    if column.generated:
        return lambda value: to_db(column, value, text=True)
    fast = _text_fast(column, binary_as_text)
    nullable = column.nullable or column.auto_increment
    empty_null = empty_is_null(column, standard)

    def convert(value: str) -> Any:
        if value == null or (not value and empty_null):
            return null_value if nullable else to_db(column, None)  # raises: may not be null
        return fast(value)

    if not standard:
        return convert
    text_like = column.kind in TEXT_KINDS

    def marked(value: str) -> Any:
        if value in QUOTED_TEXT:  # a quoted "" or "\\N": that text, or NULL where there is no such text
            return fast(QUOTED_TEXT[value]) if text_like else convert("")
        return convert(value)

    return marked


def _text_fast(column: Column, binary_as_text: bool) -> Callable[[str], Any]:
    """One column's converter for text that is not NULL: plain common cases here, the rest (and
    every error message) by `to_db(column, value, text=True)`."""
    full = lambda value: to_db(column, value, text=True)  # noqa: E731
    kind = column.kind
    if kind == "string":
        limit = column.max_length
        by_chars = column.length_in_chars

        def string(value: str) -> Any:
            if limit is not None and (len(value) if by_chars else len(value.encode())) > limit:
                return full(value)  # raises, naming the column
            return value

        return string
    if kind == "int":
        low, high = column.int_range  # type: ignore[misc]  # set for every integer type

        def integer(value: str) -> Any:
            # int() alone would also take "1_000", " 7 " and non-ASCII digits.
            if len(value) <= 21 and value.isascii() and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit())):
                number = int(value)
                if low <= number <= high:
                    return number
            return full(value)

        return integer
    if kind == "decimal":
        whole_digits, scale = column.whole_digits, column.fraction_digits

        def decimal(value: str) -> Any:
            whole, dot, fraction = value.removeprefix("-").partition(".")
            if (
                whole.isascii() and whole.isdigit() and len(whole) <= whole_digits
                and (not dot or (fraction.isascii() and fraction.isdigit() and len(fraction) <= scale))
            ):
                return value  # exact as text: the server parses it, no float involved
            return full(value)

        return decimal
    if kind in ("datetime", "timestamp"):

        def moment(value: str) -> Any:
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                return full(value)
            if parsed.tzinfo is not None:
                return full(value)  # converted to UTC there
            # The extended form (YYYY-MM-DD[T ]HH:MM:SS[.ffffff]) is read by the server as it is.
            if len(value) in (19, 26) and value[10] in " T" and value[4] == "-" and value[13] == ":":
                return value
            return parsed.isoformat(" ")

        return moment
    if kind == "float":

        def number(value: str) -> Any:
            try:
                parsed = float(value)
            except ValueError:
                return full(value)
            # float() also takes "1_0", " 1 " and "inf": only plain finite numbers pass as text.
            plain = math.isfinite(parsed) and value.isascii() and value.strip() == value and "_" not in value
            return value if plain else full(value)

        return number
    if kind == "binary" and binary_as_text:

        def checked_text(value: str) -> Any:
            full(value)  # raises unless it is base64 that fits
            return value

        return checked_text
    if kind == "bool":
        flags = {"0": 0, "1": 1}
        return lambda value: flags[value] if value in flags else full(value)
    return full


def value_converter(
    column: Column, null: str | None = None, *, text_cells: bool, null_value: Any = None, binary_as_text: bool = False
) -> Callable[[Any], Any]:
    """A converter for one column's typed cells: spreadsheet cells (`text_cells`: a text cell in a
    JSON column is JSON text, `null` is NULL, an empty cell is '' in a NOT NULL text column) or JSON
    values (the rules of a POST body). None is NULL."""
    nullable = column.nullable or column.auto_increment
    kind = column.kind
    empty_is_text = text_cells and kind in TEXT_KINDS and not nullable
    binary = binary_as_text and kind == "binary"
    # Text goes the CSV cells' fast way, but in a JSON column from JSON, where a string is a JSON string.
    text = None if column.generated or (kind == "json" and not text_cells) else _text_fast(column, binary_as_text)
    low, high = column.int_range or (0, -1)

    def full(value: Any) -> Any:
        converted = to_db(column, value, text=text_cells)
        return base64.b64encode(converted).decode() if binary else converted

    def convert(value: Any) -> Any:
        kind_of = type(value)
        if kind_of is str:
            if null is not None and value == null:
                return null_value if nullable else to_db(column, None)  # raises: may not be null
            return full(value) if text is None else text(value)
        if value is None:
            if nullable:
                return null_value
            return "" if empty_is_text else to_db(column, None)  # raises: may not be null
        if kind_of is int and kind == "int" and low <= value <= high:
            return value
        if kind_of is float and kind == "float" and math.isfinite(value):
            return value
        return full(value)

    return convert


# Cell forms that the server reads exactly as these rules do (anything else takes the converters).
_CANONICAL = {
    "int": r"-?\d{1,20}",
    "float": r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,3})?",
    "date": r"\d{4}-\d\d-\d\d",
    "datetime": r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?",
    "timestamp": r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?",
    "time": r"-?\d{1,3}:\d\d:\d\d(?:\.\d{1,6})?",
    "bool": r"[01]",
}


def canonical_check(column: Column, null: str = "\\N") -> Callable[[Sequence[str]], bool] | None:
    """For LOAD DATA of uploaded text as it is: a check that a batch's cells of this column are all
    in a form the server reads exactly as `text_converter` would (or NULL / empty). What the server
    would still refuse (out of range, too long, no such date) it reports as a warning, which sends
    the batch to the converters. None: this column's kind always takes the converters."""
    kind = column.kind
    if column.generated:
        return lambda cells: True  # not loaded: the server computes it
    empty = re.escape(null) + "|"
    if kind == "decimal":
        fraction = rf"(?:\.\d{{1,{column.fraction_digits}}})?" if column.fraction_digits else ""
        cell = rf"-?\d{{1,{column.whole_digits}}}{fraction}"
    elif kind in _CANONICAL:
        cell = _CANONICAL[kind]
    elif kind == "string":
        limit = column.max_length
        by_chars = column.length_in_chars
        if limit is None:
            return lambda cells: True
        if by_chars:
            return lambda cells: max(map(len, cells), default=0) <= limit
        return lambda cells: (
            max(map(len, cells), default=0) * 4 <= limit or all(len(c.encode()) <= limit for c in cells)
        )
    elif kind == "enum":
        allowed = set(column.members) | {null, ""}
        return lambda cells: allowed.issuperset(cells)
    else:
        return None
    pattern = re.compile(rf"(?:{cell}|{empty})(?:\n(?:{cell}|{empty}))*")
    fast = _FAST_CHECKS.get(kind)

    def check(cells: Sequence[str]) -> bool:
        if fast is not None and null not in cells and "" not in cells and fast(cells):
            return True  # what the fast checks accept, the pattern accepts (a property test holds them to it)
        return pattern.fullmatch("\n".join(cells)) is not None

    return check


# Fast checks for the commonest kinds, by C-level string operations over a whole column (a regex
# costs about 0.2 us a cell). They only ever accept: anything they do not, the pattern decides.
_ONLY = {
    kind: str.maketrans("", "", chars)
    for kind, chars in (
        ("int", "0123456789-\n"),
        ("date", "0123456789-\n"),
        ("datetime", "0123456789-: T\n"),
    )
}


def _fast_ints(cells: Sequence[str]) -> bool:
    joined = "\n".join(cells)
    if joined.translate(_ONLY["int"]) or "-" in cells or max(map(len, cells)) > 20:
        return False
    minus = joined.count("-")  # a minus only at the start of a cell
    return not minus or minus == joined.count("\n-") + joined.startswith("-")


def _fast_dates(cells: Sequence[str]) -> bool:
    """YYYY-MM-DD, every cell."""
    n = len(cells)
    joined = "\n".join(cells)
    return (
        set(map(len, cells)) == {10}
        and not joined.translate(_ONLY["date"])
        and joined.count("\n") == n - 1
        and joined.count("-") == 2 * n
        and joined[4::11] == "-" * n
        and joined[7::11] == "-" * n
    )


def _fast_datetimes(cells: Sequence[str]) -> bool:
    """YYYY-MM-DD HH:MM:SS (or T), every cell."""
    n = len(cells)
    joined = "\n".join(cells)
    return (
        set(map(len, cells)) == {19}
        and not joined.translate(_ONLY["datetime"])
        and joined.count("\n") == n - 1
        and joined.count("-") == 2 * n
        and joined.count(":") == 2 * n
        and joined.count(" ") + joined.count("T") == n
        and joined[4::20] == "-" * n
        and joined[7::20] == "-" * n
        and set(joined[10::20]) <= {" ", "T"}
        and joined[13::20] == ":" * n
        and joined[16::20] == ":" * n
    )


_FAST_CHECKS: dict[str, Callable[[Sequence[str]], bool]] = {
    "int": _fast_ints,
    "bool": lambda cells: {"0", "1"}.issuperset(cells),
    "date": _fast_dates,
    "datetime": _fast_datetimes,
    "timestamp": _fast_datetimes,
}
