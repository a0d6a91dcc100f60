"""Per-table rules (JSON Schema): versions, rollback, and every write path checks them."""

import asyncio

import pytest

from tests import files
from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error
from tests.integration.test_csv import csv_bytes
from tests.integration.test_formats import imported, send

RULES = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "pattern": "^[A-Z]"},
        "email": {"type": ["string", "null"], "format": "email"},
        "age": {"type": ["integer", "null"], "minimum": 0, "maximum": 150},
        "balance": {"type": "number", "minimum": 0},
    },
    "required": ["name"],
    "dependentRequired": {"age": ["email"]},
}


async def put(client, table, schema):
    return await client.put(f"/api/schemas/{table}", json=schema)


async def with_rules(client, schema=RULES):
    response = await put(client, "users", schema)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_versions_and_rollback(client, schema):
    assert_error(await client.get("/api/schemas/users"), 404, "schema_not_found")
    first = await with_rules(client)
    assert first["version"] == 1 and first["schema"] == RULES
    second = await with_rules(client, {"properties": {"name": {"maxLength": 3}}})
    assert second["version"] == 2 and [v["version"] for v in second["versions"]] == [1, 2]
    assert (await client.post("/api/users", json={"input": {"name": "Long"}})).status_code == 422
    shown = (await client.get("/api/schemas/users")).json()["data"]
    assert shown["version"] == 2 and shown["schema"] == {"properties": {"name": {"maxLength": 3}}}
    back = (await client.delete("/api/schemas/users")).json()["data"]
    assert back["version"] == 1 and back["schema"] == RULES
    assert (await client.post("/api/users", json={"input": {"name": "Long"}})).status_code == 201
    assert (await client.delete("/api/schemas/users")).json()["data"] is None
    assert (await client.post("/api/users", json={"input": {"name": "x"}})).status_code == 201  # no rules left
    assert_error(await client.delete("/api/schemas/users"), 404, "schema_not_found")
    assert_error(await client.get("/api/schemas/nope"), 404, "table_not_found")


async def test_every_instance_applies_the_same_version(schema, settings):
    async with running(settings(rules_ttl_s=3600)) as one, running(settings(rules_ttl_s=3600)) as two, \
            running(settings(rules_ttl_s=0)) as three:
        assert (await two.post("/api/users", json={"input": {"name": "x"}})).status_code == 201  # read: no rules
        await with_rules(one)
        # `two` read the table's rules less than its TTL ago: its writes go by that read (the bound
        # GATEWAY_RULES_TTL_S sets), while the instance that stored them and one with TTL 0 enforce them at once.
        assert (await two.post("/api/users", json={"input": {"name": "y"}})).status_code == 201
        for instance in (one, three):
            body = assert_error(await instance.post("/api/users", json={"input": {"name": "x"}}), 422, "invalid_value")
            assert body["details"]["rules_version"] == 1
        report = await imported(two, "users.csv", csv_bytes([["name"], ["z"]]))  # imports read them when they start
        assert report["rules_version"] == 1 and report["rows_failed"] == 1
        # ... and a write after that read goes by it too.
        assert_error(await two.post("/api/users", json={"input": {"name": "x"}}), 422, "invalid_value")


async def test_a_version_number_names_one_schema_forever(client, schema):
    """PUT, DELETE (no rules left), PUT again: the new schema is version 2, never a second version 1,
    and every write and import is checked against it (a cache keyed by version served the old one)."""
    minimum = lambda n: {"properties": {"age": {"minimum": n}}}  # noqa: E731
    assert (await with_rules(client, minimum(0)))["version"] == 1
    assert (await client.post("/api/users", json={"input": {"name": "a", "age": 5}})).status_code == 201
    assert (await client.delete("/api/schemas/users")).json()["data"] is None
    stored = await with_rules(client, minimum(10))
    assert stored["version"] == 2 and stored["schema"] == minimum(10)
    assert [(v["version"], v["removed"]) for v in stored["versions"]] == [(1, True), (2, False)]
    body = assert_error(await client.post("/api/users", json={"input": {"name": "b", "age": 5}}), 422, "invalid_value")
    assert body["details"]["rules_version"] == 2 and body["details"]["rule"] == "properties/age/minimum"
    report = await imported(client, "users.csv", csv_bytes([["name", "age"], ["c", "5"], ["d", "11"]]))
    assert report["rules_version"] == 2 and report["rows_failed"] == 1 and report["rows_inserted"] == 1
    assert (await client.delete("/api/schemas/users")).json()["data"] is None
    report = await imported(client, "users.csv", csv_bytes([["name", "age"], ["e", "-1"]]))
    assert report["rules_version"] is None and report["rows_inserted"] == 1
    assert (await with_rules(client, minimum(0)))["version"] == 3


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"type": "array"}, "object"),
        ({"properties": {"nope": {"type": "string"}}}, "nope"),
        ({"required": ["ghost"]}, "ghost"),
        ({"properties": {"name": {"type": "strnig"}}}, "properties/name/type"),
        ({"properties": {"name": {"pattern": "("}}}, "regex"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "2020-12"),
        ([1, 2], "object"),
        ("text", "object"),
    ],
)
async def test_bad_schemas_are_400_naming_the_problem(client, schema, bad, words):
    body = assert_error(await put(client, "users", bad), 400, "invalid_schema")
    assert words in body["message"], body["message"]
    assert_error(await client.get("/api/schemas/users"), 404, "schema_not_found")


