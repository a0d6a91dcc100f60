"""Writing one batch of an import: the cheapest way that is exact.

1. the uploaded CSV text itself by LOAD DATA LOCAL (from memory), when every cell is in a form the
   server reads exactly as the converters would;
2. else the converted rows, serialized as canonical CSV, by LOAD DATA LOCAL;
3. else (upserts, atomic imports, or any batch LOAD DATA has something to say about) by multi-row
   INSERTs; a batch the database refuses is split in halves until its bad rows are isolated, and
   the good rows go in.
Each batch is one transaction through the retry wrapper (the bulk schedule). Rules (a table's JSON
Schema) and the duplicate probe run before a batch is written: the rows they name are reported
and left out.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal, TypeVar

from app.core import tracing
from app.core.errors import CommitOutcomeUnknown, Conflict, DatabaseError, GatewayError, ImportRolledBack
from app.db.catalog import Column, Table
from app.db.database import Database, Session
from app.db.errors import classify
from app.imports.checkpoint import Counts, Ranges, written
from app.imports.records import Record
from app.imports.report import ImportReport, span
from app.query import sql
from app.rows.plan import (
    BARE_NULL,
    ROW_ERRORS,
    ImportPlan,
    Row,
    convert_batch,
    convert_record,
    for_insert,
    given_columns,
    has_omitted,
)
from app.rows.problems import RowProblem, joined
from app.rows.rules import ByColumn, Problem, Rules, json_form
from app.rows.values import OMITTED, QUOTED_TEXT, TEXT_KINDS, empty_is_null
from app.services.duplicates import Duplicate, DuplicateProbe

Mode = Literal["insert", "ignore", "upsert"]
T = TypeVar("T")
DUPLICATE_KEY = 1062
# The server refuses LOAD DATA LOCAL: not allowed / disabled / the client side refused.
LOAD_DATA_REFUSED = frozenset({1148, 3948, 2068, 4166})


class UseInserts(Exception):
    """Internal: the LOAD DATA of a batch had something to say (a warning) or was refused; the batch
    is rolled back and written with INSERTs, which name each bad row exactly. Never reaches a client."""

    def __init__(self, reason: str, *, refused: bool = False, duplicates: bool = False):
        super().__init__(reason)
        self.refused, self.duplicates = refused, duplicates


@dataclass
class Batch:
    records: list[Record]  # read; converted by the writer that takes the batch
    text: str | None  # the records' text as uploaded, when it says exactly what they say
    rows: list[Row] | None = None  # converted already (and checked against the rules)
    canonical: bool | None = None  # _canonical_text's verdict, once computed
    columns: list[tuple] | None = None  # the records' cells a column at a time, once computed


@dataclass
class Prepared:
    """An atomic import's batch, checked, and how LOAD DATA takes it if it can: (statement, bytes,
    the positions it holds, "text" or "rows")."""

    batch: Batch
    load: tuple[tuple[str, tuple], bytes, Sequence[Any], str] | None = None


@dataclass
class ImportRun:
    """One import's fixed parts, handed to every step."""

    table: Table
    plan: ImportPlan
    mode: Mode
    report: ImportReport
    probe: DuplicateProbe | None = None
    rules: Rules | None = None
    make_row: Callable[[Any], dict] | None = None  # converted values -> the row the rules check
    rule_columns: list[tuple[Column, int, Callable[[Any], Any]]] = field(default_factory=list)  # column, cell, convert
    after: Callable[[Session, dict], Awaitable[None]] | None = None  # atomic: inside the transaction
    # A job's record of each transaction's committed positions, inside that transaction (checkpoint.py).
    record: Callable[[Session, Ranges, Counts], Awaitable[None]] | None = None


