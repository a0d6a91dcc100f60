"""Import jobs that read their file from S3-compatible storage (moto's server on loopback)."""

from tests.conftest import run_sql, running
from tests.files import json_array, jsonl, ods, parquet, xls, xlsx
from tests.integration.test_auth import KEYS, api_keys
from tests.integration.test_crud import assert_error
from tests.integration.test_csv import csv_bytes
from tests.integration.test_jobs import FAST, finished

BUCKET = "gateway-jobs-test"
ROWS = [["id", "name", "age"], *([i, f"user {i}", i % 80] for i in range(1, 201))]


def objects() -> list[dict]:
    return [{"id": r[0], "name": r[1], "age": r[2]} for r in ROWS[1:]]


async def start(client, body: dict, headers: dict | None = None) -> dict:
    response = await client.post("/api/batch/jobs", json=body, headers=headers or {})
    assert response.status_code == 202, response.text
    job = response.json()["data"]
    assert response.headers["location"] == f"/api/batch/jobs/{job['id']}"
    return job


async def test_every_import_format_from_s3(schema, settings, s3):
    tsv = "\n".join("\t".join(str(c) for c in row) for row in ROWS).encode() + b"\n"
    files = {
        "csv": csv_bytes(ROWS), "tsv": tsv, "xlsx": xlsx(ROWS), "xls": xls(ROWS), "ods": ods(ROWS),
        "jsonl": jsonl(objects()), "json": json_array(objects()), "parquet": parquet(objects()),
    }
    async with running(settings(**FAST, s3_buckets=(BUCKET,))) as client:
        for extension, data in files.items():
            run_sql(schema, "DELETE FROM users")
            s3.put(BUCKET, f"exports/2026/users.{extension}", data)
            job = await start(client, {"source": f"s3://{BUCKET}/exports/2026/users.{extension}"})
            assert (job["table"], job["format"], job["bytes_total"]) == ("users", extension, len(data))
            done = await finished(client, job["id"])
            assert done["state"] == "succeeded", (extension, done)
            assert done["report"]["rows_inserted"] == 200 and done["bytes_done"] == len(data), extension
            assert run_sql(schema, "SELECT COUNT(*), SUM(age) FROM users") == [(200, sum(r[2] for r in ROWS[1:]))]
        # The table and format may be named in the body; mode and atomic are the import's.
        s3.put(BUCKET, "dump.txt", csv_bytes(ROWS))
        job = await start(client, {"source": f"s3://{BUCKET}/dump.txt", "table": "users", "format": "csv", "mode": "upsert", "atomic": True})
        done = await finished(client, job["id"])
        assert done["state"] == "succeeded" and done["report"]["rows_updated"] == 0 and done["report"]["atomic"] is True


async def test_what_can_be_known_up_front_is_a_4xx(schema, settings, s3):
    s3.put(BUCKET, "users.csv", csv_bytes(ROWS))
    s3.put("not-listed", "users.csv", csv_bytes(ROWS))
    async with running(settings(**FAST, s3_buckets=(BUCKET,))) as client:
        for source in ("users.csv", "http://x/users.csv", "s3://", f"s3://{BUCKET}", f"s3://{BUCKET}/", "s3://[/users.csv", 42, None):
            assert_error(await client.post("/api/batch/jobs", json={"source": source}), 400, "invalid_source" if isinstance(source, str) else "invalid_body")
        assert_error(await client.post("/api/batch/jobs", json={"source": "s3://not-listed/users.csv"}), 403, "source_not_allowed")
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/missing/users.csv"}), 404, "source_not_found")
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/nosuchtable.csv"}), 404, "table_not_found")
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/users.csv", "mode": "merge"}), 400, "invalid_body")
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/users.csv", "extra": 1}), 400, "invalid_body")
        assert_error(await client.post("/api/batch/jobs", content=b"{not json"), 400, "invalid_body")
    async with running(settings(**FAST)) as client:  # no buckets configured: none may be read
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/users.csv"}), 403, "source_not_allowed")
    async with running(settings(**FAST, s3_buckets=(BUCKET,), auth_mode="api-key", api_keys=api_keys())) as client:
        reader = {"X-API-Key": KEYS["reader"]}
        assert_error(await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/users.csv"}, headers=reader), 403, "forbidden")
        job = await start(client, {"source": f"s3://{BUCKET}/users.csv"}, {"X-API-Key": KEYS["etl"]})
        assert (await finished(client, job["id"], headers={"X-API-Key": KEYS["etl"]}))["state"] == "succeeded"


async def test_an_object_that_changed_or_went_away_fails_the_job_with_the_reason(schema, settings, s3):
    s3.put(BUCKET, "users.csv", csv_bytes(ROWS))
    s3.put(BUCKET, "pairs.csv", b"a,b,v\n1,x,1\n")
    async with running(settings(**(FAST | {"job_workers": 0}), s3_buckets=(BUCKET,))) as client:
        changed = await start(client, {"source": f"s3://{BUCKET}/users.csv"})
        gone = await start(client, {"source": f"s3://{BUCKET}/pairs.csv"})
        s3.put(BUCKET, "users.csv", csv_bytes(ROWS[:10]))
        s3.client.delete_object(Bucket=BUCKET, Key="pairs.csv")
        runner = client.app.state.job_runner
        runner._stopping = False
        runner.settings = runner.settings.model_copy(update={"job_workers": 1})
        runner.start()
        done = await finished(client, changed["id"])
        assert done["state"] == "failed" and done["error"]["code"] == "source_unavailable" and "changed" in done["error"]["message"]
        done = await finished(client, gone["id"])
        assert done["state"] == "failed" and done["error"]["code"] == "source_not_found"
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_storage_that_does_not_answer_is_a_502(schema, settings, s3, monkeypatch):
    from tests.s3server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    async with running(settings(**FAST, s3_buckets=(BUCKET,))) as client:
        response = await client.post("/api/batch/jobs", json={"source": f"s3://{BUCKET}/users.csv"})
        assert_error(response, 502, "source_unavailable")
