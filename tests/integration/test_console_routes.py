"""What the web console reads through the public API, as any client reads it: the actions a caller
holds on each table, an export of the rows a JSON filter picks, and the dead letters."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import openpyxl

from app.streams import positions
from tests.conftest import run_sql, running

KEYS = {"admin": "a-secret", "etl": "e-secret", "reader": "r-secret"}
SCOPES = {
    "admin": ["read:*", "write:*", "import:*", "export:*", "admin:*"],
    "etl": ["read:users", "import:users", "export:users"],
    "reader": ["read:users", "read:orders"],
}


def api_keys() -> str:
    return json.dumps([
        {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": SCOPES[name]}
        for name, secret in KEYS.items()
    ])


def key(name: str) -> dict:
    return {"X-API-Key": KEYS[name]}


async def test_the_tables_say_what_the_caller_may_do_with_each(schema, settings, sql):
    run_sql(sql, "CREATE VIEW adults AS SELECT id, name FROM users WHERE age >= 18")
    async with running(settings(auth_mode="api-key", api_keys=api_keys())) as client:
        listed = {t["name"]: t["access"] for t in (await client.get("/api/tables", headers=key("admin"))).json()["data"]}
        assert listed["users"] == ["read", "write", "import", "export", "admin"]
        assert listed["adults"] == ["read", "export", "admin"]  # a view is read-only whatever the scopes
        listed = {t["name"]: t["access"] for t in (await client.get("/api/tables", headers=key("etl"))).json()["data"]}
        assert listed == {"users": ["read", "import", "export"]}
        described = (await client.get("/api/tables/orders", headers=key("reader"))).json()["data"]
        assert described["access"] == ["read"]


async def test_an_export_takes_the_json_filter_of_post_query(schema, settings, sql):
    values = ", ".join(f"('u{i:02d}', {i % 10})" for i in range(1, 41))
    run_sql(sql, f"INSERT INTO users (name, age) VALUES {values}")
    body = {"input": {"or": [{"age": 3}, {"and": [{"name": {"like": "u1%"}}, {"age": {"lt": 2}}]}]},
            "order": "id.desc", "fields": "id,name"}
    async with running(settings(auth_mode="api-key", api_keys=api_keys())) as client:
        exported = await client.post("/api/batch/users/export", json=body, headers=key("etl"))
        assert exported.status_code == 200, exported.text
        assert exported.headers["content-disposition"].startswith('attachment; filename="users.csv"')
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        listed = (await client.post("/api/users/query", json=body, headers=key("etl"))).json()["data"]
        assert [int(r["id"]) for r in rows] == [r["id"] for r in listed] == [33, 23, 13, 11, 10, 3]
        assert list(rows[0]) == ["id", "name"]

        workbook = await client.post("/api/batch/users/export?format=xlsx", json=body, headers=key("etl"))
        sheet = openpyxl.load_workbook(io.BytesIO(workbook.content), read_only=True).active
        assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [33, 23, 13, 11, 10, 3]

        lines = await client.post("/api/batch/users/export?format=jsonl", json={"limit": 2}, headers=key("etl"))
        assert len(lines.text.splitlines()) == 2

        refused = await client.post("/api/batch/users/export", json=body, headers=key("reader"))
        assert refused.status_code == 403
        for bad, where in (({"input": {"nope": 1}}, None), ({"cursor": "x"}, None), ({"count": "exact"}, None)):
            answer = await client.post("/api/batch/users/export", json=bad, headers=key("etl"))
            assert answer.status_code == 400, (bad, answer.text)
        stray = await client.post("/api/batch/users/export?age=3", json={}, headers=key("etl"))
        assert stray.status_code == 400 and stray.json()["details"][0]["where"] == "query.age"


async def test_dead_letters_of_the_tables_the_caller_may_import_into(schema, settings):
    async with running(settings(auth_mode="api-key", api_keys=api_keys())) as client:
        assert (await client.get("/api/batch/dead-letters", headers=key("admin"))).json()["data"] == []  # no table yet
        db = client.app.state.db
        await positions.ensure_tables(db)
        long_text = "a" + "é" * 3000  # 6,001 bytes: the 4,096th is the first byte of an é

        async def letters(session):
            for i in range(5):
                await positions.dead_letter(session, "kafka:g:people", "users", [(f"0:{i}", b'{"age": "x"}', "bad age")])
            await positions.dead_letter(session, "amqp:types", "types", [("1", b"\xff\x00", "not JSON")])
            await positions.dead_letter(session, "amqp:people", "users", [("2", long_text.encode(), "too long")])
        await db.transaction(letters)

        everything = (await client.get("/api/batch/dead-letters", headers=key("admin"))).json()["data"]
        assert [(d["table"], d["reason"]) for d in everything[:2]] == [("users", "too long"), ("types", "not JSON")]
        long, binary = everything[0], everything[1]
        assert long["payload_encoding"] == "utf-8" and long["truncated"] and long["payload_bytes"] == 6001
        assert long["payload"] == "a" + "é" * 2047  # cut where that character starts
        assert binary["payload_encoding"] == "base64" and binary["payload"] == "/wA=" and not binary["truncated"]

        mine = (await client.get("/api/batch/dead-letters", headers=key("etl"))).json()["data"]
        assert {d["table"] for d in mine} == {"users"} and len(mine) == 6
        page = (await client.get("/api/batch/dead-letters?table=users&limit=4", headers=key("etl"))).json()["data"]
        rest = await client.get(f"/api/batch/dead-letters?table=users&before={page[-1]['id']}", headers=key("etl"))
        assert [d["id"] for d in page + rest.json()["data"]] == [d["id"] for d in mine]
        only = await client.get("/api/batch/dead-letters?source=kafka:g:people", headers=key("etl"))
        assert [d["position"] for d in only.json()["data"]] == [f"0:{i}" for i in reversed(range(5))]

        assert (await client.get("/api/batch/dead-letters?table=types", headers=key("etl"))).status_code == 403
        assert (await client.get("/api/batch/dead-letters", headers=key("reader"))).json()["data"] == []
        assert (await client.get("/api/batch/dead-letters?limit=0", headers=key("etl"))).status_code == 400