async def test_a_reference_outside_the_schema_is_refused_and_never_fetched(client, schema, tmp_path):
    """A `$ref` to a URL or a file would have the gateway fetch it (from inside the network) or read
    it (and echo it in the error): refused, with nothing fetched or read."""
    fetched = []

    async def listener(reader, writer):
        fetched.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    secret = tmp_path / "secret.json"
    secret.write_text('{"keys": ["SECRET-TEXT"]}')
    try:
        for ref in (f"http://127.0.0.1:{port}/internal", f"file://{secret}#/keys/0", "other.json"):
            rules = {"properties": {"name": {"$ref": ref}}}
            body = assert_error(await put(client, "users", rules), 400, "invalid_schema")
            assert "a reference outside the schema" in body["message"] and "SECRET" not in body["message"]
            assert_error(await client.get("/api/schemas/users"), 404, "schema_not_found")
        await asyncio.sleep(0.05)  # a connection the gateway had opened would have been taken by now
        assert fetched == []
    finally:
        server.close()
    # References within the schema, and to the metaschemas, are what they were.
    local = {"$defs": {"adult": {"minimum": 18}}, "properties": {"age": {"$ref": "#/$defs/adult"}}}
    assert (await put(client, "users", local)).status_code == 200
    assert_error(await client.post("/api/users", json={"input": {"name": "kid", "age": 9}}), 422, "invalid_value")


async def test_a_body_that_is_not_json(client, schema):
    response = await client.put("/api/schemas/users", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_body")


async def test_post_checks_each_row_and_names_row_field_and_rule(client, schema):
    await with_rules(client)
    ok = await client.post("/api/users", json={"input": {"name": "Ann", "email": "ann@example.com", "age": 3}})
    assert ok.status_code == 201
    body = assert_error(await client.post("/api/users", json={"input": [{"name": "Bob"}, {"name": "Cy", "email": "not-an-email"}]}), 422, "invalid_value")
    assert body["details"]["row"] == 1 and body["details"]["column"] == "email"
    assert body["details"]["rule"] == "properties/email/format"
    body = assert_error(await client.post("/api/users", json={"input": {"name": "Di", "age": 5}}), 422, "invalid_value")
    assert body["details"]["rule"] == "dependentRequired"
    body = assert_error(await client.post("/api/users", json={"input": {"name": "Ed", "balance": "-1.00"}}), 422, "invalid_value")
    assert body["details"]["rule"] == "properties/balance/minimum"  # a DECIMAL is a number to the rules
    assert run_sql(schema, "SELECT name FROM users") == [("Ann",)]


async def test_put_checks_the_row_as_it_will_be(client, schema):
    await with_rules(client)
    run_sql(schema, "INSERT INTO users (id, name, email, age) VALUES (1, 'Ann', NULL, NULL), (2, 'Bob', 'b@example.com', 1)")
    body = assert_error(await client.put("/api/users/1", json={"input": {"age": 4}}), 422, "invalid_value")
    assert body["details"]["rule"] == "dependentRequired"  # the stored row's email is NULL: no value
    assert (await client.put("/api/users/1", json={"input": {"age": 4, "email": "a@example.com"}})).status_code == 200
    body = assert_error(await client.put("/api/users", json={"input": {"name": "lower"}, "where": {"id": {"gt": 0}}}), 422, "invalid_value")
    assert body["details"]["column"] == "name"
    assert run_sql(schema, "SELECT name, age FROM users ORDER BY id") == [("Ann", 4), ("Bob", 1)]
    assert (await client.put("/api/users", json={"input": {"age": 9}, "where": {"id": {"gt": 0}}})).json()["data"]["affected"] == 2


async def test_filtered_update_of_too_many_rows_is_refused(schema, settings):
    async with running(settings(max_bulk_rows=2)) as client:
        await with_rules(client)
        run_sql(schema, "INSERT INTO users (name) VALUES ('Aa'), ('Bb'), ('Cc')")
        assert_error(await client.put("/api/users", json={"input": {"age": None}, "where": {"id": {"gt": 0}}}), 413, "payload_too_large")


BAD_ROWS = [["name", "email", "age"], ["Ann", "ann@example.com", "3"], ["bo", "", "\\N"], ["Cy", "nope", "\\N"], ["Di", "\\N", "200"], ["Ed", "\\N", "\\N"]]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
async def test_imports_report_rule_failures_by_position(client, schema, fmt):
    await with_rules(client)
    if fmt == "csv":
        data = csv_bytes(BAD_ROWS)
    else:
        rows = [[None if v == "\\N" else (int(v) if v.isdigit() else v) for v in row] for row in BAD_ROWS]
        data = files.xlsx(rows) if fmt == "xlsx" else files.jsonl([dict(zip(rows[0], row)) for row in rows[1:]])
    report = await imported(client, f"users.{fmt}", data)
    assert report["rules_version"] == 1
    unit = "row" if fmt == "xlsx" else "line"
    first = 2 if fmt == "jsonl" else 3  # JSON Lines have no header line
    failures = [(e[unit], e["column"], e["rule"]) for e in report["errors"]]
    assert failures == [
        (first, "name", "properties/name/pattern"),
        (first + 1, "email", "properties/email/format"),
        (first + 2, "age", "properties/age/maximum"),
    ]
    assert run_sql(schema, "SELECT name FROM users ORDER BY id") == [("Ann",), ("Ed",)]


async def test_atomic_and_upsert_imports_check_rules_too(client, schema):
    await with_rules(client)
    body = assert_error(await send(client, "users.csv", csv_bytes(BAD_ROWS), atomic="true"), 422, "import_rolled_back")
    assert body["details"]["errors"][0]["rule"] == "properties/name/pattern"
    report = await imported(client, "users.csv", csv_bytes(BAD_ROWS), mode="upsert")
    assert report["rows_inserted"] == 2 and report["rows_failed"] == 3
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(2,)]


