"""WebSocket /api/{table}/ws against a real server and database: answers, rejections, ids applied
once, credentials, limits, and a connection dropped mid-stream then resumed."""

import asyncio
import hashlib
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import run_sql, serving


async def exchange(ws, *messages) -> list[dict]:
    for m in messages:
        await ws.send(m if isinstance(m, str) else json.dumps(m))
    return [json.loads(await ws.recv()) for _ in messages]


async def test_rows_are_answered_once_committed(schema, settings):
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            one, many, envelope = await exchange(
                ws,
                {"name": "ann", "age": 30},
                [{"name": "bob"}, {"name": "cy", "email": "cy@x"}],
                {"id": "m-3", "rows": [{"name": "dee", "balance": "1.50"}]},
            )
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://{host}/metrics")).text
    assert one == {"id": None, "status": "applied", "rows_written": 1, "errors": []}
    assert many["rows_written"] == 2 and many["status"] == "applied"
    assert envelope == {"id": "m-3", "status": "applied", "rows_written": 1, "errors": []}
    assert 'gateway_stream_messages_total{mode="insert",outcome="applied",table="users"} 3.0' in metrics
    assert 'gateway_stream_rows_total{mode="insert",table="users"} 4.0' in metrics
    rows = run_sql(schema, "SELECT name, age, email, balance, active FROM users ORDER BY id")
    # A key a row leaves out takes the column's DEFAULT (active = 1, balance = 0), as in a POST.
    assert [(r[0], r[1], r[2], str(r[3]), r[4]) for r in rows] == [
        ("ann", 30, None, "0.00", 1), ("bob", None, None, "0.00", 1), ("cy", None, "cy@x", "0.00", 1), ("dee", None, None, "1.50", 1),
    ]


async def test_bad_messages_are_refused_whole_and_the_connection_stays(schema, settings):
    run_sql(schema, "INSERT INTO users (name, email) VALUES ('old', 'taken@x')")
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            answers = await exchange(
                ws,
                "{not json",
                {"id": "a", "rows": [{"name": "ok"}, {"name": "x", "age": "old"}]},
                {"id": "b", "rows": [{"name": "ok2"}, {"nope": 1}]},
                {"id": "c", "rows": [{"name": "p"}, {"name": "q", "email": "taken@x"}]},
                {"id": "d", "rows": [{"age": 3}]},
                {"id": "e", "rows": [{"name": "fine"}]},
                "42",
            )
    bad_json, bad_value, unknown, duplicate_key, missing, good, not_rows = answers
    assert bad_json["status"] == "rejected" and "not valid JSON" in bad_json["errors"][0]["reason"]
    assert bad_value["status"] == "rejected" and bad_value["rows_written"] == 0
    assert bad_value["errors"] == [{"index": 1, "column": "age", "code": "invalid_value", "reason": "column 'age': expected an integer"}]
    assert unknown["status"] == "rejected" and unknown["errors"][0]["reason"] == "table 'users' has no column 'nope'"
    # The database's refusal is found by splitting the group, and named by row.
    assert duplicate_key["status"] == "rejected" and duplicate_key["errors"][0]["index"] == 1
    assert "Duplicate" in duplicate_key["errors"][0]["reason"] or "duplicate" in duplicate_key["errors"][0]["reason"]
    assert missing["status"] == "rejected" and "name" in missing["errors"][0]["reason"]
    assert good == {"id": "e", "status": "applied", "rows_written": 1, "errors": []}
    assert not_rows["status"] == "rejected"
    # Nothing of a refused message went in (not "ok", "ok2" or "p").
    assert [r[0] for r in run_sql(schema, "SELECT name FROM users ORDER BY id")] == ["old", "fine"]


async def test_rules_refuse_a_row_by_index(schema, settings, client):
    rules = {"type": "object", "properties": {"age": {"minimum": 18}}}
    assert (await client.put("/api/schemas/users", json=rules)).status_code in (200, 201)
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            (answer,) = await exchange(ws, {"id": "r", "rows": [{"name": "a", "age": 20}, {"name": "b", "age": 9}]})
    assert answer["status"] == "rejected"
    assert answer["errors"][0]["index"] == 1 and answer["errors"][0]["column"] == "age"
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_a_message_id_is_applied_once(schema, settings):
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            first, again_in_group = await exchange(ws, {"id": 7, "rows": [{"name": "a"}, {"name": "b"}]}, {"id": 7, "rows": [{"name": "a"}, {"name": "b"}]})
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            (later,) = await exchange(ws, {"id": "7", "rows": [{"name": "a"}, {"name": "b"}]})
    assert first["status"] == "applied"
    assert again_in_group["status"] == "duplicate"
    assert later == {"id": "7", "status": "duplicate", "rows_written": 2, "errors": []}
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(2,)]


