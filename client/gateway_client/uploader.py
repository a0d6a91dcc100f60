"""An import as concurrent, retried, idempotent batches, over HTTP, the WebSocket or Kafka
(transports.py).

Each batch goes under a key derived from the file's content hash and the batch number
(batches.batch_key): a retried batch, or the whole command run again, never writes a row twice.
Connection errors, 429, 502, 503 and 504 (and a WebSocket group the database could not take) are
retried with exponential backoff and jitter, honouring Retry-After; a batch the gateway refuses rows
of (nothing of it was written) has those rows written to the failed file and is sent again without
them, under a key of its own. A batch that keeps failing past the retry budget stops the run: the
batches in flight finish, the state file says what is confirmed, `--resume` goes on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from gateway_client import readers, transports
from gateway_client import state as saved
from gateway_client.batches import Batch, batch_key, batches
from gateway_client.failed import FailedFile, failed_path
from gateway_client.transports import Stop

Transport = transports.Http | transports.WebSocket | transports.Kafka


@dataclass
class Outcome:
    """What one batch did, counted into the report when it is confirmed (not before: a client killed
    mid-batch must not have counted it)."""

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    published: int = 0
    refused: list[tuple[int, Any, str]] = field(default_factory=list)  # (line, row, reason)


@dataclass
class Options:
    path: Path
    url: str
    table: str
    mode: str = "insert"
    batch_rows: int = 5000
    concurrency: int = 4
    retries: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeout_s: float = 120.0
    resume: bool = False
    sheet: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    transport: str = "http"  # http, ws or kafka
    kafka_bootstrap: str = ""
    topic: str = ""  # kafka: the topic (the table's name by default)
    null: str | None = None  # CSV: the NULL marker (None: the standard convention, an unquoted empty cell or \\N)


@dataclass
class Report:
    file: str
    table: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    rows_published: int = 0  # kafka: handed to the broker, for the gateway's ingest to apply
    batches: int = 0
    batches_resumed: int = 0
    retries: int = 0
    failed_file: str | None = None
    elapsed_s: float = 0.0
    complete: bool = False
    stopped: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()} | {"rows_per_s": round(self.rows_per_s)}


Progress = Callable[[int, int], None]  # (rows just accounted for, bytes just sent)


def _wait(options: Options) -> Callable[[RetryCallState], float]:
    """Exponential backoff with full jitter, but never sooner than the server's Retry-After."""

    def wait(state: RetryCallState) -> float:
        ceiling = min(options.max_backoff_s, options.backoff_s * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, ceiling)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, transports.Transient) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    return wait


