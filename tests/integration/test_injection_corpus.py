"""An SQL injection corpus through every route, with the server's general log on: no injected
statement ever runs. Each payload would create a table named pwned... if it became SQL."""

import pytest

from tests.conftest import run_sql
from tests.integration.test_csv import csv_bytes

CORPUS = [
    "x'; CREATE TABLE pwned_a (i INT); -- ",
    "x\\'; CREATE TABLE pwned_b (i INT); -- ",
    "1; CREATE TABLE pwned_c (i INT)",
    "x`; CREATE TABLE pwned_d (i INT); -- ",
    "*/ CREATE TABLE pwned_e (i INT) /*",
    "x\"); CREATE TABLE pwned_f (i INT); -- ",
    "%' ; CREATE TABLE pwned_g (i INT); #",
]


@pytest.fixture
def general_log(sql):
    previous = run_sql(sql, "SELECT @@GLOBAL.log_output, @@GLOBAL.general_log")[0]
    run_sql(sql, "SET GLOBAL log_output = 'TABLE'")
    run_sql(sql, "SET GLOBAL general_log = 1")
    yield
    run_sql(sql, "SET GLOBAL general_log = %s", (previous[1],))
    run_sql(sql, "SET GLOBAL log_output = %s", (previous[0],))


async def test_no_injected_statement_ever_runs(client, schema, general_log):
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'a')")
    for payload in CORPUS:
        attempts = [
            ("GET", f"/api/{payload}/query", None, None),
            ("POST", f"/api/{payload}", None, {"input": {"name": "x"}}),
            ("GET", "/api/users/query", {payload: "1"}, None),
            ("GET", "/api/users/query", {"name": payload}, None),
            ("GET", "/api/users/query", {"name": f"like.{payload}"}, None),
            ("GET", "/api/users/query", {"age": f"{payload}.1"}, None),
            ("GET", "/api/users/query", {"order": payload}, None),
            ("GET", "/api/users/query", {"fields": f"id,{payload}"}, None),
            ("GET", "/api/users/query", {"id": f"in.1,{payload}"}, None),
            ("GET", f"/api/users/{payload}", None, None),
            ("POST", "/api/users/query", None, {"input": {"or": [{"name": {"like": payload}}, {payload: 1}]}, "order_by": [payload]}),
            ("POST", "/api/users", None, {"input": {"name": payload[:50]}}),
            ("POST", "/api/users", None, {"input": {"name": "x", payload: 1}}),
            ("PUT", "/api/users", None, {"input": {"name": payload[:50]}, "where": {"name": payload}}),
            ("PUT", "/api/users/1", None, {"input": {"email": payload}}),
            ("DELETE", "/api/users", None, {"input": {"email": {"in": [payload]}}}),
            ("GET", "/api/batch/users/export", {"name": payload, "order": "id.asc"}, None),
            ("GET", f"/api/tables/{payload}", None, None),
        ]
        for method, url, params, body in attempts:
            response = await client.request(method, url, params=params, json=body)
            assert response.status_code < 500, (method, url, params, body, response.text)
        uploads = [
            (f"{payload}.csv", csv_bytes([["name"], ["x"]])),
            ("users.csv", csv_bytes([["name", payload], ["x", "1"]])),
            ("users.csv", csv_bytes([["name", "email"], [payload[:50], payload]])),
        ]
        for filename, data in uploads:
            response = await client.post("/api/batch/import", files={"file": (filename, data, "text/csv")})
            assert response.status_code < 500, response.text
    assert run_sql(schema, "SHOW TABLES LIKE 'pwned%%'") == []
    ran = run_sql(
        schema,
        "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log WHERE command_type = 'Query'"
        " AND CONVERT(argument USING utf8mb4) LIKE %s",
        ("CREATE TABLE pwned%",),
    )
    assert ran == []
    # The payloads did reach the server, as values: the log shows them inside statements.
    logged = run_sql(
        schema,
        "SELECT COUNT(*) FROM mysql.general_log WHERE CONVERT(argument USING utf8mb4) LIKE %s",
        ("%pwned_a%",),
    )
    assert logged[0][0] > 0
