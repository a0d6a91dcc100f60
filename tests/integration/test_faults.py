"""Faults between the gateway and a real MariaDB, made by the TCP fault proxy."""

import asyncio
import time

import pytest

from app.core.config import DatabaseAddress
from tests.conftest import connect, proxied_url, run_sql, running

FAST = {"attempt_timeouts_ms": (100, 100, 100, 100), "retry_waits_ms": (10, 10, 10), "kill_timeout_ms": 1000}


def through(settings, proxy, test_db, **overrides):
    return settings(database_url=proxied_url(test_db, proxy.port), **overrides)


async def test_database_down_is_503_within_budget_then_recovers(schema, settings, proxy, test_db):
    async with running(through(settings, proxy, test_db)) as client:
        assert (await client.get("/api/users/query")).status_code == 200
        await proxy.down()
        budget = client.app.state.db.resilience.budget_s
        started = time.monotonic()
        response = await client.get("/api/users/query")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "service_unavailable" and body["retry_count"] == 3
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < budget + 0.5
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        await proxy.up()
        assert (await client.get("/api/users/query")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200


async def test_slow_statement_is_504_and_killed_on_the_server(schema, settings, test_db):
    """A row lock held elsewhere makes every attempt hang; each is killed on the server."""
    holder = connect(DatabaseAddress.parse(test_db), DatabaseAddress.parse(test_db).database)
    run_sql(holder, "INSERT INTO users (id, name) VALUES (1, 'a')")
    run_sql(holder, "BEGIN")
    run_sql(holder, "SELECT * FROM users WHERE id = 1 FOR UPDATE")
    try:
        async with running(settings(**FAST)) as client:
            response = await client.put("/api/users/1", json={"input": {"name": "b"}})
            assert response.status_code == 504, response.text
            assert response.json()["error"] == "gateway_timeout" and response.json()["retry_count"] == 3
            assert client.app.state.db.kills == 4
            running_updates = run_sql(
                schema,
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE `users`%%'",
            )
            assert running_updates == [(0,)]
            assert client.app.state.db.pool_stats()["used"] == 0
    finally:
        run_sql(holder, "ROLLBACK")
        holder.close()
    assert run_sql(schema, "SELECT name FROM users WHERE id = 1") == [("a",)]


async def test_slow_network_is_504_with_full_retry_count(schema, settings, proxy, test_db):
    async with running(through(settings, proxy, test_db, **(FAST | {"kill_timeout_ms": 50}))) as client:
        assert (await client.get("/api/users/query")).status_code == 200
        proxy.delay_s = 0.3
        response = await client.get("/api/users/query")
        assert response.status_code == 504 and response.json()["retry_count"] == 3
        proxy.delay_s = 0
        assert (await client.get("/api/users/query")).status_code == 200


# A write in a transaction (GATEWAY_SINGLE_STATEMENT_WRITES off, or with an Idempotency-Key): a line
# lost before COMMIT is retried, a COMMIT with no answer is unknown. The single-statement path is
# tests/integration/test_single_statement_writes.py.
TRANSACTION = FAST | {"single_statement_writes": False}


async def test_connection_lost_before_commit_is_retried_and_applies_once(schema, settings, proxy, test_db):
    async with running(through(settings, proxy, test_db, **TRANSACTION)) as client:
        assert (await client.post("/api/users", json={"input": {"name": "warm"}})).status_code == 201
        proxy.cut_on(b"\x03INSERT INTO", forward=True)  # the server runs the INSERT, then the line drops
        response = await client.post("/api/users", json={"input": {"name": "once"}})
        assert response.status_code == 201, response.text
        assert response.json()["retry_count"] == 1 and proxy.cuts == 1
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE name = 'once'") == [(1,)]


@pytest.mark.parametrize("forward,rows", [(False, 0), (True, 1)])
async def test_commit_without_answer_is_504_and_never_retried(schema, settings, proxy, test_db, forward, rows):
    async with running(through(settings, proxy, test_db, **TRANSACTION)) as client:
        # Warm the write pool first: a new connection sends a COMMIT of its own after init_command.
        assert (await client.post("/api/users", json={"input": {"name": "warm"}})).status_code == 201
        proxy.cut_on(b"\x03COMMIT", forward=forward)  # the COM_QUERY packet, not SET AUTOCOMMIT
        response = await client.post("/api/users", json={"input": {"name": "maybe"}})
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "commit_outcome_unknown" and response.json()["retry_count"] == 0
    # Either outcome is possible in general; here the proxy decided it. Never twice.
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE name = 'maybe'") == [(rows,)]


async def test_pool_is_whole_after_200_failed_calls(schema, settings, proxy, test_db):
    config = through(settings, proxy, test_db, attempt_timeouts_ms=(50, 50), retry_waits_ms=(1,), kill_timeout_ms=50, pool_max=5)
    async with running(config) as client:
        db = client.app.state.db
        statuses = []
        for round_ in range(10):
            if round_ % 2:
                proxy.delay_s = 0.2
            else:
                await proxy.down()
            batch = await asyncio.gather(*(client.get("/api/users/query") for _ in range(20)))
            statuses += [r.status_code for r in batch]
            proxy.delay_s = 0
            if proxy._server is None:
                await proxy.up()
        assert len(statuses) == 200 and set(statuses) <= {503, 504}
        stats = db.pool_stats()
        assert stats["used"] == 0 and stats["size"] <= stats["max"]
        # Every connection slot is usable again: more concurrent requests than the pool holds succeed.
        batch = await asyncio.gather(*(client.get("/api/users/query") for _ in range(12)))
        assert [r.status_code for r in batch] == [200] * 12
        assert db.pool_stats()["used"] == 0
