"""Every error code of the contract, from real requests."""

import pytest

from tests.conftest import run_sql, running, with_database
from tests.integration.test_crud import assert_error, create


async def test_table_not_found(client):
    assert_error(await client.post("/api/nope", json={"input": {"a": 1}}), 404, "table_not_found")
    assert_error(await client.get("/api/information_schema.tables/query"), 404, "table_not_found")
    assert_error(await client.get("/api/mysql.user/query"), 404, "table_not_found")


async def test_unknown_column_everywhere(client):
    assert_error(await client.post("/api/users", json={"input": {"name": "a", "nope": 1}}), 400, "unknown_column")
    assert_error(await client.get("/api/users/query?nope=1"), 400, "unknown_column")
    assert_error(await client.get("/api/users/query?order=nope.asc"), 400, "unknown_column")
    assert_error(await client.get("/api/users/query?fields=id,nope"), 400, "unknown_column")
    assert_error(await client.put("/api/users", json={"input": {"nope": 1}, "where": {"id": 1}}), 400, "unknown_column")


async def test_invalid_filter(client):
    assert_error(await client.post("/api/users/query", json={"input": {"age": {"regex": ".*"}}}), 400, "invalid_filter")
    assert_error(await client.post("/api/users/query", json={"input": {"age": {"between": [1]}}}), 400, "invalid_filter")
    assert_error(await client.get("/api/users/query?offset=-1"), 400, "invalid_filter")


async def test_invalid_value_and_missing_column(client):
    body = assert_error(await client.post("/api/users", json={"input": {"name": "a", "age": "old"}}), 422, "invalid_value")
    assert body["details"]["column"] == "age"
    body = assert_error(await client.post("/api/users", json={"input": [{"name": "a"}, {"name": "x" * 51}]}), 422, "invalid_value")
    assert body["details"]["row"] == 1 and body["details"]["column"] == "name"
    body = assert_error(await client.post("/api/users", json={"input": {"age": 3}}), 422, "missing_column")
    assert body["details"]["column"] == "name" and body["message"] == "column 'name': missing, and it has no default (NOT NULL)"
    assert_error(await client.post("/api/users", json={"input": {"name": None}}), 422, "invalid_value")
    assert_error(await client.get("/api/users/query?age=abc"), 422, "invalid_value")


async def test_conflicts(client):
    user = await create(client, "users", {"name": "a", "email": "e"})
    assert_error(await client.post("/api/users", json={"input": {"name": "b", "email": "e"}}), 409, "conflict")
    assert_error(await client.post("/api/orders", json={"input": {"user_id": 999, "total": 1}}), 409, "conflict")
    await create(client, "orders", {"user_id": user["id"], "total": "9.99"})
    assert_error(await client.delete(f"/api/users/{user['id']}"), 409, "conflict")


