"""CSV use cases: import a stream into the table named after the file; stream a table out as CSV.

Import, in order:
1. the header is checked against the catalog before anything is written (unknown, duplicate and
   missing required columns are one 400 listing them); generated columns in it are skipped;
2. each record is converted by column type (the same rules as the JSON routes, see values.py);
   a record that does not convert is reported with its line number, column and reason;
3. good rows go in by batches, one transaction each, through the retry wrapper, on two connections at
   once (one batch is parsed while the previous is written): by LOAD DATA LOCAL from memory (the
   uploaded text itself when every cell is in canonical form, else the converted rows), or by
   multi-row INSERTs (upserts, atomic imports, and any batch LOAD DATA has something to say about);
4. a batch INSERT the database refuses is split in halves until its bad rows are isolated; the good
   rows go in;
5. the report accounts for every row read:
   rows_read = rows_inserted + rows_updated + rows_skipped + rows_failed + rows_not_applied + rows_outcome_unknown.

Cells: `\\N` (or `?null=`) is NULL in every column. An empty cell is the empty string in text columns
(CHAR/VARCHAR/TEXT, SET, binary) and NULL in the others (numbers, dates, JSON, ENUM), which have no
empty value. Export writes NULL as `\\N` and the empty string as an empty cell, so a round trip is exact.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core import sql
from app.core.catalog import Column, Table
from app.core.csvrecords import Block, Record, RecordError, RecordReader
from app.core.database import Database, Session
from app.core.errors import (
    CommitOutcomeUnknown,
    DatabaseError,
    GatewayError,
    ImportRolledBack,
    InvalidCsv,
    InvalidHeader,
    InvalidValue,
)
from app.core.filters import parse_query_params
from app.core.resiliency import classify
from app.core.values import canonical_check, text_converter
from app.services.crud_service import CrudService
from app.services.duplicates import Duplicate, DuplicateProbe

Mode = Literal["insert", "ignore", "upsert"]
DUPLICATE_KEY = 1062
# The server refuses LOAD DATA LOCAL: not allowed / disabled / the client side refused.
LOAD_DATA_REFUSED = frozenset({1148, 3948, 2068, 4166})


class BareNull(int):
    """NULL in the canonical CSV for LOAD DATA: csv.writer leaves numbers unquoted (QUOTE_NONNUMERIC)
    and writes str(), so this comes out as the bare word NULL, which LOAD DATA reads as NULL (a
    quoted "NULL" stays a string)."""

    def __str__(self) -> str:
        return "NULL"

    __repr__ = __str__


BARE_NULL = BareNull(0)


class UseInserts(GatewayError):
    """Internal: the LOAD DATA of a batch had something to say (a warning) or was refused; the batch
    is rolled back and written with INSERTs, which name each bad row exactly. Never reaches a client."""

    status, code = 409, "conflict"


@dataclass(frozen=True)
class ImportPlan:
    """Which record fields go into which columns, and how each is converted."""

    columns: tuple[Column, ...]  # written, in header order
    positions: tuple[int, ...]  # their field positions in a record
    width: int  # fields per record
    converters: tuple[Callable[[str], Any], ...] = ()
    load_data: bool = False  # values are ready for LOAD DATA (NULL as BARE_NULL, binary as base64)
    null: str = "\\N"
    header_columns: tuple[Column | None, ...] = ()  # per field: its column, None if generated
    # Per field, a check that a batch's cells can go to LOAD DATA as uploaded (None: never).
    checks: tuple[Callable[[Sequence[str]], bool], ...] | None = None


def plan_import(table: Table, header: list[str], null: str = "\\N", *, load_data: bool = False) -> ImportPlan:
    """Check a header against the table (pure). Generated columns are skipped: the server computes them."""
    names = [name.strip() for name in header]
    unknown = [n for n in names if table.column(n) is None]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    present = set(names)
    missing = [c.name for c in table.columns if c.required and c.name not in present]
    if unknown or duplicate or missing:
        problems = [
            f"{label}: {', '.join(items)}"
            for label, items in (("unknown", unknown), ("duplicate", duplicate), ("missing required", missing))
            if items
        ]
        raise InvalidHeader(
            f"the header does not fit table '{table.name}': " + "; ".join(problems),
            {"unknown": unknown, "duplicate": duplicate, "missing": missing},
        )
    chosen = [(i, table.by_name[n]) for i, n in enumerate(names) if not table.by_name[n].generated]
    columns = tuple(c for _, c in chosen)
    checks = [canonical_check(table.by_name[n], null) for n in names]
    return ImportPlan(
        columns,
        tuple(i for i, _ in chosen),
        len(names),
        tuple(
            text_converter(c, null, null_value=BARE_NULL, binary_as_text=True) if load_data else text_converter(c, null)
            for c in columns
        ),
        load_data,
        null,
        tuple(None if table.by_name[n].generated else table.by_name[n] for n in names),
        None if any(check is None for check in checks) else tuple(checks),  # type: ignore[arg-type]
    )


def convert_record(plan: ImportPlan, fields: list[str]) -> list[Any]:
    """One record's values for the plan's columns (pure); InvalidValue names the column."""
    if len(fields) != plan.width:
        raise InvalidValue(f"expected {plan.width} fields, got {len(fields)}")
    return [convert(fields[position]) for position, convert in zip(plan.positions, plan.converters)]


def convert_batch(plan: ImportPlan, records: list[tuple[int, list[str]]]) -> list[tuple[int, Any]] | None:
    """A batch converted a column at a time (a C-level transpose, one map per column): much less
    per-value overhead than row by row. None if any record has a problem: the caller then converts
    row by row, which names the line and column of each problem."""
    fields = [f for _, f in records]
    if not fields:
        return []
    if any(len(f) != plan.width for f in fields):
        return None
    cells = list(zip(*fields))
    try:
        columns = [list(map(convert, cells[position])) for position, convert in zip(plan.positions, plan.converters)]
    except InvalidValue:
        return None
    return list(zip([line for line, _ in records], zip(*columns)))


Row = tuple[int, Any]  # (line, values)


@dataclass
class Batch:
    records: list[Record]  # parsed, converted by the writer that takes the batch
    text: str | None  # the records' text as uploaded, when it says exactly what they say


@dataclass
class ImportReport:
    table: str
    mode: str
    atomic: bool
    max_errors: int
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    rows_not_applied: int = 0
    rows_outcome_unknown: int = 0
    errors: list[dict] = field(default_factory=list)
    errors_total: int = 0
    committed: list[list[int]] = field(default_factory=list)  # line ranges, merged in as_dict
    not_committed: list[list[int]] = field(default_factory=list)
    outcome_unknown: list[list[int]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def fail(self, line: int, reason: str, column: str | None = None, key: dict | None = None) -> None:
        self.rows_failed += 1
        self.errors_total += 1
        if len(self.errors) < self.max_errors:
            error = {"line": line, "column": column, "reason": reason}
            if key is not None:
                error["key"] = key
            self.errors.append(error)

    def as_dict(self) -> dict:
        elapsed = time.monotonic() - self.started
        written = self.rows_inserted + self.rows_updated + self.rows_skipped
        report = {
            "table": self.table,
            "mode": self.mode,
            "atomic": self.atomic,
            "rows_read": self.rows_read,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_skipped": self.rows_skipped,
            "rows_failed": self.rows_failed,
            "rows_not_applied": self.rows_not_applied,
            "rows_outcome_unknown": self.rows_outcome_unknown,
            "errors": sorted(self.errors, key=lambda e: e["line"]),
            "errors_total": self.errors_total,
            "elapsed_s": round(elapsed, 3),
            "rows_per_s": round(written / elapsed) if elapsed > 0 else None,
        }
        report["committed_lines"] = _merge(self.committed)
        if self.not_committed or self.outcome_unknown:
            report["not_committed_lines"] = _merge(self.not_committed)
            report["outcome_unknown_lines"] = _merge(self.outcome_unknown)
        return report


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _span(rows: list[Row]) -> list[int]:
    return [rows[0][0], rows[-1][0]]


def table_name_from_file(filename: str | None) -> str:
    """`exports/users.csv` -> `users`. The name is only looked up in the catalog, never quoted as is."""
    if not filename:
        raise InvalidCsv("the upload has no file name: name the table with ?table=")
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-4] if base.lower().endswith(".csv") else base


class CsvService:
    def __init__(
        self,
        db: Database,
        crud: CrudService,
        *,
        batch_rows: int,
        batch_bytes: int,
        writers: int,
        max_record_bytes: int,
        max_errors: int,
        export_batch_rows: int,
        load_data: bool = True,
    ):
        self.db, self.crud, self.catalog = db, crud, crud.catalog
        self.batch_rows, self.batch_bytes, self.writers = batch_rows, batch_bytes, writers
        self.max_record_bytes, self.max_errors = max_record_bytes, max_errors
        self.export_batch_rows = export_batch_rows
        self.load_data = load_data  # turned off for good if the server refuses LOAD DATA LOCAL
        self.batches_by_path = {"text": 0, "rows": 0, "inserts": 0}  # how batches were written
        self.rows_moved: dict[tuple[str, str], int] = {}  # (import|export, table) -> rows, for metrics

    # --- import -------------------------------------------------------------------------------

    async def import_csv(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        mode: Mode,
        atomic: bool,
        null: str,
        after: Callable[[Session, dict], Awaitable[None]] | None = None,
    ) -> dict:
        """Import a CSV stream. `after` (atomic imports only) runs inside the import's transaction
        with the final report, before COMMIT: an idempotency key's record commits with the rows."""
        table = await self.catalog.table(name)  # 404 before a byte of the file is read
        report = ImportReport(table.name, mode, atomic, self.max_errors)
        blocks = self._blocks(chunks)
        first = await anext(blocks, None)
        if first is None:
            raise InvalidCsv("the file is empty: a header row is required")
        header = first.records[0]
        if isinstance(header, RecordError):
            raise InvalidCsv(f"the header row is not valid CSV: {header.reason}", {"line": header.line})
        # LOAD DATA for plain and ignore imports; upserts and atomic imports use INSERTs.
        loads = self.load_data and mode in ("insert", "ignore") and not atomic
        try:
            plan = plan_import(table, header[1], null, load_data=loads)
        except InvalidHeader:
            await self.catalog.reload()  # a column added since the catalog loaded?
            table = await self.catalog.table(name)
            plan = plan_import(table, header[1], null, load_data=loads)
        # The first block holds the header: its text cannot go to the server as it is.
        batches = self._batches(_chain(Block("", first.records[1:], False), blocks), report)
        try:
            if atomic:
                await self._import_atomic(table, plan, batches, mode, report, after)
            else:
                # A plain insert reports each duplicate by line and key (ignore skips, upsert updates).
                probe = DuplicateProbe.for_import(table, plan.header_columns, null) if mode == "insert" else None
                await self._import_pipelined(table, plan, batches, mode, report, probe)
        except GatewayError as exc:
            if not isinstance(exc, ImportRolledBack):
                exc.details = {"cause": exc.details, "report": report.as_dict()}
            raise
        finally:
            self._moved("import", table.name, report.rows_inserted + report.rows_updated)
        return report.as_dict()

    def _moved(self, direction: str, table: str, rows: int) -> None:
        key = (direction, table)
        self.rows_moved[key] = self.rows_moved.get(key, 0) + rows

    async def _blocks(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[Block]:
        """The stream's records a block at a time (an async generator step costs microseconds: too
        much to pay per record). Chunks are cut to 64 KiB so a block never outgrows a batch."""
        reader = RecordReader(self.max_record_bytes)
        async for chunk in chunks:
            for start in range(0, len(chunk), 65536):
                block = reader.feed(chunk[start : start + 65536])
                if block.records:
                    yield block
        block = reader.finish()
        if block.records:
            yield block

    async def _batches(self, blocks: AsyncIterator[Block], report: ImportReport) -> AsyncIterator[Batch]:
        """Whole blocks, gathered into batches of about `batch_rows` rows or `batch_bytes`."""
        records: list[Record] = []
        texts: list[str] = []
        clean = True
        for_size = 0
        try:
            async for block in blocks:
                for record in block.records:
                    report.rows_read += 1
                    if isinstance(record, RecordError):
                        report.fail(record.line, record.reason)
                    else:
                        records.append(record)
                texts.append(block.text)
                clean = clean and block.clean
                for_size += len(block.text)
                if len(records) >= self.batch_rows or for_size >= self.batch_bytes:
                    yield Batch(records, "".join(texts) if clean else None)
                    records, texts, clean, for_size = [], [], True, 0
        except GatewayError:  # the stream itself is bad (a quote that never ends, not UTF-8)
            if records:  # read, never written: the report says so
                report.not_committed.append(_span(records))
                report.rows_not_applied += len(records)
            raise
        if records:
            yield Batch(records, "".join(texts) if clean else None)

    @staticmethod
    def _convert(plan: ImportPlan, records: list[Record], report: ImportReport) -> list[Row]:
        rows = convert_batch(plan, records)
        if rows is not None:
            return rows
        rows = []
        for line, fields in records:
            try:
                rows.append((line, convert_record(plan, fields)))
            except InvalidValue as exc:
                report.fail(line, exc.message, (exc.details or {}).get("column"))
        return rows

    async def _import_pipelined(
        self,
        table: Table,
        plan: ImportPlan,
        batches: AsyncIterator[Batch],
        mode: Mode,
        report: ImportReport,
        probe: DuplicateProbe | None = None,
    ) -> None:
        """Batches flow through a short queue to `writers` tasks, each writing one batch at a time."""
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self.writers)
        fatal: list[Exception] = []  # what stopped the writers (they keep draining the queue after)

        async def writer() -> None:
            while (batch := await queue.get()) is not None:
                if fatal:  # the database went away: what is still queued is not written
                    report.not_committed.append(_span(batch.records))
                    report.rows_not_applied += len(batch.records)
                    continue
                try:
                    await self._write(table, plan, batch, mode, report, probe)
                except Exception as exc:
                    fatal.append(exc)

        tasks = [asyncio.create_task(writer()) for _ in range(self.writers)]
        try:
            async for batch in batches:
                if fatal:
                    report.not_committed.append(_span(batch.records))
                    report.rows_not_applied += len(batch.records)
                    break
                await queue.put(batch)
        finally:
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)
        if fatal:
            raise fatal[0]

    async def _write(
        self, table: Table, plan: ImportPlan, batch: Batch, mode: Mode, report: ImportReport,
        probe: DuplicateProbe | None = None,
    ) -> None:
        """Write one batch. With a duplicate probe (plain inserts into a table with unique keys), the
        rows whose key is taken are reported first and left out; a batch the probe skipped that
        turns out to hold duplicates is probed and written again, never split row by row."""
        duplicates: dict[int, Duplicate] = {}
        if probe is not None and probe.active:
            duplicates = await probe.find(self.db, batch.records)
            probe.saw(len(duplicates))
        if await self._write_batch(table, plan, batch, mode, report, duplicates) == "duplicates" and probe is not None:
            duplicates = await probe.find(self.db, batch.records)
            probe.saw(len(duplicates))
            await self._write_batch(table, plan, batch, mode, report, duplicates, last_try=True)

    async def _write_batch(
        self, table: Table, plan: ImportPlan, batch: Batch, mode: Mode, report: ImportReport,
        duplicates: dict[int, Duplicate], *, last_try: bool = False,
    ) -> str | None:
        """The cheapest way that is exact: the uploaded text by LOAD DATA when every cell is in
        canonical form (the server skips exactly the `duplicates`, or the batch is rolled back); else
        the converted rows by LOAD DATA; else (or when LOAD DATA has anything to say about the batch)
        by INSERTs, which find bad rows one by one. "duplicates": the server met duplicate keys the
        probe had not named, and nothing was written (the caller probes and comes back)."""
        if len(duplicates) == len(batch.records):  # nothing to write: no statement, no ids burnt
            self._report_duplicates(duplicates, report)
            return None
        if plan.load_data and self.load_data:
            text = _canonical_text(plan, batch)
            if text is not None:
                # The terminator is the batch's own; a record ending otherwise would merge with the next
                # one, and the row count check in _load sends the batch the exact way.
                crlf = text.endswith("\r\n")
                skips = len(duplicates)
                statement = sql.load_data_text(table, plan.header_columns, null=plan.null, crlf=crlf, ignore=mode == "ignore" or skips > 0)
                outcome = await self._try_load(batch.records, report, lambda s: _load(s, statement, text.encode(), len(batch.records), mode, skips))
                if outcome == "ok":
                    self.batches_by_path["text"] += 1
                    self._report_duplicates(duplicates, report)
                    return None
                if outcome == "duplicates" and not last_try:
                    return outcome
        self._report_duplicates(duplicates, report)
        records = [r for r in batch.records if r[0] not in duplicates] if duplicates else batch.records
        rows = self._convert(plan, records, report)
        if not rows:
            return None
        if plan.load_data and self.load_data:
            statement = sql.load_data(table, plan.columns, ignore=mode == "ignore")
            outcome = await self._try_load(rows, report, lambda s: _load(s, statement, _serialize(rows), len(rows), mode))
            if outcome == "ok":
                self.batches_by_path["rows"] += 1
                return None
            if outcome == "duplicates" and not last_try and not duplicates:
                return outcome
            rows = _for_insert(plan, rows)
        self.batches_by_path["inserts"] += 1
        await self._insert_or_split(table, plan.columns, rows, mode, report)
        return None

    @staticmethod
    def _report_duplicates(duplicates: dict[int, Duplicate], report: ImportReport) -> None:
        for duplicate in duplicates.values():
            report.fail(duplicate.line, duplicate.reason, key=duplicate.key)

    async def _try_load(
        self, rows: list[Any], report: ImportReport, work: Callable[[Session], Awaitable[tuple[int, int, int]]]
    ) -> str:
        """A LOAD DATA of one batch: "ok", or why the batch must be written another way ("duplicates":
        the server skipped rows for duplicate keys only; "other")."""
        try:
            counts = await self._transact(rows, report, work)
        except UseInserts as exc:
            if (exc.details or {}).get("refused"):
                self.load_data = False
            return "duplicates" if (exc.details or {}).get("duplicates") else "other"
        except GatewayError as exc:
            if exc.status >= 500:
                raise
            return "other"  # refused as a whole (a CHECK constraint, say): the exact path names the rows
        self._applied(rows, counts, report)
        return "ok"

    async def _insert_or_split(
        self, table: Table, columns: tuple[Column, ...], rows: list[Row], mode: Mode, report: ImportReport
    ) -> None:
        """INSERT one batch in its own transaction; split it when the database refuses it."""
        try:
            counts = await self._transact(rows, report, lambda s: _insert(s, table, columns, rows, mode))
        except GatewayError as exc:
            if exc.status >= 500:  # unavailable, timed out, COMMIT unanswered: not the rows' fault
                raise
            await self._split(rows, exc, report, lambda half: self._insert_or_split(table, columns, half, mode, report))
            return
        self._applied(rows, counts, report)

    async def _transact(
        self, rows: list[Row], report: ImportReport, work: Callable[[Session], Awaitable[tuple[int, int, int]]]
    ) -> tuple[int, int, int]:
        """One transaction through the wrapper (bulk schedule). A 5xx outcome (unavailable, timed
        out, COMMIT unanswered) is not the rows' fault: it is recorded and ends the import."""
        try:
            return await self.db.transaction(work, bulk=True)
        except GatewayError as exc:
            if exc.status >= 500:
                if exc.code == "commit_outcome_unknown":
                    report.outcome_unknown.append(_span(rows))
                    report.rows_outcome_unknown += len(rows)
                else:
                    report.not_committed.append(_span(rows))
                    report.rows_not_applied += len(rows)
            raise

    @staticmethod
    def _applied(rows: list[Row], counts: tuple[int, int, int], report: ImportReport) -> None:
        report.rows_inserted += counts[0]
        report.rows_updated += counts[1]
        report.rows_skipped += counts[2]
        report.committed.append(_span(rows))

    @staticmethod
    async def _split(
        rows: list[Row], exc: GatewayError, report: ImportReport, write: Callable[[list[Row]], Awaitable[None]]
    ) -> None:
        if len(rows) == 1:
            report.fail(rows[0][0], exc.message, (exc.details or {}).get("column"))
            return
        middle = len(rows) // 2
        await write(rows[:middle])
        await write(rows[middle:])

    async def _import_atomic(
        self,
        table: Table,
        plan: ImportPlan,
        batches: AsyncIterator[Batch],
        mode: Mode,
        report: ImportReport,
        after: Callable[[Session, dict], Awaitable[None]] | None = None,
    ) -> None:
        """All or nothing: one transaction on one connection. A statement that fails rolls back only
        itself (InnoDB statement atomicity), so bad rows are isolated the same way, then everything
        is rolled back and the report says why."""
        applied = {"inserted": 0, "updated": 0, "skipped": 0}
        spans: list[list[int]] = []  # the lines written so far, in the open transaction

        async def write(session: Session, rows: list[Row]) -> None:
            try:
                inserted, updated, skipped = await _insert(session, table, plan.columns, rows, mode)
            except DatabaseError as exc:
                problem = classify(exc)
                if problem.status >= 500:
                    raise problem from exc
                await self._split(rows, problem, report, lambda half: write(session, half))
                return
            applied["inserted"] += inserted
            applied["updated"] += updated
            applied["skipped"] += skipped
            spans.append(_span(rows))

        try:
            async with self.db.long_transaction() as session:
                async for batch in batches:
                    if rows := self._convert(plan, batch.records, report):
                        await write(session, rows)
                    if report.rows_failed:
                        break  # the import is lost already: stop reading
                if report.rows_failed:
                    good = report.rows_read - report.rows_failed
                    report.rows_not_applied = good
                    raise ImportRolledBack(
                        f"atomic import rolled back: {report.rows_failed} bad row(s); the table is unchanged",
                        report.as_dict(),
                    )
                # What COMMIT makes durable; an idempotency key's record stores this report with it.
                report.rows_inserted, report.rows_updated, report.rows_skipped = (
                    applied["inserted"], applied["updated"], applied["skipped"]
                )
                report.committed = spans
                if after is not None:
                    await after(session, report.as_dict())
        except (GatewayError, DatabaseError) as exc:
            problem = exc if isinstance(exc, GatewayError) else classify(exc)
            if report.committed:  # it failed at COMMIT (or in the key's record): nothing is sure
                written = report.rows_inserted + report.rows_updated + report.rows_skipped
                report.rows_inserted = report.rows_updated = report.rows_skipped = 0
                if isinstance(problem, CommitOutcomeUnknown):
                    report.outcome_unknown, report.rows_outcome_unknown = report.committed, written
                else:
                    report.not_committed, report.rows_not_applied = report.committed, written
                report.committed = []
            if problem is exc:
                raise
            raise problem from exc

    # --- export -------------------------------------------------------------------------------

    async def open_export(
        self, name: str, params: Iterable[tuple[str, str]]
    ) -> tuple[str, AsyncIterator[bytes], AsyncExitStack]:
        """Start an export: the query runs and its first rows are read (through the wrapper) before
        this returns, so a failure here is an ordinary error response. The caller streams the
        iterator and must close the stack when done, whatever happens."""
        params = list(params)
        options = {k: v for k, v in params if k in ("fields", "order", "limit", "offset")}
        table, query = await self.crud.resolve(
            name, lambda t: self.crud.list_request(t, parse_query_params(t, params), options, limited=False)
        )
        stack = AsyncExitStack()
        _, batches = await stack.enter_async_context(
            self.db.stream(*sql.csv_select(table, query), self.export_batch_rows, replica=True)
        )
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow([c.name for c in query.fields])

        async def body() -> AsyncIterator[bytes]:
            yield header.getvalue().encode()
            async for batch in batches:
                self._moved("export", table.name, len(batch))
                yield ("\r\n".join([row[0] for row in batch]) + "\r\n").encode()

        return table.name, body(), stack


