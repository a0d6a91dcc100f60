"""Exports: a table (with the filters of /query) streamed out as CSV, JSON Lines or XLSX.

- csv: each row is built into one CSV line by the server (sql.csv_select) and streamed as it comes;
  NULL an empty cell and the empty string a quoted "" (CSV's standard convention, which pandas,
  DuckDB and spreadsheets read), or with `null` given, that marker (\\N for MySQL's own tools);
- jsonl: one object a line, the values as GET shows them;
- xlsx: typed cells (numbers, dates, booleans) written by XlsxWriter in constant-memory mode to a
  temporary file, which is then streamed and removed. The workbook is complete before the first
  byte goes out, so a failure (more rows than a sheet holds, a database error) is an ordinary
  error response.
- parquet: columns typed from the catalog (rows/arrow.py), zstd-compressed, row groups of about
  ROW_GROUP_BYTES of Arrow data, written by pyarrow to a temporary file and streamed like XLSX.
Every format reads through a server-side cursor: memory stays flat whatever the table's size.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import math
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

from app.core import jsontext
from app.core.errors import InvalidBody, PayloadTooLarge
from app.db.catalog import Column, Table
from app.db.database import Database, StatementResult
from app.http.negotiation import csv_lines
from app.query import sql
from app.query.filters import parse_filter, parse_query_params
from app.query.lists import ListQuery
from app.rows.arrow import arrow_schema, record_batch
from app.rows.embedded import flat_columns, flat_row, flat_tuples
from app.rows.values import format_time, json_default, output_fixers, rows_to_dicts
from app.services.crud import CrudService, Permit

ExportFormat = Literal["csv", "jsonl", "xlsx", "parquet"]
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
}
ROW_GROUP_BYTES = 4 * 1024 * 1024  # Arrow data gathered before a Parquet row group is written
XLSX_MAX_ROWS = 1_048_575  # a sheet's rows, less the header
XLSX_MAX_TEXT = 32_767  # characters in a cell
EXACT_FLOAT = 2**53
FILE_CHUNK = 256 * 1024


@dataclass
class Export:
    table: str
    format: ExportFormat
    body: AsyncIterator[bytes]
    stack: AsyncExitStack  # the caller closes it when the body is done (or abandoned)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


class ExportService:
    def __init__(
        self,
        db: Database,
        crud: CrudService,
        rows_moved: dict[tuple[str, str], int],
        *,
        batch_rows: int,
        spool_dir: str | None = None,
    ):
        self.db, self.crud, self.rows_moved = db, crud, rows_moved
        self.batch_rows, self.spool_dir = batch_rows, spool_dir

    def _moved(self, table: str, rows: int) -> None:
        key = ("export", table)
        self.rows_moved[key] = self.rows_moved.get(key, 0) + rows

    async def open(
        self, name: str, params: Iterable[tuple[str, str]], fmt: ExportFormat = "csv", null: str | None = None,
        permit: Permit | None = None,
    ) -> Export:
        """Start an export of the rows a query string picks (GET .../export)."""
        params = list(params)
        options = {k: v for k, v in params if k in ("fields", "order", "limit", "offset")}
        links = self.crud.catalog.relations
        return await self.start(
            name, lambda t: self.crud.list_request(t, parse_query_params(t, params, links), options, limited=False),
            fmt, null, permit,
        )

    async def open_body(
        self, name: str, spec: Any, options: Mapping[str, Any], fmt: ExportFormat = "csv", null: str | None = None,
        permit: Permit | None = None,
    ) -> Export:
        """Start an export of the rows a JSON filter picks (POST .../export: `or` and `and` groups)."""
        links = self.crud.catalog.relations
        return await self.start(
            name, lambda t: self.crud.list_request(t, parse_filter(t, spec, links), options, limited=False),
            fmt, null, permit,
        )

    async def start(
        self, name: str, build: Callable[[Table], ListQuery], fmt: ExportFormat, null: str | None,
        permit: Permit | None,
    ) -> Export:
        """The query runs and its first rows are read (through the wrapper) before this returns, so a
        failure here is an ordinary error response. `null`: CSV's NULL marker."""
        if null is not None and (fmt != "csv" or any(c in null for c in ',"\r\n')):
            raise InvalidBody(
                "query.null: a NULL marker is for CSV exports (JSON Lines has null, a spreadsheet an empty cell)"
                if fmt != "csv" else "query.null: a NULL marker cannot hold a comma, a double quote or a line break",
                [{"where": "query.null", "problem": "not a marker for this export"}],
            )
        table, query = await self.crud.resolve(name, build)
        self.crud.permitted(query, permit)
        query = await self.crud.visible(table, query)
        if query.embeds and null is not None:
            raise InvalidBody(
                "query.null: an export with embedded rows writes CSV's standard convention (NULL an empty cell)",
                [{"where": "query.null", "problem": "not with embedded rows"}],
            )
        stack = AsyncExitStack()
        try:
            plain_csv = fmt == "csv" and not query.embeds
            statement = sql.csv_select(table, query, null) if plain_csv else sql.select(table, query)
            _, rows = await stack.enter_async_context(
                self.db.stream(*statement, self.batch_rows, replica=True, slow=True)
            )
            # Rows with embedded relations: read as a list reads them, then written. The first batch is
            # read now, so what it refuses (an embedded array past its cap: 413) is an error answer,
            # not a stream cut after its header.
            batches: AsyncIterator[Any] = await _primed(self._records(query, rows, fmt)) if query.embeds else rows
            columns = tuple(flat_columns(query.items) if query.embeds and fmt != "jsonl" else query.fields)
            if plain_csv:
                body = self._csv(table.name, columns, batches)
            elif fmt == "csv":
                body = self._csv_records(table.name, columns, batches)
            elif fmt == "jsonl":
                body = self._jsonl(table.name, columns, batches, records=bool(query.embeds))
            else:
                spool = self._xlsx if fmt == "xlsx" else self._parquet
                path = await spool(table.name, columns, batches)
                stack.callback(os.unlink, path)
                body = _file(path)
        except BaseException:
            await stack.aclose()
            raise
        return Export(table.name, fmt, body, stack)

    async def _records(self, query: ListQuery, batches: AsyncIterator[Sequence[tuple]], fmt: ExportFormat) -> Any:
        """Batches of rows with embedded relations: as JSON shows them (JSON Lines), flat (CSV), or
        flat and typed as the driver types values (spreadsheets, Parquet)."""
        names = [i.name for i in query.items]
        async for batch in batches:
            result = StatementResult(names, list(batch), 0, None)
            records = self.crud.records(query, result, json_as_text=fmt != "jsonl")
            if fmt == "jsonl":
                yield records
            elif fmt == "csv":
                yield [flat_row(query.items, r) for r in records]
            else:
                yield flat_tuples(query.items, flat_columns(query.items), records)

    async def _csv_records(
        self, table: str, columns: Sequence[Column], batches: AsyncIterator[Sequence[dict]]
    ) -> AsyncIterator[bytes]:
        yield csv_lines(columns, [], header=True)
        async for batch in batches:
            self._moved(table, len(batch))
            yield csv_lines(columns, batch, header=False)

    async def _csv(
        self, table: str, columns: Sequence[Column], batches: AsyncIterator[Sequence[tuple]]
    ) -> AsyncIterator[bytes]:
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow([c.name for c in columns])
        yield header.getvalue().encode()
        async for batch in batches:
            self._moved(table, len(batch))
            yield ("\r\n".join([row[0] for row in batch]) + "\r\n").encode()

    async def _jsonl(
        self, table: str, columns: Sequence[Column], batches: AsyncIterator[Any], *, records: bool = False
    ) -> AsyncIterator[bytes]:
        names, fixers = [c.name for c in columns], output_fixers(tuple(columns))
        async for batch in batches:
            self._moved(table, len(batch))
            yield jsontext.lines(batch if records else rows_to_dicts(names, batch, fixers), json_default)

    async def _xlsx(self, table: str, columns: Sequence[Column], batches: AsyncIterator[Sequence[tuple]]) -> str:
        return await self._spooled(".xlsx", lambda path: _Sheet(path, table, columns), table, batches)

    async def _parquet(self, table: str, columns: Sequence[Column], batches: AsyncIterator[Sequence[tuple]]) -> str:
        return await self._spooled(".parquet", lambda path: _ParquetFile(path, columns), table, batches)

    async def _spooled(
        self, suffix: str, open_file: Callable[[str], "_Sheet | _ParquetFile"], table: str,
        batches: AsyncIterator[Sequence[tuple]],
    ) -> str:
        """The whole export written to a temporary file (a worker thread writes each batch); its path."""
        handle, path = tempfile.mkstemp(prefix="gateway-export-", suffix=suffix, dir=self.spool_dir)
        os.close(handle)
        try:
            out = open_file(path)
            try:
                async for batch in batches:
                    await asyncio.to_thread(out.write, batch)
                    self._moved(table, len(batch))
            finally:
                await asyncio.to_thread(out.close)
        except BaseException:
            os.unlink(path)
            raise
        return path


