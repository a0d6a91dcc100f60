"""Import jobs: 202 at once, progress from any instance, SSE, cancel, and resuming after a crash."""

import asyncio
import json

import httpx
import pytest

from tests.conftest import eventually, proxied_url, run_sql, running
from tests.files import jsonl, xlsx
from tests.integration.test_auth import KEYS, api_keys
from tests.integration.test_crud import assert_error
from tests.integration.test_csv import csv_bytes, imported, upload

FAST = {"job_workers": 1, "job_poll_s": 0.1, "job_heartbeat_s": 0.2, "job_lease_s": 1.0, "job_retry_s": 0.2}
ENDED = ("succeeded", "failed", "cancelled")


def users(n: int, start: int = 1) -> list[list]:
    return [["id", "name", "email", "age"]] + [[i, f"user {i}", f"u{i}@x.org", i % 90] for i in range(start, start + n)]


async def submit(client, filename: str, data: bytes, headers: dict | None = None, **params) -> dict:
    response = await client.post(
        "/api/batch/import", params={"async": "true", **params}, headers=headers or {},
        files={"file": (filename, data, "application/octet-stream")},
    )
    assert response.status_code == 202, response.text
    job = response.json()["data"]
    assert response.headers["location"] == f"/api/batch/jobs/{job['id']}" == job["links"]["self"]
    return job


async def finished(client, job_id: str, timeout: float = 30, headers: dict | None = None) -> dict:
    """Poll the job until it ends; its last view."""
    seen: dict = {}

    async def poll() -> bool:
        response = await client.get(f"/api/batch/jobs/{job_id}", headers=headers or {})
        assert response.status_code == 200, response.text
        seen.update(response.json()["data"])
        return seen["state"] in ENDED

    deadline = asyncio.get_running_loop().time() + timeout
    while not await poll():
        assert asyncio.get_running_loop().time() < deadline, f"job still {seen['state']} after {timeout}s"
        await asyncio.sleep(0.05)
    return seen


def accounted(report: dict) -> int:
    return sum(report[k] for k in ("rows_inserted", "rows_updated", "rows_skipped", "rows_failed", "rows_not_applied", "rows_outcome_unknown"))


async def test_async_upload_is_202_then_succeeds_with_the_same_report_as_a_sync_import(schema, settings):
    data = csv_bytes(users(3000) + [[9999, "bad", "b@x.org", "not a number"]])
    async with running(settings(**FAST, import_batch_rows=500)) as client:
        job = await submit(client, "users.csv", data)
        # It runs here from the start, importing each chunk once it is stored.
        assert job["state"] in ("running", "succeeded") and job["table"] == "users" and job["bytes_total"] == len(data)
        done = await finished(client, job["id"])
        assert done["state"] == "succeeded", done
        report = done["report"]
        assert (report["rows_inserted"], report["rows_failed"], accounted(report)) == (3000, 1, 3001)
        assert report["errors"][0]["line"] == 3002 and report["errors"][0]["column"] == "age"
        assert report["committed_lines"] == [[2, 3001]]
        assert (done["rows_read"], done["rows_written"], done["rows_failed"]) == (3001, 3000, 1)
        assert done["bytes_done"] == done["bytes_total"] == len(data) and done["eta_s"] is None
        assert done["errors"] == report["errors"] and done["error"] is None
        assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT id) FROM users") == [(3000, 3000)]
        # The same file imported synchronously says the same (into a fresh table).
        run_sql(schema, "DELETE FROM users")
        sync = await imported(client, "users.csv", data)
        assert {k: sync[k] for k in ("rows_read", "rows_inserted", "rows_failed", "errors", "committed_lines")} == {
            k: report[k] for k in ("rows_read", "rows_inserted", "rows_failed", "errors", "committed_lines")
        }
        # The stored upload and the commit records are gone once the job ended.
        assert run_sql(schema, "SELECT COUNT(*) FROM _gateway_job_files") == [(0,)]
        assert run_sql(schema, "SELECT COUNT(*) FROM _gateway_job_commits") == [(0,)]
        metrics = (await client.get("/metrics")).text
        assert 'gateway_jobs_ended_total{state="succeeded"} 1.0' in metrics
        assert 'gateway_job_rows_total{outcome="written"} 3000.0' in metrics
        assert 'gateway_job_rows_total{outcome="failed"} 1.0' in metrics
        await eventually(lambda: client.app.state.job_runner.states.get("succeeded") == 1, timeout=5)
        assert 'gateway_jobs{state="succeeded"} 1.0' in (await client.get("/metrics")).text


