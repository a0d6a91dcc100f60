"""What becomes of one-row writes under faults (not a test): a write in a transaction (INSERT, then
COMMIT) beside a write that commits by itself (GATEWAY_SINGLE_STATEMENT_WRITES), in one run.

Each fault runs while BENCH_OUTCOME_WRITES (2,000) POSTs, 8 at a time, each with a name of its own,
go through an in-process gateway (attempts of 100 ms, as the fault tests use) and a TCP fault
proxy (tests/faultproxy.py):
  - lock waits: another session holds the table's next-key locks (SELECT ... FOR UPDATE) for
    250 ms of every 350;
  - a slow network: every answer from the server held 150 ms (past an attempt) for 300 ms of every 600;
  - cut connections: every connection through the proxy cut every 100 ms;
  - the database away: the proxy refusing connections for 200 ms of every 500.
Then each write's answer is checked against the table: a 2xx must be there, a 503 or 504
gateway_timeout must not (the retries left nothing), and a 504 commit_outcome_unknown may be
either (counted both ways). Any 2xx missing or failure present is a violation.

    make bench-outcomes          # or: DATABASE_URL=... .venv/bin/python bench/outcomes.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/csv.py would stand in for the standard csv module: take this folder off the path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress, Settings  # noqa: E402
from bench.crud import connect, database_url, throwaway_database  # noqa: E402
from tests.conftest import proxied_url, running  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

WRITES = int(os.environ.get("BENCH_OUTCOME_WRITES", "2000"))
CONCURRENCY = 8
FAST = {"attempt_timeouts_ms": (100, 100, 100, 100), "retry_waits_ms": (10, 10, 10), "kill_timeout_ms": 1000}


async def lock_waits(proxy: FaultProxy, address: DatabaseAddress, stop: asyncio.Event) -> None:
    holder = connect(address, address.database)
    try:
        while not stop.is_set():
            await asyncio.to_thread(holder.cursor().execute, "BEGIN")
            await asyncio.to_thread(holder.cursor().execute, "SELECT id FROM items WHERE id > 0 FOR UPDATE")
            await asyncio.sleep(0.25)
            await asyncio.to_thread(holder.cursor().execute, "ROLLBACK")
            await asyncio.sleep(0.1)
    finally:
        holder.close()


async def slow_network(proxy: FaultProxy, address: DatabaseAddress, stop: asyncio.Event) -> None:
    while not stop.is_set():
        proxy.delay_s = 0.15
        await asyncio.sleep(0.3)
        proxy.delay_s = 0
        await asyncio.sleep(0.3)


async def cut_connections(proxy: FaultProxy, address: DatabaseAddress, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)
        proxy.cut_all()


async def database_away(proxy: FaultProxy, address: DatabaseAddress, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await proxy.down()
        await asyncio.sleep(0.2)
        await proxy.up()
        await asyncio.sleep(0.3)


FAULTS = {"lock waits": lock_waits, "slow network": slow_network, "cut connections": cut_connections,
          "database away": database_away}


def outcome(response) -> str:
    if response.status_code < 300:
        return "ok, retried" if response.json()["retry_count"] else "ok"
    return response.json().get("error", str(response.status_code))


async def run(fault: str, single: bool, url: str, address: DatabaseAddress) -> Counter:
    proxy = FaultProxy(address)
    await proxy.up()
    settings = Settings(database_url=proxied_url(url, proxy.port), single_statement_writes=single, job_workers=0,
                        log_level="error", access_log=False, **FAST)
    answers: dict[str, str] = {}
    label = f"{'s' if single else 't'}{len(fault)}"
    async with running(settings) as client:
        assert (await client.post("/api/items", json={"input": {"name": "warm"}})).status_code == 201
        stop = asyncio.Event()
        making = asyncio.create_task(FAULTS[fault](proxy, address, stop))
        queue = list(range(WRITES))

        async def writer() -> None:
            while queue:
                name = f"{label}-{queue.pop()}"
                answers[name] = outcome(await client.post("/api/items", json={"input": {"name": name}}))

        await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))
        stop.set()
        await making
        proxy.delay_s = 0
        if proxy._server is None:
            await proxy.up()
    await proxy.down()
    db = connect(address, address.database)
    with db.cursor() as cursor:
        cursor.execute("SELECT name FROM items WHERE name LIKE %s", (f"{label}-%",))
        present = {name for (name,) in cursor.fetchall()}
    db.close()
    counts: Counter = Counter()
    for name, answer in answers.items():
        there = name in present
        if answer.startswith("ok"):
            counts[answer if there else "VIOLATION: ok but absent"] += 1
        elif answer == "commit_outcome_unknown":
            counts["unknown, applied" if there else "unknown, not applied"] += 1
        else:
            counts[f"VIOLATION: {answer} but present" if there else answer] += 1
    return counts


async def main() -> None:
    server = database_url("bench-outcomes")
    with throwaway_database(server) as (address, name, url):
        db = connect(address, name)
        db.cursor().execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL)")
        db.close()
        target = DatabaseAddress.parse(url)
        columns = ["ok", "ok, retried", "service_unavailable", "gateway_timeout", "unknown, applied", "unknown, not applied"]
        print(f"{WRITES} one-row POSTs per fault, {CONCURRENCY} at a time, attempts of 100 ms")
        print(f"{'fault':16} {'write':18}" + "".join(f"{c:>21}" for c in columns) + "  other")
        for fault in FAULTS:
            for single in (False, True):
                started = time.monotonic()
                counts = await run(fault, single, url, target)
                other = {k: v for k, v in counts.items() if k not in columns}
                how = "commits by itself" if single else "transaction"
                print(f"{fault:16} {how:18}" + "".join(f"{counts.get(c, 0):>21}" for c in columns)
                      + f"  {other or ''} ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    asyncio.run(main())
