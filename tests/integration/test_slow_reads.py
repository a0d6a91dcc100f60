"""Reads that may be slow: their own schedule, chosen by the route; and the server given each
attempt's timeout, so it stops a runaway read itself even if the gateway's KILL is lost."""

import asyncio
import time

import pytest

from app.core.errors import GatewayTimeout
from tests.conftest import run_sql, running


async def test_a_1_2_s_read_succeeds_at_once_on_the_slow_schedule_and_is_killed_on_the_normal_one(schema, settings):
    async with running(settings()) as client:
        db = client.app.state.db
        started = time.monotonic()
        assert (await db.fetch("SELECT SLEEP(1.2)", slow=True)).rows == ((0,),)
        assert db.kills == 0 and db.retries == {} and time.monotonic() - started < 2
        # 200, 400 and 800 ms attempts are each cut short and killed; the fourth (1.6 s) answers.
        assert (await db.fetch("SELECT SLEEP(1.2)")).rows == ((0,),)
        assert db.kills == 3 and db.retries == {"timeout": 3}


async def test_the_server_stops_a_read_whose_kill_was_lost(schema, settings, sql):
    async with running(settings(attempt_timeouts_ms=(300,), retry_waits_ms=())) as client:
        db = client.app.state.db

        async def lost(thread_id, address=None):  # the KILL never reaches the server
            return None

        db.connections.kill = lost
        with pytest.raises(GatewayTimeout):
            await db.fetch("SELECT SLEEP(5) AS runaway")
        await asyncio.sleep(0.6)  # the server's own limit: 300 ms x 1.1 + 50 ms

        def running_now() -> list:
            return run_sql(sql, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%SLEEP(5) AS runaway%%' AND INFO NOT LIKE '%%PROCESSLIST%%'")

        assert running_now() == []


def test_statements_are_bounded_for_each_server_kind():
    from app.core.config import Settings
    from app.db.database import Database

    db = Database(Settings(database_url="mysql://u@h/d"))
    db.connections.server_version = "10.11.6-MariaDB"
    assert db.bounded("SELECT 1", 0.2) == "SET STATEMENT max_statement_time=0.270 FOR SELECT 1"
    assert db.bounded("INSERT INTO t VALUES (1)", 0.2) == "INSERT INTO t VALUES (1)"
    db.connections.server_version = "8.4.0"
    assert db.bounded("SELECT a FROM t", 2.0) == "SELECT /*+ MAX_EXECUTION_TIME(2250) */ a FROM t"