async def _chain(head: Block, rest: AsyncIterator[Block]) -> AsyncIterator[Block]:
    if head.records:
        yield head
    async for item in rest:
        yield item


def _serialize(rows: list[Row]) -> bytes:
    """The canonical CSV that `sql.load_data` reads."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows([values for _, values in rows])
    return buffer.getvalue().encode()


def _for_insert(plan: ImportPlan, rows: list[Row]) -> list[Row]:
    """LOAD DATA-ready values back to INSERT parameters: NULL as None, binary as bytes."""
    binary = [i for i, c in enumerate(plan.columns) if c.kind == "binary"]

    def fix(values: Any) -> list[Any]:
        out = [None if v is BARE_NULL else v for v in values]
        for i in binary:
            if out[i] is not None:
                out[i] = base64.b64decode(out[i])
        return out

    return [(line, fix(values)) for line, values in rows]


def _canonical_text(plan: ImportPlan, batch: Batch) -> str | None:
    """The batch's uploaded text, if the server can read it as it is with exactly our meaning."""
    text = batch.text
    if text is None or plan.checks is None:
        return None
    fields = [f for _, f in batch.records]
    if any(len(f) != plan.width for f in fields):
        return None
    for check, cells in zip(plan.checks, zip(*fields)):
        if not check(cells):
            return None
    return text