@dataclass
class BatchWriter:
    db: Database
    load_data: bool = True  # turned off for good if the server refuses LOAD DATA LOCAL
    batches_by_path: dict[str, int] = field(default_factory=lambda: {"text": 0, "rows": 0, "inserts": 0})

    # --- checks before writing ------------------------------------------------------------------

    @staticmethod
    def convert(run: ImportRun, records: list[Record], *, rules: bool = True) -> list[Row]:
        """The records' values; a record that does not convert is reported (position, column,
        reason), and with `rules` one that breaks a rule (checked row by row)."""
        rows = convert_batch(run.plan, records)
        if rows is None:
            rows = []
            for position, fields in records:
                try:
                    rows.append((position, convert_record(run.plan, fields)))
                except ROW_ERRORS as exc:
                    run.report.fail(position, RowProblem.of(exc))
        if rules and run.rules is not None and rows:
            rows = keep_valid(run, rows)
        return rows

    def checked(self, run: ImportRun, batch: Batch) -> Batch:
        """With rules, a batch is checked before anything else, and only its good records go on (its
        text then says more than they do, and is dropped). Rules that allow it are checked a column
        at a time, on the rule columns alone; others row by row, on converted rows."""
        if run.rules is None:
            return batch
        by_column = run.rules.by_column
        failed = None
        if by_column is not None and (values := self._rule_values(run, batch, by_column)) is not None:
            try:
                failed = by_column.check(values, len(batch.records))
            except (ValueError, TypeError, OverflowError):
                failed = None  # a value the validator cannot take: the row path names it
        if failed is not None:
            if not failed:
                return batch
            for index, problems in sorted(failed.items()):
                _report_rules(run, batch.records[index][0], problems)
            return Batch([r for i, r in enumerate(batch.records) if i not in failed], None)
        rows = self.convert(run, batch.records)
        if len(rows) == len(batch.records):
            return Batch(batch.records, batch.text, rows)
        good = {position for position, _ in rows}
        return Batch([r for r in batch.records if r[0] in good], None, rows)

    def checked_rows(self, run: ImportRun, batch: Batch) -> list[Row]:
        """A batch's good rows, converted: rules (a column at a time where they allow), then types."""
        batch = self.checked(run, batch)
        return batch.rows if batch.rows is not None else self.convert(run, batch.records, rules=False)

    @staticmethod
    def _rule_values(run: ImportRun, batch: Batch, by_column: ByColumn) -> dict[str, Sequence[Any]] | None:
        """The rule columns' values as the rules see them (None for NULL); None if a cell does not
        convert (the row path then names it). Canonical CSV text needs no converters: its cells
        are in the forms builtins read."""
        plan = run.plan
        cells = _columns(plan, batch)
        if cells is None:
            return None
        canonical = _canonical_text(plan, batch) is not None
        values: dict[str, Sequence[Any]] = {}
        null = BARE_NULL if plan.load_data else None
        for column, position, convert in run.rule_columns:
            if column.name not in by_column.batch:  # only `required`: whether there is a value
                values[column.name] = presence(column, cells[position], plan)
                continue
            if canonical:
                values[column.name] = canonical_json(column, cells[position], plan)
                continue
            try:
                converted = list(map(convert, cells[position]))
            except ROW_ERRORS:
                return None
            fix = json_form(column)
            values[column.name] = [
                None if v is None or v is null or v is OMITTED else (v if fix is None else fix(v)) for v in converted
            ]
        return values

    # --- one batch, pipelined imports ----------------------------------------------------------

    async def write(self, run: ImportRun, batch: Batch) -> None:
        """Write one batch. With a duplicate probe (plain inserts into a table with unique keys), the
        rows whose key is taken are reported first and left out; a batch the probe skipped that
        turns out to hold duplicates is probed and written again, never split row by row."""
        with tracing.span("import.batch", **{"gateway.table": run.table.name, "import.rows": len(batch.records)}):
            await self._write(run, batch)

    async def _write(self, run: ImportRun, batch: Batch) -> None:
        batch = self.checked(run, batch)
        if not batch.records:
            return
        duplicates: dict[int, Duplicate] = {}
        probe = run.probe
        if probe is not None and probe.active:
            duplicates = await probe.find(self.db, batch.records)
            probe.saw(len(duplicates))
        if await self._write_batch(run, batch, duplicates) == "duplicates" and probe is not None:
            duplicates = await probe.find(self.db, batch.records)
            probe.saw(len(duplicates))
            await self._write_batch(run, batch, duplicates, last_try=True)

    async def _write_batch(
        self, run: ImportRun, batch: Batch, duplicates: dict[int, Duplicate], *, last_try: bool = False
    ) -> str | None:
        """The first way of the module's list that is exact for this batch. "duplicates": the server
        met duplicate keys the probe had not named, and nothing was written (the caller probes and
        comes back)."""
        table, plan, mode, report = run.table, run.plan, run.mode, run.report
        if len(duplicates) == len(batch.records):  # nothing to write: no statement, no ids burnt
            report_duplicates(duplicates, report)
            return None
        if plan.load_data and self.load_data:
            text = _canonical_text(plan, batch)
            if text is not None:
                # The terminator is the batch's own; a record ending otherwise would merge with the next
                # one, and the row count check in load_rows sends the batch the exact way.
                crlf = text.endswith("\r\n")
                skips = len(duplicates)
                statement = sql.load_data_text(
                    table,
                    plan.header_columns,
                    null=plan.null,
                    standard=plan.standard,
                    crlf=crlf,
                    ignore=mode == "ignore" or skips > 0,
                    delimiter=plan.delimiter,
                    direct=_direct(plan, batch),
                )
                load = lambda s: load_rows(s, statement, text.encode(), len(batch.records), mode, skips)  # noqa: E731
                outcome = await self._try_load(run, batch.records, load, skip=duplicates)
                if outcome == "ok":
                    self.batches_by_path["text"] += 1
                    report_duplicates(duplicates, report)
                    return None
                if outcome == "duplicates" and not last_try:
                    return outcome
        report_duplicates(duplicates, report)
        if batch.rows is not None:
            rows = [r for r in batch.rows if r[0] not in duplicates] if duplicates else batch.rows
        else:  # the rules were checked already (`write` checks the batch first)
            records = [r for r in batch.records if r[0] not in duplicates] if duplicates else batch.records
            rows = self.convert(run, records, rules=False)
        if not rows:
            return None
        columns, given = given_columns(plan.columns, rows) if plan.cells == "json" else (plan.columns, rows)
        if plan.load_data and self.load_data and columns and (plan.cells != "json" or not has_omitted(given)):
            statement = sql.load_data(table, columns, ignore=mode == "ignore")
            outcome = await self._try_load(
                run, given, lambda s: load_rows(s, statement, serialize(given), len(given), mode)
            )
            if outcome == "ok":
                self.batches_by_path["rows"] += 1
                return None
            if outcome == "duplicates" and not last_try and not duplicates:
                return outcome
        if plan.load_data:
            rows = for_insert(plan, rows)
        self.batches_by_path["inserts"] += 1
        await self._insert_or_split(run, rows)
        return None

    async def _try_load(
        self, run: ImportRun, rows: list[Any], work: Callable[[Session], Awaitable[Counts]], skip: Container[int] = ()
    ) -> str:
        """A LOAD DATA of one batch: "ok", or why the batch must be written another way ("duplicates":
        the server skipped rows for duplicate keys only; "other"). `skip`: positions the server is
        expected to skip (duplicates the probe named)."""
        report = run.report
        try:
            counts = await self._transact(run, rows, work, skip)
        except UseInserts as exc:
            if exc.refused:
                self.load_data = False
            return "duplicates" if exc.duplicates else "other"
        except GatewayError as exc:
            if exc.status >= 500:
                raise
            return "other"  # refused as a whole (a CHECK constraint, say): the exact path names the rows
        _applied(rows, counts, report)
        return "ok"

    async def _insert_or_split(self, run: ImportRun, rows: list[Row]) -> None:
        """INSERT one batch in its own transaction; split it when the database refuses it."""
        table, columns, mode, report = run.table, run.plan.columns, run.mode, run.report
        try:
            counts = await self._transact(run, rows, lambda s: insert_rows(s, table, columns, rows, mode))
        except GatewayError as exc:
            if exc.status >= 500:  # unavailable, timed out, COMMIT unanswered: not the rows' fault
                raise
            await _split(rows, exc, report, lambda half: self._insert_or_split(run, half))
            return
        _applied(rows, counts, report)

    async def _transact(
        self, run: ImportRun, rows: list[Any], work: Callable[[Session], Awaitable[Counts]], skip: Container[int] = ()
    ) -> Counts:
        """One transaction through the wrapper (bulk schedule). A 5xx outcome (unavailable, timed
        out, COMMIT unanswered) is not the rows' fault: it is recorded and ends the import. A job's
        `record` runs inside the transaction, with the positions it writes (all but `skip`)."""
        report, record = run.report, run.record
        if record is not None:
            inner = work

            async def work(session: Session) -> Counts:
                counts = await inner(session)
                await record(session, written(rows, skip), counts)
                return counts

        try:
            return await self.db.transaction(work, bulk=True)
        except GatewayError as exc:
            if exc.status >= 500:
                if exc.code == "commit_outcome_unknown":
                    report.outcome_unknown.append(span(rows))
                    report.rows_outcome_unknown += len(rows)
                else:
                    report.not_written(span(rows), len(rows))
            raise

    # --- all or nothing ---------------------------------------------------------------------------

    async def atomic(self, run: ImportRun, batches: AsyncIterator[Batch]) -> None:
        """All or nothing: one transaction on one connection. A plain or `ignore` import loads each
        batch by LOAD DATA LOCAL behind a savepoint (as fast as a plain import); a batch the server
        has a word to say about is rolled back to the savepoint and written with INSERTs, like
        upserts. A statement that fails rolls back only itself (InnoDB statement atomicity), so bad
        rows are isolated the same way, then everything is rolled back and the report says why.
        Batches are checked and their LOAD DATA made by the read-ahead task (`_prepared`) while the
        batch before them loads: the one connection is never left waiting for Python."""
        table, plan, mode, report = run.table, run.plan, run.mode, run.report
        applied = {"inserted": 0, "updated": 0, "skipped": 0}
        spans: list[list[int]] = []  # the positions written so far, in the open transaction

        async def load(session: Session, ready: Prepared) -> bool:
            """The batch by LOAD DATA behind a savepoint: True if it is in, False if it is rolled
            back to the savepoint, to be written with INSERTs."""
            assert ready.load is not None
            statement, data, positions, path = ready.load
            await session.execute("SAVEPOINT gateway_batch")
            try:
                inserted, _, skipped = await load_rows(session, statement, data, len(positions), mode)
            except UseInserts as exc:
                await session.execute("ROLLBACK TO SAVEPOINT gateway_batch")
                if exc.refused:
                    self.load_data = False
                return False
            applied["inserted"] += inserted
            applied["skipped"] += skipped
            spans.append(span(positions))
            self.batches_by_path[path] += 1
            return True

        async def write(session: Session, rows: list[Row]) -> None:
            try:
                inserted, updated, skipped = await insert_rows(session, table, plan.columns, rows, mode)
            except DatabaseError as exc:
                problem = classify(exc)
                if problem.status >= 500:
                    raise problem from exc
                await _split(rows, problem, report, lambda half: write(session, half))
                return
            applied["inserted"] += inserted
            applied["updated"] += updated
            applied["skipped"] += skipped
            spans.append(span(rows))

        try:
            async with self.db.long_transaction() as session:
                async for ready in read_ahead(self._prepared(run, batches)):
                    if report.rows_failed:
                        break  # the import is lost already: stop reading
                    if ready.load is not None and self.load_data and await load(session, ready):
                        continue
                    batch = ready.batch
                    rows = batch.rows if batch.rows is not None else self.convert(run, batch.records, rules=False)
                    if rows and not report.rows_failed:
                        await write(session, for_insert(plan, rows) if plan.load_data else rows)
                if report.rows_failed:
                    report.rows_not_applied = report.rows_read - report.rows_failed
                    raise ImportRolledBack(
                        f"atomic import rolled back: {report.rows_failed} bad row(s); the table is unchanged",
                        report.as_dict(),
                    )
                # What COMMIT makes durable; an idempotency key's record stores this report with it.
                report.rows_inserted, report.rows_updated, report.rows_skipped = (
                    applied["inserted"],
                    applied["updated"],
                    applied["skipped"],
                )
                report.committed = spans
                if run.record is not None:
                    await run.record(session, spans, (report.rows_inserted, report.rows_updated, report.rows_skipped))
                if run.after is not None:
                    await run.after(session, report.as_dict())
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

    async def _prepared(self, run: ImportRun, batches: AsyncIterator[Batch]) -> AsyncIterator[Prepared]:
        """An atomic import's batches checked (rules, types), converted, and where LOAD DATA may
        take them, with the statement and bytes to send: a batch's CPU work, done ahead of its turn."""
        table, plan, mode, report = run.table, run.plan, run.mode, run.report
        async for batch in batches:
            batch = self.checked(run, batch)
            loads = plan.load_data and self.load_data
            if report.rows_failed or not batch.records:
                yield Prepared(batch)  # the import is lost already, or nothing is left to write
                continue
            if loads and (text := _canonical_text(plan, batch)) is not None:
                statement = sql.load_data_text(
                    table,
                    plan.header_columns,
                    null=plan.null,
                    standard=plan.standard,
                    crlf=text.endswith("\r\n"),
                    ignore=mode == "ignore",
                    delimiter=plan.delimiter,
                    direct=_direct(plan, batch),
                )
                yield Prepared(batch, (statement, text.encode(), batch.records, "text"))
                continue
            rows = batch.rows if batch.rows is not None else self.convert(run, batch.records, rules=False)
            batch = Batch(batch.records, None, rows)
            columns, given = given_columns(plan.columns, rows) if plan.cells == "json" else (plan.columns, rows)
            if (
                loads
                and given
                and columns
                and not report.rows_failed
                and (plan.cells != "json" or not has_omitted(given))
            ):
                statement = sql.load_data(table, columns, ignore=mode == "ignore")
                yield Prepared(batch, (statement, serialize(given), given, "rows"))
            else:  # INSERTs: upserts, and DEFAULTs only INSERT can say
                yield Prepared(batch)