async def test_upsert_mode(schema, settings):
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/pairs/ws?mode=upsert") as ws:
            answers = await exchange(ws, [{"a": 1, "b": "x", "v": 1}], [{"a": 1, "b": "x", "v": 2}, {"a": 2, "b": "y", "v": 3}])
        assert [a["status"] for a in answers] == ["applied", "applied"]
        async with websockets.connect(f"ws://{host}/api/pairs/ws?mode=merge") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd.code == 1008
    assert run_sql(schema, "SELECT a, b, v FROM pairs ORDER BY a") == [(1, "x", 2), (2, "y", 3)]


async def test_credentials_scopes_and_limits(schema, settings):
    keys = json.dumps([
        {"name": "loader", "sha256": hashlib.sha256(b"k-load").hexdigest(), "scopes": ["import:users"]},
        {"name": "reader", "sha256": hashlib.sha256(b"k-read").hexdigest(), "scopes": ["read:*"]},
    ])
    configured = settings(auth_mode="api-key", api_keys=keys, ws_max_message_bytes=2048, ws_auth_timeout_s=1)

    async def closed_with(uri: str, headers=None, first: str | None = None) -> int:
        async with websockets.connect(uri, additional_headers=headers) as ws:
            if first is not None:
                await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(json.dumps({"name": "never"}))
                await ws.recv()
        return closed.value.rcvd.code

    async with serving(configured) as (_, url):
        host = url.removeprefix("http://")
        uri = f"ws://{host}/api/users/ws"
        assert await closed_with(uri) == 1008  # no credentials: the first message is not a token
        assert await closed_with(uri, {"X-API-Key": "wrong"}) == 1008
        assert await closed_with(uri, {"X-API-Key": "k-read"}) == 1008  # no import scope
        assert await closed_with(f"ws://{host}/api/orders/ws", {"X-API-Key": "k-load"}) == 1008
        assert await closed_with(f"ws://{host}/api/secret_stuff/ws", {"X-API-Key": "k-load"}) == 1008
        async with websockets.connect(uri, additional_headers={"Authorization": "Bearer k-load"}) as ws:
            (answer,) = await exchange(ws, {"name": "by-header"})
            assert answer["status"] == "applied"
            await ws.send(json.dumps([{"name": "x" * 40}] * 60))  # over 2048 bytes
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1009
        async with websockets.connect(uri) as ws:  # a browser: the token in the first message
            await ws.send(json.dumps({"token": "k-load"}))
            (answer,) = await exchange(ws, {"name": "by-message"})
            assert answer["status"] == "applied"
    assert sorted(r[0] for r in run_sql(schema, "SELECT name FROM users")) == ["by-header", "by-message"]


async def test_a_dropped_connection_resumed_applies_every_message_once(schema, settings):
    """1,000 messages of 20 rows sent as fast as the socket takes them; the connection is cut
    after 300 answers; a new one resends everything unanswered (some of which committed while the
    socket was going away): every row is in the table once."""
    messages = {f"m{i}": [{"name": f"n{i}-{j}", "age": j} for j in range(20)] for i in range(1000)}
    answered: set[str] = set()
    async with serving(settings(ws_max_in_flight=16)) as (_, url):
        host = url.removeprefix("http://")
        uri = f"ws://{host}/api/users/ws"
        async with websockets.connect(uri) as ws:

            async def send_all() -> None:
                for ident, rows in messages.items():
                    await ws.send(json.dumps({"id": ident, "rows": rows}))

            sender = asyncio.create_task(send_all())
            while len(answered) < 300:
                answer = json.loads(await ws.recv())
                assert answer["status"] == "applied", answer
                answered.add(answer["id"])
            ws.transport.abort()  # no closing handshake: the socket just goes
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        statuses: dict[str, int] = {}
        async with websockets.connect(uri) as ws:
            unanswered = [i for i in messages if i not in answered]

            async def resend() -> None:
                for ident in unanswered:
                    await ws.send(json.dumps({"id": ident, "rows": messages[ident]}))

            task = asyncio.create_task(resend())
            for _ in unanswered:
                answer = json.loads(await ws.recv())
                statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
            await task
    assert set(statuses) <= {"applied", "duplicate"} and sum(statuses.values()) == 700
    # The server had read ahead (16 in flight) and committed messages whose answers were lost.
    assert statuses.get("duplicate", 0) > 0
    assert run_sql(schema, "SELECT COUNT(*), COUNT(DISTINCT name) FROM users") == [(20_000, 20_000)]


async def test_every_string_comes_back_exactly(schema, settings):
    """Text with quotes, backslashes, separators and control characters, through the fast JSON
    lines path and the CSV fallback, reads back exactly as sent."""
    texts = [
        'say "hi", ok', "back\\slash", "\\N", "NULL", "null", "new\nline", "tab\there", "cr\rhere", "bs\bhere",
        "],[", "[x]", "", " lead and trail ", "\u00e9\U0001f600", "form\ffeed", "bell\x07", "a,b,c",
    ]
    rows = [{"id": i, "t": text, "s": text[:10]} for i, text in enumerate(texts)]
    rows.append({"id": 100, "t": None, "s": None})
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/types/ws") as ws:
            # One message of the plain ones (JSON lines) and one with control characters (CSV).
            plain = [r for r in rows if not any(ch in (r["t"] or "") for ch in "\f\x07")]
            control = [r for r in rows if r not in plain]
            answers = await exchange(ws, {"id": "p", "rows": plain}, {"id": "c", "rows": control})
    assert [a["status"] for a in answers] == ["applied", "applied"], answers
    stored = {i: (t, s) for i, t, s in run_sql(schema, "SELECT id, t, s FROM types")}
    assert stored == {r["id"]: (r["t"], r["s"]) for r in rows}