async def test_invalid_body(client):
    response = await client.post("/api/users", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_body")
    assert_error(await client.post("/api/users", json={"rows": []}), 400, "invalid_body")
    assert_error(await client.post("/api/users", json={"input": []}), 400, "invalid_body")
    assert_error(await client.put("/api/users/1", json={"input": {}}), 400, "invalid_body")


async def test_payload_too_large(schema, settings):
    async with running(settings(max_body_bytes=1000, max_bulk_rows=5)) as client:
        big = {"input": {"name": "a", "meta": {"x": "y" * 2000}}}
        assert_error(await client.post("/api/users", json=big), 413, "payload_too_large")
        many = {"input": [{"name": str(i)} for i in range(6)]}
        assert_error(await client.post("/api/users", json=many), 413, "payload_too_large")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_internal_errors_leak_nothing(client, schema, monkeypatch):
    from app.query import sql

    monkeypatch.setattr(sql, "delete", lambda table, where: ("DELETE FROM nonsense syntax %s", (1,)))
    body = assert_error(await client.request("DELETE", "/api/users", json={"input": {"id": 1}}), 500, "internal_error")
    assert body["message"] == "internal error" and body["details"] is None


async def test_unknown_route_and_method(client):
    assert_error(await client.get("/nope"), 404, "not_found")
    assert_error(await client.request("TRACE", "/api/users/1"), 405, "method_not_allowed")


@pytest.mark.parametrize("request_id", ["abc-123", "x" * 200, "bad id\n"])
async def test_request_id_echoed_only_when_safe(client, request_id):
    response = await client.get("/api/nope/query", headers={"x-request-id": request_id})
    echoed = response.json()["request_id"]
    assert (echoed == request_id) == (request_id == "abc-123")


async def test_security_headers_and_no_cors_by_default(client):
    response = await client.get("/api/users/query", headers={"Origin": "https://evil.example"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    # A read with an ETag may be kept by the browser, to be revalidated; everything else is not kept.
    assert response.headers["cache-control"] == "private, no-cache" and response.headers["etag"]
    assert "access-control-allow-origin" not in response.headers
    error = await client.get("/api/nope/query")
    assert error.headers["x-content-type-options"] == "nosniff" and error.headers["cache-control"] == "no-store"
    written = await client.post("/api/users", json={"input": {"name": "Ann"}})
    assert written.headers["cache-control"] == "no-store" and "etag" not in written.headers


async def test_cors_for_configured_origins(schema, settings):
    async with running(settings(cors_origins=("https://app.example",))) as client:
        allowed = await client.options(
            "/api/users/query", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.get("/api/users/query", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_in_lists_are_bounded(client):
    ids = ",".join(str(i) for i in range(1001))
    assert_error(await client.get(f"/api/users/query?id=in.{ids}"), 400, "invalid_filter")
    assert (await client.get(f"/api/users/query?id=in.{ids.rsplit(',', 1)[0]}")).status_code == 200


async def test_one_spelling_everywhere(client):
    """Issue 9, item 5."""
    body = assert_error(await client.get("/api/batch/import"), 405, "method_not_allowed")
    assert "POST" in body["message"]
    response = await client.get("/api/batch/import")
    assert response.headers["allow"] == "POST"
    body = assert_error(await client.get("/api/users/query?order=id.sideways"), 400, "invalid_filter")
    assert "sideways" in body["message"] and body["details"]["column"] == "id"
    assert_error(await client.get("/api/users/query?order=-id.desc"), 400, "invalid_filter")
    assert (await client.get("/api/users/query?order=id.DESC")).status_code == 200
    for name in ("a", "b", "c"):
        await create(client, "users", {"name": name})
    # DELETE takes its filter in `input` (the contract) or `where` (like PUT); never both.
    response = await client.request("DELETE", "/api/users", json={"where": {"name": "a"}})
    assert response.status_code == 200 and response.json()["data"]["affected"] == 1
    assert_error(await client.request("DELETE", "/api/users", json={"where": {}}), 400, "where_required")
    assert_error(await client.request("DELETE", "/api/users", json={"where": {"name": "b"}, "input": {"name": "b"}}), 400, "invalid_body")
    # POST /query takes `order` (like the query string) or `order_by`; never both.
    response = await client.post("/api/users/query", json={"order": "name.desc"})
    assert [r["name"] for r in response.json()["data"]] == ["c", "b"]
    response = await client.post("/api/users/query", json={"order_by": ["name.asc"]})
    assert [r["name"] for r in response.json()["data"]] == ["b", "c"]
    assert_error(await client.post("/api/users/query", json={"order": "name", "order_by": "id"}), 400, "invalid_body")


async def test_setup_errors_say_what_they_are(schema, settings):
    """A database name that does not exist: 503 naming it, not a bare 500."""
    async with running(settings(database_url=with_database(settings().database_url, "no_such_db_x"))) as client:
        body = assert_error(await client.get("/api/tables"), 503, "service_unavailable")
        assert "unknown database 'no_such_db_x'" in body["message"]
        body = assert_error(await client.get("/health/ready"), 503, "service_unavailable")
        assert "unknown database 'no_such_db_x'" in body["message"]


async def test_a_row_a_trigger_refuses_is_422_on_every_path(client, schema):
    """SIGNAL in a trigger (1644) is the database refusing the row, in its own words: 422, never a
    500, and in an import the one row, not the file."""
    from tests.integration.test_csv import csv_bytes
    from tests.integration.test_formats import imported

    for event in ("INSERT", "UPDATE"):
        run_sql(schema, f"""
            CREATE TRIGGER users_refuse_{event.lower()} BEFORE {event} ON users FOR EACH ROW
            IF NEW.name = 'refused' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no one is called refused'; END IF
        """)
    body = assert_error(await client.post("/api/users", json={"input": {"name": "refused"}}), 422, "invalid_value")
    assert body["message"] == "the database refused the row: no one is called refused"
    user = await create(client, "users", {"name": "fine"})
    assert_error(await client.put(f"/api/users/{user['id']}", json={"input": {"name": "refused"}}), 422, "invalid_value")
    report = await imported(client, "users.csv", csv_bytes([["name"], ["ann"], ["refused"], ["bob"]]))
    assert report["rows_inserted"] == 2 and report["rows_failed"] == 1
    assert report["errors"][0]["line"] == 3 and report["errors"][0]["code"] == "invalid_value"
    assert sorted(name for (name,) in run_sql(schema, "SELECT name FROM users")) == ["ann", "bob", "fine"]


async def test_a_privilege_the_gateways_user_lacks_is_503_naming_it(schema, settings, test_db):
    """A read-only database user: reads work, a write is 503 saying what is wrong, not a 500."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    user = f"gw_ro_{uuid.uuid4().hex[:8]}"
    database = urlsplit(test_db).path.strip("/")
    for host in ("localhost", "%"):
        run_sql(schema, "CREATE USER %s@%s IDENTIFIED BY 'pw'", (user, host))
        run_sql(schema, f"GRANT SELECT ON `{database}`.* TO %s@%s", (user, host))
    parts = urlsplit(test_db)
    url = urlunsplit(parts._replace(netloc=f"{user}:pw@{parts.hostname}" + (f":{parts.port}" if parts.port else "")))
    try:
        async with running(settings(database_url=url)) as client:
            assert (await client.get("/api/users/query")).status_code == 200
            body = assert_error(await client.post("/api/users", json={"input": {"name": "a"}}), 503, "service_unavailable")
            assert "privilege" in body["message"] and user not in body["message"]
    finally:
        for host in ("localhost", "%"):
            run_sql(schema, "DROP USER IF EXISTS %s@%s", (user, host))
