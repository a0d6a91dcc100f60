"""Row policies (issue 32): PUT /api/policies/{table} binds a column to a claim of the caller; every
read (lists, cursors, counts, aggregates, exports, by key, embedded and filtered-by relations) sees
only the caller's rows, every write sets and keeps the column, and what cannot honour a policy
(upserts, imports, streams) is refused. Two tenants, tokens and API keys, and a second instance."""

import hashlib
import json
import time

import jwt

from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

SECRET = "s" * 32
TABLES = [
    "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, tenant VARCHAR(10) NOT NULL, body VARCHAR(40))",
    """CREATE TABLE comments (id INT AUTO_INCREMENT PRIMARY KEY, note_id INT, tenant VARCHAR(10) NOT NULL,
        text VARCHAR(40), FOREIGN KEY (note_id) REFERENCES notes(id))""",
    "INSERT INTO notes VALUES (1, 'acme', 'a1'), (2, 'acme', 'a2'), (3, 'globex', 'g1')",
    "INSERT INTO comments VALUES (1, 1, 'acme', 'mine'), (2, 1, 'globex', 'theirs'), (3, 3, 'globex', 'g')",
]


def caller(tenant=None, scope="read:* write:* export:* import:*"):
    claims = {"sub": f"user-{tenant}", "exp": int(time.time()) + 300, "scope": scope}
    if tenant is not None:
        claims["tenant"] = tenant
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}




async def data(response):
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_a_policy_holds_on_every_read_and_write(schema, settings):
    only(schema, TABLES)
    acme, globex, nobody, admin = caller("acme"), caller("globex"), caller(), caller("acme", "read:* write:* admin:*")
    async with running(settings(auth_mode="jwt", jwt_secret=SECRET)) as client:
        assert_error(await client.put("/api/policies/notes", json={"column": "tenant", "claim": "tenant"},
                                      headers=acme), 403, "forbidden")
        for table in ("notes", "comments"):
            response = await client.put(f"/api/policies/{table}", json={"column": "tenant", "claim": "tenant"},
                                        headers=admin)
            assert response.status_code == 200, response.text
        assert (await data(await client.get("/api/policies/notes", headers=admin)))["claim"] == "tenant"
        # Reads: lists, the JSON filter, by key, counts, cursors, aggregates, exports.
        assert [n["id"] for n in await data(await client.get("/api/notes/query", headers=acme))] == [1, 2]
        assert [n["id"] for n in await data(await client.post("/api/notes/query", json={}, headers=globex))] == [3]
        assert_error(await client.get("/api/notes/3", headers=acme), 404, "row_not_found")
        meta = (await client.get("/api/notes/query", params={"count": "exact", "limit": 1}, headers=acme)).json()["meta"]
        assert meta["total"] == 2
        second = (await client.get("/api/notes/query", params={"limit": 1, "cursor": meta["next_cursor"]},
                                   headers=acme)).json()["data"]
        assert [n["id"] for n in second] == [2]
        groups = await data(await client.get("/api/notes/aggregate", params={"count": "*", "group_by": "tenant"},
                                             headers=acme))
        assert groups == [{"tenant": "acme", "count": 2}]
        export = await client.get("/api/batch/notes/export", headers=globex)
        assert export.text.splitlines() == ["id,tenant,body", "3,globex,g1"]
        # Through relations: embedded rows and filters see only the caller's rows too.
        embedded = await data(await client.get("/api/notes/query", params={"fields": "id,comments(text)"}, headers=acme))
        assert embedded == [{"id": 1, "comments": [{"text": "mine"}]}, {"id": 2, "comments": []}]
        assert await data(await client.get("/api/notes/query", params={"comments.text": "eq.theirs"}, headers=acme)) == []
        # No claim: 403, never every row.
        assert_error(await client.get("/api/notes/query", headers=nobody), 403, "forbidden")
        assert_error(await client.get("/api/notes/query", params={"fields": "id"}, headers=nobody), 403, "forbidden")
        # Writes: a new row takes the caller's value; another value is refused; so is an upsert.
        created = await client.post("/api/notes", json={"input": {"body": "new"}}, headers=acme)
        assert created.status_code == 201 and created.json()["data"]["tenant"] == "acme"
        assert_error(await client.post("/api/notes", json={"input": [{"body": "x"}, {"body": "y", "tenant": "globex"}]},
                                       headers=acme), 403, "forbidden")
        assert_error(await client.post("/api/notes", json={"input": {"id": 3, "body": "x"}},
                                       headers=acme | {"Prefer": "resolution=merge-duplicates"}), 403, "forbidden")
        # Updates and deletes touch only the caller's rows, and cannot give a row away.
        response = await client.put("/api/notes", json={"input": {"body": "seen"}, "where": {"id": {"gte": 1}}},
                                    headers=acme)
        assert (await data(response))["affected"] == 3
        assert_error(await client.put("/api/notes/1", json={"input": {"tenant": "globex"}}, headers=acme), 403, "forbidden")
        assert_error(await client.put("/api/notes/3", json={"input": {"body": "mine now"}}, headers=acme),
                     404, "row_not_found")
        patched = await data(await client.patch("/api/notes", json={"input": [
            {"id": 1, "body": "p1"}, {"id": 3, "body": "stolen"}]}, headers=acme))
        assert patched == {"affected": 1, "missing": [{"id": 3}]}
        assert_error(await client.delete("/api/notes/3", headers=acme), 404, "row_not_found")
        response = await client.request("DELETE", "/api/comments", json={"where": {"id": {"gte": 1}}}, headers=acme)
        assert (await data(response))["affected"] == 1
        assert run_sql(schema, "SELECT id, tenant, body FROM notes ORDER BY id") == [
            (1, "acme", "p1"), (2, "acme", "seen"), (3, "globex", "g1"), (4, "acme", "seen")]
        assert run_sql(schema, "SELECT id FROM comments ORDER BY id") == [(2,), (3,)]
        # What cannot honour a policy refuses: imports, validation, import jobs, streams.
        for path, params in (("/api/batch/import", {}), ("/api/batch/validate", {}), ("/api/batch/import", {"async": "true"})):
            response = await client.post(path, params=params, files={"file": ("notes.csv", b"body\nx\n", "text/csv")},
                                         headers=acme)
            assert_error(response, 403, "forbidden")
        # Removed: every caller with read sees every row again.
        assert (await client.delete("/api/policies/notes", headers=admin)).status_code == 200
        assert len(await data(await client.get("/api/notes/query", headers=nobody))) == 4


