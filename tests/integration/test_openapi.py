"""/openapi.json describes the real tables, for what the caller may do, and follows the catalog."""

from tests.conftest import run_sql, running
from tests.integration.test_auth import KEYS, api_keys, bearer


async def test_each_table_has_its_paths_and_column_schemas(client):
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    assert {"/api/users/query", "/api/users", "/api/users/{key}", "/api/batch/users/export"} <= set(spec["paths"])
    assert "/api/nokey/{key}" not in spec["paths"] and "/api/nokey" in spec["paths"]
    assert not any("secret_stuff" in path for path in spec["paths"])
    schemas = spec["components"]["schemas"]
    row = schemas["users.row"]["properties"]
    assert row["id"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1, "title": "int(11)"}
    assert row["name"]["maxLength"] == 50 and row["email"]["anyOf"][1] == {"type": "null"}
    assert schemas["users.input"]["required"] == ["name"]
    assert schemas["orders.row"]["properties"]["status"]["enum"] == ["new", "paid", "shipped"]
    assert "gen" not in schemas["types.input"]["properties"] and "gen" in schemas["types.row"]["properties"]
    assert (await client.get("/docs")).status_code == 200


async def test_the_spec_is_per_caller_and_follows_the_catalog(schema, settings):
    async with running(settings(auth_mode="api-key", api_keys=api_keys())) as client:
        assert (await client.get("/openapi.json")).status_code == 401
        writer = (await client.get("/openapi.json", headers={"X-API-Key": KEYS["orders-writer"]})).json()
        assert {p for p in writer["paths"] if p.startswith("/api/") and p not in ("/api/tables", "/api/rpc/{name}")} == {
            "/api/orders/query", "/api/orders/aggregate", "/api/orders", "/api/orders/{key}", "/api/tables/orders", "/api/schemas/orders",
            "/api/orders/changes"
        }
        reader = bearer(KEYS["reader"])
        run_sql(schema, "CREATE TABLE fresh (id INT PRIMARY KEY)")
        await client.get("/api/fresh/query", headers=reader)  # a miss reloads the catalog
        spec = (await client.get("/openapi.json", headers=reader)).json()
        assert "/api/fresh/query" in spec["paths"] and "/api/fresh" not in spec["paths"]  # read only


async def test_the_spec_describes_every_route(client):
    """Issue 9, item 6: the import, the catalog, health and metrics; limits; integer columns."""
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/api/batch/import", "/api/batch/validate", "/api/tables", "/api/tables/users", "/health/live", "/health/ready", "/metrics"} <= set(paths)
    upload = paths["/api/batch/import"]["post"]
    assert upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    parameters = {p["name"]: p for p in upload["parameters"]}
    assert set(parameters) == {"table", "mode", "atomic", "null", "sheet", "format", "Idempotency-Key", "async", "Prefer"}
    assert {"/api/batch/jobs", "/api/batch/jobs/{job_id}", "/api/batch/jobs/{job_id}/events"} <= set(paths)
    validate = {p["name"] for p in paths["/api/batch/validate"]["post"]["parameters"]}
    assert validate == {"table", "mode", "null", "sheet", "format"}
    assert set(paths["/api/schemas/users"]) == {"get", "put", "delete"}
    assert "users" in parameters["table"]["schema"]["enum"] and "secret_stuff" not in parameters["table"]["schema"]["enum"]
    assert upload["responses"]["200"] == {"$ref": "#/components/responses/ImportReport"}
    report = spec["components"]["responses"]["ImportReport"]["content"]["application/json"]["schema"]
    assert report["properties"]["data"] == {"$ref": "#/components/schemas/ImportReport"}
    assert {"$ref": "#/components/parameters/limit"} in paths["/api/users/query"]["get"]["parameters"]
    assert spec["components"]["parameters"]["limit"]["schema"]["maximum"] == 1000
    age = spec["components"]["schemas"]["users.input"]["properties"]["age"]
    assert "number" not in str(age)  # 3.5 is refused, so the spec does not offer it
    assert (await client.post("/api/users", json={"input": {"name": "x", "age": 3.5}})).status_code == 422
    # The WebSocket streams, which OpenAPI cannot say as paths, in an extension: the tables one may import into.
    streams = spec["x-websockets"]
    assert "/api/users/ws" in streams and "/api/secret_stuff/ws" not in streams
    assert streams["/api/users/ws"]["message"] == {"$ref": "#/components/schemas/users.message"}
    assert spec["components"]["schemas"]["users.message"]["oneOf"][0] == {"$ref": "#/components/schemas/users.input"}
    assert streams["protocol"]["answer"] == {"$ref": "#/components/schemas/StreamAnswer"}
    assert "rows_written" in spec["components"]["schemas"]["StreamAnswer"]["required"]


async def test_docs_load_with_no_network(client):
    """Swagger UI's assets come from the gateway itself, never a CDN."""
    page = (await client.get("/docs")).text
    assert "http://" not in page and "https://" not in page
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css"), ("favicon.png", "image/png")):
        assert f"/docs/assets/{asset}" in page
        response = await client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert len(response.content) > 500
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text
