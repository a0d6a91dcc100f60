"""Both drivers, aiomysql (the default) and asyncmy (GATEWAY_DB_DRIVER): the same answers, and a
write's connection kept for the next write rather than replaced after each transaction."""

import pytest

from tests.conftest import run_sql, running

TYPES_ROW = (
    "INSERT INTO types (id, i, u, b, f, d, s, t, bin, dt, da, tm, y, e, st, j, flag, bits) VALUES"
    " (1, -5, 65000, 9007199254740993, 1.5, 12.345, 'ü', 'text', x'00ff', '2026-01-02 03:04:05.123456',"
    " '2026-01-02', '-01:02:03', 2026, 'green', 'a,c', '{\"k\": [1, 2.5, null]}', 1, b'1010')"
)


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_writes_keep_their_connection(schema, settings, driver):
    """20 writes in a row, one refused (rolled back): one write connection for all of them. (asyncmy
    took a connection whose COMMIT it had sent as a statement for one still in a transaction, and its
    pool closed it: every write paid a new connection.)"""
    async with running(settings(db_driver=driver)) as client:
        assert (await client.post("/api/users", json={"input": {"name": "first", "email": "a@x"}})).status_code == 201
        for i in range(20):
            assert (await client.post("/api/users", json={"input": {"name": f"u{i}"}})).status_code == 201
        assert (await client.post("/api/users", json={"input": {"name": "again", "email": "a@x"}})).status_code == 409
        assert (await client.put("/api/users/1", json={"input": {"age": 40}})).status_code == 200
        assert (await client.delete("/api/users/2")).status_code == 200
        write = client.app.state.db.pool_stats_by_pool()["write"]
        assert (write["size"], write["free"]) == (1, 1)  # closed on release, it would be (0, 0)
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(20,)]


async def test_both_drivers_answer_alike(schema, settings):
    run_sql(schema, TYPES_ROW)
    run_sql(schema, "INSERT INTO users (name, balance, meta) VALUES ('ann', 12.5, '{\"a\": 1}'), ('bob', 0, NULL)")
    answers = {}
    for driver in ("aiomysql", "asyncmy"):
        async with running(settings(db_driver=driver)) as client:
            got = [
                (await client.get("/api/types/1")).json()["data"],
                (await client.get("/api/users/query", params={"order": "id", "limit": 2})).json()["data"],
                (await client.post("/api/users", json={"input": {"name": driver, "balance": "1.25"}})).json()["data"],
            ]
            got[2].pop("id"), got[2].pop("name"), got[2].pop("created")
            answers[driver] = got
    assert answers["aiomysql"] == answers["asyncmy"]


async def test_warnings_are_the_gateways_to_report_not_the_drivers(schema, settings, caplog):
    """An import that skips duplicates makes MariaDB warn once a row; the gateway reports them in its
    answer, and no driver logs a line for each."""
    from tests.integration.test_csv import csv_bytes

    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'one'), (2, 'two')")
    data = csv_bytes([["id", "name"]] + [[str(i), f"u{i}"] for i in range(1, 50)])
    async with running(settings(db_driver="asyncmy")) as client:
        response = await client.post("/api/batch/import", params={"mode": "ignore"}, files={"file": ("users.csv", data, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["rows_skipped"] == 2
    assert not [r for r in caplog.records if r.name.startswith(("asyncmy", "aiomysql"))]


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_a_stream_read_slowly_holds_little_of_its_result(schema, settings, driver):
    """Issue 24: a server-side cursor read more slowly than the server sends (an XLSX export, a
    slow client) must not gather the rest of the result in the gateway. 40 MB of rows, one batch
    read, then half a second for the server to push: what the driver holds unread stays small
    (asyncmy held all of it: a 400,000-row XLSX export grew the gateway by 550 MB)."""
    import asyncio
    import gc

    from app.db.driver import PAUSED_READ, READ_LIMIT, RECEIVE_HIGH_WATER

    run_sql(schema, "CREATE TABLE wide (id INT PRIMARY KEY, a CHAR(200), b CHAR(200))")
    run_sql(schema, "INSERT INTO wide SELECT seq, REPEAT('a', 200), REPEAT('b', 200) FROM seq_1_to_100000")

    def unread() -> int:
        gc.unfreeze()  # the gateway freezes what start-up made (collector.py), its pooled connections too
        if driver == "asyncmy":
            from asyncmy.connection import _MySQLProtocol

            return max(p.length - p.pos for p in gc.get_objects() if isinstance(p, _MySQLProtocol))
        return max(len(r._buffer) for r in gc.get_objects() if isinstance(r, asyncio.StreamReader))

    async with running(settings(db_driver=driver)) as client:
        async with client.app.state.db.stream("SELECT id, a, b FROM wide", (), 1000) as (_, batches):
            assert len(await anext(batches)) == 1000
            await asyncio.sleep(0.5)
            assert unread() <= RECEIVE_HIGH_WATER + READ_LIMIT + 32 * PAUSED_READ
            rows = 1000 + sum([len(batch) async for batch in batches])
    assert rows == 100_000
