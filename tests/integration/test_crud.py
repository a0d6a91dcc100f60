"""Every CRUD route against a real MariaDB through the in-process gateway."""

import base64

from tests.conftest import run_sql


async def create(client, table, row):
    response = await client.post(f"/api/{table}", json={"input": row})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["status"] == status
    assert set(body) == {"timestamp", "status", "error", "message", "details", "retry_count", "request_id"}
    assert response.headers["x-request-id"] == body["request_id"]
    return body


async def test_create_returns_row_with_generated_key_and_defaults(client):
    response = await client.post("/api/users", json={"input": {"name": "Ann", "email": "ann@example.com", "meta": {"a": [1]}}})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"timestamp", "message", "data", "retry_count"}
    assert body["retry_count"] == 0
    row = body["data"]
    assert isinstance(row["id"], int) and row["name"] == "Ann"
    assert row["balance"] == "0.00" and row["active"] == 1 and row["meta"] == {"a": [1]}
    assert row["created"]  # server default, read back


async def test_bulk_create_in_one_statement_with_uneven_rows(client, schema):
    response = await client.post("/api/users", json={"input": [{"name": "a", "age": 1}, {"name": "b", "email": "b@x"}, {"name": "c"}]})
    assert response.status_code == 201
    rows = response.json()["data"]
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["age"] is None and rows[0]["email"] is None and rows[2]["balance"] == "0.00"
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(3,)]


async def test_bulk_create_is_all_or_nothing(client, schema):
    response = await client.post("/api/users", json={"input": [{"name": "a", "email": "same"}, {"name": "b", "email": "same"}]})
    assert_error(response, 409, "conflict")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_every_column_type_round_trips(client):
    row = {
        "id": 1, "i": -128, "u": 65535, "b": 2**63 - 1, "f": 1.5, "d": "-12345.125", "s": "ten chars!",
        "t": "long\ntext", "bin": base64.b64encode(b"\x00\x01\xfe").decode(), "dt": "2024-02-29T23:59:59.123456",
        "da": "1999-12-31", "tm": "838:59:59", "y": 2155, "e": "green", "st": ["a", "c"], "j": {"k": [1, "x", None]},
        "flag": True, "bits": 9,
    }
    created = await create(client, "types", row)
    fetched = (await client.get("/api/types/1")).json()["data"]
    assert created == fetched
    expected = row | {"bin": row["bin"], "st": "a,c", "flag": 1, "gen": 2}
    assert fetched == expected


async def test_list_filters_order_fields_and_pages(client):
    await client.post("/api/users", json={"input": [{"name": f"u{i}", "age": i} for i in range(10)]})
    response = await client.get("/api/users/query", params={"age": "gte.3", "order": "age.desc", "fields": "name,age", "limit": "4"})
    body = response.json()
    assert [r["age"] for r in body["data"]] == [9, 8, 7, 6]
    assert set(body["data"][0]) == {"name", "age"}
    assert {k: v for k, v in body["meta"].items() if k != "next_cursor"} == {"count": 4, "limit": 4, "offset": 0, "next": 4}
    assert body["meta"]["next_cursor"]  # keyset pages: tests/integration/test_cursors.py
    last = (await client.get("/api/users/query", params={"age": "gte.3", "order": "age.desc", "limit": "4", "offset": "4"})).json()
    assert [r["age"] for r in last["data"]] == [5, 4, 3] and last["meta"]["next"] is None
    ids = (await client.get("/api/users/query?age=in.1,2,3&name=u2")).json()["data"]
    assert [r["age"] for r in ids] == [2]


async def test_default_and_maximum_limit(client):
    await client.post("/api/users", json={"input": [{"name": f"u{i}"} for i in range(150)]})
    body = (await client.get("/api/users/query")).json()
    assert body["meta"]["count"] == 100 and body["meta"]["next"] == 100
    assert_error(await client.get("/api/users/query?limit=100000"), 400, "invalid_filter")


async def test_post_query_with_json_filter_language(client):
    await client.post("/api/users", json={"input": [
        {"name": "a", "age": 10}, {"name": "b", "age": 20}, {"name": "c"}, {"name": "dd", "age": 40}]})
    body = {"input": {"or": [{"age": {"between": [15, 30]}}, {"age": None}], "name": {"nin": ["x"]}}, "order_by": ["name.asc"]}
    rows = (await client.post("/api/users/query", json=body)).json()["data"]
    assert [r["name"] for r in rows] == ["b", "c"]
    rows = (await client.post("/api/users/query", json={"input": {"name": {"like": "d%"}}, "fields": ["name"]})).json()["data"]
    assert rows == [{"name": "dd"}]


