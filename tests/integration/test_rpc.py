"""Stored procedures and functions (issue 32): POST /api/rpc/{name} with named arguments checked
against INFORMATION_SCHEMA.PARAMETERS; result sets as rows, OUT values, a function's value; run at
most once (a procedure may write); scope execute:{name}; listed in /api/tables."""

import hashlib
import json

from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

ROUTINES = [
    "CREATE TABLE calls (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(20))",
    "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20), salary DECIMAL(8,2), born DATE)",
    "INSERT INTO people VALUES (1, 'Ann', 10.50, '1990-01-02'), (2, 'Bob', 20.00, NULL), (3, 'Cy', 30.25, NULL)",
    """CREATE PROCEDURE richer_than(IN floor DECIMAL(8,2))
        SELECT id, name, salary, born FROM people WHERE salary > floor ORDER BY id""",
    """CREATE PROCEDURE two_sets(IN n INT)
        BEGIN SELECT COUNT(*) AS people FROM people; SELECT id FROM people WHERE id <= n ORDER BY id; END""",
    """CREATE PROCEDURE bump(IN who VARCHAR(20), INOUT counter INT, OUT total INT)
        BEGIN INSERT INTO calls (who) VALUES (who); SET counter = counter + 1;
              SELECT COUNT(*) INTO total FROM calls; END""",
    """CREATE PROCEDURE refuse(IN n INT)
        BEGIN IF n < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'n must not be negative'; END IF; END""",
    """CREATE PROCEDURE slow_write()
        BEGIN INSERT INTO calls (who) VALUES ('slow'); DO SLEEP(3); END""",
    """CREATE FUNCTION payroll(bonus DECIMAL(8,2)) RETURNS DECIMAL(10,2) READS SQL DATA
        RETURN (SELECT SUM(salary) + bonus FROM people)""",
    "CREATE FUNCTION greet(who VARCHAR(10)) RETURNS VARCHAR(40) DETERMINISTIC RETURN CONCAT('hello, ', who)",
    "CREATE PROCEDURE secret_proc() SELECT 1",
]


async def test_procedures_and_functions(schema, settings):
    only(schema, ROUTINES)
    async with running(settings(routines_deny=("secret_*",))) as client:
        response = await client.post("/api/rpc/richer_than", json={"input": {"floor": "15"}})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == [
            {"id": 2, "name": "Bob", "salary": "20.00", "born": None}, {"id": 3, "name": "Cy", "salary": "30.25", "born": None},
        ]
        assert response.json()["meta"] == {"result_sets": 1}
        body = (await client.post("/api/rpc/two_sets", json={"input": {"n": 2}})).json()
        assert body["data"] == [{"people": 3}] and body["meta"] == {"result_sets": 2, "more": [[{"id": 1}, {"id": 2}]]}
        # OUT and INOUT: in meta.out; the procedure's write is there.
        answer = await client.post("/api/rpc/bump", json={"input": {"who": "me", "counter": 41}})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["data"] == [] and body["meta"]["out"] == {"counter": 42, "total": 1}
        assert run_sql(schema, "SELECT who FROM calls") == [("me",)]
        # Functions: the value.
        assert (await client.post("/api/rpc/payroll", json={"input": {"bonus": "0.25"}})).json()["data"] == "61.00"
        assert (await client.post("/api/rpc/greet", json={"input": {"who": "Di"}})).json()["data"] == "hello, Di"
        # Arguments: missing, unknown, of the wrong type; a SIGNAL is the caller's error; unknown names 404.
        body = assert_error(await client.post("/api/rpc/bump", json={"input": {"who": "x"}}), 400, "invalid_body")
        assert body["details"]["missing"] == ["counter"]
        body = assert_error(await client.post("/api/rpc/greet", json={"input": {"who": "x", "lang": "fr"}}),
                            400, "invalid_body")
        assert body["details"]["unknown"] == ["lang"]
        body = assert_error(await client.post("/api/rpc/richer_than", json={"input": {"floor": "lots"}}),
                            422, "invalid_value")
        assert body["details"]["argument"] == "floor"
        assert_error(await client.post("/api/rpc/greet", json={"input": {"who": "x" * 11}}), 422, "invalid_value")
        body = assert_error(await client.post("/api/rpc/refuse", json={"input": {"n": -1}}), 422, "invalid_value")
        assert "n must not be negative" in body["message"]
        assert (await client.post("/api/rpc/refuse", json={"input": {"n": 1}})).status_code == 200
        for name in ("nope", "secret_proc", "people"):
            assert_error(await client.post(f"/api/rpc/{name}", json={}), 404, "routine_not_found")
        # A routine made while the gateway runs is found on its first call.
        run_sql(schema, "CREATE FUNCTION twice(n INT) RETURNS INT DETERMINISTIC RETURN n * 2")
        assert (await client.post("/api/rpc/twice", json={"input": {"n": 21}})).json()["data"] == 42
        # Listed with the tables: kind, parameters, what a function returns.
        listed = {t["name"]: t for t in (await client.get("/api/tables")).json()["data"]}
        assert listed["bump"] == {"name": "bump", "kind": "procedure", "returns": None, "parameters": [
            {"name": "who", "mode": "IN", "type": "varchar(20)"}, {"name": "counter", "mode": "INOUT", "type": "int(11)"},
            {"name": "total", "mode": "OUT", "type": "int(11)"}]}
        assert listed["payroll"]["kind"] == "function" and listed["payroll"]["returns"] == "decimal(10,2)"
        assert "secret_proc" not in listed and listed["people"]["kind"] == "table"