class _ParquetFile:
    """A Parquet file written a row group at a time: batches gather until ROW_GROUP_BYTES of Arrow
    data (bounded memory whatever the size), then go out compressed."""

    def __init__(self, path: str, columns: Sequence[Column]):
        self.columns, self.schema = tuple(columns), arrow_schema(columns)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0

    def write(self, batch: Sequence[tuple]) -> None:
        converted = record_batch(self.columns, self.schema, batch)
        self.pending.append(converted)
        self.pending_bytes += converted.nbytes
        if self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema))
            self.pending, self.pending_bytes = [], 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self.writer.close()


class _Sheet:
    """One worksheet written row by row (constant memory: each row is flushed as the next begins)."""

    def __init__(self, path: str, table: str, columns: Sequence[Column]):
        self.book = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        # A sheet name: at most 31 characters, none of []:*?/\, not starting or ending with an apostrophe.
        self.sheet = self.book.add_worksheet(
            table[:31].translate(str.maketrans("[]:*?/\\", "_______")).strip("'") or "export"
        )
        bold = self.book.add_format({"bold": True})
        self.sheet.write_row(0, 0, [c.name for c in columns], bold)
        self.sheet.freeze_panes(1, 0)
        formats = {
            "date": self.book.add_format({"num_format": "yyyy-mm-dd"}),
            "datetime": self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            "fraction": self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"}),
        }
        self.writers = [self._writer(c, formats) for c in columns]
        self.row = 0

    def _writer(self, column: Column, formats: dict[str, Any]) -> Callable[[int, int, Any], None]:
        sheet, kind = self.sheet, column.kind

        def text(row: int, col: int, value: Any) -> None:
            value = value if isinstance(value, str) else str(value)
            if len(value) > XLSX_MAX_TEXT:
                raise PayloadTooLarge(
                    f"column '{column.name}' holds a value of {len(value)} characters; an XLSX cell holds at most "
                    f"{XLSX_MAX_TEXT}: export as csv or jsonl",
                    {"column": column.name},
                )
            sheet.write_string(row, col, value)

        def number(row: int, col: int, value: Any) -> None:
            if isinstance(value, (bytes, bytearray)):  # BIT
                value = int.from_bytes(value, "big")
            if isinstance(value, float) and not math.isfinite(value):
                return text(row, col, repr(value))
            exact = float(value)
            if (
                (isinstance(value, int) and abs(value) < EXACT_FLOAT)
                or isinstance(value, float)
                or (isinstance(value, Decimal) and Decimal(repr(exact)) == value)
            ):
                sheet.write_number(row, col, exact)
            else:  # a spreadsheet's numbers are doubles: digits past 2**53 stay exact as text
                text(row, col, str(value))

        if kind == "bool":  # TINYINT(1): TRUE and FALSE for 1 and 0, any other value as the number it is

            def flag(row: int, col: int, value: Any) -> None:
                if value in (0, 1):
                    sheet.write_boolean(row, col, bool(value))
                else:
                    number(row, col, value)

            return flag
        if kind in ("int", "float", "decimal", "year", "bit"):
            return number
        if kind == "date":
            return lambda row, col, value: sheet.write_datetime(
                row, col, dt.datetime.combine(value, dt.time()), formats["date"]
            )
        if kind in ("datetime", "timestamp"):
            style = formats["fraction"] if column.fsp else formats["datetime"]

            def moment(row: int, col: int, value: Any) -> None:
                if value.microsecond % 1000:  # a spreadsheet's clock stops at milliseconds: keep it exact as text
                    return text(row, col, value.isoformat(" "))
                sheet.write_datetime(row, col, value, style)

            return moment
        if kind == "time":
            return lambda row, col, value: text(
                row, col, format_time(value) if isinstance(value, dt.timedelta) else str(value)
            )
        if kind == "binary":
            return lambda row, col, value: text(row, col, json_default(bytes(value)))
        if kind == "set":
            return lambda row, col, value: text(
                row, col, json_default(value) if isinstance(value, (set, frozenset)) else value
            )
        return lambda row, col, value: text(
            row, col, value.decode() if isinstance(value, (bytes, bytearray)) else value
        )

    def write(self, batch: Sequence[tuple]) -> None:
        if self.row + len(batch) > XLSX_MAX_ROWS:
            raise PayloadTooLarge(
                f"the export has more than {XLSX_MAX_ROWS} rows, which one sheet cannot hold: "
                "export as csv or jsonl, or in parts with limit and offset",
                {"max_rows": XLSX_MAX_ROWS},
            )
        writers = self.writers
        for values in batch:
            self.row += 1
            for col, (write, value) in enumerate(zip(writers, values)):
                if value is not None:
                    write(self.row, col, value)

    def close(self) -> None:
        self.book.close()


async def _file(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, FILE_CHUNK):
            yield chunk


async def _primed(batches: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`batches` with its first batch already read."""
    try:
        first = await batches.__anext__()
    except StopAsyncIteration:
        first = None

    async def rest() -> AsyncIterator[Any]:
        if first is not None:
            yield first
            async for batch in batches:
                yield batch

    return rest()