async def test_prefer_respond_async_and_every_format(schema, settings):
    rows = [{"id": i, "name": f"n{i}", "age": i} for i in range(1, 51)]
    async with running(settings(**FAST)) as client:
        for name, data in (
            ("users.jsonl", jsonl(rows)),
            ("users.xlsx", xlsx([["id", "name", "age"], *([r["id"] + 100, r["name"], r["age"]] for r in rows)])),
        ):
            job = await submit(client, name, data, headers={"Prefer": "respond-async"})
            assert job["format"] == name.rsplit(".", 1)[1]
            done = await finished(client, job["id"])
            assert done["state"] == "succeeded" and done["report"]["rows_inserted"] == 50, done
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(100,)]


async def test_bad_jobs_fail_with_the_reason_and_bad_requests_are_refused_up_front(schema, settings):
    async with running(settings(**FAST)) as client:
        assert_error(await upload(client, "nosuch.csv", b"a\n1\n", **{"async": "true"}), 404, "table_not_found")
        response = await client.post(
            "/api/batch/import?async=true", headers={"Idempotency-Key": "k1"}, files={"file": ("users.csv", b"id\n1\n")}
        )
        assert_error(response, 400, "invalid_body")
        job = await submit(client, "users.csv", b"id,nope\n1,2\n")
        done = await finished(client, job["id"])
        assert done["state"] == "failed" and done["error"]["code"] == "invalid_header", done
        # An atomic job with a bad row rolls back: failed, with the report saying why.
        job = await submit(client, "users.csv", csv_bytes(users(10) + [[11, "x", "x@x", "old"]]), atomic="true")
        done = await finished(client, job["id"])
        assert done["state"] == "failed" and done["error"]["code"] == "import_rolled_back"
        assert done["report"]["rows_failed"] == 1 and done["report"]["rows_inserted"] == 0
        assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]
        for bad in ("nothex", "0" * 32, "%27%20OR%201", "x" * 500):
            assert_error(await client.get(f"/api/batch/jobs/{bad}"), 404, "job_not_found")
        assert_error(await client.get("/api/batch/jobs", params={"state": "exploded"}), 400, "invalid_body")


async def test_list_filters_and_scopes(schema, settings):
    async with running(settings(**FAST, auth_mode="api-key", api_keys=api_keys())) as client:
        etl = {"X-API-Key": KEYS["etl"]}
        reader = {"X-API-Key": KEYS["reader"]}
        job = await submit(client, "users.csv", csv_bytes(users(5)), headers=etl)
        await finished(client, job["id"], headers=etl)
        assert_error(await upload_as(client, "orders.csv", reader), 403, "forbidden")
        listed = (await client.get("/api/batch/jobs", headers=etl)).json()["data"]
        assert [j["id"] for j in listed] == [job["id"]]
        assert (await client.get("/api/batch/jobs", params={"state": "queued"}, headers=etl)).json()["data"] == []
        assert (await client.get("/api/batch/jobs", params={"table": "orders"}, headers=etl)).json()["data"] == []
        # Whoever may not import into the table does not see the job at all.
        assert (await client.get("/api/batch/jobs", headers=reader)).json()["data"] == []
        assert_error(await client.get(f"/api/batch/jobs/{job['id']}", headers=reader), 404, "job_not_found")
        assert_error(await client.delete(f"/api/batch/jobs/{job['id']}", headers=reader), 404, "job_not_found")
        assert_error(await client.get(f"/api/batch/jobs/{job['id']}"), 401, "unauthorized")


async def upload_as(client, filename, headers):
    return await client.post("/api/batch/import?async=true", headers=headers, files={"file": (filename, b"id\n1\n")})


