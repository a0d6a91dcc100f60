"""Writes as PostgREST's users make them (issue 32): `Prefer: return=minimal`, upserts by
`Prefer: resolution=...`, and PATCH of many rows by their keys in one transaction."""

from decimal import Decimal as D

import hypothesis.stateful as stateful
from hypothesis import HealthCheck
from hypothesis import settings as examples
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

TABLES = [
    """CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, email VARCHAR(60) NOT NULL UNIQUE,
        name VARCHAR(40), age INT CHECK (age >= 0), city VARCHAR(20) DEFAULT 'Paris')""",
    """CREATE TABLE stock (shop CHAR(3), sku VARCHAR(10) COLLATE utf8mb4_general_ci, qty INT NOT NULL,
        price DECIMAL(8,2), PRIMARY KEY (shop, sku))""",
    "CREATE TABLE notes (body TEXT)",
    "INSERT INTO people (email, name, age) VALUES ('ann@x.org', 'Ann', 30), ('bob@x.org', 'Bob', 40)",
    "INSERT INTO stock VALUES ('PAR', 'a-1', 5, 1.50), ('PAR', 'b-2', 0, 2.00), ('LYO', 'a-1', 7, 1.75)",
]
MINIMAL = {"Prefer": "return=minimal"}


def table(sql, name, order):
    return run_sql(sql, f"SELECT * FROM {name} ORDER BY {order}")


async def test_return_minimal_reads_nothing_back_and_says_where_the_row_is(schema, settings):
    only(schema, TABLES)
    async with running(settings()) as client:
        response = await client.post("/api/people", json={"input": {"email": "cy@x.org"}}, headers=MINIMAL)
        assert response.status_code == 201 and response.content == b""
        assert response.headers["preference-applied"] == "return=minimal"
        assert response.headers["location"] == "/api/people/3"
        assert (await client.get(response.headers["location"])).json()["data"]["city"] == "Paris"
        # A composite key, given: its Location is the key in the URL's form (quoted).
        response = await client.post("/api/stock", json={"input": {"shop": "NCE", "sku": "c/3", "qty": 1}},
                                     headers={"Prefer": "return=headers-only"})
        assert response.status_code == 201 and response.headers["location"] == "/api/stock/NCE,c%2F3"
        assert (await client.get(response.headers["location"])).json()["data"]["qty"] == 1
        # Several rows: 201, no body, no Location; a table without a key: none either.
        response = await client.post("/api/people", json={"input": [{"email": "d@x.org"}, {"email": "e@x.org"}]},
                                     headers=MINIMAL)
        assert response.status_code == 201 and "location" not in response.headers and response.content == b""
        response = await client.post("/api/notes", json={"input": {"body": "hi"}}, headers=MINIMAL)
        assert response.status_code == 201 and "location" not in response.headers
        # Errors are answered as always: a preference never hides a refusal.
        assert_error(await client.post("/api/people", json={"input": {"email": "ann@x.org"}}, headers=MINIMAL),
                     409, "conflict")
        # PUT, PATCH and DELETE: 204 with no body.
        for method, url, body in (
            ("PUT", "/api/people/1", {"input": {"age": 31}}),
            ("PATCH", "/api/people/1", {"input": {"name": "Anne"}}),
            ("PUT", "/api/people", {"input": {"city": "Lyon"}, "where": {"id": 2}}),
            ("PATCH", "/api/people", {"input": [{"id": 2, "age": 41}]}),
            ("DELETE", "/api/people/4", None),
            ("DELETE", "/api/people", {"where": {"id": 5}}),
        ):
            response = await client.request(method, url, json=body, headers=MINIMAL)
            assert (response.status_code, response.content) == (204, b""), (method, url, response.text)
            assert response.headers["preference-applied"] == "return=minimal"
        assert table(schema, "people", "id") == [
            (1, "ann@x.org", "Anne", 31, "Paris"), (2, "bob@x.org", "Bob", 41, "Lyon"), (3, "cy@x.org", None, None, "Paris"),
        ]
        # A preference the gateway does not know, or a value it does not, is ignored (RFC 7240).
        response = await client.put("/api/people/1", json={"input": {"age": 32}},
                                    headers={"Prefer": "return=everything, tx=rollback, wait=5"})
        assert response.status_code == 200 and response.json()["data"]["age"] == 32
        assert "preference-applied" not in response.headers
        # The first of a repeated preference counts; several headers read as one list.
        response = await client.put("/api/people/1", json={"input": {"age": 33}},
                                    headers=[("Prefer", "return=representation"), ("Prefer", "return=minimal")])
        assert response.status_code == 200 and response.headers["preference-applied"] == "return=representation"
        # PATCH by key is PUT by key.
        response = await client.patch("/api/people/1", json={"input": {"age": 34}})
        assert response.json()["data"] == {"id": 1, "email": "ann@x.org", "name": "Anne", "age": 34, "city": "Paris"}


