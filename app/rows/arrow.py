"""Apache Arrow types for the catalog's columns, and rows both ways (pure): what a Parquet export
writes, and a Parquet upload's values as the import engine reads JSON ones.

Out, a column's type comes from the catalog, never from the values: integers by size and sign
(BIGINT UNSIGNED as uint64), DECIMAL as decimal128 (decimal256 past 38 digits), FLOAT and DOUBLE as
float32 and float64, DATE as date32, DATETIME and TIMESTAMP as timestamps in milliseconds (up to 3
fractional digits) or microseconds (TIMESTAMP in UTC, the session's zone), YEAR as int16, TINYINT(1)
as int8 (it may hold any TINYINT: a boolean would lose a 2), BIT as uint64, binary as binary, JSON
as Arrow's JSON type (Parquet's JSON logical type: the text, marked as JSON), and the rest as text:
CHAR, TEXT, ENUM, SET ("a,c"), TIME (`838:59:59`, past a day's clock, so not a time of day).

In, each value becomes the JSON value an import reads (decimals and dates as text, binary as
base64), so a Parquet file is checked against the table like any other file: types are the
table's, not the file's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from app.db.catalog import Column
from app.rows.values import bit_out, json_default

_INTS = {
    ("tinyint", False): pa.int8(), ("tinyint", True): pa.uint8(),
    ("smallint", False): pa.int16(), ("smallint", True): pa.uint16(),
    ("mediumint", False): pa.int32(), ("mediumint", True): pa.uint32(),
    ("int", False): pa.int32(), ("int", True): pa.uint32(),
    ("integer", False): pa.int32(), ("integer", True): pa.uint32(),
    ("bigint", False): pa.int64(), ("bigint", True): pa.uint64(),
}


def arrow_type(column: Column) -> pa.DataType:
    kind = column.kind
    if kind in ("int", "bool"):
        return _INTS[(column.data_type, column.unsigned)]
    if kind == "decimal":
        precision, scale = column.precision or 10, column.scale or 0
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if kind == "float":
        return pa.float32() if column.data_type == "float" else pa.float64()
    if kind == "date":
        return pa.date32()
    if kind in ("datetime", "timestamp"):
        unit = "ms" if (column.fsp or 0) <= 3 else "us"
        return pa.timestamp(unit, tz="UTC" if kind == "timestamp" else None)
    if kind == "year":
        return pa.int16()
    if kind == "bit":
        return pa.uint64()
    if kind == "binary":
        return pa.binary()
    if kind == "json":
        return pa.json_()
    return pa.string()


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=True) for c in columns])


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):  # a text the driver left undecoded (not binary: base64 is not it)
        return value.decode()
    if isinstance(value, (set, frozenset, dt.timedelta)):
        return json_default(value)  # "a,c" and 838:59:59, as JSON shows them
    return str(value)


def _value_fixer(column: Column) -> Callable[[Any], Any] | None:
    """What turns the driver's value into one Arrow takes for the column's type (None: as it is)."""
    kind = column.kind
    if kind == "bit":
        return bit_out
    if kind in ("string", "enum", "set", "json", "time"):
        return _text
    return None


def record_batch(columns: Sequence[Column], schema: pa.Schema, rows: Sequence[tuple]) -> pa.RecordBatch:
    """A batch of rows (the driver's tuples, in `columns` order) as an Arrow record batch."""
    arrays = []
    by_column: list[Sequence[Any]] = list(zip(*rows)) if rows else [() for _ in columns]
    for index, (column, values) in enumerate(zip(columns, by_column)):
        fix = _value_fixer(column)
        if fix is not None:
            values = [None if v is None else fix(v) for v in values]
        arrays.append(pa.array(values, type=schema.field(index).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- in: a Parquet file's values as JSON ones ------------------------------------------------


def json_value(value: Any) -> Any:
    """A value as read from Parquet (to_pylist) as the JSON value the import takes for it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, bytes, bytearray)):
        return json_default(value)  # a TIME as MySQL writes it, binary as base64
    if isinstance(value, (list, dict)):
        return value  # a nested Parquet value: the JSON value it is (a JSON column takes it)
    return str(value)
