"""The shared read cache (issue 28) against a private redis-server: answers kept and served, dropped
by `invalidate` (what the change feed calls for every committed change) and by the gateway's own
writes, exact under races (a read that began before a change never stores after it), shared by two
instances, safe under row policies, and never a failure when Redis stops."""

import time
import uuid

import jwt
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from starlette.testclient import TestClient

from app.feed.invalidation import CacheFollower
from app.main import create_app
from app.services.cache import ReadCache
from tests.conftest import only, run_sql, running
from tests.redis_server import RedisServer

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def the_test_plays_the_feed(monkeypatch):
    """These tests call invalidate() where the change feed would, against a server with no binlog to
    follow (tests/integration/test_feed_cache.py has the feed itself keep the cache exact)."""
    monkeypatch.setattr(CacheFollower, "start", lambda follower: setattr(follower.cache, "following", True))


@pytest.fixture
def redis():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cached(settings, redis):
    """Settings with the cache on, in a namespace of this test's own."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    return lambda **more: settings(cache_url=redis.url, cache_namespace=namespace, **more)


def counts(client) -> dict:
    return dict(client.app.state.cache.counts)


async def age_of(client, key=1, **headers):
    response = await client.get(f"/api/users/{key}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]["age"], response


async def test_reads_are_kept_and_dropped_by_invalidate(schema, cached):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30), (2, 'Bob', 40)")
    async with running(cached()) as client:
        cache = client.app.state.cache
        age, first = await age_of(client)
        again_age, again = await age_of(client)
        assert (age, again_age) == (30, 30) and counts(client)["hit"] == 1 and counts(client)["stored"] == 1
        assert again.headers["etag"] == first.headers["etag"]
        assert again.json()["timestamp"] >= first.json()["timestamp"]  # the envelope is made for each answer
        # From the cache, a 304 too.
        assert (await client.get("/api/users/1", headers={"If-None-Match": first.headers["etag"]})).status_code == 304
        # A write by raw SQL: the cache holds the old row until the feed's invalidation, then never again.
        run_sql(schema, "UPDATE users SET age = 31 WHERE id = 1")
        assert (await age_of(client))[0] == 30
        await cache.invalidate("users")
        assert (await age_of(client))[0] == 31
        # Lists, queries, CSV: kept and dropped the same way.
        for read in (
            lambda: client.get("/api/users/query", params={"order": "id", "count": "exact"}),
            lambda: client.post("/api/users/query", json={"input": {"age": {"gte": 0}}, "order_by": "id"}),
            lambda: client.get("/api/users/query", params={"order": "id"}, headers={"Accept": "text/csv"}),
        ):
            before = (await read()).content
            assert (await read()).content.split(b'"message"')[-1] == before.split(b'"message"')[-1]
            run_sql(schema, "UPDATE users SET age = age + 1 WHERE id = 2")
            assert (await read()).content.split(b'"message"')[-1] == before.split(b'"message"')[-1]
            await cache.invalidate("users")
            assert (await read()).content != before
        # invalidate_all drops every table's.
        run_sql(schema, "UPDATE users SET age = 50 WHERE id = 1")
        await cache.invalidate_all()
        assert (await age_of(client))[0] == 50


async def test_the_gateways_own_writes_drop_the_tables_answers(schema, cached):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30)")
    async with running(cached()) as client:
        await age_of(client)
        writes = [
            lambda: client.put("/api/users/1", json={"input": {"age": 31}}),
            lambda: client.patch("/api/users", json={"input": [{"id": 1, "age": 32}]}),
            lambda: client.put("/api/users", json={"input": {"age": 33}, "where": {"id": 1}}),
            lambda: client.post("/api/users", json={"input": {"id": 1, "name": "Ann", "age": 34}},
                                headers={"Prefer": "resolution=merge-duplicates"}),
            lambda: client.post("/api/batch/import", params={"table": "users", "mode": "upsert"},
                                files={"file": ("users.csv", b"id,name,age\n1,Ann,35\n")}),
        ]
        for expected, write in zip(range(31, 36), writes):
            response = await write()
            assert response.status_code in (200, 201), response.text
            assert (await age_of(client))[0] == expected
        await client.delete("/api/users/1")
        assert (await client.get("/api/users/1")).status_code == 404


async def test_two_instances_share_the_cache_and_its_invalidations(schema, cached):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30)")
    async with running(cached()) as one, running(cached()) as two:
        assert (await age_of(one))[0] == 30
        assert (await age_of(two))[0] == 30 and counts(two)["hit"] == 1  # kept by the other instance
        tag = (await one.get("/api/users/1")).headers["etag"]
        assert (await one.put("/api/users/1", json={"input": {"age": 31}}, headers={"If-Match": tag})).status_code == 200
        assert (await age_of(two))[0] == 31
        assert_412 = await two.put("/api/users/1", json={"input": {"age": 1}}, headers={"If-Match": tag})
        assert assert_412.status_code == 412
        run_sql(schema, "UPDATE users SET age = 40 WHERE id = 1")
        await one.app.state.cache.invalidate("users")  # the feed, on any instance
        assert (await age_of(two))[0] == 40


async def test_a_read_that_began_before_a_change_does_not_store_after_it(redis):
    cache = ReadCache(redis.url, namespace=f"r{uuid.uuid4().hex[:8]}")
    cache.following = True  # as the feed would have it
    try:
        found = await cache.lookup("users", "k")
        assert found is not None and found.entry is None
        await cache.invalidate("users")  # the change committed, its invalidation came first
        assert not await cache.store(found, b"old rows")
        assert (await cache.lookup("users", "k")).entry is None
        # A read after the invalidation stores; the next change makes it unreachable at once.
        found = await cache.lookup("users", "k")
        assert await cache.store(found, b"rows")
        assert (await cache.lookup("users", "k")).entry == b"rows"
        await cache.invalidate("users")
        assert (await cache.lookup("users", "k")).entry is None
        # Another table's changes do not touch it; invalidate_all does.
        found = await cache.lookup("users", "k")
        await cache.store(found, b"rows")
        await cache.invalidate("orders")
        assert (await cache.lookup("users", "k")).entry == b"rows"
        await cache.invalidate_all()
        assert (await cache.lookup("users", "k")).entry is None
        # Redis restarted empty: generations start again above every earlier one.
        found = await cache.lookup("users", "k")
        await cache.store(found, b"before")
        redis.stop()
        redis.start()
        fresh = None
        for _ in range(3):  # a pooled connection the restart closed fails one call (and pauses the cache)
            cache._paused_until = 0.0
            fresh = await cache.lookup("users", "k")
            if fresh is not None:
                break
        assert fresh.entry is None and int(fresh.generation.split(b".")[1]) > int(found.generation.split(b".")[1])
    finally:
        await cache.close()


async def test_redis_stopping_never_fails_a_read_nor_serves_a_stale_one(schema, cached, redis):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30)")
    async with running(cached()) as client:
        cache = client.app.state.cache
        await age_of(client)
        await age_of(client)
        assert counts(client)["hit"] == 1
        redis.stop()
        run_sql(schema, "UPDATE users SET age = 31 WHERE id = 1")
        await cache.invalidate("users")  # fails: owed, and meanwhile the table is not cached here
        started = time.monotonic()
        for _ in range(20):
            assert (await age_of(client))[0] == 31
            assert (await client.get("/api/users/query")).status_code == 200
        assert time.monotonic() - started < 5  # no request waits for the dead Redis
        assert counts(client).get("error_invalidate", 0) >= 1
        assert not cache.usable("users")
        redis.start()  # empty, as after a crash: nothing stale comes back
        deadline = time.monotonic() + 5
        while not cache.usable("users") and time.monotonic() < deadline:
            await age_of(client)
            time.sleep(0.05)
        assert cache.usable("users")
        await age_of(client)
        assert (await age_of(client))[0] == 31 and counts(client)["hit"] >= 2
        metrics = (await client.get("/metrics")).text
        assert 'gateway_cache_reads_total{outcome="hit"}' in metrics
        assert 'gateway_cache_errors_total{op="invalidate"}' in metrics


async def test_row_policies_never_leak_through_the_cache(schema, cached):
    only(schema, ["CREATE TABLE notes (id INT PRIMARY KEY, tenant VARCHAR(10) NOT NULL, body VARCHAR(20))",
                  "INSERT INTO notes VALUES (1, 'acme', 'a'), (2, 'globex', 'g')"])

    def caller(tenant, scope="read:* write:*", sub=None):
        claims = {"sub": sub or f"u-{tenant}", "exp": int(time.time()) + 300, "scope": scope, "tenant": tenant}
        return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}

    acme, globex, admin = caller("acme", sub="same"), caller("globex", sub="same"), caller("x", "read:* admin:*")
    async with running(cached(auth_mode="jwt", jwt_secret=SECRET)) as one, \
            running(cached(auth_mode="jwt", jwt_secret=SECRET)) as two:
        # Before the policy every caller sees every row (and that answer is cached) ...
        assert len((await one.get("/api/notes/query", headers=acme)).json()["data"]) == 2
        assert (await one.put("/api/policies/notes", json={"column": "tenant", "claim": "tenant"},
                              headers=admin)).status_code == 200
        # ... after it, on both instances, each tenant sees its own, cached or not.
        for _ in range(3):
            for client in (one, two):
                assert [n["id"] for n in (await client.get("/api/notes/query", headers=acme)).json()["data"]] == [1]
                assert [n["id"] for n in (await client.get("/api/notes/query", headers=globex)).json()["data"]] == [2]
                assert (await client.get("/api/notes/2", headers=acme)).status_code == 404
                assert (await client.get("/api/notes/2", headers=globex)).status_code == 200
        assert counts(two)["hit"] > 0


def test_any_sequence_of_reads_writes_and_invalidations(schema, cached):
    """A state machine over two instances: reads (by key, lists, queries; conditional ones), writes
    through the gateway (with If-Match), and writes by raw SQL followed by the feed's invalidation.
    The model is the database: every answer, cached or not, is what it holds."""
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
    with TestClient(create_app(cached()), raise_server_exceptions=False) as one, \
            TestClient(create_app(cached()), raise_server_exceptions=False) as two:
        clients = (one, two)

        def stored() -> dict[int, int | None]:
            return dict(run_sql(schema, "SELECT id, age FROM users"))

        class Machine(RuleBasedStateMachine):
            def __init__(self):
                super().__init__()
                self.tags: dict[tuple, tuple[str, object]] = {}  # request -> (ETag, what it showed)

            def read(self, at, key):
                if key == "list":
                    response = clients[at].get("/api/users/query", params={"order": "id", "fields": "id,age"})
                    shown = {r["id"]: r["age"] for r in response.json()["data"]}
                    assert shown == stored()
                elif key == "query":
                    response = clients[at].post("/api/users/query", json={"input": {"age": {"gte": 2}}})
                    shown = sorted((r["id"], r["age"]) for r in response.json()["data"])
                    assert shown == sorted((k, v) for k, v in stored().items() if v is not None and v >= 2)
                else:
                    response = clients[at].get(f"/api/users/{key}")
                    assert response.status_code == 200, response.text
                    shown = response.json()["data"]["age"]
                    assert shown == stored()[key]
                self.tags[key] = (response.headers["etag"], shown)
                return response

            @rule(at=st.integers(0, 1), key=st.sampled_from([1, 2, 3, "list", "query"]))
            def plain_read(self, at, key):
                self.read(at, key)

            @precondition(lambda self: bool(self.tags))
            @rule(at=st.integers(0, 1), data=st.data())
            def conditional_read(self, at, data):
                key = data.draw(st.sampled_from(sorted(self.tags, key=str)))
                tag, shown = self.tags[key]
                path = "/api/users/query" if key in ("list", "query") else f"/api/users/{key}"
                if key == "query":
                    response = clients[at].post(path, json={"input": {"age": {"gte": 2}}},
                                                headers={"If-None-Match": tag})
                else:
                    params = {"order": "id", "fields": "id,age"} if key == "list" else {}
                    response = clients[at].get(path, params=params, headers={"If-None-Match": tag})
                if response.status_code == 304:
                    assert response.headers["etag"] == tag
                    now = self.read(at, key)  # what it would show now is what was shown with that tag
                    assert self.tags[key] == (tag, shown) and now.headers["etag"] == tag
                else:
                    assert response.status_code == 200 and response.headers["etag"] != tag

            @rule(at=st.integers(0, 1), key=st.integers(1, 3), age=st.integers(0, 4), conditional=st.booleans())
            def api_write(self, at, key, age, conditional):
                headers = {}
                if conditional and key in self.tags:
                    headers["If-Match"] = self.tags[key][0]
                before = stored()[key]
                response = clients[at].put(f"/api/users/{key}", json={"input": {"age": age}}, headers=headers)
                if headers and self.tags[key][1] != before:
                    assert response.status_code == 412, response.text
                    assert stored()[key] == before
                elif response.status_code == 412:
                    # Same age shown, but the row changed since (its name, by raw SQL): also a change.
                    assert headers
                else:
                    assert response.status_code == 200, response.text
                    assert stored()[key] == age

            @rule(at=st.integers(0, 1), key=st.integers(1, 3), age=st.integers(0, 4) | st.none())
            def raw_write_then_feed(self, at, key, age):
                run_sql(schema, "UPDATE users SET age = %s, name = %s WHERE id = %s", (age, uuid.uuid4().hex[:8], key))
                clients[at].portal.call(clients[at].app.state.cache.invalidate, "users")

        run_state_machine_as_test(Machine, settings=hypothesis_settings(
            max_examples=20, stateful_step_count=25, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        ))
        assert one.app.state.cache.counts.get("hit", 0) + two.app.state.cache.counts.get("hit", 0) > 0
