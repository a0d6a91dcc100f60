"""Issue 28's test of the change feed under fire: a writer commits 50,000 row changes in random
transactions while a subscriber follows them through a gateway process that is killed (kill -9)
three times; each time a new process is started and the subscriber goes on from its last event's
id. Every change is seen exactly once, in commit order."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pymysql

from tests.conftest import eventually, free_port
from tests.integration.feedserver import binlog_server, following, fresh_database

ROOT = Path(__file__).resolve().parents[2]
CHANGES = 50_000


def write(conn: pymysql.Connection, expected: list[tuple], done: threading.Event) -> None:
    """Random transactions of 1 to 60 inserts, updates and deletes; what each commits, in order."""
    rng = random.Random(28)
    alive: list[int] = []
    next_id = 1
    with conn.cursor() as cur:
        while len(expected) < CHANGES:
            planned = []
            cur.execute("BEGIN")
            for _ in range(min(rng.randint(1, 60), CHANGES - len(expected))):
                roll = rng.random()
                if roll < 0.6 or len(alive) < 10:
                    v = rng.randint(0, 10**9)
                    cur.execute("INSERT INTO events (id, v) VALUES (%s, %s)", (next_id, v))
                    planned.append(("insert", next_id, v))
                    alive.append(next_id)
                    next_id += 1
                elif roll < 0.9:
                    row, v = rng.choice(alive), rng.randint(0, 10**9)
                    cur.execute("UPDATE events SET v = %s WHERE id = %s", (v, row))
                    planned.append(("update", row, v))
                else:
                    row = alive.pop(rng.randrange(len(alive)))
                    cur.execute("DELETE FROM events WHERE id = %s", (row,))
                    planned.append(("delete", row, None))
            cur.execute("COMMIT")
            expected.extend(planned)
    done.set()


class Gateway:
    def __init__(self, url: str):
        self.port = free_port()
        self.env = os.environ | {"DATABASE_URL": url, "PORT": str(self.port), "GATEWAY_ACCESS_LOG": "false",
                                 "GATEWAY_LOG_LEVEL": "warning"}
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await eventually(self._live, timeout=30, what="the gateway answering")

    async def _live(self) -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{self.base}/health/live", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


async def test_every_change_exactly_once_in_order_across_three_kills():
    with binlog_server() as server:
        url, conn = fresh_database(server, ["CREATE TABLE events (id INT PRIMARY KEY, v INT)"])
        gateway = Gateway(url)
        await gateway.start()
        expected: list[tuple] = []
        received: list[tuple] = []
        done = threading.Event()
        last: str | None = None
        writer: threading.Thread | None = None
        try:
            for life in range(4):  # three kills: four gateway processes
                headers = {"Last-Event-ID": last} if last else {}
                async with httpx.AsyncClient(base_url=gateway.base) as client, \
                        following(client, "/api/events/changes", **headers) as events:
                    kind, _, data = await events.next()
                    assert kind == "ready" and (last is None or data["position"] == last)
                    if writer is None:
                        writer = threading.Thread(target=write, args=(conn, expected, done), daemon=True)
                        writer.start()
                    stop_at = CHANGES * (life + 1) // 4 if life < 3 else CHANGES
                    while len(received) < stop_at:
                        kind, ident, data = await asyncio.wait_for(events.next(), 60)
                        assert kind == "change", data
                        after = data["after"]
                        received.append((data["op"], data["key"]["id"], after["v"] if after else None))
                        last = ident
                if life < 3:
                    gateway.kill()
                    await gateway.start()
            assert done.wait(60)
        finally:
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.kill()
            conn.close()
        assert len(received) == CHANGES
        assert received == expected
