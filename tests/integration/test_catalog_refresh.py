"""Tables and columns created while the gateway runs are served without a restart."""

from tests.conftest import run_sql, running


async def test_new_table_and_new_column_appear_without_restart(schema, settings):
    async with running(settings()) as client:
        assert (await client.get("/api/fresh/query")).status_code == 404
        run_sql(schema, "CREATE TABLE fresh (id INT PRIMARY KEY, v VARCHAR(5))")
        response = await client.post("/api/fresh", json={"input": {"id": 1, "v": "x"}})
        assert response.status_code == 201, response.text
        run_sql(schema, "ALTER TABLE fresh ADD COLUMN w INT")
        response = await client.post("/api/fresh", json={"input": {"id": 2, "w": 7}})
        assert response.status_code == 201 and response.json()["data"]["w"] == 7


async def test_catalog_is_not_queried_per_request(client):
    catalog = client.app.state.catalog
    before = catalog.refreshes
    for _ in range(20):
        assert (await client.get("/api/users/query")).status_code == 200
    assert catalog.refreshes == before


async def test_allow_list_exposes_only_matching_tables(schema, settings):
    async with running(settings(tables_allow=("user*", "orders"), tables_deny=())) as client:
        names = [t["name"] for t in (await client.get("/api/tables")).json()["data"]]
        assert names == ["orders", "users"]
        assert (await client.get("/api/types/query")).status_code == 404
        assert (await client.get("/api/users/query")).status_code == 200
