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
        assert {p for p in writer["paths"] if p.startswith("/api/") and p != "/api/tables"} == {
            "/api/orders/query", "/api/orders", "/api/orders/{key}"
        }
        reader = bearer(KEYS["reader"])
        run_sql(schema, "CREATE TABLE fresh (id INT PRIMARY KEY)")
        await client.get("/api/fresh/query", headers=reader)  # a miss reloads the catalog
        spec = (await client.get("/openapi.json", headers=reader)).json()
        assert "/api/fresh/query" in spec["paths"] and "/api/fresh" not in spec["paths"]  # read only
