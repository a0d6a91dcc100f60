"""What a caller sees of a job (pure): state, progress, speed, ETA, errors so far, the report."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") + "Z" if moment is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def describe(job: Any) -> dict[str, Any]:
    """The job as JSON. Speed and ETA are for the current attempt: rows read per second since it
    started, and the bytes still to read at the rate read so far."""
    options = job.options
    running = job.state == "running"
    ended = job.ended_at is not None
    report = job.report or {}
    elapsed = _seconds(job.run_started_at, job.ended_at if ended else job.now)
    rows_per_s = None
    eta_s = None
    if elapsed:
        rows_per_s = round(job.rows_read / elapsed)
        if running and job.bytes_total and job.bytes_done:
            eta_s = round((job.bytes_total - job.bytes_done) / (job.bytes_done / elapsed), 1)
    view: dict[str, Any] = {
        "id": job.id,
        "state": job.state,
        "table": job.table,
        "source": job.source,
        "format": options.get("format"),
        "mode": options.get("mode"),
        "atomic": options.get("atomic", False),
        "rows_read": job.rows_read,
        "rows_written": job.rows_written,
        "rows_failed": job.rows_failed,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "rows_per_s": rows_per_s,
        "eta_s": eta_s,
        "errors": report.get("errors", []),
    }
    view |= {
        key: value
        for key, value in report.items()
        if key.startswith(("committed_", "not_committed_", "outcome_unknown_"))
    }
    view |= {
        "attempt": job.attempt,
        "owner": job.owner,  # the instance running it (host:pid:tag), or that ran it last
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "updated_at": _iso(job.updated_at),
        "ended_at": _iso(job.ended_at),
        "error": job.error,
        "report": job.report if ended else None,
        "links": {"self": f"/api/batch/jobs/{job.id}", "events": f"/api/batch/jobs/{job.id}/events"},
    }
    return view
