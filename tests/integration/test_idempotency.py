"""Idempotency-Key: a keyed write applies once, replays return the first response."""

import asyncio

from tests.conftest import proxied_url, run_sql, running
from tests.integration.test_crud import assert_error

FAST = {"attempt_timeouts_ms": (100, 100, 100, 100), "retry_waits_ms": (10, 10, 10)}


async def test_replay_returns_the_first_response_and_writes_once(client, schema):
    headers = {"Idempotency-Key": "create-ann-1"}
    first = await client.post("/api/users", json={"input": {"name": "Ann"}}, headers=headers)
    again = await client.post("/api/users", json={"input": {"name": "Ann"}}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # byte for byte, timestamp included
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(1,)]


async def test_same_key_with_another_request_is_refused(client, schema):
    headers = {"Idempotency-Key": "k"}
    assert (await client.post("/api/users", json={"input": {"name": "a"}}, headers=headers)).status_code == 201
    response = await client.post("/api/users", json={"input": {"name": "b"}}, headers=headers)
    assert_error(response, 422, "idempotency_key_reused")
    response = await client.put("/api/users/1", json={"input": {"name": "a"}}, headers=headers)
    assert_error(response, 422, "idempotency_key_reused")
    assert run_sql(schema, "SELECT name FROM users") == [("a",)]


async def test_concurrent_sends_of_one_key_apply_once(client, schema):
    headers = {"Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post("/api/users", json={"input": {"name": "x"}}, headers=headers) for _ in range(6))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(1,)]


async def test_keyed_deletes_and_updates_replay(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'a', 1), (2, 'b', 2)")
    headers = {"Idempotency-Key": "del-1"}
    first = await client.delete("/api/users/1", headers=headers)
    again = await client.delete("/api/users/1", headers=headers)
    assert first.status_code == again.status_code == 200 and again.content == first.content
    headers = {"Idempotency-Key": "bump"}
    body = {"input": {"age": 10}, "where": {"id": 2}}
    for _ in range(3):
        assert (await client.put("/api/users", json=body, headers=headers)).json()["data"] == {"affected": 1}
    assert run_sql(schema, "SELECT id, age FROM users") == [(2, 10)]


async def test_refused_writes_are_not_remembered(client, schema):
    run_sql(schema, "INSERT INTO users (name, email) VALUES ('a', 'taken')")
    headers = {"Idempotency-Key": "dup"}
    body = {"input": {"name": "b", "email": "taken"}}
    assert_error(await client.post("/api/users", json=body, headers=headers), 409, "conflict")
    run_sql(schema, "DELETE FROM users")
    assert (await client.post("/api/users", json=body, headers=headers)).status_code == 201


async def test_expired_keys_apply_again(client, schema):
    headers = {"Idempotency-Key": "old"}
    assert (await client.post("/api/users", json={"input": {"name": "a"}}, headers=headers)).status_code == 201
    run_sql(schema, "UPDATE _gateway_idempotency SET expires_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND")
    again = await client.post("/api/users", json={"input": {"name": "a"}}, headers=headers)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(2,)]


async def test_the_key_table_is_not_exposed(client):
    await client.post("/api/users", json={"input": {"name": "a"}}, headers={"Idempotency-Key": "x"})
    assert_error(await client.get("/api/_gateway_idempotency/query"), 404, "table_not_found")
    names = [t["name"] for t in (await client.get("/api/tables")).json()["data"]]
    assert "_gateway_idempotency" not in names


async def test_a_commit_without_answer_is_resolved_by_the_key(schema, settings, proxy, test_db):
    """Without a key this is 504 commit_outcome_unknown; with one, the key row tells the outcome."""
    async with running(settings(database_url=proxied_url(test_db, proxy.port), **FAST)) as client:
        # A keyed write: its transaction's connection is opened here (a new one sends a COMMIT of its own).
        warm = await client.post("/api/users", json={"input": {"name": "warm"}}, headers={"Idempotency-Key": "w"})
        assert warm.status_code == 201
        # Applied, answer lost: the key row is there, so the response is the stored one.
        proxy.cut_on(b"\x03COMMIT", forward=True)
        response = await client.post("/api/users", json={"input": {"name": "applied"}}, headers={"Idempotency-Key": "a"})
        assert response.status_code == 201 and response.headers["idempotent-replayed"] == "true"
        # Not applied (the COMMIT never reached the server): the write runs again, once.
        proxy.cut_on(b"\x03COMMIT", forward=False)
        response = await client.post("/api/users", json={"input": {"name": "retried"}}, headers={"Idempotency-Key": "b"})
        assert response.status_code == 201 and "idempotent-replayed" not in response.headers
        assert proxy.cuts == 2
    assert run_sql(schema, "SELECT name FROM users ORDER BY id") == [("warm",), ("applied",), ("retried",)]