async def test_cancel_a_queued_job_and_an_ended_one(schema, settings):
    async with running(settings(**(FAST | {"job_workers": 0}))) as client:  # nothing runs here: it stays queued
        job = await submit(client, "users.csv", csv_bytes(users(5)))
        response = await client.delete(f"/api/batch/jobs/{job['id']}")
        assert response.status_code == 200 and response.json()["data"]["state"] == "cancelled"
        assert_error(await client.delete(f"/api/batch/jobs/{job['id']}"), 409, "job_ended")
        assert run_sql(schema, "SELECT COUNT(*) FROM _gateway_job_files") == [(0,)]
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_cancel_a_running_job_keeps_its_committed_batches_and_reports_them(schema, settings):
    async with running(settings(**FAST, import_batch_rows=100, import_writers=1)) as client:
        slow_down(client.app, 0.1)  # a batch is a block of the file (64 KiB, ~2,000 rows) at least
        job = await submit(client, "users.csv", csv_bytes(users(40000)))
        await eventually(lambda: committed_rows(schema) >= 2000, timeout=20)
        response = await client.delete(f"/api/batch/jobs/{job['id']}")
        assert response.status_code == 200
        done = await finished(client, job["id"])
        assert done["state"] == "cancelled", done
        report = done["report"]
        in_table = run_sql(schema, "SELECT COUNT(*) FROM users")[0][0]
        assert 2000 <= report["rows_inserted"] == in_table < 30000
        assert accounted(report) == report["rows_read"]
        assert report["committed_lines"] == [[2, in_table + 1]]


def committed_rows(schema) -> int:
    return run_sql(schema, "SELECT COUNT(*) FROM users")[0][0]


def slow_down(app, seconds: float) -> None:
    """Each committed transaction of a job takes `seconds` longer (inside it, before COMMIT)."""
    store = app.state.job_store
    record = store.record

    async def slow(session, hold, spans, counts):
        await asyncio.sleep(seconds)
        await record(session, hold, spans, counts)

    store.record = slow


async def test_events_stream_progress_then_the_end(schema, settings):
    from tests.conftest import serving

    async with serving(settings(**FAST, import_batch_rows=200, import_writers=1)) as (app, url):
        slow_down(app, 0.1)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            job = await submit(client, "users.csv", csv_bytes(users(20000)))
            events: list[tuple[str, dict]] = []
            async with client.stream("GET", f"/api/batch/jobs/{job['id']}/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                event = None
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        events.append((event, json.loads(line.split(":", 1)[1])))
            assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
            progress = [data for name, data in events if name == "progress"]
            assert len(progress) >= 2 and any(p["state"] == "running" and 0 < p["rows_read"] for p in progress)
            reads = [p["rows_read"] for p in progress]
            assert reads == sorted(reads)
            assert_error(await client.get("/api/batch/jobs/" + "f" * 32 + "/events"), 404, "job_not_found")


async def test_a_job_whose_instance_died_is_finished_by_another_each_row_once(schema, settings):
    """Instance A runs a job and dies mid-way (its worker stops dead: no release, no heartbeat);
    instance B claims it when the lease lapses and resumes after the last committed batch."""
    data = csv_bytes(users(30000) + [[30001, "bad", "b@x", "old"]])
    config = settings(**FAST, import_batch_rows=100, import_writers=2)
    async with running(config) as a, running(config) as b:
        runner_b = b.app.state.job_runner
        await runner_b.stop()  # B waits until A is gone
        slow_down(a.app, 0.1)
        job = await submit(a, "users.csv", data)
        await eventually(lambda: committed_rows(schema) >= 5000, timeout=20)
        runner_a = a.app.state.job_runner
        doomed = [*runner_a._tasks, *runner_a._adopted]  # the job runs in an adopted task (it started with its upload)
        assert len(runner_a.running) == 1
        for task in doomed:  # A dies: nothing it holds is released
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        before = committed_rows(schema)
        runner_b._stopping = False
        runner_b.start()
        done = await finished(b, job["id"])
        assert done["state"] == "succeeded", done
        assert done["attempt"] == 2
        report = done["report"]
        assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT id) FROM users") == [(30000, 30000)]
        assert before < 30000
        assert (report["rows_read"], report["rows_inserted"], report["rows_failed"]) == (30001, 30000, 1)
        assert report["errors"][0]["line"] == 30002 and report["committed_lines"] == [[2, 30001]]


