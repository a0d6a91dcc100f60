"""Soak (not a test): mixed CRUD through nginx over three gateway instances for N minutes.

    make soak                                  # 5 minutes, 16 clients
    SOAK_MINUTES=1 SOAK_CONCURRENCY=32 SOAK_DB_OUTAGE_EVERY_S=60 SOAK_DB_OUTAGE_S=3 .venv/bin/python bench/soak.py

It starts `deploy/cluster.sh` (3 instances + nginx) against a throwaway database. With
SOAK_DB_OUTAGE_EVERY_S, the instances reach MariaDB through a TCP proxy that is taken down for
SOAK_DB_OUTAGE_S seconds at that period (the database "restarting": connections cut and refused).
Operations: 50% GET by key, 20% list page, 20% keyed POST, 10% keyed PUT by key. A write that fails
(transport error, 502, 503, 504) is sent again with the same Idempotency-Key until it succeeds.
At the end: requests/s, counts by status, p50/p99, and rows expected against rows present.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress  # noqa: E402
from bench.crud import connect, free_port  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402  (the same TCP fault proxy the tests use)

MINUTES = float(os.environ.get("SOAK_MINUTES", "5"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "16"))
OUTAGE_EVERY = float(os.environ.get("SOAK_DB_OUTAGE_EVERY_S", "0"))
OUTAGE_FOR = float(os.environ.get("SOAK_DB_OUTAGE_S", "3"))
SEED_ROWS = 1000


async def cluster(action: str, env: dict) -> None:
    process = await asyncio.create_subprocess_exec(str(ROOT / "deploy" / "cluster.sh"), *action.split(), env=env, cwd=ROOT)
    if await process.wait() != 0:
        raise SystemExit(f"cluster.sh {action} failed")


async def main() -> None:
    server = os.environ.get("DATABASE_URL") or sys.exit("set DATABASE_URL (make soak does)")
    address = DatabaseAddress.parse(server)
    name = f"gwsoak_{uuid.uuid4().hex[:8]}"
    admin = connect(address)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    db = connect(address, name)
    db.cursor().execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(60) NOT NULL, qty INT NOT NULL DEFAULT 0)")
    db.cursor().executemany("INSERT INTO items (name, qty) VALUES (%s, %s)", [(f"seed {i}", i) for i in range(SEED_ROWS)])
    url = urlunsplit(urlsplit(server)._replace(path="/" + name))
    proxy = None
    if OUTAGE_EVERY:
        proxy = FaultProxy(DatabaseAddress.parse(url))
        await proxy.up()
        auth = address.user + (f":{address.password}" if address.password else "")
        url = f"mysql://{auth}@127.0.0.1:{proxy.port}/{name}"
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url, "NGINX_PORT": str(port), "BASE_PORT": str(random.randrange(20000, 40000, 10)),
        "CLUSTER_DIR": tempfile.mkdtemp(prefix="gwsoak"), "PYTHON": sys.executable, "GATEWAY_ACCESS_LOG": "false",
    }
    await cluster("start 3", env)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    created: set[str] = set()
    abandoned: set[str] = set()
    deadline = time.monotonic() + MINUTES * 60

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

        async def send(method: str, path: str, **kwargs) -> int:
            started = time.monotonic()
            try:
                status = (await client.request(method, path, **kwargs)).status_code
            except httpx.TransportError:
                status = 0
            latencies.append(time.monotonic() - started)
            statuses[str(status or "transport_error")] += 1
            return status

        async def keyed(method: str, path: str, body: dict, key: str, ok: int) -> bool:
            for _ in range(100):
                if await send(method, path, json=body, headers={"Idempotency-Key": key}) == ok:
                    return True
                await asyncio.sleep(0.2)
            return False

        async def client_loop(worker: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                roll = random.random()
                if roll < 0.5:
                    await send("GET", f"/api/items/{random.randint(1, SEED_ROWS)}")
                elif roll < 0.7:
                    await send("GET", "/api/items/query", params={"limit": 100, "offset": random.randint(0, SEED_ROWS)})
                elif roll < 0.9:
                    key = f"post-{worker}-{n}"
                    (created if await keyed("POST", "/api/items", {"input": {"name": key}}, key, 201) else abandoned).add(key)
                else:
                    item = random.randint(1, SEED_ROWS)
                    await keyed("PUT", f"/api/items/{item}", {"input": {"qty": n}}, f"put-{worker}-{n}", 200)

        async def outages() -> None:
            while proxy is not None and time.monotonic() + OUTAGE_EVERY < deadline:
                await asyncio.sleep(OUTAGE_EVERY)
                await proxy.down()
                await asyncio.sleep(OUTAGE_FOR)
                await proxy.up()

        started = time.monotonic()
        outage_task = asyncio.create_task(outages())
        await asyncio.gather(*(client_loop(w) for w in range(CONCURRENCY)))
        outage_task.cancel()
        elapsed = time.monotonic() - started

    await cluster("stop", env)
    if proxy is not None:
        await proxy.down()
    with db.cursor() as cur:
        cur.execute("SELECT name FROM items WHERE name LIKE 'post-%%'")
        rows = [row[0] for row in cur.fetchall()]
    present = set(rows)
    admin.ping(reconnect=True)
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")

    ordered = sorted(latencies)
    total = len(latencies)
    print(f"soak: {MINUTES:g} min, {CONCURRENCY} clients, 3 instances behind nginx"
          + (f", database away {OUTAGE_FOR:g} s every {OUTAGE_EVERY:g} s" if OUTAGE_EVERY else ""))
    print(f"requests: {total} ({total / elapsed:,.0f}/s)  p50 {statistics.median(ordered) * 1000:.1f} ms"
          f"  p99 {ordered[int(total * 0.99) - 1] * 1000:.1f} ms")
    print("by status: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))
    print(f"keyed POSTs: {len(created)} confirmed, {len(abandoned)} abandoned; rows present: {len(rows)}")
    missing, unexpected, doubled = created - present, present - created - abandoned, len(rows) - len(present)
    verdict = "OK" if not (missing or unexpected or doubled) else "MISMATCH"
    print(f"consistency: {verdict} (expected {len(created)}, present {len(rows)}: missing {len(missing)},"
          f" applied twice {doubled}, unexpected {len(unexpected)})")


if __name__ == "__main__":
    asyncio.run(main())