async def test_validate_writes_nothing_and_reports_like_import(client, schema):
    await with_rules(client)
    run_sql(schema, "INSERT INTO users (name, email) VALUES ('Old', 'ann@example.com')")
    response = await send(client, "users.csv", csv_bytes(BAD_ROWS + [["Fay", "fay@example.com", "1"], ["Gus", "fay@example.com", "2"]]), route="validate")
    assert response.status_code == 200, response.text
    report = response.json()["data"]
    assert report["validated_only"] is True
    assert report["rows_read"] == 7 and report["rows_valid"] == 2 and report["rows_failed"] == 5
    assert [e["line"] for e in report["errors"]] == [2, 3, 4, 5, 8]  # 2: its email is taken; 8 repeats 7's
    assert report["errors"][0]["key"] == {"email": "ann@example.com"}
    assert report["rows_inserted"] == 0 and report["committed_lines"] == []
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(1,)]
    body = assert_error(await send(client, "users.csv", csv_bytes([["nope"], ["x"]]), route="validate"), 400, "invalid_header")
    assert body["details"]["unknown"] == ["nope"]
    body = assert_error(await send(client, "users.xlsx", files.xlsx([["name"], ["Ann"]]), route="validate", sheet="x"), 400, "invalid_spreadsheet")


async def test_validate_needs_import_permission(schema, settings):
    import hashlib
    import json

    keys = [{"name": "reader", "sha256": hashlib.sha256(b"r").hexdigest(), "scopes": ["read:*"]}]
    async with running(settings(auth_mode="api-key", api_keys=json.dumps(keys))) as client:
        response = await client.post("/api/batch/validate", files={"file": ("users.csv", b"name\nA\n")}, headers={"X-API-Key": "r"})
        assert_error(response, 403, "forbidden")
        assert_error(await client.put("/api/schemas/users", json={}, headers={"X-API-Key": "r"}), 403, "forbidden")
        assert (await client.get("/api/schemas/users", headers={"X-API-Key": "r"})).status_code == 404


async def test_validate_finds_a_key_repeated_batches_apart(schema, settings):
    """A validation writes nothing, so a key repeated in a later batch is not in the table to be
    found there: the probe remembers the keys it has seen."""
    rows = [["name", "email"]] + [[f"n{i}" + "x" * 40, f"e{i}@example.com"] for i in range(3000)]
    rows.append(["late", "e5@example.com"])  # line 3002 repeats line 7
    async with running(settings(import_batch_rows=500)) as client:
        response = await send(client, "users.csv", csv_bytes(rows), route="validate")
        report = response.json()["data"]
        assert report["rows_valid"] == 3000 and [(e["line"], e["reason"]) for e in report["errors"]] == [
            (3002, "duplicate key: (email='e5@example.com') repeats line 7")
        ]
        report = await imported(client, "users.jsonl", files.jsonl([{"name": "a", "email": "x@example.com"}] * 2))
        assert report["errors"][0]["reason"].endswith("repeats line 1")
