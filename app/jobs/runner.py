"""Job workers: every instance runs `GATEWAY_JOB_WORKERS` of them, and any of them may finish any job.

A worker claims the oldest queued job (or a running one whose lease lapsed: its instance died),
then runs it through the import engine with a checkpoint (imports/checkpoint.py): what earlier
attempts committed is skipped, and each transaction records what it commits. While it runs, a
heartbeat renews the lease every `GATEWAY_JOB_HEARTBEAT_S` with the progress so far, and learns
whether the job is to stop (cancelled, or the lease was lost). Outcomes:

    the import ends (even with bad rows)       succeeded, with its report
    a 4xx (bad header, atomic rolled back)     failed, with the error and the report
    the database is unavailable (5xx)          queued again after GATEWAY_JOB_RETRY_S, resumed
                                               later by any instance (up to GATEWAY_JOB_MAX_ATTEMPTS)
    cancelled                                  cancelled; committed batches stay, and are reported
    lease lost                                 nothing: the instance that took it over reports
    this instance shuts down                   queued again at once for the others
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import GatewayError
from app.core.observability import RepeatedWarning
from app.imports.checkpoint import Checkpoint
from app.imports.engine import ImportEngine
from app.imports.records import Source
from app.imports.uploads import open_upload, upload_options
from app.jobs.files import Arrival, read_upload
from app.jobs.s3 import ObjectRef, ObjectStore
from app.jobs.store import Hold, Job, JobStore, LeaseLost

log = logging.getLogger("gateway.jobs")
RETRIED = frozenset({"service_unavailable", "gateway_timeout", "commit_outcome_unknown"})
PIECE_BYTES = 64 * 1024
SWEEP_EVERY = 10  # idle polls between sweeps of stale uploads and expired jobs


class JobStopped(GatewayError):
    """Internal: the job's source stops because the job is to stop (`reason`). Never reaches a client."""

    status, code = 409, "job_stopped"

    def __init__(self, reason: str):
        super().__init__(f"the job stopped: {reason}")
        self.reason = reason


@dataclass
class Running:
    """One attempt of a job on this instance."""

    job: Job
    hold: Hold
    bytes_done: int = 0
    stop: str | None = None  # "cancel", "lost", "shutdown"
    checkpoint: Checkpoint | None = None
    last: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.stop is not None:
            raise JobStopped(self.stop)

    def progress(self) -> dict[str, Any]:
        report = self.checkpoint.report if self.checkpoint is not None else None
        if report is None:
            return {"bytes_done": self.bytes_done, "rows_read": 0, "rows_written": 0, "rows_failed": 0, "report": None}
        return {
            "bytes_done": self.bytes_done,
            "rows_read": report.rows_read,
            "rows_written": report.rows_inserted + report.rows_updated,
            "rows_failed": report.rows_failed,
            "report": report.as_dict(),
        }


def _error(exc: GatewayError) -> dict[str, Any]:
    details = exc.details.get("cause") if isinstance(exc.details, dict) and "report" in exc.details else exc.details
    return {"code": exc.code, "message": exc.message, "details": details}


def _report(exc: GatewayError) -> dict | None:
    """The import report an engine error carries, if any."""
    if isinstance(exc.details, dict):
        if "report" in exc.details:
            return exc.details["report"]
        if "rows_read" in exc.details:  # import_rolled_back: the details are the report
            return exc.details
    return None


