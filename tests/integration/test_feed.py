"""The change feed against a MariaDB writing its binlog: every committed change of a table, in
commit order, as SSE and WebSocket, resumed without a gap or a duplicate, filtered, under row
policies, a slow subscriber cut off, and the catalog following ALTER TABLE from the feed."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.config import Settings
from tests.conftest import running, serving
from tests.integration.feedserver import binlog_server, following, fresh_database

TABLES = [
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2), status ENUM('new','paid'),"
    " tags SET('a','b','c'), bits BIT(4), data JSON, bin VARBINARY(4), at DATETIME(3), f FLOAT)",
    "CREATE TABLE other (id INT PRIMARY KEY)",
]


@pytest.fixture(scope="module")
def server():
    with binlog_server() as server:
        yield server


@pytest.fixture
def database(server):
    url, conn = fresh_database(server, TABLES)
    yield url, conn
    conn.close()


def execute(conn, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


async def test_every_change_in_commit_order_with_its_images(database):
    url, conn = database
    async with serving(Settings(database_url=url)) as (app, base), httpx.AsyncClient(base_url=base) as client:
        async with following(client, "/api/items/changes") as events:
            kind, ident, data = await events.next()
            assert kind == "ready" and ident == data["position"]
            execute(conn, "INSERT INTO items VALUES (1, 'a', 1.50, 'new', 'c,a', b'0101', '{\"n\": 12345678901234567890}',"
                          " 0x00ff, '2026-01-02 03:04:05.123', 1.1)",
                    "INSERT INTO other VALUES (1)",
                    "BEGIN", "UPDATE items SET name = 'b', price = 2 WHERE id = 1", "INSERT INTO other VALUES (2)",
                    "INSERT INTO items (id) VALUES (2)", "COMMIT",
                    "DELETE FROM items WHERE id = 1")
            inserted, updated, second, deleted = await events.changes(4)
        row = (await client.get("/api/items/2")).json()["data"]
    shown = {"id": 1, "name": "a", "price": "1.50", "status": "new", "tags": "a,c", "bits": 5,
             "data": {"n": 12345678901234567890}, "bin": "AP8=", "at": "2026-01-02T03:04:05.123000", "f": 1.1}
    assert inserted["op"] == "insert" and inserted["before"] is None and inserted["after"] == shown
    assert inserted["key"] == {"id": 1} and inserted["table"] == "items" and inserted["gtid"].startswith("0-11-")
    assert updated["op"] == "update" and updated["before"] == shown
    assert updated["after"] == shown | {"name": "b", "price": "2.00"}
    assert second["after"] == row  # as GET shows the row
    assert second["gtid"] == updated["gtid"]  # one transaction: one GTID, one position, changes numbered
    assert second["position"].rsplit(":", 1)[0] == updated["position"].rsplit(":", 1)[0]
    assert int(second["position"].rsplit(":", 1)[1]) == int(updated["position"].rsplit(":", 1)[1]) + 2
    assert deleted["op"] == "delete" and deleted["after"] is None and deleted["before"]["name"] == "b"
    positions = [e["position"] for e in (inserted, updated, second, deleted)]
    assert positions == sorted(positions, key=lambda p: tuple(int(x) for x in p.split(":")[1:]))


async def test_resumed_from_any_position_without_a_gap_or_a_duplicate(database, server):
    url, conn = database
    config = Settings(database_url=url, feed_buffer=3)  # past 3 changes back: a reader of its own
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        async with following(client, "/api/items/changes") as events:
            await events.next()
            for i in range(10):
                execute(conn, "BEGIN", f"INSERT INTO items (id) VALUES ({2 * i})", f"INSERT INTO items (id) VALUES ({2 * i + 1})",
                        "COMMIT")
            seen = await events.changes(20)
        assert [e["after"]["id"] for e in seen] == list(range(20))
        updates: list[str] = []
        for at in (0, 1, 7, 16, 18, 19):  # within a transaction or at its end; far back or recent
            async with following(client, "/api/items/changes", **{"Last-Event-ID": seen[at]["position"]}) as again:
                kind, _, data = await again.next()
                assert kind == "ready" and data["position"] == seen[at]["position"]
                execute(conn, f"UPDATE items SET name = 'n{at}' WHERE id = 0")
                updates.append(f"n{at}")
                rest = await again.changes(19 - at + len(updates))
            assert [e["position"] for e in rest[: 19 - at]] == [e["position"] for e in seen[at + 1:]]
            assert [e["after"]["name"] for e in rest[19 - at:]] == updates
        gone = seen[0]["position"]
        execute(conn, "FLUSH BINARY LOGS", "INSERT INTO other VALUES (1)")
        current = server.sql("SHOW MASTER STATUS")[0][0]
        for _ in range(100):  # a file a reader still reads (a resumed one, stopping) is kept by the server
            server.sql(f"PURGE BINARY LOGS TO '{current}'")
            if server.sql("SHOW BINARY LOGS")[0][0] == current:
                break
            await asyncio.sleep(0.1)
        answer = await client.get("/api/items/changes", params={"after": gone})
        assert answer.status_code == 410 and answer.json()["error"] == "position_gone"
        assert answer.json()["details"]["position"].startswith("binlog.")
        bad = await client.get("/api/items/changes", params={"after": "nope"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_position"


async def test_a_filter_follows_the_rows_it_selects(database):
    url, conn = database
    async with serving(Settings(database_url=url)) as (app, base), httpx.AsyncClient(base_url=base) as client:
        async with following(client, "/api/items/changes?status=eq.paid&price=gt.10") as events:
            await events.next()
            execute(conn, "INSERT INTO items (id, status, price) VALUES (1, 'new', 20)",  # not selected
                    "UPDATE items SET status = 'paid' WHERE id = 1",  # enters: an insert
                    "UPDATE items SET price = 30 WHERE id = 1",  # within: an update
                    "UPDATE items SET price = 5 WHERE id = 1",  # leaves: a delete, as it was
                    "DELETE FROM items WHERE id = 1")  # not selected any more
            entered, changed, left = await events.changes(3)
            execute(conn, "INSERT INTO items (id, status, price) VALUES (2, 'paid', 11)")
            last = (await events.changes(1))[0]
        assert (entered["op"], entered["before"], entered["after"]["price"]) == ("insert", None, "20.00")
        assert (changed["op"], changed["before"]["price"], changed["after"]["price"]) == ("update", "20.00", "30.00")
        assert (left["op"], left["before"]["price"], left["after"]) == ("delete", "30.00", None)
        assert last["key"] == {"id": 2}
        for bad in ("?limit=1", "?nope=1", "?q=words"):
            answer = await client.get(f"/api/items/changes{bad}")
            assert answer.status_code == 400, answer.text


async def test_the_catalog_follows_alter_table_from_the_feed(database):
    url, conn = database
    config = Settings(database_url=url, catalog_ttl_s=3600)  # no timer would see the new column for an hour
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        async with following(client, "/api/items/changes") as events:
            await events.next()
            execute(conn, "ALTER TABLE items ADD COLUMN extra VARCHAR(5) DEFAULT 'x'",
                    "INSERT INTO items (id, extra) VALUES (1, 'new')")
            [inserted] = await events.changes(1)
        assert inserted["after"]["extra"] == "new"
        for _ in range(100):
            columns = [c["name"] for c in (await client.get("/api/tables/items")).json()["data"]["columns"]]
            if "extra" in columns:
                break
            await asyncio.sleep(0.02)
        assert "extra" in columns
        assert (await client.get("/api/items/query?extra=new")).json()["data"][0]["id"] == 1


async def test_a_slow_subscriber_is_cut_off_and_never_holds_the_others(database):
    url, conn = database
    config = Settings(database_url=url, feed_queue=200)
    payload = "x" * 16000
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        async with following(client, "/api/items/changes") as slow, following(client, "/api/items/changes") as fast:
            await slow.next()
            await fast.next()
            for chunk in range(15):  # ~24 MB the slow one never takes; the fast one keeps up, chunk by chunk
                await asyncio.to_thread(_many, conn, payload, 100, 100 * chunk)
                assert len(await asyncio.wait_for(fast.changes(100), 60)) == 100
            kinds = []
            while True:  # what reached its socket before the cut, then the cut with its reason
                kind, _, data = await slow.next()
                kinds.append(kind)
                if kind == "cut":
                    break
            assert "too slow" in data["reason"] and kinds.count("change") < 1500
        assert app.state.feed.metrics_cut == 1


def _many(conn, payload: str, n: int, first: int = 0) -> None:
    with conn.cursor() as cur:
        for i in range(first, first + n):
            cur.execute("INSERT INTO items (id, name, data) VALUES (%s, 'n', JSON_OBJECT('p', %s))", (i, payload))


async def test_row_policies_and_scopes_hold_on_the_feed(database):
    url, conn = database
    execute(conn, "CREATE TABLE notes (id INT PRIMARY KEY, tenant VARCHAR(10), body VARCHAR(20))")
    keys = [{"name": n, "sha256": hashlib.sha256(n.encode()).hexdigest(), "scopes": s, "claims": c} for n, s, c in (
        ("acme", ["read:notes"], {"tenant": "acme"}), ("globex", ["read:notes"], {"tenant": "globex"}),
        ("admin", ["admin:*", "read:*"], {}), ("blind", ["read:items"], {}))]
    config = Settings(database_url=url, auth_mode="api-key", api_keys=json.dumps(keys), policies_ttl_s=0.01)
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        put = await client.put("/api/policies/notes", json={"column": "tenant", "claim": "tenant"},
                               headers={"X-API-Key": "admin"})
        assert put.status_code == 200, put.text
        assert (await client.get("/api/notes/changes", headers={"X-API-Key": "blind"})).status_code == 403
        async with following(client, "/api/notes/changes", **{"X-API-Key": "acme"}) as acme, \
                following(client, "/api/notes/changes", **{"X-API-Key": "globex"}) as globex:
            await acme.next()
            await globex.next()
            execute(conn, "INSERT INTO notes VALUES (1, 'acme', 'a'), (2, 'globex', 'g')",
                    "UPDATE notes SET tenant = 'globex' WHERE id = 1")  # given away by raw SQL
            a = await acme.changes(2)
            g = await globex.changes(2)
        assert [(e["op"], e["key"]) for e in a] == [("insert", {"id": 1}), ("delete", {"id": 1})]
        assert a[1]["after"] is None  # the row left acme: it never sees what it became
        assert [(e["op"], e["key"]) for e in g] == [("insert", {"id": 2}), ("insert", {"id": 1})]


async def test_websocket_subscribers_get_the_same_events(database):
    url, conn = database
    async with serving(Settings(database_url=url)) as (app, base):
        import websockets

        ws_url = base.replace("http", "ws") + "/api/items/changes/ws"
        async with websockets.connect(ws_url) as ws:
            ready = json.loads(await ws.recv())
            assert ready["event"] == "ready"
            execute(conn, "INSERT INTO items (id) VALUES (1)", "INSERT INTO items (id) VALUES (2)")
            first = json.loads(await ws.recv())
            second = json.loads(await ws.recv())
        assert (first["event"], first["op"], first["key"], second["key"]) == ("change", "insert", {"id": 1}, {"id": 2})
        async with websockets.connect(ws_url + "?after=" + first["position"]) as ws:
            assert json.loads(await ws.recv())["position"] == first["position"]
            assert json.loads(await ws.recv())["key"] == {"id": 2}


async def test_without_a_fit_binlog_the_feed_says_why(database, server):
    url, conn = database
    server.sql("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        async with running(Settings(database_url=url)) as client:
            answer = await client.get("/api/items/changes")
            assert answer.status_code == 503 and answer.json()["error"] == "feed_unavailable"
            assert "binlog_row_metadata is MINIMAL" in answer.json()["details"]["reason"]
            ready = (await client.get("/health/ready")).json()["data"]["feed"]
            assert ready["state"] == "unavailable" and "binlog_row_metadata" in ready["reason"]
    finally:
        server.sql("SET GLOBAL binlog_row_metadata = 'FULL'")


async def test_no_query_string_or_position_gives_a_server_error(database):
    """Whatever the query string and Last-Event-ID hold, the feed answers 200 (a stream) or a 4xx."""
    url, _ = database
    texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
    params = st.lists(st.tuples(st.sampled_from(["id", "name", "price", "status", "after", "nope", "limit", "q", "or"]),
                                texts), max_size=3)
    async with serving(Settings(database_url=url)) as (app, base), httpx.AsyncClient(base_url=base) as client:
        seen = []

        @hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(params=params, last=st.one_of(st.none(), texts))
        def check(params, last):
            seen.append((params, last))

        check()
        for query, last in seen:
            headers = {"Last-Event-ID": last} if last is not None and last.isprintable() and last.isascii() else {}
            async with client.stream("GET", "/api/items/changes", params=query, headers=headers) as answer:
                assert answer.status_code < 500, (query, last, (await answer.aread())[:300])


async def test_a_reader_starts_where_it_is_told_not_at_the_oldest_file(database, server):
    url, conn = database
    for i in range(30):
        execute(conn, f"INSERT INTO items (id) VALUES ({1000 + i})")
    execute(conn, "FLUSH BINARY LOGS")
    execute(conn, "INSERT INTO items (id) VALUES (2000)")
    async with serving(Settings(database_url=url)) as (app, base), httpx.AsyncClient(base_url=base) as client:
        file, offset = server.sql("SHOW MASTER STATUS")[0][:2]  # after the gateway made its own tables
        async with following(client, "/api/items/changes") as events:
            kind, _, data = await events.next()
            assert data["position"] == f"{file}:{offset}:-1"  # the binlog's end, not its beginning
            execute(conn, "INSERT INTO items (id) VALUES (1)")
            [first] = await events.changes(1)
            assert first["key"] == {"id": 1}
        assert app.state.feed.last.file == file
        ahead = await client.get("/api/items/changes", params={"after": f"{file}:{int(offset) + 10**9}:0"})
        assert ahead.status_code == 400 and ahead.json()["error"] == "invalid_position"
        other = await client.get("/api/items/changes", params={"after": "binlog.009999:4:0"})
        assert other.status_code == 400


async def test_a_stream_ends_when_its_key_is_revoked_and_narrows_when_a_policy_is_put(database):
    url, conn = database
    execute(conn, "CREATE TABLE notes (id INT PRIMARY KEY, tenant VARCHAR(10) COLLATE utf8mb4_bin, body VARCHAR(20))")
    root = [{"name": "root", "sha256": hashlib.sha256(b"root").hexdigest(), "scopes": ["admin", "admin:*", "read:*"]}]
    config = Settings(database_url=url, auth_mode="api-key", api_keys=json.dumps(root), token_secret="s" * 40,
                      policies_ttl_s=0.01, accounts_ttl_s=0.2)
    as_root = {"X-API-Key": "root"}
    async with serving(config) as (app, base), httpx.AsyncClient(base_url=base) as client:
        made = (await client.post("/api/admin/keys", json={"name": "acme", "scopes": ["read:notes"],
                                                           "claims": {"tenant": "acme"}}, headers=as_root)).json()
        key = {"X-API-Key": made["data"]["key"]}
        async with following(client, "/api/notes/changes", **key) as acme:
            await acme.next()
            execute(conn, "INSERT INTO notes VALUES (1, 'globex', 'before the policy')")
            assert (await acme.changes(1))[0]["key"] == {"id": 1}  # no policy yet: every row
            put = await client.put("/api/policies/notes", json={"column": "tenant", "claim": "tenant"}, headers=as_root)
            assert put.status_code == 200, put.text
            await asyncio.sleep(1.2)
            execute(conn, "INSERT INTO notes VALUES (2, 'globex', 'g'), (3, 'ACME', 'not acme'), (4, 'acme', 'mine')")
            assert [e["key"] for e in await acme.changes(1)] == [{"id": 4}]  # a binary collation: 'ACME' is not acme
            assert (await client.delete(f"/api/admin/keys/{made['data']['id']}", headers=as_root)).status_code == 200
            await asyncio.sleep(1.2)
            execute(conn, "INSERT INTO notes VALUES (5, 'acme', 'after the revocation')")
            kind, _, data = await acme.next()
            assert kind == "cut" and "unauthorized" in data["reason"]