async def test_upserts_merge_or_keep_duplicates_and_fail_on_anything_else(schema, settings):
    only(schema, TABLES)
    merge = {"Prefer": "resolution=merge-duplicates"}
    keep = {"Prefer": "resolution=ignore-duplicates"}
    async with running(settings()) as client:
        response = await client.post("/api/stock", headers=merge, json={"input": [
            {"shop": "PAR", "sku": "a-1", "qty": 9}, {"shop": "MRS", "sku": "z-9", "qty": 1, "price": "9.99"},
        ]})
        assert response.status_code == 201, response.text
        assert response.headers["preference-applied"] == "resolution=merge-duplicates"
        # The rows as stored: the merged one keeps the columns not given.
        assert response.json()["data"] == [
            {"shop": "PAR", "sku": "a-1", "qty": 9, "price": "1.50"},
            {"shop": "MRS", "sku": "z-9", "qty": 1, "price": "9.99"},
        ]
        # Ignore: the existing row is left as it is, and answered as stored; a new one is inserted.
        response = await client.post("/api/stock", headers=keep, json={"input": [
            {"shop": "PAR", "sku": "b-2", "qty": 100}, {"shop": "LYO", "sku": "q-7", "qty": 3},
        ]})
        assert response.status_code == 201, response.text
        assert [r["qty"] for r in response.json()["data"]] == [0, 3]
        # The key's collation decides what a duplicate is ('A-1' is 'a-1' here).
        response = await client.post("/api/stock", headers=merge, json={"input": {"shop": "PAR", "sku": "A-1", "qty": 4}})
        assert response.json()["data"]["qty"] == 4
        assert table(schema, "stock", "shop, sku") == [
            ("LYO", "a-1", 7, D("1.75")), ("LYO", "q-7", 3, None), ("MRS", "z-9", 1, D("9.99")),
            ("PAR", "a-1", 4, D("1.50")), ("PAR", "b-2", 0, D("2.00")),
        ]
        # Only duplicates are forgiven: a broken CHECK still fails, all rows or none.
        assert_error(await client.post("/api/people", headers=keep, json={"input": [
            {"email": "new@x.org", "age": 5}, {"email": "bad@x.org", "age": -1},
        ]}), 422, "invalid_value")
        assert [r[1] for r in table(schema, "people", "id")] == ["ann@x.org", "bob@x.org"]
        # A duplicate of any unique key (MySQL's ON DUPLICATE KEY): the email finds Ann's row.
        response = await client.post("/api/people", headers={"Prefer": "return=minimal, resolution=merge-duplicates"}, json={"input": {"email": "ann@x.org", "age": 3}})
        assert response.status_code == 201
        assert response.headers["preference-applied"] == "return=minimal, resolution=merge-duplicates"
        assert table(schema, "people", "id")[0] == (1, "ann@x.org", "Ann", 3, "Paris")
        # The same on a write kept by an Idempotency-Key: a replay answers the same, Location too.
        headers = MINIMAL | {"Idempotency-Key": "cy-1"}
        first = await client.post("/api/people", json={"input": {"email": "cy@x.org"}}, headers=headers)
        again = await client.post("/api/people", json={"input": {"email": "cy@x.org"}}, headers=headers)
        assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert first.headers["location"] == again.headers["location"] and again.content == b""
        assert again.headers["preference-applied"] == "return=minimal"
        # Another preference with the same key is another request: refused, not replayed.
        assert_error(await client.post("/api/people", json={"input": {"email": "cy@x.org"}},
                                       headers=headers | {"Prefer": "resolution=merge-duplicates"}),
                     422, "idempotency_key_reused")