async def test_a_stale_holder_cannot_commit(schema, settings):
    """The fence: a transaction of an attempt that no longer holds its job rolls back."""
    from app.jobs.store import Hold, LeaseLost

    async with running(settings(**(FAST | {"job_workers": 0}))) as client:
        store = client.app.state.job_store
        job = await submit(client, "users.csv", csv_bytes(users(1)))
        claimed = await store.claim("me", 60)
        assert claimed.id == job["id"] and claimed.attempt == 1
        db = client.app.state.db

        async def write(hold):
            async def work(session):
                await session.execute("INSERT INTO users (id, name) VALUES (1, 'x')")
                await store.record(session, hold, [[2, 2]], (1, 0, 0))

            await db.transaction(work)

        with pytest.raises(LeaseLost):
            await write(Hold(job["id"], "me", 2))
        with pytest.raises(LeaseLost):
            await write(Hold(job["id"], "someone else", 1))
        assert committed_rows(schema) == 0
        await write(Hold(job["id"], "me", 1))
        assert committed_rows(schema) == 1
        assert (await store.committed(job["id"])).spans == [[2, 2]]


async def test_a_commit_that_got_no_answer_is_settled_by_the_jobs_own_records(schema, settings, test_db, proxy):
    """A batch's COMMIT reaches the server but its answer is lost (504 commit_outcome_unknown): the
    attempt stops, the job is queued again, and the next attempt reads from the commit records,
    written in that same transaction, that the batch applied: it is not written twice."""
    # Polls for other jobs once a second, not ten times: each poll's COMMIT is one the cut may meet instead
    # of a batch's, and a CI run once met only those until the job had ended.
    config = settings(**(FAST | {"job_poll_s": 1.0}), database_url=proxied_url(test_db, proxy.port),
                      import_batch_rows=100, import_writers=1)
    async with running(config) as client:
        slow_down(client.app, 0.1)
        job = await submit(client, "users.csv", csv_bytes(users(30000)))
        await eventually(lambda: committed_rows(schema) >= 2000, timeout=20)
        for _ in range(60):  # the cut may meet a heartbeat's (or a new connection's) COMMIT first: cut again until a batch's is
            cuts = proxy.cuts
            proxy.cut_on(b"COMMIT", forward=True)
            await eventually(lambda: proxy.cuts > cuts, timeout=10)
            view = (await client.get(f"/api/batch/jobs/{job['id']}")).json()["data"]
            if view["attempt"] > 1 or view["state"] == "queued":
                break
            await asyncio.sleep(0.3)
        done = await finished(client, job["id"], timeout=60)
    assert done["state"] == "succeeded" and done["attempt"] >= 2, done
    assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT id) FROM users") == [(30000, 30000)]
    report = done["report"]
    assert (report["rows_inserted"], report["rows_outcome_unknown"], report["rows_failed"]) == (30000, 0, 0)


async def test_a_report_with_keys_of_any_type_is_kept(schema, settings):
    """Duplicate keys are reported with their values (dates, decimals, binary): the job stores the
    report as a response would show it."""
    run_sql(schema, "CREATE TABLE ledger (at DATETIME(3) NOT NULL, amount DECIMAL(8,2) NOT NULL, tag VARBINARY(4), PRIMARY KEY (at, amount))")
    run_sql(schema, "INSERT INTO ledger VALUES ('2026-01-01 10:00:00.5', 12.50, 'x')")
    data = b"at,amount,tag\n2026-01-01T10:00:00.5,12.50,\n2026-01-02T10:00:00,1.25,\n"
    async with running(settings(**FAST)) as client:
        done = await finished(client, (await submit(client, "ledger.csv", data))["id"])
    assert done["state"] == "succeeded", done
    assert done["report"]["rows_inserted"] == 1 and done["errors"][0]["key"] == {"at": "2026-01-01T10:00:00.500000", "amount": "12.50"}


async def test_a_slow_upload_outlives_its_lease(schema, settings):
    """An upload to an instance that runs no jobs is `uploading` while it arrives; its lease is kept
    by a timer, not by chunks, so a client slower than the lease is not swept away as gone."""
    boundary = "gatewayboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="users.csv"\r\n\r\n'.encode()
    lines = [b"id,name\n", b"1,a\n", b"2,b\n", b"3,c\n"]

    async def body():
        yield head
        for line in lines:
            yield line
            await asyncio.sleep(0.8)  # 3.2 s in all: past the 1 s lease and the sweep's 1 s of slack
        yield f"\r\n--{boundary}--\r\n".encode()

    async with running(settings(**(FAST | {"job_workers": 0}))) as a, running(settings(**FAST)) as b:
        response = await a.post("/api/batch/import?async=true", content=body(),
                                headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 202, response.text
        done = await finished(b, response.json()["data"]["id"])
    assert done["state"] == "succeeded" and done["report"]["rows_inserted"] == 3, done
