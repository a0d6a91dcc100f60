"""Keyset pages and exact counts: every row once, in order, whatever the ties and NULLs."""

import random

from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error


def fill_pairs(sql, n=60):
    rnd = random.Random(7)
    values = [(i % 7, f"k{i % 5}", rnd.choice([None, 1, 2, 2, 3])) for i in range(n)]
    seen = set()
    for a, b, v in values:
        if (a, b) not in seen:
            seen.add((a, b))
            run_sql(sql, "INSERT INTO pairs (a, b, v) VALUES (%s, %s, %s)", (a, b, v))
    return len(seen)


async def walk(client, limit, **params):
    rows, cursor, pages = [], None, 0
    while True:
        query = {"limit": str(limit), **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/pairs/query", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        pages += 1
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return rows, pages
        assert body["meta"]["next"] is None or "cursor" not in query  # after a cursor, no offset to offer


async def test_cursor_pages_on_a_composite_key_with_ties_and_nulls(schema, settings):
    total = fill_pairs(schema)
    async with running(settings()) as client:
        for order, sql_order in (
            ("v.desc", "v DESC, a DESC, b DESC"), ("v", "v, a, b"), ("v.desc,b.asc", "v DESC, b, a"),
            ("b.desc,v.asc", "b DESC, v, a"), ("v,b.desc", "v, b DESC, a DESC"), (None, "a, b"),
        ):
            params = {"order": order} if order else {}
            rows, pages = await walk(client, 4, **params)
            want = [{"a": a, "b": b, "v": v} for a, b, v in run_sql(schema, f"SELECT a, b, v FROM pairs ORDER BY {sql_order}")]
            assert rows == want, order
            assert len(rows) == total and pages == -(-total // 4)
        # Fields that leave the order's columns out: the cursor still knows where it stood.
        rows, _ = await walk(client, 5, order="v.desc", fields="b")
        assert rows == [{"b": b} for (b,) in run_sql(schema, "SELECT b FROM pairs ORDER BY v DESC, a DESC, b DESC")]
        # With a filter.
        rows, _ = await walk(client, 3, order="v", v="gte.2")
        assert rows == [{"a": a, "b": b, "v": v} for a, b, v in run_sql(schema, "SELECT a, b, v FROM pairs WHERE v >= 2 ORDER BY v, a, b")]


async def test_exact_counts_and_the_json_form(schema, settings):
    total = fill_pairs(schema)
    async with running(settings()) as client:
        body = (await client.get("/api/pairs/query", params={"count": "exact", "limit": "2", "v": "is_null.true"})).json()
        assert body["meta"]["total"] == run_sql(schema, "SELECT COUNT(*) FROM pairs WHERE v IS NULL")[0][0]
        assert "total" not in (await client.get("/api/pairs/query")).json()["meta"]
        first = (await client.post("/api/pairs/query", json={"order_by": "v.desc", "limit": 10, "count": "exact"})).json()
        assert first["meta"]["total"] == total
        second = (await client.post("/api/pairs/query", json={"order_by": "v.desc", "limit": 10, "cursor": first["meta"]["next_cursor"]})).json()
        expected = run_sql(schema, "SELECT a, b, v FROM pairs ORDER BY v DESC, a DESC, b DESC LIMIT 10 OFFSET 10")
        assert [(r["a"], r["b"], r["v"]) for r in second["data"]] == list(expected)


async def test_bad_cursors_are_400(schema, settings):
    fill_pairs(schema)
    async with running(settings()) as client:
        cursor = (await client.get("/api/pairs/query", params={"order": "v", "limit": "2"})).json()["meta"]["next_cursor"]
        assert_error(await client.get("/api/pairs/query", params={"order": "v.desc", "cursor": cursor}), 400, "invalid_cursor")
        assert_error(await client.get("/api/pairs/query", params={"cursor": cursor}), 400, "invalid_cursor")
        assert_error(await client.get("/api/pairs/query", params={"order": "v", "cursor": cursor, "offset": "2"}), 400, "invalid_filter")
        for junk in ("x", "!!!", "eyJ2IjoxfQ", "e30", "W10", cursor[:-3] + "AAA"):
            assert_error(await client.get("/api/pairs/query", params={"order": "v", "cursor": junk}), 400, "invalid_cursor")
        assert_error(await client.get("/api/pairs/query", params={"count": "planned"}), 400, "invalid_filter")
        run_sql(schema, "INSERT INTO nokey VALUES (1, 1), (2, 2), (3, 3)")
        page = (await client.get("/api/nokey/query", params={"limit": "1", "order": "x"})).json()
        assert page["meta"]["next"] == 1 and page["meta"]["next_cursor"] is None  # no key: pages go by offset
        assert_error(await client.get("/api/nokey/query", params={"cursor": cursor}), 400, "invalid_filter")


async def test_cursor_values_of_every_type(schema, settings):
    """Order by dates, decimals, binary, times and JSON-less columns: the cursor's values come
    back through the same conversion as filters."""
    run_sql(schema, """INSERT INTO types (id, d, bin, dt, da, tm, e, s, bits) VALUES
        (1, 1.5, 'a', '2024-01-01 10:00:00.000001', '2024-01-01', '10:00:00', 'red', 'x', 1),
        (2, 1.5, 'b', '2024-01-01 10:00:00.000001', NULL, '-01:00:00', 'green', 'y', NULL),
        (3, -2.25, NULL, NULL, '2023-12-31', NULL, NULL, NULL, 9),
        (4, NULL, 'a', '2024-01-01 10:00:00.000002', '2024-01-01', '10:00:00', 'red', 'x', 1)""")
    async with running(settings()) as client:
        for order in ("d.desc", "bin", "dt.desc", "da", "tm", "e.desc", "s", "gen.desc", "bits"):
            ids, cursor = [], None
            while True:
                params = {"order": order, "limit": "1", "fields": "id"} | ({"cursor": cursor} if cursor else {})
                body = (await client.get("/api/types/query", params=params)).json()
                assert "data" in body, body
                ids += [r["id"] for r in body["data"]]
                if not (cursor := body["meta"]["next_cursor"]):
                    break
            column, _, direction = order.partition(".")
            want = [i for (i,) in run_sql(schema, f"SELECT id FROM types ORDER BY {column} {direction or 'asc'}, id {direction or 'asc'}")]
            assert ids == want, order


async def test_cursor_pages_ordered_by_a_json_column_as_it_is_stored(schema, settings):
    """A JSON column orders by its stored text, spaces and all: the cursor keeps that text, so every
    row comes once (it used to be spelt again compactly and the walk never ended)."""
    stored = ['[1, 2]', '{"b": 1}', '{"a": [1, 2], "b": "x y"}', '"text"', "3", "[1,2]", None, '{"b": 1}']
    for i, meta in enumerate(stored):
        run_sql(schema, "INSERT INTO users (name, meta) VALUES (%s, %s)", (f"u{i}", meta))
    async with running(settings()) as client:
        for order in ("meta.asc", "meta.desc"):
            names, cursor = [], None
            for _ in range(len(stored) + 1):
                query = {"limit": "1", "order": order, "fields": "name"} | ({"cursor": cursor} if cursor else {})
                body = (await client.get("/api/users/query", params=query)).json()
                names += [row["name"] for row in body["data"]]
                if (cursor := body["meta"]["next_cursor"]) is None:
                    break
            direction = "DESC" if order.endswith("desc") else "ASC"
            want = run_sql(schema, f"SELECT name FROM users ORDER BY meta {direction}, id {direction}")
            assert names == [name for (name,) in want], order


async def test_estimated_counts_read_the_statistics_or_the_plan_and_count_small_ones(schema, settings):
    run_sql(schema, "CREATE TABLE big (id INT PRIMARY KEY, k INT, note VARCHAR(10), KEY k (k))")
    run_sql(schema, "INSERT INTO big SELECT seq, MOD(seq, 100), 'x' FROM seq_1_to_20000")
    run_sql(schema, "ANALYZE TABLE big")
    run_sql(schema, "CREATE VIEW big_view AS SELECT id FROM big WHERE k < 50")
    async with running(settings(max_limit=200)) as client:
        async def total(path, **params):
            meta = (await client.get(path, params={"count": "estimated", "limit": 1} | params)).json()["meta"]
            return meta["total"], meta["total_kind"]

        # No filter: InnoDB's statistics (an estimate near the 20,000 there are).
        estimate, kind = await total("/api/big/query")
        assert kind == "estimated" and 10_000 <= estimate <= 40_000, estimate
        # A filter on an index: the plan's estimate of the range.
        estimate, kind = await total("/api/big/query", k="lt.50")
        assert kind == "estimated" and 5_000 <= estimate <= 20_000, estimate
        # An estimate within a page's worth of rows is counted instead: as cheap as the page.
        assert await total("/api/big/query", k="eq.7", id="lte.300") == (3, "exact")
        # A view has no statistics: counted.
        assert await total("/api/big_view/query") == (10_000, "exact")
        # count=exact says so too; a bad count names both kinds.
        meta = (await client.get("/api/big/query", params={"count": "exact", "k": "eq.1"})).json()["meta"]
        assert (meta["total"], meta["total_kind"]) == (200, "exact")
        body = assert_error(await client.get("/api/big/query", params={"count": "planned"}), 400, "invalid_filter")
        assert "estimated" in body["message"]
