"""The read cache kept exact by the change feed, against a MariaDB writing its binlog and a private
redis-server: a write by raw SQL (not through the gateway) drops the cached answers of its table as
soon as the feed has read it, on every instance; nothing is served from the cache while the feed
does not follow the binlog."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.core.config import Settings
from app.feed.positions import Position
from tests.conftest import eventually, serving
from tests.integration.feedserver import binlog_server, fresh_database
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def server():
    with binlog_server() as server:
        yield server


@pytest.fixture
def redis():
    redis = RedisServer()
    redis.start()
    yield redis
    redis.stop()


def caught_up(app, server) -> bool:
    """The feed has read everything the server has written (and the flush of its invalidations ran)."""
    file, offset = server.sql("SHOW MASTER STATUS")[0][:2]
    read_to, follower = app.state.feed.read_to, app.state.cache_follower
    return (read_to is not None and read_to.transaction >= Position.start(file, int(offset)).transaction
            and not follower._owed and (follower._flushing is None or follower._flushing.done()))


async def test_a_raw_sql_write_is_seen_by_every_instance_once_the_feed_read_it(server, redis):
    url, conn = fresh_database(server, ["CREATE TABLE users (id INT PRIMARY KEY, age INT)"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO users VALUES (1, 30)")
    config = Settings(database_url=url, cache_url=redis.url, cache_namespace=f"f{uuid.uuid4().hex[:8]}")
    async with serving(config) as (one, base_one), serving(config) as (two, base_two), \
            httpx.AsyncClient() as client:
        for app in (one, two):
            await eventually(lambda app=app: app.state.cache.following, timeout=10, what="the cache following the feed")
        for base in (base_one, base_two):
            for _ in range(2):
                assert (await client.get(f"{base}/api/users/1")).json()["data"]["age"] == 30
        assert one.state.cache.counts["hit"] >= 1 and two.state.cache.counts["hit"] >= 1
        for age in range(31, 41):
            with conn.cursor() as cur:
                cur.execute("UPDATE users SET age = %s WHERE id = 1", (age,))
            for app, base in ((one, base_one), (two, base_two)):
                await eventually(lambda app=app: caught_up(app, server), timeout=10, what="the feed reading the write")
                assert (await client.get(f"{base}/api/users/1")).json()["data"]["age"] == age
                assert (await client.get(f"{base}/api/users/query?age=gte.{age}")).json()["data"][0]["age"] == age
        metrics = (await client.get(f"{base_one}/metrics")).text
        assert "gateway_feed_lag_seconds" in metrics and "gateway_cache_reads_total" in metrics
        # the feed losing its place: nothing cached is served until it follows again
        one.state.feed._failed(RuntimeError("a test cut the reader"))
        assert not one.state.cache.following
        with conn.cursor() as cur:
            cur.execute("UPDATE users SET age = 99 WHERE id = 1")
        assert (await client.get(f"{base_one}/api/users/1")).json()["data"]["age"] == 99
        await eventually(lambda: one.state.cache.following, timeout=10, what="the feed following again")
        assert (await client.get(f"{base_one}/api/users/1")).json()["data"]["age"] == 99
    conn.close()
    await asyncio.sleep(0)


async def test_a_cascade_drops_the_cached_answers_of_the_tables_it_reaches(server, redis):
    url, conn = fresh_database(server, [
        "CREATE TABLE parent (id INT PRIMARY KEY)",
        "CREATE TABLE child (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES parent (id)"
        " ON DELETE CASCADE ON UPDATE CASCADE)",
        "CREATE TABLE grandchild (id INT PRIMARY KEY, cid INT, FOREIGN KEY (cid) REFERENCES child (id) ON DELETE CASCADE)",
    ])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO parent VALUES (1), (2)")
        cur.execute("INSERT INTO child VALUES (10, 1), (11, 2)")
        cur.execute("INSERT INTO grandchild VALUES (100, 10)")
    config = Settings(database_url=url, cache_url=redis.url, cache_namespace=f"c{uuid.uuid4().hex[:8]}")
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        await eventually(lambda: app.state.cache.following, timeout=10, what="the cache following the feed")
        for _ in range(2):
            assert len((await client.get(f"{base}/api/child/query")).json()["data"]) == 2
            assert len((await client.get(f"{base}/api/grandchild/query")).json()["data"]) == 1
        with conn.cursor() as cur:  # InnoDB's cascades are in no binlog event of their own
            cur.execute("DELETE FROM parent WHERE id = 1")
            cur.execute("UPDATE parent SET id = 3 WHERE id = 2")
        await eventually(lambda: caught_up(app, server), timeout=10, what="the feed reading the writes")
        assert (await client.get(f"{base}/api/child/query")).json()["data"] == [{"id": 11, "pid": 3}]
        assert (await client.get(f"{base}/api/grandchild/query")).json()["data"] == []
    conn.close()
