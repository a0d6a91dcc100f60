"""The gateway on a real 3-node MariaDB Galera cluster on loopback (scripts/galera.py), started by
this module on free ports and stopped after: node loss under load, write conflicts between nodes,
imports and streams exactly once, a node left without quorum."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import websockets

from app.core.config import Settings
from scripts.galera import Cluster
from tests.conftest import SCHEMA, eventually, running, serving
from tests.integration.test_client import client as gateway_client
from tests.integration.test_client import people

PROBE = {"GATEWAY_NODE_PROBE_S": "0.3"}


@pytest.fixture(scope="module")
def galera():
    directory = Path(tempfile.mkdtemp(prefix="gateway-galera-"))
    cluster = Cluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def galera_db(galera):
    """A database of this test's own with the `users` table; the cluster healed afterwards (every
    node running and Synced), whatever the test did to it."""
    name = f"gwgalera_{int(time.time() * 1000) % 10**9}"
    first = galera.nodes[0]
    first.sql(f"CREATE DATABASE `{name}`")
    first.sql(SCHEMA[0], database=name)  # users
    try:
        yield name
    finally:
        galera.heal()
        galera.nodes[0].sql(f"DROP DATABASE IF EXISTS `{name}`")


def config(url: str, **overrides) -> Settings:
    return Settings(database_url=url, job_workers=0, **overrides)


def node_sql(galera: Cluster, database: str, statement: str) -> list[tuple]:
    """On any Synced node (a test may have killed some)."""
    node = next(n for n in galera.nodes if n.synced())
    return node.sql(statement, database=database)


def attempts_on(metrics: str, node: str) -> float:
    found = re.search(r'gateway_db_node_attempts_total\{node="%s"\} (\S+)' % re.escape(node), metrics)
    assert found, metrics[-2000:]
    return float(found.group(1))


async def test_kill_9_of_a_node_under_load_through_nginx(galera, galera_db, gateways):
    """Keyed writes and reads through nginx and three gateways while one of three nodes is killed
    -9: no read fails, every write applies exactly once; the node rejoins by IST and, once Synced,
    every gateway uses it again."""
    c = await gateways(galera.url(galera_db), **PROBE)
    victim = galera.nodes[2]
    failed_reads, slowest_read, written = [], 0.0, set()

    async with httpx.AsyncClient(base_url=c.url, timeout=30) as client:

        async def read() -> None:
            nonlocal slowest_read
            started = time.monotonic()
            response = await client.get("/api/users/query", params={"limit": 1})
            slowest_read = max(slowest_read, time.monotonic() - started)
            if response.status_code != 200:
                failed_reads.append(response.text)

        async def write(i: int) -> None:
            for _ in range(30):
                try:
                    response = await client.post(
                        "/api/users", json={"input": {"name": f"w{i}"}}, headers={"Idempotency-Key": f"key-{i}"}
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    written.add(i)
                    return
                # A clear "try again" (the stall outlasted the schedule): the same key is sent again.
                assert response.status_code in (503, 504), response.text
                await asyncio.sleep(0.2)

        for step in range(40):
            if step == 10:
                await asyncio.to_thread(victim.kill)
            await asyncio.gather(*(read() for _ in range(10)), *(write(step * 10 + j) for j in range(10)))

        assert failed_reads == [] and len(written) == 400
        assert slowest_read < 10, slowest_read  # the stall (failure detection: 2-3 s) plus the schedule
        assert node_sql(galera, galera_db, "SELECT COUNT(*), COUNT(DISTINCT name) FROM users") == [(400, 400)]

        # The node comes back by IST (not a full copy) and every gateway uses it again once Synced.
        log_before = victim.log.stat().st_size
        await asyncio.to_thread(victim.restart)
        await asyncio.to_thread(victim.wait_synced)
        rejoin = victim.log.read_text(errors="replace")[log_before:]
        assert "IST received" in rejoin and not re.search(r"Prepared IST receiver for 0-", rejoin)
        for instance in (1, 2, 3):
            url = c.instance_url(instance)

            async def usable_again() -> bool:
                nodes = (await client.get(f"{url}/health/ready")).json()["data"]["nodes"]
                return all(node["usable"] for node in nodes)

            await eventually(usable_again, timeout=15, what=f"gateway {instance} using the node again")
            before = attempts_on((await client.get(f"{url}/metrics")).text, victim.address)
            for _ in range(6):
                assert (await client.get(f"{url}/api/users/query", params={"limit": 1})).status_code == 200
            assert attempts_on((await client.get(f"{url}/metrics")).text, victim.address) > before


async def test_two_gateways_on_two_nodes_write_the_same_rows(galera, galera_db):
    """Two gateways, each on its own node, send the same keyed POSTs and update the same rows at
    once. Certification conflicts happen and are retried; every keyed write applies once (both
    answer it, one by replay), every update is answered 200 and the rows hold an answered value."""
    first, second = galera.nodes[0], galera.nodes[1]
    settings = {"attempt_timeouts_ms": (1000, 1000, 1000, 1000), "retry_waits_ms": (20, 50, 100)}
    a_settings = config(galera.url(galera_db, nodes=[first]), **settings)
    b_settings = config(galera.url(galera_db, nodes=[second]), **settings)
    async with running(a_settings) as a, running(b_settings) as b:
        for key in range(40):
            body = {"input": {"name": f"k{key}"}}
            answers = await asyncio.gather(
                *(gw.post("/api/users", json=body, headers={"Idempotency-Key": f"same-{key}"}) for gw in (a, b))
            )
            assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
            assert answers[0].json()["data"]["id"] == answers[1].json()["data"]["id"]
            assert sorted(r.headers.get("Idempotent-Replayed", "false") for r in answers) == ["false", "true"]
        assert node_sql(galera, galera_db, "SELECT COUNT(*), COUNT(DISTINCT name) FROM users") == [(40, 40)]

        ids = [r[0] for r in node_sql(galera, galera_db, "SELECT id FROM users ORDER BY id LIMIT 10")]
        last: dict[int, set[str]] = {}
        for round_ in range(10):
            answers = await asyncio.gather(*(
                gw.put(f"/api/users/{i}", json={"input": {"name": f"{side}{round_}-{i}"}})
                for i in ids for side, gw in (("a", a), ("b", b))
            ))
            assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.status_code != 200]
            last = {i: {f"a{round_}-{i}", f"b{round_}-{i}"} for i in ids}
        rows = node_sql(galera, galera_db, f"SELECT id, name FROM users WHERE id IN ({','.join(map(str, ids))})")
        assert all(name in last[i] for i, name in rows)
        conflicts = sum(gw.app.state.db.retries.get("certification_conflict", 0) for gw in (a, b))
        assert conflicts > 0  # the test did make the nodes disagree
        metrics = (await a.get("/metrics")).text + (await b.get("/metrics")).text
        assert 'gateway_db_retries_total{cause="certification_conflict"}' in metrics


async def test_an_import_and_a_stream_apply_exactly_once_through_a_node_loss(galera, galera_db, tmp_path):
    """gateway-client imports 20,000 rows in keyed batches while a node is killed -9; a WebSocket
    stream's messages are all sent twice. Every row is in the table once."""
    data = tmp_path / "users.csv"
    good = people(data, 20_000)
    settings = config(galera.url(galera_db), node_probe_s=0.3)
    async with serving(settings) as (_, url):
        run = asyncio.create_task(gateway_client(
            "import", str(data), "--url", url, "--batch-rows", "500", "--concurrency", "3", "--retries", "20", "--json"
        ))
        await eventually(
            lambda: node_sql(galera, galera_db, "SELECT COUNT(*) FROM users")[0][0] >= 3000, timeout=60, what="3,000 rows"
        )
        await asyncio.to_thread(galera.nodes[1].kill)
        code, out, err = await run
        assert code == 0, err
        report = json.loads(out)
        assert report["complete"] and report["rows_inserted"] == len(good)
        ids = [i for (i,) in node_sql(galera, galera_db, "SELECT id FROM users ORDER BY id")]
        assert ids == sorted(good)

        host = url.removeprefix("http://")
        messages = [{"id": f"m-{i}", "rows": [{"id": 100_000 + i, "name": f"s{i}"}]} for i in range(300)]
        answers = []
        async with websockets.connect(f"ws://{host}/api/users/ws") as ws:
            for _ in range(2):  # every message sent twice, the second time all at once
                for message in messages:
                    await ws.send(json.dumps(message))
                answers += [json.loads(await ws.recv()) for _ in messages]
        statuses = [a["status"] for a in answers]
        assert statuses[:300] == ["applied"] * 300 and statuses[300:] == ["duplicate"] * 300
        streamed = node_sql(galera, galera_db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM users WHERE id >= 100000")
        assert streamed == [(300, 300)]


async def test_a_node_left_without_quorum_is_503_within_budget_then_recovers(galera, galera_db):
    """Two of three nodes killed: the last one loses the primary component and answers 1047. The
    gateway answers 503 with Retry-After inside its schedule, never hangs; once the cluster is whole
    again it answers 200."""
    timeouts, waits = (200, 200, 200, 200), (100, 100, 100)
    budget = (sum(timeouts) + sum(waits)) / 1000
    settings = config(galera.url(galera_db), attempt_timeouts_ms=timeouts, retry_waits_ms=waits, node_probe_s=0.3)
    survivor = galera.nodes[0]
    async with running(settings) as client:
        assert (await client.post("/api/users", json={"input": {"name": "before"}})).status_code == 201
        await asyncio.gather(*(asyncio.to_thread(n.kill) for n in galera.nodes[1:]))
        await eventually(
            lambda: survivor.status().get("wsrep_cluster_status") == "non-Primary", timeout=20, what="non-Primary"
        )

        async def timed(method: str, path: str, **kw) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await client.request(method, path, **kw)
            return response, time.monotonic() - started

        calls = [("GET", "/api/users/query", {}), ("POST", "/api/users", {"json": {"input": {"name": "during"}}})]
        results = await asyncio.gather(*(timed(m, p, **kw) for m, p, kw in calls * 5))
        for response, seconds in results:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] and response.json()["error"] == "service_unavailable"
            assert seconds < budget + 1.0
        ready = await client.get("/health/ready")
        assert ready.status_code == 503

        await asyncio.to_thread(galera.heal)

        async def answers() -> bool:
            return (await client.get("/api/users/query")).status_code == 200

        await eventually(answers, timeout=20, what="reads answered again")
        assert (await client.post("/api/users", json={"input": {"name": "after"}})).status_code == 201

        async def whole() -> bool:
            nodes = (await client.get("/health/ready")).json()["data"]["nodes"]
            return [(n["state"], n["usable"]) for n in nodes] == [("Synced", True)] * 3

        await eventually(whole, timeout=10, what="every node Synced and in use")
    assert sorted(r[0] for r in node_sql(galera, galera_db, "SELECT name FROM users")) == ["after", "before"]
