"""ETag, If-None-Match and If-Match (issue 28): a read's strong validator, 304 when it is unchanged,
and writes by key that happen only while the row is the one the client read (412 otherwise). No
cache here: validators hold without one (tests/integration/test_cache.py has the cache)."""

import base64
import time

import jwt
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

SECRET = "s" * 32


async def test_a_read_has_an_etag_and_if_none_match_gives_304(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30), (2, 'Bob', 40)")
    first = await client.get("/api/users/1")
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and tag.endswith('"')
    assert first.headers["cache-control"] == "private, no-cache" and first.headers["vary"] == "Accept"
    again = await client.get("/api/users/1")
    assert again.headers["etag"] == tag  # the timestamp differs, the ETag does not
    for header in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
        response = await client.get("/api/users/1", headers={"If-None-Match": header})
        assert response.status_code == 304 and response.content == b"", header
        assert response.headers["etag"] == tag and response.headers["vary"] == "Accept"
    assert (await client.get("/api/users/1", headers={"If-None-Match": '"other"'})).status_code == 200
    assert (await client.get("/api/users/1", headers={"If-None-Match": "not a tag"})).status_code == 200
    # Another representation, another ETag.
    csv = await client.get("/api/users/1", headers={"Accept": "text/csv"})
    assert csv.headers["etag"] != tag
    assert (await client.get("/api/users/1", headers={"Accept": "text/csv", "If-None-Match": tag})).status_code == 200
    # The row changes (not through the gateway): a new ETag, the old one no longer matches.
    run_sql(schema, "UPDATE users SET age = 31 WHERE id = 1")
    changed = await client.get("/api/users/1", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    # An error has none.
    missing = await client.get("/api/users/99", headers={"If-None-Match": "*"})
    assert_error(missing, 404, "row_not_found")
    assert "etag" not in missing.headers


async def test_lists_and_queries_have_etags(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'Ann', 30), (2, 'Bob', 40)")
    for request in (
        lambda h: client.get("/api/users/query", params={"order": "id", "count": "exact"}, headers=h),
        lambda h: client.post("/api/users/query", json={"input": {"age": {"gte": 1}}, "count": "exact"}, headers=h),
        lambda h: client.get("/api/users/query", params={"order": "id"}, headers=h | {"Accept": "text/csv"}),
        lambda h: client.get("/api/users/query", headers=h | {"Accept": "application/x-ndjson"}),
    ):
        first = await request({})
        tag = first.headers["etag"]
        assert first.status_code == 200
        assert (await request({"If-None-Match": tag})).status_code == 304
        run_sql(schema, "UPDATE users SET age = age + 1 WHERE id = 2")
        after = await request({"If-None-Match": tag})
        assert after.status_code == 200 and after.headers["etag"] != tag


async def test_if_match_writes_only_the_row_that_was_read(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, age, meta) VALUES (1, 'Ann', 30, '{\"a\": [1, 2]}')")
    tag = (await client.get("/api/users/1")).headers["etag"]
    updated = await client.put("/api/users/1", json={"input": {"age": 31}}, headers={"If-Match": tag})
    assert updated.status_code == 200, updated.text
    new_tag = updated.headers["etag"]
    assert new_tag != tag and new_tag == (await client.get("/api/users/1")).headers["etag"]
    # The old ETag: 412, naming the current one; nothing written.
    stale = await client.patch("/api/users/1", json={"input": {"age": 99}}, headers={"If-Match": tag})
    assert_error(stale, 412, "precondition_failed")
    assert stale.json()["details"] == {"etag": new_tag}
    assert run_sql(schema, "SELECT age FROM users WHERE id = 1") == [(31,)]
    assert_error(await client.delete("/api/users/1", headers={"If-Match": tag}), 412, "precondition_failed")
    # A weak tag never matches (strong comparison); a list matches when one of them does.
    assert_error(await client.put("/api/users/1", json={"input": {"age": 5}}, headers={"If-Match": f"W/{new_tag}"}),
                 412, "precondition_failed")
    listed = await client.put("/api/users/1", json={"input": {"age": 32}}, headers={"If-Match": f'"x", {new_tag}'})
    assert listed.status_code == 200
    # Changed by someone else (raw SQL): the client's ETag no longer holds.
    current = listed.headers["etag"]
    run_sql(schema, "UPDATE users SET name = 'Anne' WHERE id = 1")
    assert_error(await client.put("/api/users/1", json={"input": {"age": 1}}, headers={"If-Match": current}),
                 412, "precondition_failed")
    # *: the row exists. A missing row is 404 whatever If-Match says.
    assert (await client.put("/api/users/1", json={"input": {"age": 33}}, headers={"If-Match": "*"})).status_code == 200
    assert_error(await client.put("/api/users/9", json={"input": {"age": 1}}, headers={"If-Match": "*"}),
                 404, "row_not_found")
    assert_error(await client.delete("/api/users/9", headers={"If-Match": current}), 404, "row_not_found")
    # Prefer: return=minimal: 204 (no row read back, so no ETag).
    fresh = (await client.get("/api/users/1")).headers["etag"]
    minimal = await client.put("/api/users/1", json={"input": {"age": 34}},
                               headers={"If-Match": fresh, "Prefer": "return=minimal"})
    assert minimal.status_code == 204
    tag = (await client.get("/api/users/1")).headers["etag"]
    deleted = await client.delete("/api/users/1", headers={"If-Match": tag})
    assert deleted.status_code == 200 and run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_if_match_with_an_idempotency_key(client, schema):
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'Ann')")
    tag = (await client.get("/api/users/1")).headers["etag"]
    headers = {"If-Match": tag, "Idempotency-Key": "k1"}
    first = await client.put("/api/users/1", json={"input": {"age": 2}}, headers=headers)
    assert first.status_code == 200
    replay = await client.put("/api/users/1", json={"input": {"age": 2}}, headers=headers)
    assert replay.status_code == 200 and replay.headers.get("idempotent-replayed") == "true"