async def test_patch_updates_many_rows_by_key_in_one_transaction(schema, settings):
    only(schema, TABLES)
    async with running(settings()) as client:
        response = await client.patch("/api/stock", json={"input": [
            {"shop": "PAR", "sku": "a-1", "qty": 6},
            {"shop": "LYO", "sku": "a-1", "qty": 8, "price": "2.25"},
            {"shop": "PAR", "sku": "B-2", "price": None},  # the key's collation finds b-2
            {"shop": "NCE", "sku": "x", "qty": 1},  # no such row: named, not created
        ]})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"affected": 3, "missing": [{"shop": "NCE", "sku": "x"}]}
        assert table(schema, "stock", "shop, sku") == [
            ("LYO", "a-1", 8, D("2.25")), ("PAR", "a-1", 6, D("1.50")), ("PAR", "b-2", 0, None),
        ]
        # All or nothing: one refused row (a value, a key missing, a key twice) refuses the list.
        for rows, status, code, at in (
            ([{"shop": "PAR", "sku": "a-1", "qty": 1}, {"shop": "LYO", "sku": "a-1", "qty": None}], 422, "invalid_value", 1),
            ([{"shop": "PAR", "sku": "a-1", "qty": 1}, {"sku": "a-1", "qty": 2}], 400, "invalid_body", 1),
            ([{"shop": "PAR", "sku": "a-1", "qty": 1}, {"shop": "PAR", "sku": "a-1", "qty": 2}], 400, "invalid_body", 1),
            ([{"shop": "PAR", "sku": "a-1"}], 400, "invalid_body", 0),
            ([{"shop": "PAR", "sku": "a-1", "colour": "red"}], 400, "unknown_column", 0),
        ):
            body = assert_error(await client.patch("/api/stock", json={"input": rows}), status, code)
            assert body["details"]["row"] == at, body
        # A value the server refuses in the second group rolls back the first group's UPDATE.
        assert_error(await client.patch("/api/people", json={"input": [
            {"id": 1, "name": "Annie"}, {"id": 2, "age": -5},
        ]}), 422, "invalid_value")
        assert [r[2] for r in table(schema, "people", "id")] == ["Ann", "Bob"]
        assert table(schema, "stock", "shop, sku")[1] == ("PAR", "a-1", 6, D("1.50"))
        assert_error(await client.patch("/api/notes", json={"input": [{"body": "x"}]}), 400, "invalid_filter")
        assert_error(await client.patch("/api/stock", json={"input": []}), 400, "invalid_body")


async def test_patch_checks_every_row_against_the_tables_rules(schema, settings):
    only(schema, TABLES)
    async with running(settings()) as client:
        response = await client.put("/api/schemas/people", json={"properties": {"name": {"minLength": 2}}})
        assert response.status_code in (200, 201), response.text
        body = assert_error(await client.patch("/api/people", json={"input": [
            {"id": 1, "age": 50}, {"id": 2, "name": "B"},
        ]}), 422, "invalid_value")
        assert "name" in str(body["details"])
        assert [r[3] for r in table(schema, "people", "id")] == [30, 40]
        response = await client.patch("/api/people", json={"input": [{"id": 1, "age": 50}, {"id": 2, "name": "Bo"}]})
        assert response.json()["data"] == {"affected": 2, "missing": []}


