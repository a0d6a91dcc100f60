"""A write that is one statement commits by itself (GATEWAY_SINGLE_STATEMENT_WRITES, on by default):
its outcome is known whenever the server answers, and only silence is commit_outcome_unknown.
The transaction path's faults are in test_faults.py."""

import asyncio

import pytest

from app.core.config import DatabaseAddress
from tests.conftest import connect, run_sql, running
from tests.integration.test_faults import FAST, through


def locked_row(test_db):
    """Another session holding row 1 of users (call .rollback() to let it go)."""
    address = DatabaseAddress.parse(test_db)
    holder = connect(address, address.database)
    run_sql(holder, "INSERT INTO users (id, name) VALUES (1, 'a')")
    run_sql(holder, "BEGIN")
    run_sql(holder, "SELECT * FROM users WHERE id = 1 FOR UPDATE")
    return holder


@pytest.mark.parametrize("method,path,body", [
    ("DELETE", "/api/users/1", None),
    ("PUT", "/api/users", {"input": {"name": "b"}, "where": {"id": 1}}),
    ("DELETE", "/api/users", {"input": {"id": 1}}),
])
async def test_a_statement_the_server_stops_applied_nothing_and_is_retried(schema, settings, test_db, method, path, body):
    """A row lock held elsewhere: the server stops each attempt's statement at the attempt's time
    (1969, rolled back), so the gateway kills nothing and retries, as it did with a transaction."""
    holder = locked_row(test_db)
    try:
        async with running(settings(**FAST)) as client:
            response = await client.request(method, path, json=body)
            assert response.status_code == 504, response.text
            assert response.json()["error"] == "gateway_timeout" and response.json()["retry_count"] == 3
            db = client.app.state.db
            assert db.retries == {"db_1969": 3} and db.kills == 0
            assert db.pool_stats()["used"] == 0
    finally:
        run_sql(holder, "ROLLBACK")
        holder.close()
    assert run_sql(schema, "SELECT name FROM users") == [("a",)]


async def test_a_retry_after_the_server_stopped_the_statement_applies_once(schema, settings, test_db):
    holder = locked_row(test_db)
    try:
        async with running(settings(**(FAST | {"attempt_timeouts_ms": (300, 300, 300, 300)}))) as client:
            db = client.app.state.db
            deleting = asyncio.create_task(client.delete("/api/users/1"))
            while not db.retries and not deleting.done():  # the first attempt was stopped by the server
                await asyncio.sleep(0.01)
            run_sql(holder, "ROLLBACK")
            response = await deleting
            assert response.status_code == 200, response.text
            assert response.json()["data"] == {"affected": 1} and response.json()["retry_count"] >= 1
    finally:
        holder.close()
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


@pytest.mark.parametrize("forward,rows", [(False, 0), (True, 1)])
async def test_a_statement_whose_answer_never_comes_is_unknown_and_never_retried(
    schema, settings, proxy, test_db, forward, rows
):
    """The line drops with the INSERT sent: before the server got it, or after it applied it. The
    gateway cannot tell, says so, and does not run it again."""
    async with running(through(settings, proxy, test_db, **FAST)) as client:
        assert (await client.post("/api/users", json={"input": {"name": "warm"}})).status_code == 201
        proxy.cut_on(b"INSERT INTO", forward=forward)
        response = await client.post("/api/users", json={"input": {"name": "maybe"}})
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "commit_outcome_unknown" and response.json()["retry_count"] == 0
        assert proxy.cuts == 1
        assert (await client.post("/api/users", json={"input": {"name": "after"}})).status_code == 201
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE name = 'maybe'") == [(rows,)]


async def test_an_answer_that_comes_after_the_gateways_timer_is_a_success(schema, settings, proxy, test_db):
    """The server applies the INSERT at once, but its answer takes 0.3 s, past the attempt's 0.1 s:
    the statement is killed (too late to stop it) and its own answer, OK, is the answer."""
    async with running(through(settings, proxy, test_db, **FAST)) as client:
        assert (await client.post("/api/users", json={"input": {"name": "warm"}})).status_code == 201
        proxy.delay_s = 0.3
        response = await client.post("/api/users", json={"input": {"name": "late"}})
        proxy.delay_s = 0
        assert response.status_code == 201, response.text
        assert response.json()["retry_count"] == 0 and response.json()["data"]["name"] == "late"
        assert (await client.get("/api/users/query")).status_code == 200
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE name = 'late'") == [(1,)]


async def test_a_statement_the_gateway_kills_applied_nothing_and_is_retried(schema, settings, monkeypatch):
    """Where the server sets no limit on a write (MySQL), the gateway's own timer stops it: KILL
    QUERY, then the statement's own answer on its connection (1317, rolled back), and a retry on
    the same connection, which stays usable."""
    async with running(settings(**FAST)) as client:
        db = client.app.state.db
        monkeypatch.setattr(db, "bounded_write", lambda sql, seconds: sql)
        with pytest.raises(Exception) as failed:
            await db.write("INSERT INTO users (name) SELECT 'slow' FROM DUAL WHERE SLEEP(5) = 0")
        assert type(failed.value).__name__ == "GatewayTimeout" and failed.value.details == {"attempts": 4}
        assert db.kills == 4 and db.retries == {"db_1317": 3}
        stats = db.pool_stats()
        assert stats["used"] == 0 and stats["size"] == 1  # one connection, killed four times, kept
        assert (await client.post("/api/users", json={"input": {"name": "fine"}})).status_code == 201
    assert run_sql(schema, "SELECT name FROM users") == [("fine",)]


async def test_an_idempotency_key_keeps_the_transaction(schema, settings, proxy, test_db):
    """A keyed write commits its key's record with the row: a COMMIT is still sent."""
    async with running(through(settings, proxy, test_db, **FAST)) as client:
        assert (await client.post("/api/users", json={"input": {"name": "warm"}})).status_code == 201
        proxy.cut_on(b"\x03COMMIT", forward=True)
        response = await client.post("/api/users", json={"input": {"name": "keyed"}}, headers={"Idempotency-Key": "k1"})
        assert proxy.cuts == 1
        assert response.status_code == 201, response.text  # the key's record says it applied
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE name = 'keyed'") == [(1,)]