async def _load(
    session: Session, statement: tuple[str, tuple], data: bytes, count: int, mode: Mode, expected_skips: int = 0
) -> tuple[int, int, int]:
    """One LOAD DATA LOCAL of a batch; returns (inserted, 0, skipped). With LOCAL the server turns
    errors into warnings and goes on, so the batch (rolled back) goes to the exact path unless every
    record is accounted for: inserted, or skipped with a duplicate-key warning where skipping is
    meant (ignore mode, or exactly the `expected_skips` duplicates a probe named)."""
    try:
        result = await session.load_data(statement[0], statement[1], data)
    except DatabaseError as exc:
        if exc.code in LOAD_DATA_REFUSED:
            raise UseInserts("LOAD DATA LOCAL refused", {"refused": True}) from exc
        raise
    skipped = count - result.affected
    if result.warnings or skipped:
        only_duplicates = result.warnings == skipped and all(
            code == DUPLICATE_KEY for code, _ in await session.warnings()
        )
        if not only_duplicates:
            raise UseInserts("the batch has rows the database warned about, or not one row per record")
        if mode == "insert" and skipped != expected_skips:
            raise UseInserts("the batch holds duplicate keys the probe did not name", {"duplicates": True})
    return result.affected, 0, (skipped if mode == "ignore" else 0)


async def _insert(
    session: Session, table: Table, columns: tuple[Column, ...], rows: list[Row], mode: Mode
) -> tuple[int, int, int]:
    """One multi-row INSERT; returns (inserted, updated, skipped)."""
    statement = sql.insert(table, columns, [values for _, values in rows], mode=mode)
    result = await session.execute(*statement)
    count = len(rows)
    if mode == "ignore":
        if result.warnings:
            # INSERT IGNORE also turns other errors into warnings: only duplicates may be skipped.
            other = [w for w in await session.warnings() if w[0] != DUPLICATE_KEY]
            if other:
                raise DatabaseError(*other[0])
        return result.affected, 0, count - result.affected
    if mode == "upsert":
        # With CLIENT_FOUND_ROWS: 1 per inserted row, 2 per updated row, 1 per row left as it was.
        updated = result.affected - count
        return count - updated, updated, 0
    return count, 0, 0