async def test_another_instance_and_api_keys(schema, settings):
    only(schema, TABLES)
    keys = json.dumps([
        {"name": "acme-etl", "sha256": hashlib.sha256(b"acme-key").hexdigest(), "scopes": ["read:*", "write:*", "admin:*"],
         "claims": {"org": "acme"}},
        {"name": "plain", "sha256": hashlib.sha256(b"plain-key").hexdigest(), "scopes": ["read:*"]},
    ])
    config = settings(auth_mode="api-key", api_keys=keys, policies_ttl_s=0)
    async with running(config) as first, running(config) as second:
        acme, plain = {"X-API-Key": "acme-key"}, {"X-API-Key": "plain-key"}
        assert len(await data(await second.get("/api/notes/query", headers=plain))) == 3
        response = await first.put("/api/policies/notes", json={"column": "tenant", "claim": "org"}, headers=acme)
        assert response.status_code == 200, response.text
        # The other instance enforces it on its next read (GATEWAY_POLICIES_TTL_S: 0 here, 1 s by default).
        assert [n["id"] for n in await data(await second.get("/api/notes/query", headers=acme))] == [1, 2]
        assert_error(await second.get("/api/notes/query", headers=plain), 403, "forbidden")
        body = assert_error(await first.put("/api/policies/notes", json={"column": "nope", "claim": "org"},
                                            headers=acme), 400, "unknown_column")
        assert body["details"] == {"column": "nope"}