async def test_update_and_delete_by_filter(client, schema):
    await client.post("/api/users", json={"input": [{"name": "a", "age": 1}, {"name": "b", "age": 2}, {"name": "c", "age": 3}]})
    response = await client.put("/api/users", json={"input": {"active": False}, "where": {"age": {"gte": 2}}})
    assert response.json()["data"] == {"affected": 2}
    assert run_sql(schema, "SELECT name FROM users WHERE active = 0 ORDER BY name") == [("b",), ("c",)]
    response = await client.request("DELETE", "/api/users", json={"input": {"active": 0}})
    assert response.json()["data"] == {"affected": 2}
    assert run_sql(schema, "SELECT name FROM users") == [("a",)]


async def test_empty_filters_are_refused(client, schema):
    await create(client, "users", {"name": "a"})
    assert_error(await client.put("/api/users", json={"input": {"age": 1}}), 400, "where_required")
    assert_error(await client.put("/api/users", json={"input": {"age": 1}, "where": {}}), 400, "where_required")
    assert_error(await client.request("DELETE", "/api/users", json={"input": {}}), 400, "where_required")
    assert_error(await client.request("DELETE", "/api/users", json={}), 400, "where_required")
    assert run_sql(schema, "SELECT COUNT(*) FROM users WHERE age IS NULL") == [(1,)]


async def test_by_key_routes(client):
    row = await create(client, "users", {"name": "a"})
    key = row["id"]
    assert (await client.get(f"/api/users/{key}")).json()["data"]["name"] == "a"
    assert (await client.get(f"/api/users/{key}?fields=name")).json()["data"] == {"name": "a"}
    updated = (await client.put(f"/api/users/{key}", json={"input": {"name": "b"}})).json()["data"]
    assert updated["name"] == "b" and updated["id"] == key
    # Same values again still reports the row (affected = matched rows).
    assert (await client.put(f"/api/users/{key}", json={"input": {"name": "b"}})).status_code == 200
    assert (await client.delete(f"/api/users/{key}")).json()["data"] == {"affected": 1}
    assert_error(await client.get(f"/api/users/{key}"), 404, "row_not_found")
    assert_error(await client.put(f"/api/users/{key}", json={"input": {"name": "c"}}), 404, "row_not_found")
    assert_error(await client.delete(f"/api/users/{key}"), 404, "row_not_found")


async def test_composite_key_and_key_change(client):
    await create(client, "pairs", {"a": 1, "b": "x", "v": 5})
    assert (await client.get("/api/pairs/1,x")).json()["data"]["v"] == 5
    moved = (await client.put("/api/pairs/1,x", json={"input": {"b": "y"}})).json()["data"]
    assert moved == {"a": 1, "b": "y", "v": 5}
    assert_error(await client.get("/api/pairs/1"), 400, "invalid_filter")
    assert_error(await client.get("/api/nokey/1"), 400, "invalid_filter")


async def test_catalog_routes_hide_denied_tables(client):
    tables = (await client.get("/api/tables")).json()["data"]
    names = [t["name"] for t in tables]
    assert "users" in names and "secret_stuff" not in names
    described = (await client.get("/api/tables/orders")).json()["data"]
    assert described["primary_key"] == ["id"]
    status = next(c for c in described["columns"] if c["name"] == "status")
    assert status["members"] == ["new", "paid", "shipped"] and status["required"] is False
    assert_error(await client.get("/api/tables/secret_stuff"), 404, "table_not_found")
    assert_error(await client.get("/api/secret_stuff/query"), 404, "table_not_found")


async def test_health(client):
    assert (await client.get("/health/live")).status_code == 200
    ready = (await client.get("/health/ready")).json()["data"]
    assert ready["status"] == "ready" and ready["tables"] >= 5


async def test_servers_without_returning_read_created_rows_back(client, schema, monkeypatch):
    """MySQL has no INSERT ... RETURNING: the rows are read back by key in the same transaction."""
    from app.db.database import Database

    monkeypatch.setattr(Database, "supports_returning", property(lambda self: False))
    one = (await client.post("/api/users", json={"input": {"name": "a", "age": 1}})).json()["data"]
    assert one["name"] == "a" and isinstance(one["id"], int) and one["balance"] == "0.00"
    many = (await client.post("/api/users", json={"input": [{"name": "b"}, {"name": "c"}]})).json()["data"]
    assert [r["name"] for r in many] == ["b", "c"] and many[1]["id"] == many[0]["id"] + 1
    pair = (await client.post("/api/pairs", json={"input": [{"a": 1, "b": "x"}, {"a": 2, "b": "y", "v": 3}]})).json()["data"]
    assert pair == [{"a": 1, "b": "x", "v": None}, {"a": 2, "b": "y", "v": 3}]
    keyless = (await client.post("/api/nokey", json={"input": {"x": 1}})).json()["data"]
    assert keyless == {"x": 1}
