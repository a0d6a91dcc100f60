"""The import engine: records from any source into one table, every record accounted for.

    run(table, open_source, mode, atomic, null, dry_run)
      1. the table is looked up (404 before a byte of the upload is read), then the source opened;
      2. its header is planned against the catalog (400 listing unknown / duplicate / missing columns);
      3. records are gathered into batches of about `batch_rows` rows or `batch_bytes` of text;
      4. batches are written (writer.py): pipelined on `writers` connections (one batch is read
         while others are written), or all in one transaction (atomic), or only checked (dry run:
         conversion, rules and duplicate keys, nothing written);
      5. the report (report.py) accounts for every record read, by position.
    A job's attempt after a crash passes a `Checkpoint` (checkpoint.py): the records earlier attempts
    committed are read, counted and skipped; every transaction records what it commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from app.core.errors import GatewayError, ImportRolledBack, InvalidHeader
from app.db.catalog import Catalog, Table
from app.db.database import Database, Session
from app.imports.checkpoint import Checkpoint, SkipCommitted
from app.imports.records import Record, RecordError, Source
from app.imports.report import ImportReport, span
from app.imports.writer import Batch, BatchWriter, ImportRun, Mode, report_duplicates
from app.rows.plan import BARE_NULL, ImportPlan, plan_import
from app.rows.rules import row_maker
from app.rows.values import OMITTED
from app.services.duplicates import DuplicateProbe
from app.services.policies import PolicyStore, refuse_bulk
from app.services.rules_store import RulesStore

DRY_RUN_KEYS = 1_000_000  # keys a validation remembers across batches (about 100 MB at most)


class ImportEngine:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        rules: RulesStore,
        rows_moved: dict[tuple[str, str], int],
        *,
        batch_rows: int,
        batch_bytes: int,
        writers: int,
        max_errors: int,
        load_data: bool = True,
        policies: PolicyStore | None = None,
    ):
        self.db, self.catalog, self.rules, self.policies = db, catalog, rules, policies
        self.batch_rows, self.batch_bytes, self.writers = batch_rows, batch_bytes, writers
        self.max_errors = max_errors
        self.writer = BatchWriter(db, load_data)
        self.rows_moved = rows_moved  # (import|export, table) -> rows, for metrics
        # Told the table after an import ends (its batches are committed): the read cache's invalidation.
        self.changed: Callable[[str], Awaitable[None]] | None = None

    @property
    def batches_by_path(self) -> dict[str, int]:
        return self.writer.batches_by_path

    async def run(
        self,
        name: str,
        open_source: Callable[[], Awaitable[Source]],
        *,
        mode: Mode,
        atomic: bool = False,
        null: str | None = None,
        dry_run: bool = False,
        after: Callable[[Session, dict], Awaitable[None]] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> dict:
        """Import (or with `dry_run`, only check) a source into table `name`. `after` (atomic imports
        only) runs inside the import's transaction with the final report, before COMMIT: an
        idempotency key's record commits with the rows. `checkpoint`: a job's (see above)."""
        table = await self.catalog.writable(name)
        await refuse_bulk(self.policies, table, "imports")
        source = await open_source()
        try:
            return await self._run(table, source, mode, atomic, null, dry_run, after, checkpoint)
        finally:
            await source.close()
            if not dry_run and self.changed is not None:
                await self.changed(table.name)  # the read cache: the table's answers go

    async def _run(
        self, table: Table, source: Source, mode: Mode, atomic: bool, null: str | None, dry_run: bool,
        after: Callable[[Session, dict], Awaitable[None]] | None, checkpoint: Checkpoint | None = None,
    ) -> dict:
        # LOAD DATA for plain and ignore imports (atomic ones too, behind savepoints); upserts use INSERTs.
        loads = self.writer.load_data and mode in ("insert", "ignore") and not dry_run
        try:
            plan = self._plan(table, source, null, loads)
        except InvalidHeader:
            await self.catalog.look(table.name)  # a column added since the catalog read the table?
            table = await self.catalog.writable(table.name)
            plan = self._plan(table, source, null, loads)
        if source.widen is not None:  # JSON: each object by its own keys, not only the first's
            source.header = source.widen(table)
            plan = self._plan(table, source, null, loads)
        report = ImportReport(table.name, mode, atomic, self.max_errors, source.unit, dry_run, source.extra)
        rules = await self.rules.for_table(table, fresh=True)
        run = ImportRun(table, plan, mode, report, rules=rules, after=after)
        skip = None
        if checkpoint is not None:
            done = checkpoint.done
            report.rows_inserted, report.rows_updated, report.rows_skipped = done.inserted, done.updated, done.skipped
            report.committed.extend(done.spans)
            run.record, checkpoint.report = checkpoint.record, report
            skip = SkipCommitted(done) or None
        if rules is not None:
            report.rules_version = rules.version
            run.rule_columns = [
                (column, position, convert)
                for column, position, convert in zip(plan.columns, plan.positions, plan.converters)
                if rules.names is None or column.name in rules.names
            ]
            run.make_row = row_maker(
                plan.columns,
                rules.names,
                BARE_NULL if plan.load_data else None,
                OMITTED if plan.cells == "json" else None,
            )
        if mode == "insert" and not atomic:  # each duplicate reported by position and key
            run.probe = DuplicateProbe.for_import(table, plan.header_columns, plan.key_converter)
            if run.probe is not None:
                run.probe.unit = source.unit
                run.probe.remember = DRY_RUN_KEYS if dry_run else 0
        batches = self._batches(source.blocks, report, skip, checkpoint.check if checkpoint else None)
        try:
            if dry_run:
                await self._check(run, batches)
            elif atomic and skip:  # an earlier attempt committed it all: only count what is read
                async for _ in batches:
                    pass
            elif atomic:
                await self.writer.atomic(run, batches)
            else:
                await self._pipelined(run, batches)
        except GatewayError as exc:
            if not isinstance(exc, ImportRolledBack):
                exc.details = {"cause": exc.details, "report": report.as_dict()}
            raise
        finally:
            key = ("import", table.name)
            self.rows_moved[key] = self.rows_moved.get(key, 0) + report.rows_inserted + report.rows_updated
        return report.as_dict()

    @staticmethod
    def _plan(table: Table, source: Source, null: str | None, loads: bool) -> ImportPlan:
        return plan_import(table, source.header, null, load_data=loads, cells=source.cells, delimiter=source.delimiter)

    async def _batches(
        self,
        blocks: AsyncIterator,
        report: ImportReport,
        skip: SkipCommitted | None = None,
        check: Callable[[], None] | None = None,
    ) -> AsyncIterator[Batch]:
        """Whole blocks, gathered into batches of about `batch_rows` rows or `batch_bytes` of text.
        Records at positions in `skip` (committed by an earlier attempt) are counted and left out;
        `check` may stop the import before a batch is handed on."""
        records: list[Record] = []
        texts: list[str] = []
        clean = True
        for_size = 0
        try:
            async for block in blocks:
                kept = len(records)
                for record in block.records:
                    report.rows_read += 1
                    if isinstance(record, RecordError):
                        report.fail(record.line, record.problem)
                    elif skip is None or record[0] not in skip:
                        records.append(record)
                texts.append(block.text)
                # The text says what the kept records say only when none was left out.
                clean = clean and block.clean and (skip is None or len(records) - kept == len(block.records))
                for_size += len(block.text)
                if len(records) >= self.batch_rows or for_size >= self.batch_bytes:
                    if check is not None:
                        check()
                    yield Batch(records, "".join(texts) if clean else None)
                    records, texts, clean, for_size = [], [], True, 0
            if records and check is not None:
                check()
        except GatewayError:  # the stream itself is bad (a quote that never ends, not UTF-8)
            if records:  # read, never written: the report says so
                report.not_written(span(records), len(records))
            raise
        if records:
            yield Batch(records, "".join(texts) if clean else None)

    async def _pipelined(self, run: ImportRun, batches: AsyncIterator[Batch]) -> None:
        """Batches flow through a short queue to `writers` tasks, each writing one batch at a time."""
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self.writers)
        fatal: list[Exception] = []  # what stopped the writers (they keep draining the queue after)
        report = run.report

        async def writer() -> None:
            while (batch := await queue.get()) is not None:
                if fatal:  # the database went away: what is still queued is not written
                    report.not_written(span(batch.records), len(batch.records))
                    continue
                try:
                    await self.writer.write(run, batch)
                except Exception as exc:
                    fatal.append(exc)

        tasks = [asyncio.create_task(writer()) for _ in range(self.writers)]
        try:
            async for batch in batches:
                if fatal:
                    report.not_written(span(batch.records), len(batch.records))
                    break
                await queue.put(batch)
        finally:
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)
        if fatal:
            raise fatal[0]

    async def _check(self, run: ImportRun, batches: AsyncIterator[Batch]) -> None:
        """A dry run: what an import would report before writing (conversion, rules, duplicate keys
        of a plain insert); what only the database can say (foreign keys, CHECK constraints) is not."""
        report = run.report
        async for batch in batches:
            rows = self.writer.checked_rows(run, batch)
            if run.probe is not None and rows:
                good = {position for position, _ in rows}
                duplicates = await run.probe.find(self.db, [r for r in batch.records if r[0] in good])
                report_duplicates(duplicates, report)
                rows = [r for r in rows if r[0] not in duplicates]
            report.rows_valid += len(rows)
        report.rows_not_applied = report.rows_valid  # checked, and not written
