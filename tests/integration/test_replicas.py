"""Reads on a real replica (binlog replication on loopback), writes on the primary, and the
fallback when the replica goes away."""

import time

import pymysql
import pytest

from app.core.config import Settings
from tests.conftest import running
from tests.mariadb_servers import replicating_pair


def wait_for(condition, timeout: float = 15.0) -> None:
    """Replication is asynchronous: wait (bounded) until the replica has caught up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except pymysql.err.MySQLError:
            pass  # e.g. the database is not there yet
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    primary, replica = replicating_pair(tmp_path_factory.mktemp("replication"))
    primary.sql("CREATE DATABASE shop")
    primary.sql("CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL)")
    wait_for(lambda: replica.sql("SHOW TABLES FROM shop") == [("items",)])
    yield primary, replica
    replica.stop()
    primary.stop()


async def test_reads_on_the_replica_writes_on_the_primary_and_fallback(pair):
    primary, replica = pair
    settings = Settings(
        database_url=primary.url("shop"), replica_urls=(replica.url("shop"),),
        attempt_timeouts_ms=(300, 300, 300, 300), retry_waits_ms=(10, 10, 10),
    )
    async with running(settings) as client:
        created = await client.post("/api/items", json={"input": {"name": "written"}})
        assert created.status_code == 201
        assert primary.sql("SELECT name FROM shop.items") == [("written",)]
        wait_for(lambda: replica.sql("SELECT COUNT(*) FROM shop.items") == [(1,)])
        # A row only the replica has shows where reads are served from.
        replica.sql("INSERT INTO shop.items (id, name) VALUES (100, 'replica only')")
        names = [r["name"] for r in (await client.get("/api/items/query")).json()["data"]]
        assert names == ["written", "replica only"]
        assert (await client.get("/api/items/100")).status_code == 200
        export = (await client.get("/api/batch/items/export")).text
        assert "replica only" in export
        # The replica goes away mid-test: reads fall back to the primary, at once and without errors.
        replica.stop()
        for _ in range(5):
            response = await client.get("/api/items/query")
            assert response.status_code == 200
            assert [r["name"] for r in response.json()["data"]] == ["written"]
        assert (await client.get("/api/items/100")).status_code == 404
        assert "replica only" not in (await client.get("/api/batch/items/export")).text
        # Writes never went anywhere else.
        assert (await client.post("/api/items", json={"input": {"name": "after"}})).status_code == 201
    assert primary.sql("SELECT name FROM shop.items ORDER BY id") == [("written",), ("after",)]
