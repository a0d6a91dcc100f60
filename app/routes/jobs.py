"""Import jobs: start one from an object in S3-compatible storage (an upload becomes a job with
POST /api/batch/import?async=true), read its progress, follow it as Server-Sent Events, list, cancel.
Any instance answers for any job: their state lives in the database (app/jobs)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from app.jobs.service import JobService
from app.jobs.view import describe
from app.http.access import Caller, allow
from app.routes.jsonroute import JSONRoute
from app.http.envelope import JSON, success
from app.http.bodies import JobBody

router = APIRouter(prefix="/api/batch/jobs", tags=["jobs"], route_class=JSONRoute)
State = Literal["uploading", "queued", "running", "succeeded", "failed", "cancelled"]


def _jobs(request: Request) -> JobService:
    return request.app.state.jobs


def accepted(view: dict, message: str) -> JSON:
    """202 with the job, and where to follow it."""
    response = success(view, message, status=202)
    response.headers["Location"] = view["links"]["self"]
    return response


@router.post("", summary="Start an import job that reads its file from S3-compatible storage", status_code=202)
async def create_job(body: JobBody, request: Request, who: Caller):
    view = await _jobs(request).submit_source(who, body.model_dump(), lambda table: allow(request, who, "import", table))
    return accepted(view, f"job {view['id']} queued: importing {view['source']} into '{view['table']}'")


@router.get("", summary="Jobs on the tables the caller may import into, newest first")
async def list_jobs(
    request: Request,
    who: Caller,
    state: Annotated[State | None, Query(description="only jobs in this state")] = None,
    table: Annotated[str | None, Query(description="only jobs on this table")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    jobs = await _jobs(request).list(who, state, table, limit)
    return success(jobs, f"{len(jobs)} job(s)")


@router.get("/{job_id}", summary="A job's state, progress, errors so far, and its report when it ends")
async def get_job(job_id: str, request: Request, who: Caller):
    job = await _jobs(request).get(who, job_id)
    return success(describe(job), f"job {job.id} {job.state}")


@router.get("/{job_id}/events", summary="A job's progress as Server-Sent Events (`progress`, then `end`)")
async def job_events(job_id: str, request: Request, who: Caller):
    service = _jobs(request)
    await service.get(who, job_id)  # 404 as JSON, before the stream starts
    interval = min(max(request.app.state.settings.job_heartbeat_s / 2, 0.1), 1.0)
    return EventSourceResponse(service.events(who, job_id, interval), ping=15)


@router.delete("/{job_id}", summary="Cancel a job: committed batches stay and are reported")
async def cancel_job(job_id: str, request: Request, who: Caller):
    view = await _jobs(request).cancel(who, job_id)
    done = view["state"] == "cancelled"
    return success(view, f"job {view['id']} {'cancelled' if done else 'stopping: cancelled after its in-flight batches'}")