class Importer:
    def __init__(self, options: Options, progress: Progress = lambda rows, sent: None):
        self.options, self.progress = options, progress
        self.report = Report(str(options.path), options.table)
        self._stop: str | None = None

    async def run(self) -> Report:
        options = self.options
        started = time.monotonic()
        rows = readers.read(options.path, options.sheet)
        digest = readers.file_hash(options.path)
        fresh = saved.State(digest, options.table, options.mode, options.batch_rows)
        state_file = saved.state_path(options.path)
        state = fresh
        if options.resume:
            found = saved.load(state_file)
            if found is None or not found.matches(fresh):
                raise Stop(
                    f"no state to resume in {state_file.name} for this file, table, mode and batch size: run "
                    "without --resume"
                )
            state = found
        failed = FailedFile(failed_path(options.path, rows.kind), rows.kind, rows.header, append=options.resume)
        if options.resume:
            failed.cut(state.failed_bytes)
        self.report.rows_inserted, self.report.rows_updated = state.rows["inserted"], state.rows["updated"]
        self.report.rows_skipped, self.report.rows_failed = state.rows["skipped"], state.rows["failed"]
        self.report.rows_published = state.rows.get("published", 0)
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=options.concurrency)
        transport = self._transport()
        try:

            async def worker() -> None:
                while (batch := await queue.get()) is not None:
                    if self._stop is not None:
                        continue  # drain: not sent, the state says it is not confirmed
                    try:
                        outcome = await self._send(transport, rows, digest, batch)
                    except Stop as exc:
                        self._stop = self._stop or str(exc)
                        continue
                    # Confirmed: its refused rows written, then counted and saved together.
                    for line, row, reason in outcome.refused:
                        failed.write(line, row, reason)
                    report = self.report
                    report.rows_inserted += outcome.inserted
                    report.rows_updated += outcome.updated
                    report.rows_skipped += outcome.skipped
                    report.rows_failed += len(outcome.refused)
                    report.rows_published += outcome.published
                    report.batches += 1
                    state.confirm(batch.number)
                    state.rows = {
                        "inserted": report.rows_inserted,
                        "updated": report.rows_updated,
                        "skipped": report.rows_skipped,
                        "failed": report.rows_failed,
                        "published": report.rows_published,
                    }
                    state.failed_bytes = failed.flush()
                    saved.save(state, state_file)

            workers = [asyncio.create_task(worker()) for _ in range(options.concurrency)]
            try:
                for batch in batches(rows.blocks, options.batch_rows):
                    self.report.rows_read += len(batch.rows)
                    if state.confirmed(batch.number):  # by an earlier run
                        self.report.batches_resumed += 1
                        self.progress(len(batch.rows), 0)
                        continue
                    if self._stop is not None:
                        break
                    await queue.put(batch)
            finally:
                for _ in workers:
                    await queue.put(None)
                await asyncio.gather(*workers)
        finally:
            await transport.close()
            failed.close()
            self.report.elapsed_s = time.monotonic() - started
            self.report.failed_file = (
                str(failed.path) if failed.count or (options.resume and failed.path.exists()) else None
            )
        if self._stop is not None:
            self.report.stopped = self._stop
            raise Stop(
                f"{self._stop}; {state.batches_done} batch(es) confirmed: run again with --resume to send the rest"
            )
        self.report.complete = True
        return self.report

    def _transport(self) -> Transport:
        options = self.options
        if options.transport == "ws":
            return transports.WebSocket(options.url, options.table, options.mode, options.headers, options.null)
        if options.transport == "kafka":
            return transports.Kafka(options.kafka_bootstrap, options.topic or options.table, options.null)
        return transports.Http(
            options.url, options.table, options.mode, options.headers, options.concurrency, options.timeout_s,
            options.null,
        )

    async def _send(self, transport: Transport, rows: readers.Rows, digest: str, batch: Batch) -> Outcome:
        """One batch until it is in: sent again without the rows the gateway refuses."""
        options = self.options
        pending = batch.rows
        outcome = Outcome()
        if rows.kind == "jsonl" and not isinstance(transport, transports.Http):  # a line that is not JSON: refused here
            unreadable = [(line, row) for line, row in pending if isinstance(row, readers.Unreadable)]
            outcome.refused.extend((line, row, f"not valid JSON: {row.reason}") for line, row in unreadable)
            pending = [(line, row) for line, row in pending if not isinstance(row, readers.Unreadable)]
        attempt = 0
        while pending:
            # A marker reads the same file otherwise: its batches are other requests, under other keys.
            mode = options.mode if options.null is None else f"{options.mode}\nnull={options.null}"
            key = batch_key(digest, options.table, mode, options.batch_rows, batch.number, attempt)
            try:
                answer = await self._with_retries(lambda: transport.send(rows, pending, key))
            except Stop as exc:  # which batch, in the file's lines, so the user can look
                raise Stop(f"batch {batch.number} (lines {batch.rows[0][0]}-{batch.rows[-1][0]}): {exc}") from None
            self.progress(0, answer.sent)
            if isinstance(answer, transports.Confirmed):
                outcome.inserted, outcome.updated, outcome.skipped = answer.inserted, answer.updated, answer.skipped
                outcome.published = answer.published
                self.progress(len(pending), 0)
                return outcome
            keep = []
            for index, (line, row) in enumerate(pending):
                reason = answer.reasons.get(index)
                if reason is None:
                    keep.append((line, row))
                else:
                    outcome.refused.append((line, row, reason))
            self.progress(len(pending) - len(keep), 0)
            pending, attempt = keep, attempt + 1
        return outcome  # every row refused

    async def _with_retries(self, send: Callable[[], Awaitable[transports.Answer]]) -> transports.Answer:
        options = self.options
        retrying = AsyncRetrying(
            stop=stop_after_attempt(options.retries + 1),
            wait=_wait(options),
            retry=retry_if_exception(lambda exc: isinstance(exc, transports.Transient)),
            reraise=True,
            before_sleep=lambda state: setattr(self.report, "retries", self.report.retries + 1),
        )
        try:
            async for trial in retrying:
                with trial:
                    return await send()
        except transports.Transient as exc:
            raise Stop(f"failed {options.retries + 1} times (last: {exc})") from None
        raise AssertionError("unreachable")