async def read_ahead(batches: AsyncIterator[T], depth: int = 2) -> AsyncIterator[T]:
    """The next batches read (and parsed) by a task of their own while this one is written: the
    file is read while the server loads, not only between loads. What stops the reading (a bad
    file) comes out in order, after the batches before it."""
    queue: asyncio.Queue[T | BaseException | None] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for batch in batches:
                await queue.put(batch)
            await queue.put(None)
        except Exception as exc:
            await queue.put(exc)

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def keep_valid(run: ImportRun, rows: list[Row]) -> list[Row]:
    """The rows that satisfy the table's rules; the others are reported with the rule they break."""
    rules, make = run.rules, run.make_row
    assert rules is not None and make is not None
    made = [make(values) for _, values in rows]
    if all(map(rules.validator.is_valid, made)):
        return rows
    good = []
    for row, instance in zip(rows, made):
        problems = rules.problems(instance)
        if problems:
            _report_rules(run, row[0], problems)
        else:
            good.append(row)
    return good


def _report_rules(run: ImportRun, position: int, problems: list[Problem]) -> None:
    version = run.rules.version if run.rules is not None else None
    run.report.fail(position, joined([RowProblem.breaking(p.column, p.rule, p.reason, version) for p in problems]))


def presence(column: Column, cells: Sequence[Any], plan: ImportPlan) -> Sequence[Any]:
    """Cells where only NULL or not matters: None for NULL, the cell otherwise."""
    if plan.cells != "text":
        null = plan.null if plan.cells == "sheet" else None
        return [None if c is None or c is OMITTED or (null is not None and c == null) else c for c in cells]
    return _text_nulls(column, cells, plan)


