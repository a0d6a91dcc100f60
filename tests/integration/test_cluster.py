"""Three real gateway processes behind a real nginx (deploy/cluster.sh), under faults."""

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.conftest import proxied_url, run_sql

FAST = {"GATEWAY_ATTEMPT_TIMEOUTS_MS": "100,100,100,100", "GATEWAY_RETRY_WAITS_MS": "50,50,50"}


@pytest.fixture
async def cluster(schema, gateways):
    """Gateway processes behind nginx against `database_url` (the test database, schema made)."""
    return gateways


async def test_kill_9_of_one_instance_loses_nothing(cluster, test_db, schema):
    """Steady reads and keyed writes through nginx while one of three instances is killed -9:
    no read fails, and every write applies exactly once (a 502 is retried with the same key)."""
    c = await cluster(test_db)
    failed_reads, writes = 0, 0

    async with httpx.AsyncClient(base_url=c.url, timeout=10) as client:

        async def read() -> None:
            nonlocal failed_reads
            if (await client.get("/api/users/query", params={"limit": 1})).status_code != 200:
                failed_reads += 1

        async def write(i: int) -> None:
            nonlocal writes
            for _ in range(10):
                try:
                    response = await client.post("/api/users", json={"input": {"name": f"w{i}"}}, headers={"Idempotency-Key": f"key-{i}"})
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    writes += 1
                    return

        for step in range(30):
            if step == 10:
                os.kill(c.pid(2), signal.SIGKILL)
            await asyncio.gather(*(read() for _ in range(10)), *(write(step * 10 + j) for j in range(10)))

    assert failed_reads == 0 and writes == 300
    assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT name) FROM users") == [(300, 300)]


async def test_database_away_under_load_is_503_within_budget_then_recovers(cluster, test_db, proxy):
    c = await cluster(proxied_url(test_db, proxy.port), **FAST)
    budget = 4 * 0.1 + 3 * 0.05  # the schedule above
    async with httpx.AsyncClient(base_url=c.url, timeout=10) as client:
        assert (await client.get("/api/users/query")).status_code == 200
        pids = [c.pid(i) for i in (1, 2, 3)]
        await proxy.down()

        async def timed() -> tuple[int, float]:
            started = time.monotonic()
            response = await client.get("/api/users/query")
            return response.status_code, time.monotonic() - started

        results = await asyncio.gather(*(timed() for _ in range(30)))
        assert {status for status, _ in results} == {503}
        assert max(seconds for _, seconds in results) < budget + 1.0
        await proxy.up()
        statuses = [(await client.get("/api/users/query")).status_code for _ in range(10)]
        assert statuses[-5:] == [200] * 5
    assert [c.pid(i) for i in (1, 2, 3)] == pids  # no instance was restarted
    for pid in pids:
        os.kill(pid, 0)  # still running


async def test_kill_9_of_the_instance_running_a_1m_row_job(cluster, test_db, schema):
    """A 1M-row import job through nginx; the instance running it is killed -9 a fifth of the way
    in. Another instance takes the job over when its lease lapses, resumes after the last committed
    batch, and the job succeeds with every row in the table exactly once."""
    rows = 1_000_000
    data = "".join(["id,name,email,age\n", *(f"{i},user {i},u{i}@x.org,{i % 90}\n" for i in range(1, rows + 1))]).encode()
    c = await cluster(test_db, GATEWAY_JOB_LEASE_S="2", GATEWAY_JOB_HEARTBEAT_S="0.3", GATEWAY_JOB_POLL_S="0.2")
    pids = {c.pid(i) for i in (1, 2, 3)}
    async with httpx.AsyncClient(base_url=c.url, timeout=60) as client:
        response = await client.post("/api/batch/import?async=true", files={"file": ("users.csv", data)})
        assert response.status_code == 202, response.text
        job_url = response.headers["location"]

        async def job() -> dict:
            answer = await client.get(job_url)
            assert answer.status_code == 200, answer.text
            return answer.json()["data"]

        deadline = time.monotonic() + 120
        while (seen := await job())["rows_written"] < rows // 5:
            assert seen["state"] in ("queued", "running") and time.monotonic() < deadline, seen
            await asyncio.sleep(0.05)
        victim = int(seen["owner"].split(":")[1])
        assert victim in pids and seen["attempt"] == 1
        os.kill(victim, signal.SIGKILL)
        while (seen := await job())["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.2)
    assert seen["state"] == "succeeded", seen
    assert seen["attempt"] == 2 and int(seen["owner"].split(":")[1]) in pids - {victim}
    report = seen["report"]
    assert (report["rows_read"], report["rows_inserted"], report["rows_failed"]) == (rows, rows, 0)
    assert report["committed_lines"] == [[2, rows + 1]]
    assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM users") == [(rows, rows, 1, rows)]