async def test_values_through_the_stream_equal_values_through_post(schema, settings, client):
    """The POST path is the oracle: the same values, sent both ways, read back the same (the
    stream's fast path passes values as sent when their form is canonical, else converts)."""
    samples = [
        {"i": -128, "u": 65535, "b": -9223372036854775808, "f": 0.1, "d": "12345.678", "dt": "2024-02-29 23:59:59.123456",
         "da": "2024-02-29", "tm": "838:59:59", "y": 2024, "e": "red", "flag": 1},
        {"i": 127, "u": 0, "b": 9223372036854775807, "f": -1e-7, "d": 42, "dt": "2024-01-01T00:00:00", "da": "1999-12-31",
         "tm": "-01:02:03.5", "y": 1901, "e": "green", "flag": 0},
        {"i": None, "u": "17", "b": "123", "f": 3, "d": "-0.5", "dt": "2024-06-01T12:00:00+02:00", "da": None, "tm": None,
         "y": None, "e": None, "flag": True},
    ]
    async with serving(settings()) as (_, url):
        host = url.removeprefix("http://")
        async with websockets.connect(f"ws://{host}/api/types/ws") as ws:
            (answer,) = await exchange(ws, {"rows": [{"id": n + 1, **row} for n, row in enumerate(samples)]})
    assert answer["status"] == "applied", answer
    for n, row in enumerate(samples):
        posted = await client.post("/api/types", json={"input": {"id": n + 101, **row}})
        assert posted.status_code == 201, posted.text
    for n in range(len(samples)):
        streamed = (await client.get(f"/api/types/{n + 1}")).json()["data"]
        posted = (await client.get(f"/api/types/{n + 101}")).json()["data"]
        assert {**streamed, "id": 0, "gen": 0} == {**posted, "id": 0, "gen": 0}, n


async def test_a_slow_database_pushes_back_on_the_sender(schema, settings, test_db, proxy):
    """Two messages in flight at most: while the database is slow the gateway stops reading, the
    sockets fill and the sender's writes block (40 MB sent into a few MB of socket buffers), nothing
    piles up in the gateway. Once the database is quick again every message is applied once."""
    from tests.conftest import proxied_url

    config = settings(database_url=proxied_url(test_db, proxy.port), ws_max_in_flight=2,
                      bulk_attempt_timeouts_ms=(20000, 20000), attempt_timeouts_ms=(20000, 20000))
    message = {"rows": [{"name": "x" * 40, "age": 1}] * 2000}  # about 100 KB
    count, sent = 400, 0
    async with serving(config) as (_, url):
        # No compression: 40 MB of repeated rows would shrink to what the socket buffers hold.
        async with websockets.connect(f"ws://{url.removeprefix('http://')}/api/users/ws", max_queue=None, compression=None) as ws:
            proxy.delay_s = 0.5  # every answer from the database half a second late

            async def send_all() -> None:
                nonlocal sent
                for i in range(count):
                    await ws.send(json.dumps({"id": f"m{i}", **message}))
                    sent += 1

            sender = asyncio.create_task(send_all())
            await asyncio.sleep(3)  # the slow spell
            blocked = sent < count // 2 and not sender.done()
            proxy.delay_s = 0
            await sender
            answers = [json.loads(await ws.recv()) for _ in range(count)]
    assert blocked, f"{sent} of {count} messages went out while the gateway could take 2"
    assert {a["status"] for a in answers} == {"applied"} and len({a["id"] for a in answers}) == count
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(count * 2000,)]


async def test_message_ids_past_their_retention_are_swept(schema, settings):
    """The job workers' idle sweep drops WebSocket ids older than GATEWAY_STREAM_ID_RETENTION_S
    and keeps the others (a message resent within it is still recognised)."""
    from app.streams import positions
    from tests.conftest import eventually, running

    for statement in positions.CREATE:
        run_sql(schema, statement)
    run_sql(schema, "INSERT INTO _gateway_stream_ids VALUES ('ws:users', 'old', 1, UTC_TIMESTAMP(6) - INTERVAL 2 HOUR),"
                    " ('ws:users', 'new', 1, UTC_TIMESTAMP(6))")
    config = settings(job_workers=1, job_poll_s=0.05, stream_id_retention_s=3600)
    async with running(config):
        await eventually(lambda: run_sql(schema, "SELECT id FROM _gateway_stream_ids") == [("new",)], 10)
