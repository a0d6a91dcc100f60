"""Parquet records, read with pyarrow from a spooled copy of the upload.

A Parquet file's schema and row groups are found through its footer, at the end, so the upload is
written to a temporary file first (as a spreadsheet is) and removed when the import ends; then it
is read a batch of rows at a time in a worker thread, so memory holds a row group of the file, not
the file. The header is the file's column names (but an unnamed index pandas wrote); positions are
row numbers (the first row is 1).
Each value becomes the JSON value an import reads (rows/arrow.json_value; a column of Parquet's JSON
type, its text checked and kept: values.JsonText, so JSON's null is not NULL): the table's types
decide what is accepted, exactly as for a JSON file, never the file's own. A value of a JSON column
that is not JSON refuses its row, with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.core import jsontext
from app.core.errors import InvalidParquet
from app.imports.records import Block, Record, RecordError, Source
from app.imports.spreadsheet import spool
from app.rows.arrow import json_value
from app.rows.values import JsonText

BLOCK_ROWS = 5000
MAGIC = b"PAR1"


def _open(path: str) -> pq.ParquetFile:
    with open(path, "rb") as file:
        head = file.read(4)
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(max(size - 4, 0))
        tail = file.read(4)
    if head != MAGIC or tail != MAGIC:
        raise InvalidParquet("the file is not Parquet (it neither starts nor ends with PAR1)")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidParquet(f"the Parquet file cannot be read: {str(exc)[:300]}") from None


def _unnamed_index(schema: pa.Schema) -> set[str]:
    """The columns pandas wrote for a DataFrame's unnamed index (`__index_level_0__`): not data. A
    named index is a column like the others."""
    try:
        pandas = json.loads((schema.metadata or {}).get(b"pandas", b"{}"))
    except ValueError:
        return set()
    found = pandas.get("index_columns", []) if isinstance(pandas, dict) else []
    return {c for c in found if isinstance(c, str) and re.fullmatch(r"__index_level_\d+__", c)}


def _plain(kind: pa.DataType) -> bool:
    """Values of this type come out of to_pylist as the JSON values they are."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind) or \
        pa.types.is_large_string(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)


class _NotJson:
    """A JSON column's value that does not parse: its row is refused with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        jsontext.parse(text)
    except json.JSONDecodeError as exc:
        return _NotJson(f"not JSON: {exc}")
    return JsonText(text)


def _as_text(kind: pa.DataType) -> bool:
    """Values of this type are read fastest as the text Arrow's cast writes (exact, and what the
    import reads): decimals, dates, timestamps without a zone to the microsecond."""
    return pa.types.is_decimal(kind) or pa.types.is_date32(kind) or (
        pa.types.is_timestamp(kind) and kind.tz is None and kind.unit in ("s", "ms", "us")
    )


def _values(column: pa.Array) -> list[Any]:
    """A column of a batch as JSON values (C++ loops where they can be: to_pylist, a cast)."""
    kind = column.type
    if isinstance(kind, pa.JsonType):
        return list(map(_json, column.to_pylist()))
    if _plain(kind):
        return column.to_pylist()
    if _as_text(kind):
        return pc.cast(column, pa.string()).to_pylist()
    return [json_value(v) for v in column.to_pylist()]


def _rows(batches: Iterator[pa.RecordBatch], names: list[str], start: int) -> list[Record | RecordError] | None:
    """The next batch's records (position, values), or None at the end (in a worker thread)."""
    try:
        batch = next(batches, None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidParquet(f"a row group after row {start} cannot be read: {str(exc)[:300]}") from None
    if batch is None:
        return None
    columns = [_values(column) for column in batch.columns]
    records: list[Record | RecordError] = []
    for i, values in enumerate(zip(*columns)):
        bad = next((j for j, v in enumerate(values) if isinstance(v, _NotJson)), None)
        if bad is None:
            records.append((start + i + 1, list(values)))
        else:
            records.append(RecordError(start + i + 1, values[bad].reason, InvalidParquet.code, names[bad]))
    return records


async def open_parquet(chunks: AsyncIterator[bytes], spool_dir: str | None = None) -> Source:
    path = await spool(chunks, spool_dir)
    try:
        file = await asyncio.to_thread(_open, path)
    except BaseException:
        os.unlink(path)
        raise
    header = [name for name in file.schema_arrow.names if name not in _unnamed_index(file.schema_arrow)]

    async def blocks() -> AsyncIterator[Block]:
        batches = file.iter_batches(batch_size=BLOCK_ROWS, columns=header)
        position = 0
        while (records := await asyncio.to_thread(_rows, batches, header, position)) is not None:
            position += len(records)
            if records:
                yield Block("", list(records), False)

    async def close() -> None:
        file.close()
        os.unlink(path)

    return Source(header, blocks(), "json", "row", close, 0, {"format": "parquet"})
