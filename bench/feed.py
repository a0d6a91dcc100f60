"""Change feed benchmark (not a test): how fast committed row changes come out, one run.

On a private MariaDB writing its binlog (ROW, full images and metadata), a five-column table:
  (a) the server: BENCH_FEED_ROWS (200,000) rows inserted in 1,000-row statements, 10 a transaction:
      the commit rate, the baseline
  (b) the binlog read and decoded alone (app/feed/reader.read, the library's ceiling on one core)
  (c) the feed through the gateway: the same changes as Server-Sent Events of GET /api/{table}/changes
      to one subscriber, from the first event to the last
  (d) a writer paced at BENCH_FEED_RATE (20,000) row changes/s in 100-row transactions for
      BENCH_FEED_SECONDS (10) while a subscriber follows: the changes it received, and the feed's lag
      (commit to event) at the end
and prints each rate and its ratio to the target (20,000 row changes/s) and to the commit rate.

    make bench-feed       # or: .venv/bin/python bench/feed.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import pymysql  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.feed.positions import Position  # noqa: E402
from app.feed.reader import Source, read  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.mariadb_servers import FEED_FLAGS, PrivateServer  # noqa: E402

ROWS = int(os.environ.get("BENCH_FEED_ROWS", 200_000))
RATE = int(os.environ.get("BENCH_FEED_RATE", 20_000))
SECONDS = float(os.environ.get("BENCH_FEED_SECONDS", 10))
TARGET = 20_000
TABLE = ("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), at DATETIME, n INT)")


def insert(conn: pymysql.Connection, start: int, rows: int, per_statement: int, per_transaction: int) -> None:
    with conn.cursor() as cur:
        done = 0
        while done < rows:
            cur.execute("BEGIN")
            for _ in range(per_transaction):
                if done >= rows:
                    break
                n = min(per_statement, rows - done)
                values = ",".join(f"({start + done + i},'name {start + done + i}',{i}.25,'2026-12-07 10:00:00',{i})"
                                  for i in range(n))
                cur.execute(f"INSERT INTO t VALUES {values}")
                done += n
            cur.execute("COMMIT")


def position(server: PrivateServer) -> Position:
    file, offset = server.sql("SHOW MASTER STATUS")[0][:2]
    return Position.start(file, int(offset))


def decode_alone(server: PrivateServer, start: Position, rows: int) -> float:
    seen, stop = [0], threading.Event()
    began = time.perf_counter()

    def emit(tx) -> None:
        seen[0] += len(tx.changes)
        if seen[0] >= rows:
            stop.set()
            raise StopIteration

    try:
        read(Source({"unix_socket": server.socket, "user": "root"}, "bench"), start, emit, stop, server_id=4242)
    except StopIteration:
        pass
    return rows / (time.perf_counter() - began)


async def follow(base: str, rows: int, ready: asyncio.Event, stamps: list[float]) -> None:
    """Count the change events as bytes arrive (a client that parses each line would be the slowest
    part): the time of the first and of the last."""
    async with httpx.AsyncClient(timeout=120) as client, client.stream("GET", f"{base}/api/t/changes") as answer:
        seen, tail = 0, b""
        async for chunk in answer.aiter_bytes():
            text = tail + chunk
            if not ready.is_set() and b"event: ready" in text:
                ready.set()
            found = text.count(b"event: change")
            if found and seen == 0:
                stamps.append(time.perf_counter())
            seen += found
            if b"event: cut" in text:
                raise RuntimeError(f"the subscriber was cut off after {seen:,} changes")
            tail = text[-16:].split(b"\n")[-1]  # a marker cut between two chunks is counted once
            if seen >= rows:
                stamps.append(time.perf_counter())
                return


async def main() -> None:
    base_dir = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    server = PrivateServer(base_dir, 21, FEED_FLAGS)
    server.start()
    gateway = None
    try:
        server.sql("CREATE DATABASE bench")
        server.sql(TABLE, database="bench")
        conn = pymysql.connect(unix_socket=server.socket, user="root", database="bench", autocommit=True)
        start = position(server)
        began = time.perf_counter()
        insert(conn, 0, ROWS, 1000, 10)
        commit_rate = ROWS / (time.perf_counter() - began)
        print(f"(a) server commits      {commit_rate:10,.0f} row changes/s ({ROWS:,} rows, 1,000-row statements)")
        alone = decode_alone(server, start, ROWS)
        print(f"(b) binlog decoded      {alone:10,.0f} row changes/s  {alone / TARGET:5.2f}x the target")

        port = free_port()
        env = os.environ | {"DATABASE_URL": f"mysql://root@localhost/bench?unix_socket={server.socket}",
                            "PORT": str(port), "GATEWAY_ACCESS_LOG": "false", "GATEWAY_LOG_LEVEL": "warning",
                            "GATEWAY_FEED_QUEUE": str(4 * ROWS)}
        gateway = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/health/live", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        ready, stamps = asyncio.Event(), []
        following = asyncio.create_task(follow(base, ROWS, ready, stamps))
        await ready.wait()
        await asyncio.to_thread(insert, conn, ROWS, ROWS, 1000, 10)
        await following
        through = (ROWS - 1) / (stamps[1] - stamps[0])
        print(f"(c) feed to SSE         {through:10,.0f} row changes/s  {through / TARGET:5.2f}x the target, "
              f"{through / commit_rate:4.2f}x the commit rate")

        total = int(RATE * SECONDS)
        ready, stamps = asyncio.Event(), []
        following = asyncio.create_task(follow(base, total, ready, stamps))
        await ready.wait()

        def paced() -> None:
            t0 = time.perf_counter()
            for k in range(total // 100):
                insert(conn, 2 * ROWS + k * 100, 100, 100, 1)
                ahead = t0 + (k + 1) * 100 / RATE - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)

        written_at = time.perf_counter()
        await asyncio.to_thread(paced)
        wrote = time.perf_counter() - written_at
        await asyncio.wait_for(following, 120)
        lag = stamps[1] - (written_at + wrote)
        print(f"(d) paced writer        {total / wrote:10,.0f} row changes/s for {wrote:.1f} s: all {total:,} followed, "
              f"the last {max(lag, 0) * 1000:,.0f} ms after its commit")
        conn.close()
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(10)
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