def _text_nulls(column: Column, cells: Sequence[str], plan: ImportPlan) -> Sequence[str | None]:
    """CSV cells with NULL as None: the marker, the empty cell where it is NULL, and outside text
    columns a quoted "" or "\\N" too (the text of such a cell in a text column stays marked)."""
    null, empty_null = plan.null, empty_is_null(column, plan.standard)
    marked = plan.standard and column.kind not in TEXT_KINDS and not QUOTED_TEXT.keys().isdisjoint(cells)
    if null in cells or (empty_null and "" in cells) or marked:
        return [None if c == null or (empty_null and c == "") or (marked and c in QUOTED_TEXT) else c for c in cells]
    return cells  # a tuple is an array to the validator


def canonical_json(column: Column, cells: Sequence[str], plan: ImportPlan) -> Sequence[Any]:
    """Canonical CSV cells (values.canonical_check passed) as the rules see them, by builtins."""
    kind, null = column.kind, plan.null
    if kind in ("int", "bool", "decimal", "float"):
        number = int if kind in ("int", "bool") else float
        if null in cells or "" in cells:
            return [None if c == null or c == "" else number(c) for c in cells]
        return list(map(number, cells))
    if kind in ("datetime", "timestamp"):
        return [None if c == null or c == "" else c.replace(" ", "T", 1) for c in cells]
    return _text_nulls(column, cells, plan)


