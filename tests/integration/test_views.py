"""Views (issue 32): served read-only like tables, with `"kind": "view"` in the catalog; every write
path (rows, PATCH, imports, jobs, the WebSocket) answers 405 naming it."""

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

SCHEMA = [
    "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20), city VARCHAR(20), salary DECIMAL(8,2))",
    "INSERT INTO people VALUES (1, 'Ann', 'Lyon', 10.50), (2, 'Bob', 'Oslo', 20.00), (3, 'Cy', 'Lyon', NULL)",
    "CREATE VIEW lyon AS SELECT id, name, salary FROM people WHERE city = 'Lyon'",
    "CREATE VIEW cities AS SELECT city, COUNT(*) AS n, SUM(salary) AS total FROM people GROUP BY city",
]


async def test_a_view_reads_like_a_table_and_refuses_every_write(schema, settings):
    only(schema, SCHEMA)
    async with running(settings()) as client:
        listed = {t["name"]: t for t in (await client.get("/api/tables")).json()["data"]}
        assert listed["lyon"]["kind"] == "view" and listed["people"]["kind"] == "table"
        described = (await client.get("/api/tables/cities")).json()["data"]
        assert described["kind"] == "view" and [c["name"] for c in described["columns"]] == ["city", "n", "total"]
        # Reads: pages, filters, the JSON filter, aggregates, CSV, exports.
        page = (await client.get("/api/lyon/query", params={"order": "id.desc"})).json()["data"]
        assert page == [{"id": 3, "name": "Cy", "salary": None}, {"id": 1, "name": "Ann", "salary": "10.50"}]
        response = await client.post("/api/cities/query", json={"input": {"n": {"gte": 2}}})
        assert response.json()["data"] == [{"city": "Lyon", "n": 2, "total": "10.50"}]
        response = await client.get("/api/lyon/aggregate", params={"count": "*", "sum": "salary"})
        assert response.json()["data"] == [{"count": 2, "sum_salary": "10.50"}]
        response = await client.get("/api/batch/cities/export", params={"order": "city"})
        assert response.text.splitlines() == ["city,n,total", "Lyon,2,10.50", "Oslo,1,20.00"]
        # Every write: 405 naming the view, and nothing written.
        for method, url, body in (
            ("POST", "/api/lyon", {"input": {"id": 9, "name": "Di"}}),
            ("PUT", "/api/lyon", {"input": {"name": "X"}, "where": {"id": 1}}),
            ("PATCH", "/api/lyon", {"input": [{"id": 1, "name": "X"}]}),
            ("DELETE", "/api/lyon", {"where": {"id": 1}}),
        ):
            body = assert_error(await client.request(method, url, json=body), 405, "method_not_allowed")
            assert body["details"] == {"table": "lyon", "kind": "view"}, (method, url)
        # A view has no primary key: by key is 400, as for any table without one.
        assert_error(await client.put("/api/lyon/1", json={"input": {"name": "X"}}), 405, "method_not_allowed")
        assert_error(await client.delete("/api/lyon/1"), 405, "method_not_allowed")
        for path in ("/api/batch/import", "/api/batch/validate"):
            response = await client.post(path, files={"file": ("lyon.csv", b"id,name\n9,Di\n", "text/csv")})
            assert_error(response, 405, "method_not_allowed")
        response = await client.post("/api/batch/import", params={"async": "true"},
                                     files={"file": ("lyon.csv", b"id,name\n9,Di\n", "text/csv")})
        assert_error(response, 405, "method_not_allowed")
        assert run_sql(schema, "SELECT COUNT(*) FROM people") == [(3,)]
        # The OpenAPI document gives a view its reads only.
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert set(paths["/api/lyon/query"]) == {"get", "post"}
        assert "/api/lyon" not in paths and "post" in paths["/api/people"]
        # A view made while the gateway runs is found on the first request for it.
        run_sql(schema, "CREATE VIEW oslo AS SELECT name FROM people WHERE city = 'Oslo'")
        assert (await client.get("/api/oslo/query")).json()["data"] == [{"name": "Bob"}]
        assert_error(await client.post("/api/oslo", json={"input": {"name": "Eve"}}), 405, "method_not_allowed")


def test_a_stream_into_a_view_is_refused(schema, settings):
    only(schema, SCHEMA)
    with TestClient(create_app(settings())) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect("/api/lyon/ws") as ws:
                ws.receive_json()
        assert closed.value.code != 1000


async def test_a_view_takes_no_rules(schema, settings):
    only(schema, SCHEMA)
    async with running(settings()) as client:
        assert_error(await client.put("/api/schemas/lyon", json={"properties": {}}), 405, "method_not_allowed")