def test_a_stream_into_a_table_with_a_policy_is_refused(schema, settings):
    acme = caller("acme")
    from starlette.testclient import TestClient

    from app.main import create_app

    only(schema, TABLES + ["CREATE TABLE _gateway_policies (table_name VARCHAR(64) PRIMARY KEY, column_name VARCHAR(64)"
                           " NOT NULL, claim VARCHAR(255) NOT NULL, updated_at DATETIME(3) NOT NULL,"
                           " updated_by VARCHAR(255) NOT NULL)",
                           "INSERT INTO _gateway_policies VALUES ('notes', 'tenant', 'tenant', NOW(), 'test')"])
    with TestClient(create_app(settings(auth_mode="jwt", jwt_secret=SECRET))) as client:
        with client.websocket_connect("/api/notes/ws", headers=acme) as ws:
            ws.send_json({"id": "m1", "rows": [{"body": "x"}]})
            answer = ws.receive_json()
        assert answer.get("status") != "ok" and "row policy" in json.dumps(answer), answer
    assert run_sql(schema, "SELECT COUNT(*) FROM notes") == [(3,)]


async def test_an_idempotency_key_is_the_callers_own(schema, settings):
    only(schema, TABLES)
    keys = json.dumps([
        {"name": f"etl-{org}", "sha256": hashlib.sha256(f"{org}-key".encode()).hexdigest(),
         "scopes": ["read:*", "write:*", "admin:*"], "claims": {"org": org}} for org in ("acme", "globex")
    ])
    async with running(settings(auth_mode="api-key", api_keys=keys)) as client:
        acme, globex = {"X-API-Key": "acme-key"}, {"X-API-Key": "globex-key"}
        await client.put("/api/policies/notes", json={"column": "tenant", "claim": "org"}, headers=acme)
        first = await client.post("/api/notes", json={"input": {"body": "x"}}, headers=acme | {"Idempotency-Key": "k"})
        again = await client.post("/api/notes", json={"input": {"body": "x"}}, headers=globex | {"Idempotency-Key": "k"})
        assert first.json()["data"]["tenant"] == "acme" and again.json()["data"]["tenant"] == "globex"
        assert "idempotent-replayed" not in again.headers


async def test_what_a_security_review_found(schema, settings):
    """Two tenants sharing a token subject, a foreign key into another tenant's row, an estimated
    count, a view, an empty claim."""
    only(schema, TABLES + ["CREATE VIEW all_notes AS SELECT * FROM notes"])
    config = settings(auth_mode="jwt", jwt_secret=SECRET)

    def as_(tenant, scope="read:* write:* admin:*"):
        claims = {"sub": "svc", "exp": int(time.time()) + 300, "scope": scope, "tenant": tenant}
        return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}

    async with running(config) as client:
        acme, globex = as_("acme"), as_("globex")
        for table in ("notes", "comments"):
            await client.put(f"/api/policies/{table}", json={"column": "tenant", "claim": "tenant"}, headers=acme)
        # One subject, two tenants: a key is each one's own.
        first = await client.put("/api/notes/1", json={"input": {"body": "k"}}, headers=acme | {"Idempotency-Key": "k"})
        again = await client.put("/api/notes/1", json={"input": {"body": "k"}}, headers=globex | {"Idempotency-Key": "k"})
        assert first.status_code == 200 and again.status_code == 404, again.text
        # A row may refer only to a row the caller sees.
        assert_error(await client.post("/api/comments", json={"input": {"note_id": 3, "text": "x"}}, headers=acme),
                     403, "forbidden")
        assert (await client.post("/api/comments", json={"input": {"note_id": 1, "text": "x"}}, headers=acme)).status_code == 201
        assert_error(await client.put("/api/comments/1", json={"input": {"note_id": 3}}, headers=acme), 403, "forbidden")
        # An estimate could count other tenants' rows: a read under a policy is counted.
        meta = (await client.get("/api/notes/query", params={"count": "estimated"}, headers=acme)).json()["meta"]
        assert (meta["total"], meta["total_kind"]) == (2, "exact")
        # A view reads as the database user: no policy is taken for one.
        assert_error(await client.put("/api/policies/all_notes", json={"column": "tenant", "claim": "tenant"},
                                      headers=acme), 405, "method_not_allowed")
        # An empty claim is no claim.
        assert_error(await client.get("/api/notes/query", headers=as_("")), 403, "forbidden")
