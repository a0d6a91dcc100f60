"""Import jobs as the routes see them: submit (an upload, or an object in S3), read, list, cancel,
follow. A job is seen and cancelled by whoever may import into its table; to anyone else it does
not exist (404, never 403: a job id says nothing about who made it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from app.core import jsontext
from app.core.auth import Principal
from app.core.errors import GatewayError, InvalidCsv, JobNotFound
from app.db.catalog import Catalog
from app.imports.uploads import SPREADSHEETS, Format, split_name
from app.jobs.files import Arrival, store_upload
from app.jobs.runner import JobRunner
from app.jobs.s3 import ObjectStore, parse_source
from app.jobs.store import ENDED, Job, JobStore
from app.jobs.view import describe
from app.services.policies import PolicyStore, refuse_bulk


class JobService:
    def __init__(
        self, store: JobStore, runner: JobRunner, objects: ObjectStore, catalog: Catalog, settings: Any,
        policies: PolicyStore | None = None,
    ):
        self.store, self.runner, self.objects, self.catalog, self.settings = store, runner, objects, catalog, settings
        self.policies = policies

    async def submit_upload(
        self, who: Principal, table: str, filename: str | None, chunks: AsyncIterator[bytes], options: dict[str, Any]
    ) -> dict:
        """Store the upload where every instance can read it; answer once it is stored. When this
        instance runs jobs, the job starts here at once and imports each chunk as soon as it is
        stored (so the import does not wait for the whole file); otherwise it is queued for any."""
        # 404 (405 for a view, 403 for a table with a row policy) before a byte is stored
        await refuse_bulk(self.policies, await self.catalog.writable(table), "imports")
        settings, runner = self.settings, self.runner
        source = f"upload:{filename or table}"
        arrival = Arrival() if settings.job_workers > 0 else None
        if arrival is not None:
            job_id = await self.store.create(
                table, source, options, who.name, state="running", lease_s=settings.job_lease_s, owner=runner.owner
            )
            runner.adopt(await self.store.get(job_id), arrival)
        else:
            job_id = await self.store.create(
                table, source, options, who.name, state="uploading", lease_s=settings.job_lease_s
            )
        # The uploader's lease is kept while the file arrives, however slowly (the running job's
        # own heartbeat keeps it when there is one).
        keeper = asyncio.create_task(self._keep_uploading(job_id)) if arrival is None else None
        try:
            size, count = await store_upload(
                self.store, job_id, chunks, settings.job_chunk_bytes, settings.job_lease_s, arrival
            )
        except BaseException as exc:
            if arrival is None:  # (with one, the running import fails the job: upload_interrupted)
                error = (
                    {"code": exc.code, "message": exc.message}
                    if isinstance(exc, GatewayError)
                    else {"code": "upload_interrupted", "message": "the upload stopped before the whole file arrived"}
                )
                await asyncio.shield(self.store.fail_upload(job_id, error))
            raise
        finally:
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
        await self.store.uploaded(job_id, size, count)
        if arrival is not None:
            arrival.finish(count)
        else:
            runner.wake.set()
        job = await self.store.get(job_id)
        if job.state in ENDED:  # it ended while the file arrived (a bad header): drop what was stored
            await self.store.forget_data(job_id)
        return describe(job)

    async def _keep_uploading(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_s)
            try:
                await self.store.renew_upload(job_id, self.settings.job_lease_s)
            except GatewayError:
                pass  # the next beat tries again; the sweep allows a lease of slack

    async def submit_source(self, who: Principal, body: dict[str, Any], allow: Any) -> dict:
        """A job reading an object from S3-compatible storage; what can be known now is checked now
        (the bucket is allowed, the object exists and the gateway may read it)."""
        ref = parse_source(body["source"], self.settings.s3_buckets)
        name, extension = split_name(ref.key)
        table = body.get("table") or name
        fmt: Format = body.get("format") or extension or "csv"
        if body.get("sheet") is not None and fmt not in SPREADSHEETS:
            raise InvalidCsv(f"`sheet` is for spreadsheets, and this object is {fmt.upper()}")
        allow(table)
        await refuse_bulk(self.policies, await self.catalog.writable(table), "imports")
        info = await self.objects.head(ref)
        options = {
            "mode": body.get("mode", "insert"),
            "atomic": bool(body.get("atomic", False)),
            "null": body.get("null"),
            "sheet": body.get("sheet"),
            "format": fmt,
            "bucket": ref.bucket,
            "key": ref.key,
            "etag": info.etag,
        }
        job_id = await self.store.create(
            table, ref.url, options, who.name, state="queued", lease_s=0, bytes_total=info.size
        )
        self.runner.wake.set()
        return describe(await self.store.get(job_id))

    async def get(self, who: Principal, job_id: str) -> Job:
        if not (len(job_id) == 32 and job_id.isalnum() and job_id.isascii()):
            raise JobNotFound(f"no job '{job_id[:40]}'")
        job = await self.store.get(job_id)
        if not who.may("import", job.table):
            raise JobNotFound(f"no job '{job_id}'")
        return job

    async def newest(self, who: Principal, state: str | None, table: str | None, limit: int) -> list[dict]:
        tables = [t for t in await self.store.tables_with_jobs() if who.may("import", t)]
        return [describe(job) for job in await self.store.newest(tables, state, table, limit)]

    async def cancel(self, who: Principal, job_id: str) -> dict:
        await self.get(who, job_id)
        self.runner.cancel_local(job_id)
        return describe(await self.store.cancel(job_id))

    async def events(self, who: Principal, job_id: str, interval_s: float) -> AsyncIterator[dict]:
        """Server-Sent Events: `progress` whenever the job changes, then `end` with its last state."""
        job = await self.get(who, job_id)
        last = None
        while True:
            view = describe(job)
            seen = (job.updated_at, job.state, job.rows_read, job.bytes_done)
            if job.state in ENDED:
                yield {"event": "end", "data": jsontext.dumps(view).decode()}
                return
            if seen != last:
                yield {"event": "progress", "data": jsontext.dumps(view).decode()}
                last = seen
            await asyncio.sleep(interval_s)
            job = await self.store.get(job_id)