values = st.fixed_dictionaries({
    "i": st.integers(-128, 127), "d": st.decimals("-99999.999", "99999.999", places=3).map(str),
    "s": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10),
    "bin": st.binary(max_size=16), "j": st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                                                      | st.text(max_size=5),
                                                      lambda c: st.lists(c, max_size=3)
                                                      | st.dictionaries(st.text(max_size=3), c, max_size=3),
                                                      max_leaves=6),
    "flag": st.booleans(), "bits": st.integers(0, 15), "f": st.floats(-1e6, 1e6, allow_nan=False),
})


def test_the_etag_of_a_get_is_the_one_if_match_checks_for_every_type(schema, settings):
    """Whatever a row holds, the ETag GET by key gives is the one a write by key compares with."""
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        made = iter(range(1, 10**6))

        @hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(row=values)
        def check(row):
            n = next(made)
            given_row = {k: v for k, v in row.items() if k != "bits"} | {"bin": base64.b64encode(row["bin"]).decode()}
            created = client.post("/api/types", json={"input": {"id": n, **given_row}})
            assert created.status_code == 201, created.text
            run_sql(schema, "UPDATE types SET bits = %s, dt = NOW(6), da = CURDATE(), tm = '12:34:56', y = 2024,"
                            " e = 'red', st = 'a,c' WHERE id = %s", (row["bits"], n))
            tag = client.get(f"/api/types/{n}").headers["etag"]
            response = client.put(f"/api/types/{n}", json={"input": {"u": 7}}, headers={"If-Match": tag})
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == client.get(f"/api/types/{n}").headers["etag"]

        check()


async def test_if_match_never_tells_that_another_tenants_row_exists(schema, settings):
    only(schema, ["CREATE TABLE notes (id INT PRIMARY KEY, tenant VARCHAR(10) NOT NULL, body VARCHAR(20))",
                  "INSERT INTO notes VALUES (1, 'acme', 'a'), (2, 'globex', 'g')"])

    def caller(tenant, scope="read:* write:*"):
        claims = {"sub": f"u-{tenant}", "exp": int(time.time()) + 300, "scope": scope, "tenant": tenant}
        return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}

    acme, globex = caller("acme"), caller("globex")
    async with running(settings(auth_mode="jwt", jwt_secret=SECRET)) as client:
        admin = caller("acme", "read:* write:* admin:*")
        assert (await client.put("/api/policies/notes", json={"column": "tenant", "claim": "tenant"},
                                 headers=admin)).status_code == 200
        theirs = (await client.get("/api/notes/2", headers=globex)).headers["etag"]
        for header in ("*", theirs, '"wrong"'):
            assert_error(await client.put("/api/notes/2", json={"input": {"body": "x"}},
                                          headers=acme | {"If-Match": header}), 404, "row_not_found")
            assert_error(await client.delete("/api/notes/2", headers=acme | {"If-Match": header}),
                         404, "row_not_found")
        mine = (await client.get("/api/notes/1", headers=acme)).headers["etag"]
        assert (await client.put("/api/notes/1", json={"input": {"body": "y"}},
                                 headers=acme | {"If-Match": mine})).status_code == 200
        assert run_sql(schema, "SELECT body FROM notes ORDER BY id") == [("y",), ("g",)]


async def test_openapi_describes_the_validators(client):
    spec = (await client.get("/openapi.json")).json()
    parameters = spec["components"]["parameters"]
    names = {p["name"] for p in parameters.values() if p.get("in") == "header"}
    assert {"If-Match", "If-None-Match"} <= names
    users = spec["paths"]["/api/users/{key}"]
    assert "304" in users["get"]["responses"] and "412" in users["put"]["responses"]
    assert "412" in users["delete"]["responses"] and "412" in users["patch"]["responses"]
    assert "304" in spec["paths"]["/api/users/query"]["post"]["responses"]
