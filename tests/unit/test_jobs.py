"""Import jobs' pure parts: committed ranges, skipping them, the job's view, S3 source URLs."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.errors import GatewayError, InvalidSource, SourceNotAllowed
from app.http.envelope import error
from app.imports.checkpoint import Committed, SkipCommitted, ranges, written
from app.jobs.s3 import ObjectRef, parse_source
from app.jobs.store import FIELDS, Job
from app.jobs.view import describe

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def test_ranges_of_positions():
    assert ranges([]) == []
    assert ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]


@SETTINGS
@given(st.sets(st.integers(0, 500)))
def test_ranges_hold_exactly_the_positions(positions):
    spans = ranges(sorted(positions))
    assert {p for first, last in spans for p in range(first, last + 1)} == positions
    assert all(b[0] > a[1] + 1 for a, b in zip(spans, spans[1:]))  # apart, in order


@SETTINGS
@given(st.sets(st.integers(1, 200), min_size=1), st.sets(st.integers(1, 200)))
def test_written_ranges_leave_out_the_skipped(positions, skip):
    rows = [(p, "cells") for p in sorted(positions)]
    expected = ranges(p for p in sorted(positions) if p not in skip)
    assert written(rows, skip) == expected
    assert written(rows, ()) == ranges(sorted(positions))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=30), st.integers(0, 400))
def test_skipping_is_membership_in_any_committed_range(spans, probe):
    """Ranges from many transactions, overlapping or adjacent in any order (split batches, attempts)."""
    committed = Committed()
    for first, length in spans:
        committed.add([[first, first + length]], (1, 0, 0))
    skip = SkipCommitted(committed)
    members = {p for first, length in spans for p in range(first, first + length + 1)}
    assert (probe in skip) == (probe in members)
    assert bool(skip) == bool(spans) and committed.inserted == len(spans)


def job(**changes) -> Job:
    at = dt.datetime(2026, 11, 25, 12, 0, 0)
    values = dict.fromkeys(FIELDS) | {
        "id": "a" * 32, "table": "users", "state": "running", "source": "upload:users.csv", "options": {"format": "csv", "mode": "insert"},
        "created_by": "anonymous", "attempt": 1, "cancel_requested": False, "bytes_done": 0, "rows_read": 0, "rows_written": 0,
        "rows_failed": 0, "created_at": at, "started_at": at, "run_started_at": at, "updated_at": at, "now": at,
    }
    return Job(**(values | changes))


def test_view_speed_and_eta_are_the_current_attempts():
    start = dt.datetime(2026, 11, 25, 12, 0, 0)
    view = describe(job(bytes_total=1000, bytes_done=250, rows_read=5000, now=start + dt.timedelta(seconds=10)))
    assert (view["rows_per_s"], view["eta_s"]) == (500, 30.0)
    assert view["report"] is None and view["links"]["events"].endswith("/events")
    queued = describe(job(state="queued", run_started_at=None, started_at=None))
    assert (queued["rows_per_s"], queued["eta_s"], queued["started_at"]) == (None, None, None)
    report = {"rows_read": 3, "errors": [{"line": 2}], "committed_lines": [[3, 4]]}
    ended = describe(job(state="succeeded", ended_at=start + dt.timedelta(seconds=2), rows_read=3, report=report))
    assert ended["report"] == report and ended["errors"] == [{"line": 2}] and ended["committed_lines"] == [[3, 4]]
    assert ended["eta_s"] is None and ended["rows_per_s"] == 2 and ended["ended_at"] == "2026-11-25T12:00:02.000Z"


def test_s3_sources():
    assert parse_source("s3://data/exports/2026/users.csv", ("data",)) == ObjectRef("data", "exports/2026/users.csv")
    assert parse_source("s3://data/a%20b?.csv", ("data",)).key == "a%20b?.csv"  # literal, as the AWS CLI
    for bad in ("data/users.csv", "s3://data", "s3://data/", "https://data/users.csv", "s3:///users.csv", "s3://[/x"):
        with pytest.raises(InvalidSource):
            parse_source(bad, ("data",))
    with pytest.raises(SourceNotAllowed):
        parse_source("s3://other/users.csv", ("data",))
    with pytest.raises(SourceNotAllowed):
        parse_source("s3://data/users.csv", ())


@SETTINGS
@given(st.one_of(st.text(), st.builds(lambda b, k: f"s3://{b}/{k}", st.text(), st.text()), st.integers(), st.none()))
def test_any_source_is_a_reference_or_a_4xx(source):
    try:
        ref = parse_source(source, ("data", "b"))
    except GatewayError as exc:
        assert 400 <= exc.status < 500
        error(exc)  # renders
        return
    assert ref.bucket in ("data", "b") and ref.key