async def test_a_procedure_runs_at_most_once(schema, settings):
    """It may have written before it was stopped: never retried, and the answer says so."""
    only(schema, ROUTINES)
    async with running(settings(attempt_timeouts_ms=(200, 400), commit_timeout_ms=500)) as client:
        body = assert_error(await client.post("/api/rpc/slow_write", json={}), 504, "commit_outcome_unknown")
        assert body["retry_count"] == 0
    assert run_sql(schema, "SELECT who FROM calls") == [("slow",)]  # ran once, its write kept


async def test_execute_scopes(schema, settings):
    only(schema, ROUTINES)
    keys = json.dumps([
        {"name": "clerk", "sha256": hashlib.sha256(b"clerk").hexdigest(), "scopes": ["read:*", "execute:greet"]},
    ])
    async with running(settings(auth_mode="api-key", api_keys=keys)) as client:
        headers = {"X-API-Key": "clerk"}
        assert (await client.post("/api/rpc/greet", json={"input": {"who": "a"}}, headers=headers)).status_code == 200
        body = assert_error(await client.post("/api/rpc/bump", json={"input": {}}, headers=headers), 403, "forbidden")
        assert body["details"]["needs"] == "execute:bump"
        listed = [t["name"] for t in (await client.get("/api/tables", headers=headers)).json()["data"]]
        assert "greet" in listed and "bump" not in listed
        # The OpenAPI document names the routines the caller may execute.
        spec = (await client.get("/openapi.json", headers=headers)).json()
        (name,) = [p for p in spec["paths"]["/api/rpc/{name}"]["post"]["parameters"] if p["name"] == "name"]
        assert name["schema"]["enum"] == ["greet"]
        assert_error(await client.post("/api/rpc/greet", json={"input": {"who": "a"}}), 401, "unauthorized")


async def test_a_routine_cannot_change_the_next_requests_session(schema, settings):
    """A procedure's SET time_zone, sql_mode or variables stay on its connection, which is closed:
    never back in the pool for the next request."""
    only(schema, ROUTINES + [
        "CREATE TABLE ts (id INT PRIMARY KEY, t DATETIME)",
        "INSERT INTO ts VALUES (1, '2024-01-01 12:00:00')",
        "CREATE PROCEDURE tz() SET time_zone = '+05:00', sql_mode = ''",
        "CREATE PROCEDURE txn() BEGIN START TRANSACTION; INSERT INTO calls (who) VALUES ('txn'); END",
        "CREATE PROCEDURE stamp(OUT at DATETIME, OUT n DECIMAL(6,2)) BEGIN SET at = '2024-01-02 10:00:00'; SET n = 1.5; END",
        "CREATE PROCEDURE oops(IN n INT) BEGIN SIGNAL SQLSTATE '02000' SET MESSAGE_TEXT = 'nothing'; END",
        "CREATE PROCEDURE deep(IN n INT) BEGIN CALL deep(n + 1); END",
        "CREATE FUNCTION inverse(n INT) RETURNS DECIMAL(10,4) DETERMINISTIC RETURN 1 / n",
        "CREATE PROCEDURE everything() SELECT seq FROM seq_1_to_1500",
    ])
    async with running(settings(pool_max=2)) as client:
        for _ in range(6):
            assert (await client.post("/api/rpc/tz", json={})).status_code == 200
        for _ in range(6):
            assert (await client.get("/api/ts/1")).json()["data"]["t"] == "2024-01-01T12:00:00"
        # A transaction the procedure leaves open is committed.
        assert (await client.post("/api/rpc/txn", json={})).status_code == 200
        assert run_sql(schema, "SELECT who FROM calls") == [("txn",)]
        # OUT values typed as their parameters; names ignore case, as MariaDB's do.
        body = (await client.post("/api/rpc/STAMP", json={})).json()
        assert body["meta"]["out"] == {"at": "2024-01-02T10:00:00", "n": "1.50"}
        assert (await client.post("/api/rpc/greet", json={"input": {"WHO": "x"}})).json()["data"] == "hello, x"
        # A routine's own failures are the caller's (422), never a 500.
        for name, args in (("oops", {"n": 1}), ("deep", {"n": 1}), ("inverse", {"n": 0})):
            assert_error(await client.post(f"/api/rpc/{name}", json={"input": args}), 422, "invalid_value")
        # More rows than a page: 413, not a body of any size.
        assert_error(await client.post("/api/rpc/everything", json={}), 413, "payload_too_large")
        # Redefined while the gateway runs: read again, called as it is now.
        await client.post("/api/rpc/greet", json={"input": {"who": "a"}})
        run_sql(schema, "DROP FUNCTION greet")
        run_sql(schema, "CREATE FUNCTION greet(who VARCHAR(10), bang CHAR(1)) RETURNS VARCHAR(40) DETERMINISTIC"
                        " RETURN CONCAT('hi, ', who, bang)")
        response = await client.post("/api/rpc/greet", json={"input": {"who": "b", "bang": "!"}})
        assert response.status_code == 200 and response.json()["data"] == "hi, b!", response.text