def test_patch_agrees_with_one_put_per_row(schema, settings):
    """A state machine: lists of PATCHed rows against the same changes made one PUT at a time on a
    copy of the table; both tables are the same after every step, and so are the answers' counts."""
    only(schema, [
        "CREATE TABLE a (k INT PRIMARY KEY, x INT, y VARCHAR(5))",
        "CREATE TABLE b (k INT PRIMARY KEY, x INT, y VARCHAR(5))",
        "INSERT INTO a VALUES (1, 0, 'p'), (2, 0, 'q'), (3, 0, NULL)",
        "INSERT INTO b VALUES (1, 0, 'p'), (2, 0, 'q'), (3, 0, NULL)",
    ])
    with TestClient(create_app(settings())) as client:

        class Machine(stateful.RuleBasedStateMachine):
            @stateful.rule(rows=st.lists(
                st.fixed_dictionaries({"k": st.integers(0, 4)},
                                      optional={"x": st.integers(-3, 3), "y": st.none() | st.text("abc", max_size=5)}),
                min_size=1, max_size=6, unique_by=lambda r: r["k"]))
            def patch(self, rows):
                response = client.patch("/api/a", json={"input": rows})
                if any(len(r) == 1 for r in rows):
                    assert response.status_code == 400, response.text
                    return
                assert response.status_code == 200, response.text
                found = 0
                for row in rows:
                    changes = {c: v for c, v in row.items() if c != "k"}
                    put = client.put(f"/api/b/{row['k']}", json={"input": changes})
                    assert put.status_code in (200, 404), put.text
                    found += put.status_code == 200
                data = response.json()["data"]
                assert data["affected"] == found
                assert sorted(m["k"] for m in data["missing"]) == sorted(r["k"] for r in rows if r["k"] not in (1, 2, 3))

            @stateful.invariant()
            def same(self):
                assert run_sql(schema, "SELECT * FROM a ORDER BY k") == run_sql(schema, "SELECT * FROM b ORDER BY k")

        stateful.run_state_machine_as_test(
            Machine, settings=examples(max_examples=25, stateful_step_count=5, deadline=None,
                                       suppress_health_check=[HealthCheck.function_scoped_fixture]),
        )


async def test_an_upsert_takes_each_key_once_and_location_only_where_a_path_reaches(schema, settings):
    only(schema, TABLES)
    async with running(settings()) as client:
        body = assert_error(await client.post("/api/stock", headers={"Prefer": "resolution=merge-duplicates"}, json={
            "input": [{"shop": "PAR", "sku": "a-1", "qty": 1}, {"shop": "PAR", "sku": "a-1", "qty": 2}]}),
            400, "invalid_body")
        assert body["details"] == {"rows": [0, 1]}
        assert table(schema, "stock", "shop, sku")[1][2] == 5  # nothing written
        # A key with no path of its own gets no Location (the row is created all the same).
        for key in ({"shop": "X,Y", "sku": "p"}, {"shop": "NCE", "sku": ".."}):
            response = await client.post("/api/stock", json={"input": key | {"qty": 1}}, headers=MINIMAL)
            assert response.status_code == 201 and "location" not in response.headers, key
        assert len(table(schema, "stock", "shop, sku")) == 5


async def test_rows_that_meet_one_stored_row(schema, settings):
    """Two rows of one request that the server takes for one stored row (another unique key, or a
    key its collation finds equal): an upsert answers each as the row it ended as; a PATCH refuses."""
    only(schema, TABLES)
    async with running(settings()) as client:
        response = await client.post("/api/people", headers={"Prefer": "resolution=merge-duplicates"}, json={"input": [
            {"email": "z@x.org", "name": "U1"}, {"email": "z@x.org", "name": "U2"}]})
        assert response.status_code == 201, response.text
        stored = run_sql(schema, "SELECT id, name FROM people WHERE email = 'z@x.org'")
        assert [(r["id"], r["name"]) for r in response.json()["data"]] == stored * 2 == [(stored[0][0], "U2")] * 2
        response = await client.post("/api/stock", headers={"Prefer": "resolution=merge-duplicates"}, json={"input": [
            {"shop": "PAR", "sku": "a-1", "qty": 1}, {"shop": "PAR", "sku": "A-1", "qty": 2}]})
        assert [r["qty"] for r in response.json()["data"]] == [2, 2]
        body = assert_error(await client.patch("/api/stock", json={"input": [
            {"shop": "PAR", "sku": "a-1", "qty": 7}, {"shop": "PAR", "sku": "A-1", "qty": 8}]}), 400, "invalid_body")
        assert body["details"] == {"row": 1}
        assert table(schema, "stock", "shop, sku")[1][2] == 2  # nothing written
        # A rule refuses a row of a PATCH: the answer names the row.
        await client.put("/api/schemas/stock", json={"properties": {"qty": {"maximum": 100}}})
        body = assert_error(await client.patch("/api/stock", json={"input": [
            {"shop": "PAR", "sku": "a-1", "qty": 7}, {"shop": "LYO", "sku": "a-1", "qty": 700}]}), 422, "invalid_value")
        assert body["details"]["row"] == 1 and body["message"].startswith("row 1:")
