"""gateway-client against a real gateway: every good row in the table exactly once, every bad row
in the failed file with its line, whatever fails (the client, an instance, the database)."""

import asyncio
import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import eventually, proxied_url, run_sql, serving
from tests.files import jsonl, xlsx
from tests.integration.test_cluster import cluster  # noqa: F401  (fixture)

CLIENT = [sys.executable, "-m", "gateway_client"]
FAST = ["--retries", "20"]


def people(path: Path, n: int, bad_every: int = 0) -> set[int]:
    """users.csv with n rows; every `bad_every`-th has an age that is not a number. The good ids."""
    good = set()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "age"])
        for i in range(1, n + 1):
            bad = bad_every and i % bad_every == 0
            writer.writerow([i, f"user {i}", "old" if bad else i % 90])
            if not bad:
                good.add(i)
    return good


async def client(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLIENT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=os.environ | (env or {}),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return process.returncode, out.decode(), err.decode()


def in_table(sql) -> list[int]:
    return [i for (i,) in run_sql(sql, "SELECT id FROM users ORDER BY id")]


def refused(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


async def test_an_import_in_batches_with_refused_rows_and_a_second_run(schema, settings, tmp_path):
    data = tmp_path / "users.csv"
    good = people(data, 2000, bad_every=97)
    async with serving(settings()) as (_, url):
        code, out, err = await client("import", str(data), "--url", url, "--batch-rows", "150", "--concurrency", "4", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["complete"] and report["rows_read"] == 2000 and report["rows_inserted"] == len(good)
        assert report["rows_failed"] == 2000 - len(good) and report["batches"] == 14
        assert in_table(schema) == sorted(good)
        failed = refused(tmp_path / "users.failed.csv")
        assert sorted(int(r["_line"]) for r in failed) == [i + 1 for i in range(97, 2001, 97)]  # line = id + 1 (the header)
        assert all(r["age"] == "old" and r["_reason"].startswith("age:") for r in failed)
        # The same command again: every batch replays its first answer; nothing is written twice.
        code, out, err = await client("import", str(data), "--url", url, "--batch-rows", "150", "--json")
        assert code == 0, err
        assert json.loads(out)["rows_inserted"] == len(good)
        assert in_table(schema) == sorted(good) and len(refused(tmp_path / "users.failed.csv")) == 2000 - len(good)


async def test_a_killed_client_resumes_and_nothing_is_doubled(schema, settings, tmp_path):
    data = tmp_path / "users.csv"
    good = people(data, 6000, bad_every=1000)
    state_file = tmp_path / "users.csv.gateway-state.json"
    async with serving(settings()) as (app, url):
        process = await asyncio.create_subprocess_exec(
            *CLIENT, "import", str(data), "--url", url, "--batch-rows", "200", "--concurrency", "2",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await eventually(lambda: state_file.exists() and confirmed_batches(state_file) >= 5, timeout=60)
        process.kill()  # kill -9: no clean-up at all
        await process.wait()
        confirmed = confirmed_batches(state_file)
        assert confirmed < 30
        code, out, err = await client("import", str(data), "--url", url, "--batch-rows", "200", "--resume", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["batches_resumed"] >= confirmed and report["complete"]
        assert report["rows_inserted"] == len(good) and report["rows_failed"] == 6
        assert in_table(schema) == sorted(good)
        lines = sorted(int(r["_line"]) for r in refused(tmp_path / "users.failed.csv"))
        assert lines == [i + 1 for i in range(1000, 6001, 1000)]  # each once, even one written before the kill
        # A resume against another batch size is refused: its keys would not be the same.
        code, _, err = await client("import", str(data), "--url", url, "--batch-rows", "300", "--resume")
        assert code == 1 and "no state to resume" in err


@pytest.mark.parametrize("mode", ["http", "ws"])
async def test_the_database_cut_for_seconds_mid_import(schema, settings, tmp_path, test_db, proxy, mode):
    data = tmp_path / "users.csv"
    good = people(data, 4000)
    config = settings(database_url=proxied_url(test_db, proxy.port), attempt_timeouts_ms=(200, 200),
                      retry_waits_ms=(100,), bulk_attempt_timeouts_ms=(1000, 1000))
    async with serving(config) as (_, url):
        run = asyncio.create_task(client(
            "import", str(data), "--url", url, "--mode", mode, "--batch-rows", "100", "--concurrency", "3", "--json", *FAST
        ))
        await eventually(lambda: len(in_table(schema)) >= 500, timeout=60)
        await proxy.down()
        await asyncio.sleep(3)
        await proxy.up()
        code, out, err = await run
    assert code == 0, err
    report = json.loads(out)
    assert report["retries"] > 0 and report["rows_inserted"] == len(good)
    assert in_table(schema) == sorted(good)


async def test_an_instance_killed_mid_upload_behind_nginx(cluster, test_db, schema, tmp_path):  # noqa: F811
    data = tmp_path / "users.csv"
    good = people(data, 20000, bad_every=5000)
    c = await cluster(test_db)
    run = asyncio.create_task(client("import", str(data), "--url", c.url, "--batch-rows", "200", "--concurrency", "4", "--json", *FAST))
    await eventually(lambda: len(in_table(schema)) >= 3000, timeout=120)
    os.kill(c.pid(2), signal.SIGKILL)
    code, out, err = await run
    assert code == 0, err
    report = json.loads(out)
    assert report["rows_inserted"] == len(good) and report["rows_failed"] == 4
    assert in_table(schema) == sorted(good)


async def test_json_lines_sheets_export_validate_and_tables(schema, settings, tmp_path):
    rows = [{"id": i, "name": f"n{i}", "age": i} for i in range(1, 31)] + [{"id": 31, "name": "x", "age": "old"}]
    (tmp_path / "users.jsonl").write_bytes(jsonl(rows))
    (tmp_path / "book.xlsx").write_bytes(xlsx([["id", "name", "age"], *([r["id"] + 100, r["name"], r["age"]] for r in rows)]))
    async with serving(settings()) as (_, url):
        code, out, err = await client("import", str(tmp_path / "users.jsonl"), "--url", url, "--batch-rows", "7", "--json")
        assert code == 0, err
        assert json.loads(out)["rows_inserted"] == 30
        failed = [json.loads(line) for line in (tmp_path / "users.failed.jsonl").read_text().splitlines()]
        assert failed == [{"id": 31, "name": "x", "age": "old", "_line": 31, "_reason": failed[0]["_reason"]}]
        code, out, err = await client("import", str(tmp_path / "book.xlsx"), "--url", url, "--table", "users", "--json")
        assert code == 0, err
        assert json.loads(out)["rows_inserted"] == 30 and refused(tmp_path / "book.failed.csv")[0]["_line"] == "32"
        assert len(in_table(schema)) == 60
        code, out, err = await client("export", "users", "-o", str(tmp_path / "adults.csv"), "--where", "age=gte.18", "--url", url)
        assert code == 0, err
        assert len(list(csv.reader((tmp_path / "adults.csv").open()))) == 1 + run_sql(schema, "SELECT COUNT(*) FROM users WHERE age >= 18")[0][0]
        code, out, _ = await client("export", "nosuch", "-o", str(tmp_path / "x.csv"), "--url", url)
        assert code == 1 and not (tmp_path / "x.csv").exists()
        code, out, _ = await client("validate", str(tmp_path / "users.jsonl"), "--url", url)
        assert code == 1 and json.loads(out)["rows_failed"] == 31  # every row's key is taken now, and one age is bad
        code, out, _ = await client("tables", "--url", url)
        assert code == 0 and "users\t" in out
        code, _, err = await client("import", str(tmp_path / "users.jsonl"), "--url", url, "--mode", "kafka", env={"GATEWAY_KAFKA_BOOTSTRAP": ""})
        assert code == 2 and "needs --kafka-bootstrap" in err
        code, _, err = await client("import", str(tmp_path / "users.jsonl"), "--url", url, "--mode", "ws", "--on-duplicate", "ignore")
        assert code == 2 and "insert or upsert" in err
        code, _, err = await client("import", str(tmp_path / "users.jsonl"), "--url", "http://127.0.0.1:9", "--retries", "1")
        assert code == 1 and "--resume" in err
        assert "batch 0 (lines 1-31): failed 2 times (last: no answer" in " ".join(err.split())  # which batch, said once


def confirmed_batches(state_file) -> int:
    saved = json.loads(state_file.read_text())
    return saved["done_below"] + len(saved["done"])
