"""Metrics and the access log show what the gateway does, and never the data it carries."""

import logging

from tests.conftest import proxied_url, running
from tests.integration.test_csv import csv_bytes, imported


def metric(text: str, name: str) -> float:
    """The value of one exact sample line in the Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


async def test_requests_pool_catalog_and_csv_rows_are_counted(client):
    for _ in range(3):
        assert (await client.get("/api/users/query")).status_code == 200
    assert (await client.get("/api/nope/query")).status_code == 404
    await imported(client, "users.csv", csv_bytes([["name"], ["a"], ["b"]]))
    assert (await client.get("/api/batch/users/export")).status_code == 200
    text = (await client.get("/metrics")).text
    assert metric(text, 'gateway_requests_total{method="GET",route="/api/{table}/query",status="200"}') == 3
    assert metric(text, 'gateway_requests_total{method="GET",route="/api/{table}/query",status="404"}') == 1
    assert metric(text, 'gateway_request_duration_seconds_count{method="GET",route="/api/{table}/query"}') == 4
    assert metric(text, 'gateway_db_pool_connections{pool="read",state="used"}') == 0
    assert metric(text, 'gateway_db_pool_connections{pool="read",state="waiting"}') == 0
    assert metric(text, "gateway_catalog_loads_total") >= 1
    assert metric(text, 'gateway_csv_rows_total{direction="import",table="users"}') == 2
    assert metric(text, 'gateway_csv_rows_total{direction="export",table="users"}') == 2


async def test_retries_and_give_ups_are_counted(schema, settings, proxy, test_db):
    fast = {"attempt_timeouts_ms": (100, 100, 100, 100), "retry_waits_ms": (10, 10, 10)}
    async with running(settings(database_url=proxied_url(test_db, proxy.port), **fast)) as client:
        assert (await client.get("/api/users/query")).status_code == 200
        await proxy.down()
        assert (await client.get("/api/users/query")).status_code == 503
        text = (await client.get("/metrics")).text
    assert metric(text, 'gateway_db_gave_up_total{code="service_unavailable"}') == 1
    retried = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("gateway_db_retries_total{"))
    assert retried == 3


async def test_one_access_line_a_request_without_values(client, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")
    secret = "s3cr3t-value"
    response = await client.post(
        "/api/users", json={"input": {"name": secret}}, headers={"X-Request-ID": "req-42", "Idempotency-Key": "k1"}
    )
    assert response.status_code == 201
    await client.get(f"/api/users/{response.json()['data']['id']}")
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 2
    first = lines[0].fields
    assert first == {
        "method": "POST", "route": "/api/{table}", "table": "users", "status": 201,
        "duration_ms": first["duration_ms"], "retry_count": 0, "request_id": "req-42",
    }
    assert lines[1].fields["route"] == "/api/{table}/{key}"
    assert all(secret not in str(r.__dict__) and "k1" not in str(r.__dict__) for r in caplog.records)


async def test_requests_waiting_for_a_connection_are_counted(schema, settings):
    import asyncio

    async with running(settings(pool_max=1)) as client:
        db = client.app.state.db
        seen = []
        original = db.connections.acquire

        async def acquire(pool):  # look at the gauge while requests queue for the one connection
            seen.append(db.pool_stats()["waiting"])
            return await original(pool)

        db.connections.acquire = acquire
        await asyncio.gather(*(client.get("/api/users/query") for _ in range(5)))
        assert max(seen) >= 1 and db.pool_stats()["waiting"] == 0