class JobRunner:
    def __init__(
        self, store: JobStore, engine: ImportEngine, objects: ObjectStore, settings: Any,
        sweeps: Sequence[Callable[[], Awaitable[Any]]] = (),
    ):
        self.store, self.engine, self.objects, self.settings = store, engine, objects, settings
        self.sweeps = sweeps  # other records past their retention, dropped on the same idle sweep
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()
        # Every poll fails while the database is away: said once (and a minute apart), not a poll.
        self._claim_failing = RepeatedWarning(log, "job claim failed")
        self._sweep_failing = RepeatedWarning(log, "job sweep failed")
        self.running: dict[str, Running] = {}
        self.ended: dict[str, int] = {}  # jobs this instance ended, by state (metrics)
        self.rows: dict[str, int] = {"written": 0, "failed": 0}  # rows of the jobs it ended
        self.states: dict[str, int] = {}  # jobs in the database by state, as last counted
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.arrivals: dict[str, Arrival] = {}  # uploads being stored here while their job runs
        self._adopted: set[asyncio.Task] = set()
        self._busy: set[asyncio.Task | None] = set()  # workers inside a job

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"job-worker-{i}") for i in range(self.settings.job_workers)
        ]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Running jobs stop after their in-flight batches and are queued again for other instances."""
        self._stopping = True
        self.wake.set()
        for running in self.running.values():
            running.stop = "shutdown"
        for task in self._tasks:  # a worker not running a job stops at once (it may be claiming)
            if task not in self._busy:
                task.cancel()
        tasks = [*self._tasks, *self._adopted]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    def adopt(self, job: Job, arrival: Arrival) -> None:
        """Run a job this instance holds already (created `running`: its upload is being stored
        here, and the import follows it chunk by chunk instead of waiting for the whole file)."""
        self.arrivals[job.id] = arrival
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self._adopted.add(task)

        def done(finished: asyncio.Task) -> None:
            self._adopted.discard(finished)
            self.arrivals.pop(job.id, None)

        task.add_done_callback(done)

    def cancel_local(self, job_id: str) -> None:
        """A cancellation seen by this instance stops its own run at once (others: next heartbeat)."""
        if (running := self.running.get(job_id)) is not None:
            running.stop = "cancel"

    # --- the worker loop -------------------------------------------------------------------------

    async def _worker(self) -> None:
        idle = 0
        while not self._stopping:
            try:
                job = await self.store.claim(self.owner, self.settings.job_lease_s)
                self._claim_failing.cleared()
            except GatewayError as exc:
                self._claim_failing.seen(f"{exc.message} ({exc.code})")
                job = None
            except Exception:  # a worker must outlive any one failure
                log.exception("job claim failed")
                job = None
            if job is not None:
                idle = 0
                self._busy.add(asyncio.current_task())
                try:
                    await self._run(job)
                finally:
                    self._busy.discard(asyncio.current_task())
                continue
            if idle % SWEEP_EVERY == 0:
                await self._sweep()
            idle += 1
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.settings.job_poll_s)
            except TimeoutError:
                pass

    async def _sweep(self) -> None:
        try:
            await self.store.sweep(self.settings.job_lease_s, self.settings.job_retention_s)
            self.states = await self.store.count_by_state()
            for sweep in self.sweeps:
                await sweep()
            self._sweep_failing.cleared()
        except GatewayError as exc:
            self._sweep_failing.seen(f"{exc.message} ({exc.code})")
        except Exception:
            log.exception("job sweep failed")

    # --- one job ---------------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        running = Running(job, Hold(job.id, self.owner, job.attempt), stop="shutdown" if self._stopping else None)
        self.running[job.id] = running
        heartbeat = asyncio.create_task(self._heartbeat(running))
        try:
            await self._attempt(running)
        except GatewayError as exc:
            log.warning("job %s: could not record its outcome: %s (%s)", job.id, exc.message, exc.code)
        except Exception:
            log.exception("job %s: unexpected failure", job.id)
            try:
                await self._end(running, "failed", None, {"code": "internal_error", "message": "internal error"})
            except Exception:  # the lease lapses and another attempt tries (up to the attempts allowed)
                log.exception("job %s: could not record the failure", job.id)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            del self.running[job.id]

    async def _attempt(self, running: Running) -> None:
        job, hold = running.job, running.hold
        if job.cancel_requested:  # asked while its last holder was gone
            await self._end(running, "cancelled", job.report, None)
            return
        if job.attempt > self.settings.job_max_attempts:
            error = {
                "code": "job_gave_up",
                "message": f"the job did not finish in {job.attempt - 1} attempts",
                "last_error": job.error,
            }
            await self._end(running, "failed", job.report, error)
            return
        options = job.options
        done = await self.store.committed(job.id)
        running.checkpoint = Checkpoint(
            done, lambda session, spans, counts: self.store.record(session, hold, spans, counts), check=running.check
        )
        try:
            report = await self.engine.run(
                job.table,
                lambda: self._open(running),
                mode=options.get("mode", "insert"),
                atomic=bool(options.get("atomic")),
                null=options.get("null"),
                checkpoint=running.checkpoint,
            )
        except (JobStopped, LeaseLost) as exc:
            reason = exc.reason if isinstance(exc, JobStopped) else "lost"
            if reason == "cancel":
                await self._end(running, "cancelled", _report(exc), None)
            elif reason == "shutdown":
                await self.store.retry_later(
                    hold, 0, {"code": "instance_stopped", "message": "the instance running it stopped"}, _report(exc)
                )
            return  # lost: the instance that holds it now reports
        except GatewayError as exc:
            if exc.code in RETRIED and job.attempt < self.settings.job_max_attempts:
                log.warning("job %s: attempt %s stopped (%s); it will be resumed", job.id, job.attempt, exc.code)
                await self.store.retry_later(hold, self.settings.job_retry_s, _error(exc), _report(exc))
                return
            await self._end(running, "failed", _report(exc), _error(exc))
            return
        await self._end(running, "succeeded", report, None)

    async def _end(self, running: Running, state: str, report: dict | None, error: dict | None) -> None:
        progress = running.progress()
        if report is not None:
            written = report.get("rows_inserted", 0) + report.get("rows_updated", 0)
            progress |= {
                "rows_read": report["rows_read"],
                "rows_written": written,
                "rows_failed": report["rows_failed"],
            }
        if (arrival := self.arrivals.get(running.job.id)) is not None:
            arrival.abandoned = True  # the upload still arriving need not be stored
        if await self.store.finish(running.hold, state, report, error, progress):
            self.ended[state] = self.ended.get(state, 0) + 1
            self.rows["written"] += progress["rows_written"]
            self.rows["failed"] += progress["rows_failed"]

    async def _heartbeat(self, running: Running) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.job_heartbeat_s)
            try:
                verdict = await self.store.renew(running.hold, settings.job_lease_s, running.progress())
            except GatewayError as exc:
                log.warning("job %s: heartbeat failed: %s (%s)", running.job.id, exc.message, exc.code)
                continue
            if verdict != "held":
                running.stop = running.stop or verdict
                return

    # --- the source ------------------------------------------------------------------------------

    async def _open(self, running: Running) -> Source:
        job, settings = running.job, self.settings
        options = job.options
        if job.source.startswith("s3://"):
            chunks = self.objects.read(ObjectRef(options["bucket"], options["key"]), options.get("etag"))
        else:
            chunks = read_upload(self.store, job.id, job.chunks, self.arrivals.get(job.id))
        return await open_upload(
            self._counted(chunks, running),
            options.get("format", "csv"),
            **upload_options(settings, options.get("sheet"), options.get("null")),
        )

    @staticmethod
    async def _counted(chunks: AsyncIterator[bytes], running: Running) -> AsyncIterator[bytes]:
        """The bytes in pieces the size an upload arrives in (a stored chunk is megabytes: read whole,
        it would make one block, and one batch, of tens of thousands of rows), counted."""
        async for chunk in chunks:
            for start in range(0, len(chunk), PIECE_BYTES):
                running.check()
                piece = chunk[start : start + PIECE_BYTES]
                running.bytes_done += len(piece)
                yield piece