async def test_a_commit_answered_with_galeras_quorum_error_is_resolved_by_the_key(schema, settings, test_db, proxy):
    """Galera answers 1180 to a COMMIT that lost quorum mid-way, whatever became of it: the outcome is
    unknown. Keyed, the key's record says it applied (replayed, once); unkeyed, 504
    commit_outcome_unknown, never a retry that could apply it twice."""
    async with running(settings(database_url=proxied_url(test_db, proxy.port), **FAST)) as client:
        # (A new connection sends a COMMIT of its own as it connects: open each pool's first.)
        warm = await client.post("/api/users", json={"input": {"name": "warm"}}, headers={"Idempotency-Key": "w"})
        assert warm.status_code == 201
        proxy.answer_on(b"\x03COMMIT", 1180)
        response = await client.post("/api/users", json={"input": {"name": "keyed"}}, headers={"Idempotency-Key": "q"})
        assert response.status_code == 201 and response.headers["idempotent-replayed"] == "true"
        assert (await client.post("/api/users", json={"input": {"name": "warm again"}})).status_code == 201
        # Unkeyed, the INSERT commits by itself: 1180 is its own answer.
        proxy.answer_on(b"INSERT INTO", 1180)
        assert_error(await client.post("/api/users", json={"input": {"name": "unkeyed"}}), 504, "commit_outcome_unknown")
        assert (await client.post("/api/users", json={"input": {"name": "after"}})).status_code == 201
    names = [name for (name,) in run_sql(schema, "SELECT name FROM users ORDER BY id")]
    assert names == ["warm", "keyed", "warm again", "unkeyed", "after"]


async def test_keyed_atomic_imports_apply_once(client, schema):
    from tests.integration.test_csv import csv_bytes

    data = csv_bytes([["name", "age"]] + [[f"u{i}", str(i)] for i in range(50)])
    headers = {"Idempotency-Key": "import-1"}

    async def send(body: bytes):
        return await client.post("/api/batch/import", params={"atomic": "true"}, headers=headers,
                                 files={"file": ("users.csv", body, "text/csv")})

    first, again = await send(data), await send(data)
    assert first.status_code == again.status_code == 200 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true" and first.json()["data"]["rows_inserted"] == 50
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(50,)]
    assert_error(await send(data + b"extra,1\r\n"), 422, "idempotency_key_reused")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(50,)]


async def test_concurrent_keyed_imports_apply_once(client, schema):
    from tests.integration.test_csv import csv_bytes

    data = csv_bytes([["name"]] + [[f"c{i}"] for i in range(200)])
    responses = await asyncio.gather(*(
        client.post("/api/batch/import", params={"atomic": "true"}, headers={"Idempotency-Key": "same"},
                    files={"file": ("users.csv", data, "text/csv")})
        for _ in range(4)
    ))
    assert {r.status_code for r in responses} == {200}, [r.text[:300] for r in responses if r.status_code != 200]
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(200,)]


async def test_a_key_on_a_plain_import_is_refused(client, schema):
    response = await client.post("/api/batch/import", headers={"Idempotency-Key": "k"},
                                 files={"file": ("users.csv", b"name\nx\n", "text/csv")})
    assert_error(response, 400, "invalid_body")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_a_keyed_import_rolled_back_replays_its_refusal(client, schema):
    """Its answer depends on the table at the time: sent again, the same key and file get the first
    answer (the bad rows it named), even after the corrected rows went in under another key."""
    from tests.integration.test_csv import csv_bytes

    rows = [["id", "name", "age"]] + [[str(i), f"u{i}", str(i)] for i in range(1, 400)] + [["400", "bad", "old"]]
    data = csv_bytes(rows)

    async def send(body: bytes, key: str):
        return await client.post("/api/batch/import", params={"atomic": "true"}, headers={"Idempotency-Key": key},
                                 files={"file": ("users.csv", body, "text/csv")})

    first = await send(data, "round-0")
    assert_error(first, 422, "import_rolled_back")
    assert [e["line"] for e in first.json()["details"]["errors"]] == [401]
    assert (await send(csv_bytes(rows[:-1]), "round-1")).status_code == 200  # the good rows, under a key of their own
    again = await send(data, "round-0")
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["details"]["errors"] == first.json()["details"]["errors"]  # not 399 duplicates now
    assert_error(await send(csv_bytes(rows[:-2]), "round-0"), 422, "idempotency_key_reused")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(399,)]