def report_duplicates(duplicates: dict[int, Duplicate], report: ImportReport) -> None:
    for duplicate in duplicates.values():
        if report.listing:
            report.fail(duplicate.line, RowProblem(Conflict.code, duplicate.reason, key=duplicate.key))
        else:
            report.counted_failure()


def _applied(rows: list[Row], counts: tuple[int, int, int], report: ImportReport) -> None:
    report.rows_inserted += counts[0]
    report.rows_updated += counts[1]
    report.rows_skipped += counts[2]
    report.committed.append(span(rows))


async def _split(
    rows: list[Row], exc: GatewayError, report: ImportReport, write: Callable[[list[Row]], Awaitable[None]]
) -> None:
    if len(rows) == 1:
        report.fail(rows[0][0], RowProblem.of(exc))
        return
    middle = len(rows) // 2
    await write(rows[:middle])
    await write(rows[middle:])


def serialize(rows: list[Row]) -> bytes:
    """The canonical CSV that `sql.load_data` reads."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows([values for _, values in rows])
    return buffer.getvalue().encode()


def _direct(plan: ImportPlan, batch: Batch) -> list[bool] | None:
    """Per field: may it load straight into its column (no NULL marker, no empty cell that is NULL)?"""
    columns = _columns(plan, batch)
    if columns is None:
        return None
    return [
        column is not None and plan.null not in cells and (not empty_is_null(column, plan.standard) or "" not in cells)
        for column, cells in zip(plan.header_columns, columns)
    ]


def _columns(plan: ImportPlan, batch: Batch) -> list[tuple] | None:
    """The batch's cells a column at a time (None if a record has the wrong number of cells)."""
    if batch.columns is None:
        fields = [f for _, f in batch.records]
        if any(len(f) != plan.width for f in fields):
            return None
        batch.columns = list(zip(*fields)) if fields else [() for _ in range(plan.width)]
    return batch.columns


