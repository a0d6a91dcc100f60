"""Tables whose names the gateway's own routes take (issue 31): served under /api/tables/{table}/...,
documented there, and the short form tells where to go."""

from tests.conftest import run_sql
from tests.integration.test_crud import assert_error


async def test_tables_called_batch_and_jobs(client, schema):
    run_sql(schema, "CREATE TABLE batch (id INT PRIMARY KEY, v INT)")
    run_sql(schema, "CREATE TABLE jobs (id INT PRIMARY KEY, v INT)")
    assert (await client.post("/api/tables/batch", json={"input": [{"id": 1, "v": 2}, {"id": 2, "v": 3}]})).status_code == 201
    assert [r["v"] for r in (await client.get("/api/tables/batch/query", params={"order": "id"})).json()["data"]] == [2, 3]
    assert (await client.put("/api/tables/batch/1", json={"input": {"v": 9}})).json()["data"] == {"id": 1, "v": 9}
    assert (await client.get("/api/tables/batch/aggregate", params={"sum": "v"})).json()["data"] == [{"sum_v": 12}]
    assert (await client.delete("/api/tables/batch/2")).status_code == 200
    assert (await client.get("/api/tables/batch")).json()["data"]["name"] == "batch"  # GET: the catalog's description
    body = assert_error(await client.get("/api/batch/query"), 404, "not_found")
    assert body["details"]["use"] == "/api/tables/batch/query" and "/api/tables/batch/query" in body["message"]
    # The table's own routes, short: POST /api/batch (404), POST /api/tables (a 405: GET lists tables).
    body = assert_error(await client.post("/api/batch", json={"input": {"id": 3, "v": 1}}), 404, "not_found")
    assert body["details"]["use"] == "/api/tables/batch"
    run_sql(schema, "CREATE TABLE tables (id INT PRIMARY KEY)")
    body = assert_error(await client.post("/api/tables", json={"input": {"id": 1}}), 405, "method_not_allowed")
    assert body["details"] == {"allowed": ["GET"], "use": "/api/tables/tables"} and "/api/tables/tables" in body["message"]
    assert (await client.post("/api/tables/tables", json={"input": {"id": 1}})).status_code == 201

    run_sql(schema, "INSERT INTO jobs VALUES (1, 10)")
    export = await client.get("/api/tables/jobs/export")
    assert export.status_code == 200 and export.text.splitlines() == ["id,v", "1,10"]
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/tables/batch/query", "/api/tables/batch/{key}", "/api/tables/jobs/export", "/api/users/query"} <= set(spec["paths"])
    assert "/api/batch/query" not in spec["paths"]


async def test_a_known_path_with_another_method_is_405(client, schema):
    response = await client.patch("/api/users/query")
    body = assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST" and body["details"]["allowed"] == ["GET", "POST"]
    assert_error(await client.get("/api/users/1/extra"), 404, "not_found")
