"""Tables and columns created while the gateway runs are served without a restart."""

import asyncio

from tests.conftest import eventually, run_sql, running


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


async def test_a_table_created_just_after_a_load_is_served_at_once(schema, settings):
    """The old rule (a miss reloads at most once a second) made a load-then-import script 404."""
    async with running(settings()) as client:
        for round in range(3):
            assert (await client.get("/api/users/query")).status_code == 200
            await client.get("/api/nope/query")  # a miss: the catalog was just loaded
            run_sql(schema, f"CREATE TABLE t{round} (id INT PRIMARY KEY, v INT)")
            files = {"file": (f"t{round}.csv", b"id,v\n1,2\n", "text/csv")}
            response = await client.post("/api/batch/import", files=files)
            assert response.status_code == 200, response.text
            run_sql(schema, f"ALTER TABLE t{round} ADD COLUMN w INT")
            response = await client.post(f"/api/t{round}", json={"input": {"id": 2, "w": 7}})
            assert response.status_code == 201, response.text
            files = {"file": (f"t{round}.csv", b"id,v,w\n3,4,5\n", "text/csv")}
            assert (await client.post("/api/batch/import", files=files)).status_code == 200


async def test_a_storm_of_made_up_names_shares_catalog_loads(client):
    catalog = client.app.state.catalog
    before = catalog.refreshes
    responses = await asyncio.gather(*(client.get(f"/api/made_up_{i}/query") for i in range(200)))
    assert {r.status_code for r in responses} == {404}
    loads = catalog.refreshes - before
    # Each miss waits for a load that started after it; misses arriving together share one.
    assert 1 <= loads < 20, loads


async def test_a_refresh_reads_again_only_the_table_an_alter_changed(schema, settings):
    """Issue 32 (big catalogs): a refresh reads the listing's change stamps and then only the tables
    whose stamp moved, never the whole schema."""
    for i in range(40):
        run_sql(schema, f"CREATE TABLE many_{i} (id INT PRIMARY KEY, v INT)")
    async with running(settings()) as client:
        catalog = client.app.state.catalog
        reads = []
        fetch = catalog._source.fetch

        async def recorded(sql, params):
            if "INFORMATION_SCHEMA.COLUMNS" in sql:
                reads.append(sorted(params[1:]))
            return await fetch(sql, params)

        catalog._source.fetch = catalog._source.fetch_slow = recorded

        async def refreshed() -> list:
            reads.clear()
            catalog._refresh_due = True
            catalog._wake()
            while catalog._worker is not None:
                await asyncio.sleep(0.01)
            return list(reads)

        # Tables created within the last two seconds are read again (a second ALTER in the same second
        # leaves the stamp as it was); once their stamps are older, a refresh reads nothing but the listing.
        await eventually(lambda: refreshed_to([], refreshed), timeout=10, what="a refresh that reads no table")
        run_sql(schema, "ALTER TABLE many_7 ADD COLUMN w INT")
        assert await refreshed() == [["many_7"]]
        assert [c.name for c in (await catalog.table("many_7")).columns] == ["id", "v", "w"]
        assert (await client.post("/api/many_7", json={"input": {"id": 1, "w": 2}})).status_code == 201


async def refreshed_to(expected, refresh) -> bool:
    return await refresh() == expected