def _canonical_text(plan: ImportPlan, batch: Batch) -> str | None:
    """The batch's uploaded text, if the server can read it as it is with exactly our meaning
    (decided once per batch: the rules' check and the writer both ask)."""
    if batch.canonical is None:
        checks = plan.checks
        columns = None if batch.text is None or checks is None else _columns(plan, batch)
        batch.canonical = (
            checks is not None and columns is not None and all(check(cells) for check, cells in zip(checks, columns))
        )
    return batch.text if batch.canonical else None


async def load_rows(
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
            raise UseInserts("LOAD DATA LOCAL refused", refused=True) from exc
        raise
    skipped = count - result.affected
    if result.warnings or skipped:
        only_duplicates = result.warnings == skipped and all(
            code == DUPLICATE_KEY for code, _ in await session.warnings()
        )
        if not only_duplicates:
            raise UseInserts("the batch has rows the database warned about, or not one row per record")
        if mode == "insert" and skipped != expected_skips:
            raise UseInserts("the batch holds duplicate keys the probe did not name", duplicates=True)
    return result.affected, 0, (skipped if mode == "ignore" else 0)


async def insert_rows(
    session: Session, table: Table, columns: tuple[Column, ...], rows: list[Row], mode: Mode
) -> tuple[int, int, int]:
    """One multi-row INSERT; returns (inserted, updated, skipped). OMITTED cells are DEFAULT. An
    upsert of rows that leave different columns out is one INSERT per run of rows giving the same
    columns, so an update sets only what its row gives (in the rows' order)."""
    sparse = has_omitted(rows)
    if sparse:
        columns, rows = given_columns(columns, rows)
        sparse = has_omitted(rows)
        if sparse and mode == "upsert":
            totals = (0, 0, 0)
            for _, run in groupby(rows, key=lambda row: tuple(v is OMITTED for v in row[1])):
                counts = await insert_rows(session, table, columns, list(run), mode)
                totals = (totals[0] + counts[0], totals[1] + counts[1], totals[2] + counts[2])
            return totals
    values = [list(v) for _, v in rows]
    defaults = None
    if sparse:
        defaults = [[v is OMITTED for v in row] for row in values]
        values = [[None if v is OMITTED else v for v in row] for row in values]
    statement = sql.insert(table, columns, values, mode=mode, defaults=defaults)
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
