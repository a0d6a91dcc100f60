"""Import jobs: start one from an object in S3-compatible storage (an upload becomes a job with
POST /api/batch/import?async=true), read its progress, follow it as Server-Sent Events, list, cancel.
Any instance answers for any job: their state lives in the database (app/jobs)."""

from __future__ import annotations

from sse_starlette import EventSourceResponse
from starlette.responses import Response

from app.http.access import allow
from app.http.envelope import JSON, success
from app.http.route import Call
from app.jobs.view import describe


def accepted(view: dict, message: str) -> JSON:
    """202 with the job, and where to follow it."""
    response = success(view, message, status=202)
    response.headers["Location"] = view["links"]["self"]
    return response


async def create_job(call: Call) -> Response:
    view = await call.state.jobs.submit_source(call.who, call.body.model_dump(),
                                               lambda table: allow(call.request, call.who, "import", table))
    return accepted(view, f"job {view['id']} queued: importing {view['source']} into '{view['table']}'")


async def list_jobs(call: Call) -> Response:
    jobs = await call.state.jobs.newest(call.who, call.query["state"], call.query["table"], call.query["limit"])
    return success(jobs, f"{len(jobs)} job(s)")


async def get_job(call: Call) -> Response:
    job = await call.state.jobs.get(call.who, call.path["job_id"])
    return success(describe(job), f"job {job.id} {job.state}")


async def job_events(call: Call) -> Response:
    service = call.state.jobs
    await service.get(call.who, call.path["job_id"])  # 404 as JSON, before the stream starts
    interval = min(max(call.state.settings.job_heartbeat_s / 2, 0.1), 1.0)
    return EventSourceResponse(service.events(call.who, call.path["job_id"], interval), ping=15)


async def cancel_job(call: Call) -> Response:
    view = await call.state.jobs.cancel(call.who, call.path["job_id"])
    done = view["state"] == "cancelled"
    return success(
        view, f"job {view['id']} {'cancelled' if done else 'stopping: cancelled after its in-flight batches'}"
    )
